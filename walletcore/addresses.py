"""Client addresses as a user or an officer's colleague may see them: enough to recognise a
network, not enough to locate a person (SPEC 8: no personal data where it is not needed)."""

from __future__ import annotations

import ipaddress
from typing import Final

from walletcore.grpc.interceptors import UNKNOWN_ADDRESS

# IPv6 keeps its first 48 bits (the routing prefix), as the APIs document.
_IPV6_SHOWN_GROUPS: Final = 3


def mask_client_address(address: str | None) -> str:
    """`203.0.113.7` -> `203.0.113.*`; IPv6 keeps its first 48 bits, e.g. `2001:db8:1:*`.
    Empty when no client was involved; a non-IP marker such as `unknown` is returned as is."""
    if not address:
        return ""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address if address in {UNKNOWN_ADDRESS, "unix"} else ""
    if isinstance(parsed, ipaddress.IPv4Address):
        return address.rpartition(".")[0] + ".*"
    groups = parsed.exploded.split(":")[:_IPV6_SHOWN_GROUPS]
    return ":".join(format(int(group, 16), "x") for group in groups) + ":*"
