"""Binding's use cases with a real auth behind its clients: the user's CHANGE_PHONE grant,
issued by auth, checked with auth's published keys and spent once in binding's database,
then passed on to auth, which sends the code to the new phone and applies the change.

Binding's own storage is a SQLite file here (its SQL adapters are tested on both databases
in tests/integration/binding); auth runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.binding.adapters import tables
from services.binding.adapters.peers import AuthContactVerification
from services.binding.adapters.uow import SqlBindingUnitOfWork
from services.binding.domain.contact_changes import ContactKind
from services.binding.service import contacts
from services.binding.service.context import FINGERPRINT_CONTEXT, BindingContext
from services.binding.service.fakes import FakeCardVault, FakeKyc
from services.binding.service.ports import NewContact
from tests.api.auth.harness import AuthTestApp, phone_contact
from tests.api.auth.recovery_helpers import new_holder
from tests.api.auth.test_status_contact_change import change_phone_grant
from walletcore.crypto import BlindIndex, KeyRing
from walletcore.db import create_engine, session_factory
from walletcore.errors import DomainError
from walletcore.grpc.clients import (
    InternalClients,
    InternalTarget,
    ServiceTokens,
    service_token_issuer,
)
from walletcore.idempotency import IdempotencyRecords
from walletcore.service_kit import request_fingerprints
from walletcore.tokens import DEVELOPMENT_IDENTITY_ISSUER, GrantVerifier
from walletcore.transactions import SqlTransactions
from walletcore.users import AUTH_READS, AuthStatusClient, auth_keyset


@dataclass
class BindingWithAuth:
    tx: SqlTransactions[SqlBindingUnitOfWork]
    ctx: BindingContext
    engine: AsyncEngine


@pytest.fixture
async def binding(auth_app: AuthTestApp, tmp_path: Path) -> AsyncIterator[BindingWithAuth]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'binding.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(tables.metadata.create_all)
    clients = InternalClients(
        ServiceTokens(service_token_issuer(None, DEVELOPMENT_IDENTITY_ISSUER), "binding")
    )
    channel = clients.channel(
        InternalTarget("auth", f"127.0.0.1:{auth_app.ports['internal']}"), reads=AUTH_READS
    )
    grants = GrantVerifier(auth_keyset(AuthStatusClient(channel)), auth_app.settings.issuer)
    encryption = KeyRing.development("binding-api-tests")
    sessions = session_factory(engine)
    ctx = BindingContext(
        clock=auth_app.app.ctx.clock,
        new_id=lambda: uuid.uuid4().hex,
        fingerprints=BlindIndex.development(context=FINGERPRINT_CONTEXT),
        vault=FakeCardVault(),
        kyc=FakeKyc(),
        contacts=AuthContactVerification(channel),
    )
    tx = SqlTransactions(
        lambda: SqlBindingUnitOfWork(sessions, encryption=encryption, grants=grants),
        IdempotencyRecords(
            tables.idempotency_records, fingerprints=request_fingerprints(None), key_ring=encryption
        ),
    )
    try:
        yield BindingWithAuth(tx, ctx, engine)
    finally:
        await clients.close()
        await engine.dispose()


async def start_change(
    binding: BindingWithAuth, account_id: str, new_phone: str, grant: str
) -> contacts.StartedChange:
    return await binding.tx.run(
        lambda uow: contacts.start_contact_change(
            uow,
            binding.ctx,
            account_id=account_id,
            new_contact=NewContact(ContactKind.PHONE, new_phone),
            grant=grant,
        )
    )


async def complete_change(
    binding: BindingWithAuth, account_id: str, change_id: str, code: str
) -> contacts.CompletedChange:
    return await binding.tx.run(
        lambda uow: contacts.complete_contact_change(
            uow,
            binding.ctx,
            account_id=account_id,
            change_id=change_id,
            code=code,
            request_id=uuid.uuid4().hex,
        )
    )


async def refusal(call: object) -> DomainError:
    with pytest.raises(DomainError) as caught:
        await call  # type: ignore[misc]
    return caught.value


async def test_a_phone_change_with_auths_grant_and_the_new_phones_code(
    auth_app: AuthTestApp, binding: BindingWithAuth
) -> None:
    holder = await new_holder(auth_app)
    new_phone = auth_app.new_phone()
    grant = await change_phone_grant(auth_app, holder, new_phone)

    started = await start_change(binding, holder.account_id, new_phone, grant)
    wrong = await refusal(complete_change(binding, holder.account_id, started.change_id, "000000"))
    completed = await complete_change(
        binding, holder.account_id, started.change_id, await auth_app.next_code(new_phone)
    )

    assert wrong.reason == "CODE_INVALID"  # auth's refusal, with auth's reason
    assert started.masked_destination != new_phone
    assert completed.withdrawal_hold.in_window
    # The change is auth's now: signing in with the new phone works.
    await auth_app.sign_in(phone_contact(new_phone))


async def test_binding_spends_the_grant_once(
    auth_app: AuthTestApp, binding: BindingWithAuth
) -> None:
    holder = await new_holder(auth_app)
    new_phone = auth_app.new_phone()
    grant = await change_phone_grant(auth_app, holder, new_phone)
    await start_change(binding, holder.account_id, new_phone, grant)

    again = await refusal(start_change(binding, holder.account_id, new_phone, grant))

    assert again.reason == "GRANT_ALREADY_USED"


async def test_a_forged_grant_is_refused_before_auth_is_asked(
    auth_app: AuthTestApp, binding: BindingWithAuth
) -> None:
    holder = await new_holder(auth_app)
    new_phone = auth_app.new_phone()
    grant = await change_phone_grant(auth_app, holder, new_phone)
    header, payload, signature = grant.split(".")
    forged = f"{header}.{payload}.{signature[::-1]}"

    error = await refusal(start_change(binding, holder.account_id, new_phone, forged))

    assert (error.reason, error.metadata) == ("GRANT_INVALID", {"cause": "SIGNATURE_OR_FORMAT"})
    # The real grant is still unspent, in binding and in auth.
    await start_change(binding, holder.account_id, new_phone, grant)


async def test_a_phone_of_another_account_is_refused_by_auth_and_the_grant_stays_usable(
    auth_app: AuthTestApp, binding: BindingWithAuth
) -> None:
    holder, other = await new_holder(auth_app), await new_holder(auth_app)
    grant = await change_phone_grant(auth_app, holder, other.phone)

    error = await refusal(start_change(binding, holder.account_id, other.phone, grant))

    assert error.reason == "CONTACT_IN_USE"
    # Binding's consumption rolled back with the refused change.
    async with binding.engine.connect() as connection:
        spent = (
            await connection.execute(select(func.count()).select_from(tables.consumed_grants))
        ).scalar_one()
    assert spent == 0
