"""Making PostgreSQL races deterministic: wait until a transaction is blocked on a lock."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

_WAITING = text(
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


async def wait_until_a_backend_waits_on_a_lock(engine: AsyncEngine) -> None:
    """Returns once another connection to this database is blocked on a row or transaction
    lock, which proves two transactions overlap: the caller, holding the lock, then commits.
    Fails after about 30 seconds (the other transaction never blocked: it did not touch the
    contended row, or finished without it)."""
    async with engine.connect() as connection:
        for _ in range(3000):
            waiting = (await connection.execute(_WAITING)).scalar()
            # PostgreSQL snapshots pg_stat_activity once per transaction: end it, so the next
            # look sees the other backends as they are then.
            await connection.rollback()
            if waiting:
                return
            await asyncio.sleep(0.01)
    raise AssertionError("the other transaction never waited for this one")
