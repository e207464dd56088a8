"""Auth's server purges, as a background task, its used-grant rows whose grants can no longer
be accepted (walletcore.grants), which otherwise grew by one row per step-up forever."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import insert, select

from services.auth.adapters.tables import used_grants
from tests.api.auth.harness import StartAuth
from walletcore.fakes import FakeClock
from walletcore.grants import PURGE_MARGIN


async def test_the_running_service_purges_used_grants_past_their_use(
    start_auth: StartAuth,
) -> None:
    clock = FakeClock()
    async with start_auth(clock=clock, idempotency_purge_interval_seconds=0.05) as auth:
        engine = auth.app.engine
        async with engine.begin() as connection:
            await connection.execute(
                insert(used_grants),
                [
                    {"jti": "long-gone", "expires_at": clock.now - PURGE_MARGIN - timedelta(1)},
                    {"jti": "live", "expires_at": clock.now + timedelta(minutes=4)},
                ],
            )

        async def left() -> set[str]:
            async with engine.connect() as connection:
                return set(await connection.scalars(select(used_grants.c.jti)))

        # Looked at every 0.05 s for 30 s at most: the bound only ends a broken run.
        for _ in range(600):
            if (remaining := await left()) == {"live"}:
                break
            await asyncio.sleep(0.05)
        assert remaining == {"live"}
