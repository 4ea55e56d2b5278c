"""GossipSub v1.1 (``/meshsub/1.1.0``), sans-IO: messages, codec, router and peer scoring."""
