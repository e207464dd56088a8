"""Kyc: real-name verification cases, encrypted identity data and images, review decisions."""
