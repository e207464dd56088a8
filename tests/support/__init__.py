"""Reusable test peers and helpers shared by the test tiers."""
