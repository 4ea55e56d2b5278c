"""Mininet emulation infrastructure: topologies, capability probe, user-space link relay, IPv6 helpers."""
