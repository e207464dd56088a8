"""Registration: a password and a first contact proved with a code make a signed-in account."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from services.auth.domain.contacts import Contact
from services.auth.domain.reasons import Reason
from services.auth.service import registration
from services.auth.service.context import AuthContext
from services.auth.service.fakes import FakeClock, FakeStore, FakeTransactions
from services.auth.service.ports import AuthUnitOfWork
from tests.unit.auth.service.access_helpers import (
    CODE_RESEND_WAIT,
    EMAIL,
    ORIGIN,
    PASSWORD,
    PHONE,
    event_types,
    refusal,
    register,
)
from walletcore.errors import AlreadyExists, InvalidArgument, NotFound, ResourceExhausted

Start = Callable[[AuthUnitOfWork], Awaitable[registration.RegistrationStarted]]
Complete = Callable[[AuthUnitOfWork], Awaitable[registration.Registered]]


def start(ctx: AuthContext, contact: Contact = PHONE, password: str = PASSWORD) -> Start:
    async def work(uow: AuthUnitOfWork) -> registration.RegistrationStarted:
        return await registration.start_registration(
            uow, ctx, password=password, contact=contact, origin=ORIGIN
        )

    return work


def complete(ctx: AuthContext, registration_id: str, code: str) -> Complete:
    async def work(uow: AuthUnitOfWork) -> registration.Registered:
        return await registration.complete_registration(
            uow, ctx, registration_id=registration_id, code=code, origin=ORIGIN
        )

    return work


@pytest.mark.parametrize("contact", [PHONE, EMAIL], ids=["phone", "email"])
async def test_the_code_sent_to_the_contact_creates_a_signed_in_account(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore, contact: Contact
) -> None:
    started = await tx.run(start(ctx, contact))
    code = store.notifier.last_code(to=contact)

    done = await tx.run(complete(ctx, started.registration_id, code))

    account = store.accounts[done.account_id]
    assert account.contact_values == (contact,)
    assert await ctx.passwords.verify_and_update(PASSWORD, account.password_hash) == (True, None)
    session = store.sessions[done.tokens.session_id]
    assert (session.account_id, session.origin) == (done.account_id, ORIGIN)
    assert event_types(store, done.account_id) == ["ACCOUNT_CREATED"]


async def test_a_code_by_email_lives_longer_than_one_by_sms(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock
) -> None:
    by_sms = await tx.run(start(ctx, PHONE))
    by_email = await tx.run(start(ctx, EMAIL))

    assert by_sms.expires_at == clock() + timedelta(minutes=10)
    assert by_email.expires_at == clock() + ctx.rules.otp_lifetimes.email


@pytest.mark.parametrize(
    "password", ["short", "password1", "+8613800138000"], ids=["short", "common", "own-phone"]
)
async def test_a_rejected_password_sends_nothing(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore, password: str
) -> None:
    error = await refusal(tx, start(ctx, PHONE, password))

    assert isinstance(error, InvalidArgument)
    assert error.reason == Reason.PASSWORD_REJECTED
    assert [v.field for v in error.violations] == ["password"]
    assert store.notifier.codes == []
    assert store.pending_contacts == {}


async def test_a_contact_in_use_gets_the_same_answer_but_no_message_at_all(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore, clock: FakeClock
) -> None:
    await register(tx, ctx, PHONE)
    clock.advance(CODE_RESEND_WAIT)
    messages_before = (len(store.notifier.codes), len(store.notifier.notices))

    started = await tx.run(start(ctx, PHONE))

    assert started.registration_id
    assert started.expires_at == clock() + timedelta(minutes=10)
    assert (len(store.notifier.codes), len(store.notifier.notices)) == messages_before


async def test_a_contact_in_use_is_rate_limited_like_a_fresh_one(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock
) -> None:
    await register(tx, ctx, PHONE)
    clock.advance(CODE_RESEND_WAIT)
    await tx.run(start(ctx, PHONE))

    error = await refusal(tx, start(ctx, PHONE))

    assert isinstance(error, ResourceExhausted)


async def test_a_registration_of_a_contact_in_use_can_only_fail_like_a_wrong_code(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore, clock: FakeClock
) -> None:
    await register(tx, ctx, PHONE)
    clock.advance(CODE_RESEND_WAIT)
    started = await tx.run(start(ctx, PHONE))

    error = await refusal(tx, complete(ctx, started.registration_id, "000000"))

    assert error.reason == Reason.CODE_INVALID
    assert len(store.accounts) == 1


async def test_a_wrong_code_is_counted_and_five_end_the_registration(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    started = await tx.run(start(ctx))
    code = store.notifier.last_code(to=PHONE)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    first = await refusal(tx, complete(ctx, started.registration_id, wrong))
    for _ in range(4):
        await refusal(tx, complete(ctx, started.registration_id, wrong))

    error = await refusal(tx, complete(ctx, started.registration_id, code))

    assert (first.reason, first.metadata["attempts_left"]) == (Reason.CODE_INVALID, "4")
    assert error.reason == Reason.TOO_MANY_ATTEMPTS
    assert store.accounts == {}


async def test_a_completed_registration_cannot_be_completed_again(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    started = await tx.run(start(ctx))
    code = store.notifier.last_code(to=PHONE)
    await tx.run(complete(ctx, started.registration_id, code))

    error = await refusal(tx, complete(ctx, started.registration_id, code))

    assert error.reason == Reason.CODE_EXPIRED
    assert len(store.accounts) == 1


async def test_an_expired_code_creates_nothing(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore, clock: FakeClock
) -> None:
    started = await tx.run(start(ctx))
    code = store.notifier.last_code(to=PHONE)
    clock.advance(timedelta(minutes=10))

    error = await refusal(tx, complete(ctx, started.registration_id, code))

    assert error.reason == Reason.CODE_EXPIRED
    assert store.accounts == {}


async def test_an_unknown_registration_is_not_found(tx: FakeTransactions, ctx: AuthContext) -> None:
    error = await refusal(tx, complete(ctx, "no-such-registration", "123456"))

    assert isinstance(error, NotFound)
    assert error.reason == "REGISTRATION_NOT_FOUND"


async def test_of_two_registrations_of_one_contact_the_second_to_complete_loses(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore, clock: FakeClock
) -> None:
    first = await tx.run(start(ctx))
    first_code = store.notifier.last_code(to=PHONE)
    clock.advance(CODE_RESEND_WAIT)
    second = await tx.run(start(ctx))
    second_code = store.notifier.last_code(to=PHONE)
    await tx.run(complete(ctx, second.registration_id, second_code))

    error = await refusal(tx, complete(ctx, first.registration_id, first_code))

    assert isinstance(error, AlreadyExists)
    assert error.reason == "CONTACT_IN_USE"
    assert len(store.accounts) == 1
