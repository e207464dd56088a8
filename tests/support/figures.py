"""The figures the attack tests measure, printed in the run's summary (tests/conftest.py) and
copied into docs/security.md's table: what each attack tried and what got through.

    record("reset code brute force", f"{tried} wrong codes tried, {accepted} accepted")

A line recorded twice (the same test on SQLite and on PostgreSQL finding the same) prints once.
"""

from __future__ import annotations

_LINES: dict[str, None] = {}
"""The run's lines, in the order first recorded (a dict as an ordered set)."""


def record(attack: str, figures: str) -> None:
    """Adds `attack: figures` to the summary."""
    _LINES[f"{attack}: {figures}"] = None


def recorded() -> list[str]:
    return list(_LINES)
