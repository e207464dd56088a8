"""Device tokens a stranger could make from one they saw: for the tests that check each one
is treated as no token at all."""

from __future__ import annotations


def tampered_device_tokens(text: str, *, max_length: int = 256) -> list[str]:
    """Another signature, another account id, token id, expiry or version in a signed token,
    a part missing or added, a NUL, an empty and an over-long token."""
    version, account_id, token_id, expiry, signature = text.split(".")
    kid, _, mac = signature.partition(":")
    other_mac = ("0" if mac[0] != "0" else "1") + mac[1:]
    return [
        f"{version}.{account_id}.{token_id}.{expiry}.{kid}:{other_mac}",
        f"{version}.{'f' * len(account_id)}.{token_id}.{expiry}.{signature}",
        f"{version}.{account_id}.{token_id[::-1]}.{expiry}.{signature}",
        f"{version}.{account_id}.{token_id}.{int(expiry) + 1}.{signature}",
        f"v2.{account_id}.{token_id}.{expiry}.{signature}",
        f"{version}.{account_id}.{token_id}.{expiry}",
        text + ".extra",
        text.replace(".", "\x00", 1),
        "",
        "x" * (max_length + 1),
    ]
