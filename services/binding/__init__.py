"""Binding: bank cards, phone and email changes, withdrawal cooling-off windows, refund holds."""
