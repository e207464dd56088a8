"""The operators' service level: a deadline in working days, and the overdue flag.

A working day is Monday to Friday in UTC; public holidays are not modelled (a deadline that
falls on one is early, never late, for the user). A deadline of n working days after `start`
is the same time of day n working days later; a start on a weekend counts from the next
Monday's midnight, so a Saturday request is due on Tuesday 00:00 with one working day.
"""

from __future__ import annotations

from datetime import datetime, timedelta

_SATURDAY = 5


def _next_working_midnight(moment: datetime) -> datetime:
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    while midnight.weekday() >= _SATURDAY:
        midnight += timedelta(days=1)
    return midnight


def add_working_days(start: datetime, days: int) -> datetime:
    if days < 0:
        raise ValueError("a service level is zero or more working days")
    if start.weekday() >= _SATURDAY:
        start = _next_working_midnight(start)
    deadline = start
    remaining = days
    while remaining:
        deadline += timedelta(days=1)
        if deadline.weekday() < _SATURDAY:
            remaining -= 1
    return deadline


def overdue(deadline: datetime | None, now: datetime) -> bool:
    return deadline is not None and now > deadline
