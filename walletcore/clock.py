"""Time as a dependency: code that decides by time takes a `Clock`, so tests pass their own."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware in UTC."""


def utc_now() -> datetime:
    return datetime.now(UTC)
