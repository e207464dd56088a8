"""Auth's SQL adapters on a fresh database, once on SQLite and once on PostgreSQL.

The schema comes from the table definitions (`metadata.create_all`), which is fast;
test_migrations.py proves the Alembic revision creates exactly the same schema.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.auth.adapters import tables
from services.auth.adapters.repositories import CONTACT_INDEX_CONTEXT, Protection
from services.auth.adapters.transactions import SqlTransactions
from services.auth.adapters.uow import SqlAuthUnitOfWork
from services.auth.domain.events import Device, Origin, Platform
from services.auth.service.fakes import FakeClock
from tests.integration.auth.persistence.builders import START, NewUnitOfWork
from walletcore.crypto import BlindIndex, KeyRing, SecretHasher
from walletcore.db import create_engine, session_factory
from walletcore.idempotency import IdempotencyRecords
from walletcore.notify import NotificationOutbox
from walletcore.service_kit import request_fingerprints


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.run_sync(tables.metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@pytest.fixture
def key_ring() -> KeyRing:
    return KeyRing.development("auth-persistence-tests")


@pytest.fixture
def protection(key_ring: KeyRing) -> Protection:
    return Protection(
        encryption=key_ring, contact_index=BlindIndex.development(context=CONTACT_INDEX_CONTEXT)
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def new_uow(
    sessions: async_sessionmaker[AsyncSession],
    protection: Protection,
    key_ring: KeyRing,
    clock: FakeClock,
) -> NewUnitOfWork:
    outbox = NotificationOutbox(tables.outbox, key_ring, clock=clock)
    return lambda: SqlAuthUnitOfWork(sessions, protection=protection, outbox=outbox, clock=clock)


@pytest.fixture
def transactions(new_uow: NewUnitOfWork, key_ring: KeyRing, clock: FakeClock) -> SqlTransactions:
    return SqlTransactions(
        new_uow,
        IdempotencyRecords(
            tables.idempotency_records,
            fingerprints=request_fingerprints(None),
            clock=clock,
            key_ring=key_ring,
        ),
    )


@pytest.fixture
def hasher() -> SecretHasher:
    return SecretHasher.development(context="auth.persistence-tests")


@pytest.fixture
def origin() -> Origin:
    return Origin("203.0.113.7", Device("install-1", "Li's phone", Platform.ANDROID, "4.2.0"))
