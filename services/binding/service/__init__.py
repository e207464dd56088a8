"""Binding's use cases: one unit of work per RPC, talking to ports only."""
