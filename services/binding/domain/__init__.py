"""Binding's rules: card numbers and cards, refund holds, contact changes, withdrawal holds.
Pure Python: no I/O, no clock (callers pass `now`), no randomness (callers pass ids)."""
