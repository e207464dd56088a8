"""The audit chain in a real database: appends in callers' transactions, tampering, export."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from walletcore import audit


@dataclass
class AuditStore:
    engine: AsyncEngine
    table: sa.Table

    async def append(self, number: int) -> None:
        async with AsyncSession(self.engine) as session, session.begin():
            await audit.append(
                session,
                self.table,
                actor="operator-7",
                actor_role="security_officer",
                action="freeze_account",
                target=f"account:{number}",
                details={"ticket": f"SEC-{number}", "accounts": [number]},
            )

    async def verify(self) -> audit.AuditVerification:
        async with self.engine.connect() as conn:
            return await audit.verify(conn, self.table, page_size=2)

    async def tamper(self, *statements: sa.Executable) -> None:
        async with self.engine.begin() as conn:
            for statement in statements:
                await conn.execute(statement)


async def open_store(url: str) -> AuditStore:
    engine = create_async_engine(url)
    metadata = sa.MetaData()
    table = audit.define_audit_table(metadata)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return AuditStore(engine, table)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[AuditStore]:
    store = await open_store(database_url)
    yield store
    await store.engine.dispose()


async def test_appends_chain_from_genesis_and_verify(store: AuditStore) -> None:
    for number in range(1, 6):
        await store.append(number)

    result = await store.verify()
    async with store.engine.connect() as conn:
        entries = await audit.export(conn, store.table)

    assert result.ok
    assert result.entries_checked == 5
    assert [entry["seq"] for entry in entries] == [1, 2, 3, 4, 5]
    assert entries[0]["prev_hash"] == audit.GENESIS_HASH
    assert entries[3]["details"] == {"ticket": "SEC-4", "accounts": [4]}
    assert result.head_hash == entries[-1]["entry_hash"]


async def test_an_append_rolled_back_with_its_transaction_leaves_no_gap(store: AuditStore) -> None:
    await store.append(1)
    async with AsyncSession(store.engine) as session:
        await audit.append(
            session,
            store.table,
            actor="operator-7",
            actor_role="security_officer",
            action="unfreeze_account",
            target="account:1",
            details={},
        )
        await session.rollback()
    await store.append(2)

    result = await store.verify()

    assert result.ok
    assert result.entries_checked == 2


async def test_details_that_do_not_hash_portably_are_refused(store: AuditStore) -> None:
    async with AsyncSession(store.engine) as session, session.begin():
        with pytest.raises(ValueError, match=r"details\.score"):
            await audit.append(
                session,
                store.table,
                actor="operator-7",
                actor_role="security_officer",
                action="freeze_account",
                target="account:1",
                details={"score": 0.5},
            )

    assert (await store.verify()).entries_checked == 0


Tampering = Callable[[sa.Table], list[sa.Executable]]


def edit_details(table: sa.Table) -> list[sa.Executable]:
    return [sa.update(table).where(table.c.seq == 3).values(details='{"ticket":"SEC-999"}')]


def delete_middle(table: sa.Table) -> list[sa.Executable]:
    return [sa.delete(table).where(table.c.seq == 3)]


def swap_seq(table: sa.Table) -> list[sa.Executable]:
    return [
        sa.update(table).where(table.c.seq == 2).values(seq=-2),
        sa.update(table).where(table.c.seq == 4).values(seq=2),
        sa.update(table).where(table.c.seq == -2).values(seq=4),
    ]


@pytest.mark.parametrize(
    ("tampering", "first_invalid_seq"),
    [(edit_details, 3), (delete_middle, 3), (swap_seq, 2)],
    ids=["edited details", "deleted entry", "swapped seq"],
)
async def test_tampering_is_detected_where_it_happened(
    store: AuditStore, tampering: Tampering, first_invalid_seq: int
) -> None:
    for number in range(1, 6):
        await store.append(number)
    await store.tamper(*tampering(store.table))

    result = await store.verify()

    assert not result.ok
    assert result.first_invalid_seq == first_invalid_seq
    assert result.entries_checked == first_invalid_seq - 1


async def test_a_paged_jsonl_export_verifies_independently(store: AuditStore) -> None:
    for number in range(1, 6):
        await store.append(number)

    async with store.engine.connect() as conn:
        first_page = await audit.export_jsonl(conn, store.table, limit=3)
        second_page = await audit.export_jsonl(conn, store.table, after_seq=3, limit=3)
    first = [json.loads(line) for line in first_page.splitlines()]
    second = [json.loads(line) for line in second_page.splitlines()]

    assert audit.verify_entries(first).ok
    assert audit.verify_entries(second, after_seq=3, prev_hash=first[-1]["entry_hash"]).ok
    assert audit.verify_entries(first + second).entries_checked == 5


async def test_the_append_only_guard_refuses_update_and_delete(store: AuditStore) -> None:
    async with store.engine.begin() as conn:
        await conn.run_sync(audit.install_append_only_guard, store.table.name)
    await store.append(1)
    await store.append(2)

    table = store.table
    for tampering in (
        sa.update(table).where(table.c.seq == 1).values(target="account:999"),
        sa.delete(table).where(table.c.seq == 1),
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            await store.tamper(tampering)

    assert (await store.verify()).entries_checked == 2


async def test_concurrent_appends_on_postgresql_form_one_contiguous_chain(
    postgres_url: str,
) -> None:
    store = await open_store(postgres_url)
    try:
        await asyncio.gather(*(store.append(number) for number in range(50)))

        result = await store.verify()
    finally:
        await store.engine.dispose()

    assert result.ok
    assert result.entries_checked == 50
