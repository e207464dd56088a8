"""Kyc's use cases, on the ports in `ports` (one unit of work per RPC)."""
