"""The operators' deadline in working days (Monday to Friday, UTC) and the overdue flag."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.refund.domain.sla import add_working_days, overdue
from tests.support.profiles import examples

pytestmark = pytest.mark.fuzz

MONDAY = datetime(2025, 3, 3, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "days", "due"),
    [
        (MONDAY, 1, MONDAY + timedelta(days=1)),
        (MONDAY + timedelta(days=4), 1, MONDAY + timedelta(days=7)),  # Friday -> Monday
        (MONDAY + timedelta(days=4), 2, MONDAY + timedelta(days=8)),
        (MONDAY + timedelta(days=5), 1, datetime(2025, 3, 11, tzinfo=UTC)),  # Saturday
        (MONDAY + timedelta(days=6), 0, datetime(2025, 3, 10, tzinfo=UTC)),  # Sunday
        (MONDAY, 5, MONDAY + timedelta(days=7)),
    ],
)
def test_deadlines_skip_weekends(start: datetime, days: int, due: datetime) -> None:
    assert add_working_days(start, days) == due


def test_overdue_only_strictly_after_the_deadline() -> None:
    due = MONDAY + timedelta(days=1)
    assert not overdue(due, due)
    assert overdue(due, due + timedelta(microseconds=1))
    assert not overdue(None, due + timedelta(days=30))


@settings(max_examples=examples(200))
@given(
    start=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
    ),
    days=st.integers(min_value=1, max_value=30),
)
def test_a_deadline_is_a_working_day_and_never_sooner_than_the_days(
    start: datetime, days: int
) -> None:
    due = add_working_days(start, days)
    assert due.weekday() < 5
    assert due - start >= timedelta(days=days)
    # n working days never take more than n calendar weeks' worth of weekends extra.
    assert due - start <= timedelta(days=days + 2 * (days // 5 + 1) + 1)
    assert add_working_days(start, days + 1) > due
