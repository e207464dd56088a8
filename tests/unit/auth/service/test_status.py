"""What other services ask of auth: account and session status, the signing keys, and the
phone or email change binding drives (a grant from the old contact, a code to the new one)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.auth.domain.account import Account, AccountStatus
from services.auth.domain.contacts import Email, Phone, VerifiedContact
from services.auth.domain.events import NO_CLIENT, Actor, Origin, SecurityEventType
from services.auth.domain.ledger import purpose_ledger_subject
from services.auth.domain.proofs import ChallengePurpose
from services.auth.domain.sessions import Session
from services.auth.service import admin, status
from services.auth.service.context import AuthContext
from services.auth.service.fakes import FakeClock, FakeStore, FakeTransactions
from services.auth.service.ports import AuthUnitOfWork
from walletcore.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)

OLD_PHONE = Phone("+8613800138000")
NEW_PHONE = Phone("+8613900139000")
EMAIL = Email("alice@example.com")
BINDING = "binding"


async def add_account(
    tx: FakeTransactions, clock: FakeClock, account_id: str, *contacts: Phone | Email
) -> None:
    verified = [
        VerifiedContact(f"{account_id}-{index}", contact, clock())
        for index, contact in enumerate(contacts)
    ]
    account = Account(id=account_id, password_hash="h", contacts=verified, created_at=clock())

    async def work(uow: AuthUnitOfWork) -> None:
        await uow.accounts.add(account)

    await tx.run(work)


@pytest.fixture
async def alice(tx: FakeTransactions, clock: FakeClock) -> str:
    await add_account(tx, clock, "alice", OLD_PHONE, EMAIL)
    return "alice"


async def freeze(tx: FakeTransactions, ctx: AuthContext, account_id: str) -> None:
    async def work(uow: AuthUnitOfWork) -> None:
        await admin.freeze_account(
            uow,
            ctx,
            officer_id="officer-7",
            account_id=account_id,
            reason="fraud",
            ticket_ref="INC-1",
            origin=Origin(),
        )

    await tx.run(work)


# -- status ------------------------------------------------------------------------------------


async def add_session(
    tx: FakeTransactions, ctx: AuthContext, account_id: str, session_id: str
) -> None:
    session, token = Session.start(
        id=session_id,
        account_id=account_id,
        origin=NO_CLIENT,
        first_token_id=f"{session_id}-token",
        first_token="secret",
        hasher=ctx.secrets,
        now=ctx.clock(),
    )

    async def work(uow: AuthUnitOfWork) -> None:
        await uow.sessions.add(session, token)

    await tx.run(work)


async def account_status(
    tx: FakeTransactions, ctx: AuthContext, account_id: str, session_id: str | None = None
) -> status.AccountStatusView:
    async def work(uow: AuthUnitOfWork) -> status.AccountStatusView:
        return await status.get_account_status(
            uow, ctx, account_id=account_id, session_id=session_id
        )

    return await tx.run(work)


async def test_an_active_account_with_its_live_session(
    tx: FakeTransactions, ctx: AuthContext, alice: str
) -> None:
    await add_session(tx, ctx, alice, "s1")

    view = await account_status(tx, ctx, alice, "s1")

    assert view == status.AccountStatusView(
        status=AccountStatus.ACTIVE, frozen_at=None, totp_enabled=False, session_active=True
    )


async def test_a_frozen_account_says_since_when_and_its_sessions_are_over(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, alice: str
) -> None:
    await add_session(tx, ctx, alice, "s1")
    await freeze(tx, ctx, alice)
    frozen_at = clock()
    clock.advance(timedelta(seconds=1))

    view = await account_status(tx, ctx, alice, "s1")

    assert (view.status, view.frozen_at, view.session_active) == (
        AccountStatus.FROZEN,
        frozen_at,
        False,
    )


async def test_a_session_of_another_account_or_none_at_all_is_not_active(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, alice: str
) -> None:
    await add_account(tx, clock, "bob", Email("bob@example.com"))
    await add_session(tx, ctx, "bob", "bobs-session")

    assert (await account_status(tx, ctx, alice, "bobs-session")).session_active is False
    assert (await account_status(tx, ctx, alice, "no-such-session")).session_active is False
    assert (await account_status(tx, ctx, alice)).session_active is None


async def test_the_status_of_an_unknown_account_is_not_found(
    tx: FakeTransactions, ctx: AuthContext
) -> None:
    with pytest.raises(NotFound) as caught:
        await account_status(tx, ctx, "nobody")

    assert caught.value.reason == "ACCOUNT_NOT_FOUND"


def test_the_first_key_of_the_ring_is_the_current_one(ctx: AuthContext) -> None:
    jwks = [{"kid": "new", "alg": "EdDSA", "x": "a"}, {"kid": "old", "alg": "EdDSA", "x": "b"}]

    keys = status.published_signing_keys(jwks)

    assert [(key.kid, key.current) for key in keys] == [("new", True), ("old", False)]


# -- contact change ----------------------------------------------------------------------------


def change_grant(
    ctx: AuthContext,
    *,
    account_id: str = "alice",
    purpose: str = "CHANGE_PHONE",
    new_contact: str = NEW_PHONE.e164,
) -> status.GrantAuthorization:
    issued = ctx.tokens.step_up_grant(account_id=account_id, purpose=purpose, object_id=new_contact)
    return status.GrantAuthorization(issued.token)


async def start(
    tx: FakeTransactions,
    ctx: AuthContext,
    authorization: status.ChangeAuthorization,
    new_contact: Phone | Email = NEW_PHONE,
    account_id: str = "alice",
) -> status.StartedVerification:
    async def work(uow: AuthUnitOfWork) -> status.StartedVerification:
        return await status.start_contact_verification(
            uow,
            ctx,
            service=BINDING,
            account_id=account_id,
            new_contact=new_contact,
            authorization=authorization,
        )

    return await tx.run(work)


async def complete(
    tx: FakeTransactions, ctx: AuthContext, verification_id: str, code: str
) -> status.ContactChange:
    async def work(uow: AuthUnitOfWork) -> status.ContactChange:
        return await status.complete_contact_change(
            uow, ctx, service=BINDING, verification_id=verification_id, code=code
        )

    return await tx.run(work)


async def test_a_phone_change_with_a_grant_and_the_new_phones_code(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore, clock: FakeClock, alice: str
) -> None:
    started = await start(tx, ctx, change_grant(ctx))
    code = store.notifier.last_code(to=NEW_PHONE)

    change = await complete(tx, ctx, started.verification_id, code)

    assert started.masked_destination == NEW_PHONE.masked()
    assert store.accounts[alice].contact_values == (NEW_PHONE, EMAIL)
    assert change.changed_at == clock()
    assert change.contact.masked_value == NEW_PHONE.masked()
    [event] = [e for e in store.events_of(alice) if e.type is SecurityEventType.CONTACT_CHANGED]
    assert event.actor == Actor.service(BINDING)
    notified = {notice.to for notice in store.notifier.notices if notice.event == event}
    assert notified == {OLD_PHONE, NEW_PHONE, EMAIL}


async def test_an_officer_assisted_change_is_recorded_as_the_officers(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore, alice: str
) -> None:
    assistance = status.OperatorAssistance("officer-7", "lost phone, KYC approved", "SUP-1")
    started = await start(tx, ctx, assistance)

    await complete(tx, ctx, started.verification_id, store.notifier.last_code(to=NEW_PHONE))

    [event] = [e for e in store.events_of(alice) if e.type is SecurityEventType.CONTACT_CHANGED]
    assert event.actor == Actor.security_officer("officer-7")


async def test_an_officer_assisted_change_names_each_missing_field(
    tx: FakeTransactions, ctx: AuthContext, alice: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await start(tx, ctx, status.OperatorAssistance(" ", "", ""))

    assert {violation.field for violation in caught.value.violations} == {
        "operator_assisted.operator_id",
        "operator_assisted.reason",
        "operator_assisted.ticket_ref",
    }


async def test_a_grant_is_accepted_once(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, alice: str
) -> None:
    grant = change_grant(ctx)
    await start(tx, ctx, grant)
    clock.advance(timedelta(minutes=2))

    with pytest.raises(PermissionDenied) as caught:
        await start(tx, ctx, grant)

    assert caught.value.reason == "GRANT_ALREADY_USED"


@pytest.mark.parametrize(
    "grant_for",
    [
        {"new_contact": "+8613700137000"},
        {"purpose": "CHANGE_EMAIL"},
        {"account_id": "mallory"},
    ],
    ids=["another-new-phone", "another-purpose", "another-account"],
)
async def test_a_grant_for_anything_else_is_invalid(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore, alice: str, grant_for: dict[str, str]
) -> None:
    with pytest.raises(PermissionDenied) as caught:
        await start(tx, ctx, change_grant(ctx, **grant_for))

    assert caught.value.reason == "GRANT_INVALID"
    assert store.notifier.codes == []


async def test_an_expired_grant_is_refused(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, alice: str
) -> None:
    grant = change_grant(ctx)
    clock.advance(timedelta(minutes=6))

    with pytest.raises(PermissionDenied) as caught:
        await start(tx, ctx, grant)

    assert caught.value.reason == "GRANT_EXPIRED"


async def test_a_contact_of_another_account_cannot_be_taken(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore, clock: FakeClock, alice: str
) -> None:
    await add_account(tx, clock, "bob", NEW_PHONE)

    with pytest.raises(AlreadyExists) as caught:
        await start(tx, ctx, change_grant(ctx))

    assert caught.value.reason == "CONTACT_IN_USE"
    assert store.notifier.codes == []


async def test_a_contact_taken_while_the_code_travelled_is_refused_at_completion(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore, clock: FakeClock, alice: str
) -> None:
    started = await start(tx, ctx, change_grant(ctx))
    await add_account(tx, clock, "bob", NEW_PHONE)

    with pytest.raises(AlreadyExists) as caught:
        await complete(tx, ctx, started.verification_id, store.notifier.last_code(to=NEW_PHONE))

    assert caught.value.reason == "CONTACT_IN_USE"
    assert store.accounts[alice].contact_values == (OLD_PHONE, EMAIL)


async def test_the_current_contact_is_no_change(
    tx: FakeTransactions, ctx: AuthContext, alice: str
) -> None:
    grant = change_grant(ctx, purpose="CHANGE_EMAIL", new_contact="ALICE@example.com")

    with pytest.raises(FailedPrecondition) as caught:
        await start(tx, ctx, grant, new_contact=Email("ALICE@example.com"))

    assert caught.value.reason == "CONTACT_UNCHANGED"


async def test_a_frozen_account_changes_no_contact(
    tx: FakeTransactions, ctx: AuthContext, alice: str
) -> None:
    await freeze(tx, ctx, alice)

    with pytest.raises(FailedPrecondition) as caught:
        await start(tx, ctx, change_grant(ctx))

    assert caught.value.reason == "ACCOUNT_FROZEN"


async def test_a_second_code_to_the_same_destination_within_a_minute_is_rate_limited(
    tx: FakeTransactions, ctx: AuthContext, alice: str
) -> None:
    await start(tx, ctx, change_grant(ctx))

    with pytest.raises(ResourceExhausted):
        await start(tx, ctx, change_grant(ctx))


async def test_a_wrong_code_counts_and_the_right_one_works_once(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore, alice: str
) -> None:
    started = await start(tx, ctx, change_grant(ctx))
    code = store.notifier.last_code(to=NEW_PHONE)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"

    with pytest.raises(InvalidArgument) as caught:
        await complete(tx, ctx, started.verification_id, wrong)
    await complete(tx, ctx, started.verification_id, code)
    with pytest.raises(FailedPrecondition) as replayed:
        await complete(tx, ctx, started.verification_id, code)

    assert caught.value.reason == "CODE_INVALID"
    assert (
        len(
            store.code_failure_ledgers[
                purpose_ledger_subject(ChallengePurpose.CONTACT_CHANGE, alice)
            ].recent_failures
        )
        == 1
    )
    assert replayed.value.reason == "CODE_EXPIRED"


async def test_an_unknown_verification_is_not_found(tx: FakeTransactions, ctx: AuthContext) -> None:
    with pytest.raises(NotFound) as caught:
        await complete(tx, ctx, "no-such-verification", "123456")

    assert caught.value.reason == "VERIFICATION_NOT_FOUND"
