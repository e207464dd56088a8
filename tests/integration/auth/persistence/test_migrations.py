"""Auth's Alembic revisions build exactly the schema the adapters use, on SQLite and PostgreSQL,
with the audit log's append-only guard."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import update
from sqlalchemy.exc import DBAPIError

from services.auth.adapters import tables
from walletcore import audit
from walletcore.db import create_engine
from walletcore.migrations import main, service_migrations_dir, upgrade_to_head


async def test_the_migrated_schema_is_exactly_the_adapters_schema(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await upgrade_to_head(database_url, service_migrations_dir("auth"))

    # The command line runs Alembic's env.py under its own event loop, so not on the test's.
    exit_code = await asyncio.to_thread(main, ["check", "auth", "--database-url", database_url])

    assert exit_code == 0, capsys.readouterr().err


async def test_the_migrated_audit_log_refuses_edits(database_url: str) -> None:
    await upgrade_to_head(database_url, service_migrations_dir("auth"))
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await audit.append(
                connection,
                tables.audit_log,
                actor="officer-7",
                actor_role="security_officer",
                action="FREEZE_ACCOUNT",
                target="account:acc-1",
                details={},
                now=datetime(2025, 3, 1, tzinfo=UTC),
            )
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as connection:
                await connection.execute(update(tables.audit_log).values(target="account:acc-2"))
    finally:
        await engine.dispose()
