"""The account holder's account, a second contact proved with a code, and the own timeline."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from services.auth.domain.contacts import Contact, VerifiedContact
from services.auth.domain.events import SecurityEventType
from services.auth.domain.ledger import purpose_ledger_subject
from services.auth.domain.proofs import ChallengePurpose
from services.auth.domain.reasons import Reason
from services.auth.service import contacts, sessions, signin, timeline
from services.auth.service.context import AuthContext
from services.auth.service.fakes import FakeClock, FakeStore, FakeTransactions
from services.auth.service.ports import AuthUnitOfWork
from tests.unit.auth.service.access_helpers import (
    CODE_RESEND_WAIT,
    EMAIL,
    ORIGIN,
    OTHER_PHONE,
    PASSWORD,
    PHONE,
    event_types,
    freeze,
    refusal,
    register,
)
from walletcore.errors import AlreadyExists, FailedPrecondition, NotFound

Add = Callable[[AuthUnitOfWork], Awaitable[contacts.ContactVerificationStarted]]
Listing = Callable[[AuthUnitOfWork], Awaitable[timeline.EventsPage]]
Verify = Callable[[AuthUnitOfWork], Awaitable[VerifiedContact]]


def add(ctx: AuthContext, account_id: str, contact: Contact) -> Add:
    async def work(uow: AuthUnitOfWork) -> contacts.ContactVerificationStarted:
        return await contacts.add_contact(uow, ctx, account_id=account_id, contact=contact)

    return work


def verify(ctx: AuthContext, account_id: str, verification_id: str, code: str) -> Verify:
    async def work(uow: AuthUnitOfWork) -> VerifiedContact:
        return await contacts.verify_contact(
            uow,
            ctx,
            account_id=account_id,
            verification_id=verification_id,
            code=code,
            origin=ORIGIN,
        )

    return work


async def test_a_code_sent_to_the_new_contact_adds_it_and_both_contacts_hear_of_it(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    account_id = (await register(tx, ctx, PHONE)).account_id
    started = await tx.run(add(ctx, account_id, EMAIL))

    added = await tx.run(
        verify(ctx, account_id, started.verification_id, store.notifier.last_code(to=EMAIL))
    )

    assert started.masked_destination == "a***@example.com"
    assert added.value == EMAIL
    assert store.accounts[account_id].contact_values == (PHONE, EMAIL)
    assert event_types(store, account_id)[-1] == "CONTACT_ADDED"
    for contact in (PHONE, EMAIL):
        assert [n.event.type.value for n in store.notifier.notices_to(contact)] == ["CONTACT_ADDED"]


async def test_a_second_contact_of_a_kind_the_account_has_is_refused(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    account_id = (await register(tx, ctx, PHONE)).account_id

    error = await refusal(tx, add(ctx, account_id, OTHER_PHONE))

    assert isinstance(error, FailedPrecondition)
    assert error.reason == Reason.CONTACT_KIND_ALREADY_VERIFIED
    assert store.notifier.codes_to(OTHER_PHONE) == []


async def test_a_contact_of_another_account_is_refused_only_once_the_code_proved_it(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore, clock: FakeClock
) -> None:
    await register(tx, ctx, EMAIL)
    account_id = (await register(tx, ctx, PHONE)).account_id
    clock.advance(CODE_RESEND_WAIT)
    started = await tx.run(add(ctx, account_id, EMAIL))

    error = await refusal(
        tx, verify(ctx, account_id, started.verification_id, store.notifier.last_code(to=EMAIL))
    )

    assert isinstance(error, AlreadyExists)
    assert error.reason == "CONTACT_IN_USE"
    assert store.accounts[account_id].contact_values == (PHONE,)


async def test_another_accounts_verification_is_not_found(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    alice = (await register(tx, ctx, PHONE)).account_id
    mallory = (await register(tx, ctx, OTHER_PHONE)).account_id
    started = await tx.run(add(ctx, alice, EMAIL))

    error = await refusal(
        tx, verify(ctx, mallory, started.verification_id, store.notifier.last_code(to=EMAIL))
    )

    assert isinstance(error, NotFound)
    assert error.reason == "VERIFICATION_NOT_FOUND"
    assert store.accounts[mallory].contact_values == (OTHER_PHONE,)


async def test_a_wrong_code_adds_nothing_and_stays_counted(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    account_id = (await register(tx, ctx, PHONE)).account_id
    started = await tx.run(add(ctx, account_id, EMAIL))
    code = store.notifier.last_code(to=EMAIL)

    error = await refusal(
        tx, verify(ctx, account_id, started.verification_id, f"{(int(code) + 1) % 10**6:06d}")
    )

    assert error.reason == Reason.CODE_INVALID
    assert store.accounts[account_id].contact_values == (PHONE,)
    assert (
        len(
            store.code_failure_ledgers[
                purpose_ledger_subject(ChallengePurpose.CONTACT_VERIFICATION, account_id)
            ].recent_failures
        )
        == 1
    )


async def test_a_frozen_account_still_reads_itself(tx: FakeTransactions, ctx: AuthContext) -> None:
    account_id = (await register(tx, ctx, PHONE)).account_id
    await freeze(tx, ctx, account_id)

    account = await tx.run(lambda uow: contacts.get_account(uow, ctx, account_id=account_id))

    assert (account.id, account.is_frozen) == (account_id, True)


async def test_the_timeline_holds_only_the_callers_events_of_the_types_asked_for(
    tx: FakeTransactions, ctx: AuthContext
) -> None:
    alice = await register(tx, ctx, PHONE)
    await register(tx, ctx, EMAIL)
    await tx.run(
        lambda uow: sessions.sign_out(
            uow,
            ctx,
            account_id=alice.account_id,
            session_id=alice.tokens.session_id,
            origin=ORIGIN,
        )
    )
    for _ in range(2):
        await tx.run(
            lambda uow: signin.sign_in(uow, ctx, identifier=PHONE, password=PASSWORD, origin=ORIGIN)
        )
    wanted = frozenset({SecurityEventType.SIGN_OUT, SecurityEventType.ACCOUNT_CREATED})

    def read(types: frozenset[SecurityEventType], page_token: str = "") -> Listing:
        return lambda uow: timeline.list_security_events(
            uow, ctx, account_id=alice.account_id, page_size=1, page_token=page_token, types=types
        )

    first = await tx.run(read(wanted))
    second = await tx.run(read(wanted, first.next_page_token))
    unfiltered = await tx.run(read(frozenset()))

    assert [e.event.type for e in first.events + second.events] == [
        SecurityEventType.SIGN_OUT,
        SecurityEventType.ACCOUNT_CREATED,
    ]
    assert second.next_page_token == ""
    assert [(e.event.type, e.event.account_id) for e in unfiltered.events] == [
        (SecurityEventType.SIGN_IN, alice.account_id)
    ]
