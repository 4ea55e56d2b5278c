"""Kademlia DHT: routing table, lookups, record store and the node that ties them together (sans-IO)."""
