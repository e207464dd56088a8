"""The figures the attack and fault tests measure, printed in the run's summary
(tests/conftest.py) under a heading per kind and copied into docs/security.md's tables: what
each tried, and what got through or what held.

    record("reset code brute force", f"{tried} wrong codes tried, {accepted} accepted")
    record("redis stopped and restarted", "limited calls UNAVAILABLE 20/20, ...", kind=FAULTS)

A line recorded twice (the same test on SQLite and on PostgreSQL finding the same) prints once.
"""

from __future__ import annotations

from typing import Final

ATTACKS: Final = "attack figures (docs/security.md)"
FAULTS: Final = "faults injected (docs/security.md)"

_LINES: dict[str, dict[str, None]] = {}
"""The run's lines by kind, each kind's in the order first recorded (dicts as ordered sets)."""


def record(what: str, figures: str, *, kind: str = ATTACKS) -> None:
    """Adds `what: figures` to the summary under `kind`."""
    _LINES.setdefault(kind, {})[f"{what}: {figures}"] = None


def recorded() -> dict[str, list[str]]:
    """Every kind recorded so far and its lines."""
    return {kind: list(lines) for kind, lines in _LINES.items()}
