"""UTCDateTime: any aware datetime goes in, the same instant comes out in UTC (SQLite and PG)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, Integer, Table, insert, select
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from walletcore.db import UTCDateTime, make_metadata

metadata = make_metadata()
events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("occurred_at", UTCDateTime, nullable=False),
)
SHANGHAI = timezone(timedelta(hours=8))
NEW_YORK = timezone(timedelta(hours=-5))


@pytest.fixture
async def schema(engine: AsyncEngine) -> AsyncEngine:
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    return engine


async def test_a_datetime_comes_back_as_the_same_instant_in_utc(schema: AsyncEngine) -> None:
    written = datetime(2024, 3, 1, 8, 30, 15, 123456, tzinfo=SHANGHAI)
    async with schema.begin() as connection:
        await connection.execute(insert(events).values(id=1, occurred_at=written))
        read = (await connection.execute(select(events.c.occurred_at))).scalar_one()

    assert read == written
    assert read.tzinfo is UTC
    assert read == datetime(2024, 3, 1, 0, 30, 15, 123456, tzinfo=UTC)


async def test_comparisons_follow_the_instants_not_the_local_times(schema: AsyncEngine) -> None:
    # 09:00 in Shanghai is 01:00 UTC, earlier than 21:00 the day before in New York (02:00 UTC).
    async with schema.begin() as connection:
        await connection.execute(
            insert(events),
            [
                {"id": 1, "occurred_at": datetime(2024, 3, 2, 9, 0, tzinfo=SHANGHAI)},
                {"id": 2, "occurred_at": datetime(2024, 3, 1, 21, 0, tzinfo=NEW_YORK)},
            ],
        )
        cutoff = datetime(2024, 3, 2, 1, 30, tzinfo=UTC)
        before_cutoff = (
            await connection.execute(select(events.c.id).where(events.c.occurred_at < cutoff))
        ).scalars()
        ordered = await connection.execute(select(events.c.id).order_by(events.c.occurred_at))

        assert list(before_cutoff) == [1]
        assert list(ordered.scalars()) == [1, 2]


async def test_a_naive_datetime_is_refused(schema: AsyncEngine) -> None:
    async with schema.begin() as connection:
        with pytest.raises(StatementError, match="timezone-aware"):
            await connection.execute(insert(events).values(id=1, occurred_at=datetime(2024, 3, 1)))
