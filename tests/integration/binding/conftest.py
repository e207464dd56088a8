"""Binding's SQL adapters and use cases on a fresh database, on SQLite and on PostgreSQL.

The schema comes from the table definitions (`metadata.create_all`), which is fast;
test_migrations.py proves the Alembic revisions create exactly the same schema. The local card
vault gets its own database as in production: a second SQLite file (one SQLite file has one
writer at a time, and the vault commits on its own while binding's transaction is open), or
the same PostgreSQL database, where the vault's one table sits next to binding's.

Tests that must race real transactions override `binding_url` with `postgres_url`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from services.binding.adapters import tables
from services.binding.adapters.uow import SqlBindingUnitOfWork
from services.binding.adapters.vault import LocalCardVault, vault_metadata
from services.binding.service.context import FINGERPRINT_CONTEXT, BindingContext
from services.binding.service.fakes import FakeContactVerification, FakeKyc
from walletcore.crypto import BlindIndex, KeyRing
from walletcore.db import create_engine, session_factory
from walletcore.fakes import FakeClock
from walletcore.idempotency import IdempotencyRecords
from walletcore.keys import generate_key
from walletcore.service_kit import request_fingerprints
from walletcore.tokens import GrantVerifier, SigningKeyRing, StaticKeySet, TokenIssuer
from walletcore.transactions import SqlTransactions

AUTH_ISSUER = "wallet-auth"
ACCOUNT, OTHER = "acc-1", "acc-2"
HOLDERS = {ACCOUNT: "Test Holder", OTHER: "Other Holder"}


@pytest.fixture
def binding_url(database_url: str) -> str:
    return database_url


@pytest.fixture
async def engine(binding_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(binding_url, pool_size=4)
    async with engine.begin() as connection:
        await connection.run_sync(tables.metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
def vault_url(binding_url: str, tmp_path: Path) -> str:
    if make_url(binding_url).get_backend_name() == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'vault.db'}"
    return binding_url


@pytest.fixture
async def vault_engine(vault_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(vault_url, pool_size=2)
    async with engine.begin() as connection:
        await connection.run_sync(vault_metadata.create_all)
    yield engine
    await engine.dispose()


@dataclass
class Binding:
    """Binding's SQL transactions and context, with auth's grant signer and fake peers."""

    tx: SqlTransactions[SqlBindingUnitOfWork]
    ctx: BindingContext
    clock: FakeClock
    kyc: FakeKyc
    contacts: FakeContactVerification
    auth: TokenIssuer
    encryption: KeyRing
    vault_encryption: KeyRing

    def grant(self, purpose: str, object_id: str, account_id: str = ACCOUNT) -> str:
        return self.auth.step_up_grant(
            account_id=account_id, purpose=purpose, object_id=object_id
        ).token


@pytest.fixture
def binding(engine: AsyncEngine, vault_engine: AsyncEngine) -> Binding:
    clock = FakeClock()
    encryption = KeyRing.development("binding-persistence-tests")
    vault_encryption = KeyRing.development("binding-vault-tests")
    auth_ring = SigningKeyRing([generate_key("auth-1")])
    grants = GrantVerifier(StaticKeySet(auth_ring.public_jwks()), AUTH_ISSUER, clock=clock)
    sessions = session_factory(engine)
    kyc, contacts = FakeKyc(), FakeContactVerification(clock)
    for account_id, name in HOLDERS.items():
        kyc.approve(account_id, name)
    ctx = BindingContext(
        clock=clock,
        new_id=lambda: uuid.uuid4().hex,
        fingerprints=BlindIndex.development(context=FINGERPRINT_CONTEXT),
        vault=LocalCardVault(session_factory(vault_engine), vault_encryption, clock=clock),
        kyc=kyc,
        contacts=contacts,
    )
    tx = SqlTransactions(
        lambda: SqlBindingUnitOfWork(sessions, encryption=encryption, grants=grants),
        IdempotencyRecords(
            tables.idempotency_records,
            fingerprints=request_fingerprints(None),
            clock=clock,
            key_ring=encryption,
        ),
    )
    return Binding(
        tx,
        ctx,
        clock,
        kyc,
        contacts,
        TokenIssuer(AUTH_ISSUER, auth_ring, clock),
        encryption,
        vault_encryption,
    )
