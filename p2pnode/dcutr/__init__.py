"""DCUtR, Direct Connection Upgrade through Relay (libp2p/specs ``relay/DCUtR.md``): the hole-punch messages
(``messages``) and the two sides' state machines (``holepunch``), sans-IO."""
