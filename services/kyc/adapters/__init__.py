"""Kyc's adapters: SQL repositories and unit of work, and the rekey job."""
