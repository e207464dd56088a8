"""Kyc's rules: document numbers (the mainland resident ID in full), images by content, legal
names, and the verification case's state machine. Pure Python: no I/O, no clock (callers pass
`now` or `today`), no randomness (callers pass ids)."""
