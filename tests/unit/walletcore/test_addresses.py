"""Masked client addresses: what a user's session list and security notices show."""

from __future__ import annotations

import pytest

from walletcore.addresses import mask_client_address


@pytest.mark.parametrize(
    ("address", "masked"),
    [
        ("203.0.113.77", "203.0.113.*"),
        ("2001:db8:85a3:8d3:1319:8a2e:370:7348", "2001:db8:85a3:*"),
        (None, ""),
        ("unknown", "unknown"),
    ],
)
def test_client_addresses_are_masked(address: str | None, masked: str) -> None:
    assert mask_client_address(address) == masked
