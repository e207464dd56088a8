"""Binding's server purges, as background tasks, the consumed-grant rows whose grants can no
longer be accepted (walletcore.grants) and the idempotency records past their retention."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.binding.adapters import tables
from services.binding.bootstrap import build
from services.binding.settings import BindingSettings
from walletcore.db import create_engine
from walletcore.fakes import FakeClock
from walletcore.grants import PURGE_MARGIN
from walletcore.migrations import upgrade_to_head
from walletcore.settings import Profile

MIGRATIONS = Path(__file__).resolve().parents[3] / "services" / "binding" / "migrations"


async def jtis(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.scalars(select(tables.consumed_grants.c.jti)))


async def test_the_running_service_purges_spent_grants_past_their_use(
    binding_url: str, tmp_path: Path
) -> None:
    clock = FakeClock()
    await upgrade_to_head(binding_url, MIGRATIONS)
    engine = create_engine(binding_url)
    async with engine.begin() as connection:
        await connection.execute(
            insert(tables.consumed_grants),
            [
                {"jti": "long-gone", "expires_at": clock.now - PURGE_MARGIN - timedelta(1)},
                {"jti": "live", "expires_at": clock.now + timedelta(minutes=4)},
            ],
        )
    settings = BindingSettings(
        profile=Profile.DEVELOPMENT,
        host="127.0.0.1",
        public_port=0,
        admin_port=0,
        internal_port=0,
        metrics_port=0,
        database_url=binding_url,
        vault_database_url=f"sqlite+aiosqlite:///{tmp_path / 'vault.db'}",
        migrate_on_start=True,
        shutdown_grace_seconds=1.0,
    )
    app = build(settings, clock=clock)
    await app.start()
    try:
        # Looked at every 0.05 s for 30 s at most: the bound only ends a broken run.
        for _ in range(600):
            if (remaining := await jtis(engine)) == {"live"}:
                break
            await asyncio.sleep(0.05)
        assert remaining == {"live"}
    finally:
        await app.close(0)
        await engine.dispose()
