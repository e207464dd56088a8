"""Binding's and the card vault's Alembic revisions build exactly the schemas the adapters use,
on SQLite and PostgreSQL, with the partial unique index and the audit log's guard."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import insert, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.binding.adapters import tables
from services.binding.adapters.vault import VAULT_MIGRATIONS_DIR
from walletcore import audit
from walletcore.db import create_engine
from walletcore.migrations import main, service_migrations_dir, upgrade_to_head

VAULT_MIGRATIONS = str(VAULT_MIGRATIONS_DIR)
NOW = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
async def migrated(database_url: str) -> AsyncIterator[AsyncEngine]:
    await upgrade_to_head(database_url, service_migrations_dir("binding"))
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.mark.parametrize("migrations", ["binding", VAULT_MIGRATIONS])
async def test_the_migrated_schema_is_exactly_the_adapters_schema(
    database_url: str, migrations: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Each in a database of its own, as the vault runs in production.
    await upgrade_to_head(database_url, service_migrations_dir(migrations))

    # The command line runs Alembic's env.py under its own event loop, so not on the test's.
    exit_code = await asyncio.to_thread(main, ["check", migrations, "--database-url", database_url])

    assert exit_code == 0, capsys.readouterr().err


def card_row(card_id: str, status: str, **columns: Any) -> dict[str, Any]:
    return {
        "id": card_id,
        "account_id": "acc-1",
        "token": f"vt_{card_id}",
        "fingerprint": "f" * 64,
        "brand": "VISA",
        "last4": "4242",
        "expiry_year": 2030,
        "expiry_month": 12,
        "holder_name": b"sealed",
        "bound_at": NOW,
        "status": status,
        "unbound_at": NOW if status == "UNBOUND" else None,
        **columns,
    }


async def test_the_migrated_index_allows_one_active_card_per_fingerprint(
    migrated: AsyncEngine,
) -> None:
    async with migrated.begin() as connection:
        await connection.execute(insert(tables.cards).values(card_row("old-1", "UNBOUND")))
        await connection.execute(insert(tables.cards).values(card_row("old-2", "UNBOUND")))
        await connection.execute(insert(tables.cards).values(card_row("live", "ACTIVE")))

    with pytest.raises(IntegrityError):
        async with migrated.begin() as connection:
            await connection.execute(
                insert(tables.cards).values(card_row("twin", "ACTIVE", account_id="acc-2"))
            )


async def test_the_migrated_audit_log_refuses_edits(migrated: AsyncEngine) -> None:
    async with migrated.begin() as connection:
        await audit.append(
            connection,
            tables.audit_log,
            actor="officer-7",
            actor_role="security_officer",
            action="START_ASSISTED_CONTACT_CHANGE",
            target="account:acc-1",
            details={},
            now=NOW,
        )
    with pytest.raises(DBAPIError, match="append-only"):
        async with migrated.begin() as connection:
            await connection.execute(update(tables.audit_log).values(target="account:acc-2"))
