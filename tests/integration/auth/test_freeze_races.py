"""Officers freezing overlapping accounts at the same moment on PostgreSQL.

After a breach several officers (or a script and an officer) freeze accounts at once, one by
one and in bulk. Every account must end up frozen exactly once, no call may fail on a
deadlock, and the audit chain, which every one of those calls appends to, must stay intact.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.auth.adapters import tables
from services.auth.adapters.repositories import CONTACT_INDEX_CONTEXT, Protection
from services.auth.adapters.transactions import SqlTransactions
from services.auth.adapters.uow import SqlAuthUnitOfWork
from services.auth.domain.account import Account
from services.auth.domain.contacts import Email, VerifiedContact
from services.auth.domain.events import NO_CLIENT, Origin
from services.auth.domain.sessions import Session
from services.auth.service import admin
from services.auth.service.context import AuthContext
from services.auth.service.fakes import fake_context
from services.auth.service.ports import AuthUnitOfWork
from walletcore.crypto import BlindIndex
from walletcore.db import create_engine, session_factory
from walletcore.idempotency import IdempotencyRecords
from walletcore.notify import NotificationOutbox
from walletcore.service_kit import EngineAuditReader, request_fingerprints

ACCOUNTS = [f"acc-{number:02d}" for number in range(24)]
CALLS = 20


@pytest.fixture
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(postgres_url, pool_size=CALLS)
    async with engine.begin() as connection:
        await connection.run_sync(tables.metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
def ctx() -> AuthContext:
    return fake_context()


@pytest.fixture
def tx(engine: AsyncEngine, ctx: AuthContext) -> SqlTransactions:
    sessions = session_factory(engine)
    protection = Protection(
        encryption=ctx.encryption,
        contact_index=BlindIndex.development(context=CONTACT_INDEX_CONTEXT),
    )
    outbox = NotificationOutbox(tables.outbox, ctx.encryption)
    return SqlTransactions(
        lambda: SqlAuthUnitOfWork(sessions, protection=protection, outbox=outbox),
        IdempotencyRecords(
            tables.idempotency_records,
            fingerprints=request_fingerprints(None),
            key_ring=ctx.encryption,
        ),
    )


async def store_accounts_with_a_session_each(tx: SqlTransactions, ctx: AuthContext) -> None:
    async def work(uow: AuthUnitOfWork) -> None:
        now = ctx.clock()
        for account_id in ACCOUNTS:
            contact = VerifiedContact(
                f"{account_id}-email", Email(f"{account_id}@example.com"), now
            )
            await uow.accounts.add(
                Account(id=account_id, password_hash="h", contacts=[contact], created_at=now)
            )
            session, token = Session.start(
                id=f"{account_id}-session",
                account_id=account_id,
                origin=NO_CLIENT,
                first_token_id=f"{account_id}-token",
                first_token="secret",
                hasher=ctx.secrets,
                now=now,
            )
            await uow.sessions.add(session, token)

    await tx.run(work)


def officer_call(
    tx: SqlTransactions, ctx: AuthContext, number: int, picker: random.Random, named: set[str]
) -> Any:
    """Every other call freezes one account, the rest a random overlapping batch (in a random
    order, with a repeat and an unknown id) as a breach script would. `named` collects the
    accounts the calls name."""
    officer = f"officer-{number % 3}"
    origin = Origin(client_address="10.0.0.9")
    if number % 2 == 0:
        account_id = picker.choice(ACCOUNTS)
        named.add(account_id)

        async def freeze_one(uow: AuthUnitOfWork) -> object:
            return await admin.freeze_account(
                uow,
                ctx,
                officer_id=officer,
                account_id=account_id,
                reason="credential stuffing wave",
                ticket_ref="INC-7",
                origin=origin,
            )

        return tx.run(freeze_one)
    batch = picker.sample(ACCOUNTS, 10)
    named.update(batch)
    batch += [batch[0], f"ghost-{number}"]

    async def freeze_batch(uow: AuthUnitOfWork) -> object:
        return await admin.bulk_freeze_accounts(
            uow,
            ctx,
            officer_id=officer,
            account_ids=batch,
            reason="credential stuffing wave",
            ticket_ref="INC-7",
            origin=origin,
        )

    return tx.run(freeze_batch)


async def test_concurrent_freezes_of_overlapping_accounts_freeze_each_once(
    tx: SqlTransactions, ctx: AuthContext, engine: AsyncEngine
) -> None:
    await store_accounts_with_a_session_each(tx, ctx)
    picker, named = random.Random(7), set[str]()
    calls = [officer_call(tx, ctx, number, picker, named) for number in range(CALLS)]

    outcomes = await asyncio.gather(*calls, return_exceptions=True)

    assert [o for o in outcomes if isinstance(o, BaseException)] == []
    assert await freezes_per_account(engine) == dict.fromkeys(named, 1)
    assert await active_sessions(engine) == len(ACCOUNTS) - len(named)
    reader = EngineAuditReader(engine, tables.audit_log)
    verification = await reader.verify()
    assert verification.ok
    entries = await reader.export(after_seq=0, limit=1_000)
    frozen_records = [
        entry["target"]
        for entry in entries
        if entry["action"] == "FREEZE_ACCOUNT" and entry["details"]["outcome"] == "FROZEN"
    ]
    assert sorted(frozen_records) == sorted(f"account:{account_id}" for account_id in named)


async def freezes_per_account(engine: AsyncEngine) -> dict[str, int]:
    history = tables.freeze_history.c
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(history.account_id, func.count())
            .where(history.frozen.is_(True))
            .group_by(history.account_id)
        )
        return {str(account_id): int(count) for account_id, count in rows.all()}


async def active_sessions(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        count = await connection.scalar(
            select(func.count())
            .select_from(tables.sessions)
            .where(tables.sessions.c.revoked_at.is_(None))
        )
    return int(count or 0)
