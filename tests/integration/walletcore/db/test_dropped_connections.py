"""PostgreSQL connections the server dropped while they sat idle (a restart, a proxy's idle
timeout): after the pool's ping of an idle connection, or in single-statement reads (on
connections of their own, replaced when found closed or when a statement fails on one),
the request still succeeds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from walletcore import db
from walletcore.db import SingleStatementReads, create_engine, normalize_url

BACKEND_PID = text("SELECT pg_backend_pid()")


@pytest.fixture
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(postgres_url, pool_size=1, max_overflow=0)
    yield engine
    await engine.dispose()


async def drop_pooled_connection(engine: AsyncEngine, postgres_url: str) -> None:
    """Ends the server side of the pool's one connection, as a restart or a proxy would."""
    async with engine.connect() as connection:
        pid = (await connection.execute(BACKEND_PID)).scalar_one()
    admin = create_async_engine(normalize_url(postgres_url))
    try:
        async with admin.connect() as connection:
            await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await admin.dispose()


async def test_a_connection_dropped_while_idle_is_pinged_and_replaced(
    engine: AsyncEngine, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await drop_pooled_connection(engine, postgres_url)
    # Every connection that went back to the pool counts as idle.
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)

    async with engine.connect() as connection:
        assert (await connection.execute(text("SELECT 1"))).scalar_one() == 1


async def terminate(postgres_url: str, pids: list[int]) -> None:
    admin = create_async_engine(normalize_url(postgres_url))
    try:
        async with admin.connect() as connection:
            for pid in pids:
                await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await admin.dispose()


async def test_single_statement_reads_survive_their_connections_being_dropped(
    engine: AsyncEngine, postgres_url: str
) -> None:
    reads = SingleStatementReads(engine, connections=2)
    try:
        # Two reads at once hold both connections; then the server ends both.
        held = await asyncio.gather(
            *(reads.all(text("SELECT pg_backend_pid() AS pid, pg_sleep(0.2)")) for _ in "ab")
        )
        await terminate(postgres_url, [rows[0].pid for rows in held])

        rows = await reads.all(text("SELECT CAST(:value AS integer) AS value"), {"value": 7})
        again = await reads.all(text("SELECT CAST(:value AS integer) AS value"), {"value": 8})
    finally:
        await reads.close()

    assert [tuple(row) for row in [*rows, *again]] == [(7,), (8,)]
