"""AutoNAT (libp2p/specs ``autonat/``): v2 and v1 messages (``messages``), public addresses and observed
addresses (``addresses``), the server's decisions (``server``) and the client's reachability verdicts
(``client``), sans-IO."""
