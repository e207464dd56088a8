"""`SingleStatementReads` on SQLite and PostgreSQL: the same rows as SQLAlchemy would give,
through the columns' types, and a connection that stays usable after the server refuses a
statement or a read is cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, Integer, String, Table, bindparam, insert, select, text
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from walletcore.db import SingleStatementReads, UTCDateTime, make_metadata

metadata = make_metadata()
things = Table(
    "things",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("seen_at", UTCDateTime, nullable=False),
)
BY_ID = select(things.c.id, things.c.count, things.c.seen_at).where(things.c.id == bindparam("id"))
SINCE = select(things.c.id).where(things.c.seen_at >= bindparam("since")).order_by(things.c.id)
SEEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
async def reads(engine: AsyncEngine) -> AsyncIterator[SingleStatementReads]:
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
        await connection.execute(
            insert(things),
            [
                {"id": "a", "count": 1, "seen_at": SEEN},
                {"id": "b", "count": 2, "seen_at": SEEN + timedelta(days=1)},
            ],
        )
    reads = SingleStatementReads(engine)
    yield reads
    await reads.close()


async def test_rows_are_named_by_column_and_times_come_back_in_utc(
    reads: SingleStatementReads,
) -> None:
    rows = await reads.all(BY_ID, {"id": "a"})

    assert [tuple(row) for row in rows] == [("a", 1, SEEN)]
    assert (rows[0].id, rows[0].count, rows[0].seen_at.tzinfo) == ("a", 1, UTC)
    assert await reads.all(BY_ID, {"id": "missing"}) == []


async def test_parameters_pass_through_the_column_types(reads: SingleStatementReads) -> None:
    """A time in another zone is converted as UTCDateTime converts it when binding."""
    since = (SEEN + timedelta(hours=12)).astimezone(timezone(timedelta(hours=8)))

    assert [row.id for row in await reads.all(SINCE, {"since": since})] == ["b"]
    # SQLAlchemy wraps it in a StatementError on SQLite.
    with pytest.raises((ValueError, StatementError), match="timezone-aware"):
        await reads.all(SINCE, {"since": since.replace(tzinfo=None)})


async def test_a_refused_statement_raises_and_the_next_read_works(
    reads: SingleStatementReads,
) -> None:
    with pytest.raises(Exception, match="missing_table"):
        await reads.all(text("SELECT * FROM missing_table"))

    assert [row.id for row in await reads.all(BY_ID, {"id": "b"})] == ["b"]


async def test_a_read_cancelled_mid_statement_leaves_the_reads_usable(
    engine: AsyncEngine, reads: SingleStatementReads
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("no statement on SQLite runs long enough to be cancelled midway")
    slow = asyncio.create_task(reads.all(text("SELECT pg_sleep(5)")))
    await asyncio.sleep(0.1)
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow

    for _ in range(5):  # more reads than connections: every one of them is usable
        assert [row.count for row in await reads.all(BY_ID, {"id": "a"})] == [1]


def test_statements_whose_sql_depends_on_the_values_are_refused(engine: AsyncEngine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite reads run through SQLAlchemy, which expands IN lists itself")
    expanding = select(things.c.id).where(things.c.id.in_(bindparam("ids", expanding=True)))

    with pytest.raises(ValueError, match="expanding"):
        asyncio.run(SingleStatementReads(engine).all(expanding, {"ids": ["a"]}))
