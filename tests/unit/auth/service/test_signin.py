"""Signing in: passwords, enumeration safety, throttling, freezes and the second factor."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from services.auth.domain.contacts import Contact, Phone
from services.auth.domain.events import Device, Origin
from services.auth.domain.ledger import second_factor_ledger_subject
from services.auth.domain.proofs import FactorMethod
from services.auth.domain.reasons import Reason
from services.auth.service import signin
from services.auth.service.context import AuthContext
from services.auth.service.fakes import (
    FakeClock,
    FakePasswordHasher,
    FakeStore,
    FakeTransactions,
    fake_context,
)
from services.auth.service.ports import AuthUnitOfWork
from services.auth.service.sessions import TokenPair
from tests.unit.auth.service.access_helpers import (
    ATTACKER,
    ORIGIN,
    PASSWORD,
    PHONE,
    enable_totp,
    event_types,
    freeze,
    refusal,
    register,
)
from walletcore.errors import (
    FailedPrecondition,
    InvalidArgument,
    ResourceExhausted,
    Unauthenticated,
)

UNKNOWN = Phone("+8613700137000")
SignIn = Callable[[AuthUnitOfWork], Awaitable[signin.SignInResult]]
Complete = Callable[[AuthUnitOfWork], Awaitable[TokenPair]]


def sign_in(
    ctx: AuthContext,
    password: str = PASSWORD,
    identifier: Contact = PHONE,
    origin: Origin = ORIGIN,
) -> SignIn:
    async def work(uow: AuthUnitOfWork) -> signin.SignInResult:
        answer = await signin.sign_in(
            uow, ctx, identifier=identifier, password=password, origin=origin
        )
        return answer.outcome

    return work


def complete(
    ctx: AuthContext, ticket: str, *, totp: str | None = None, recovery: str | None = None
) -> Complete:
    async def work(uow: AuthUnitOfWork) -> TokenPair:
        return await signin.complete_sign_in(
            uow, ctx, ticket=ticket, totp_code=totp, recovery_code=recovery, origin=ORIGIN
        )

    return work


def hasher(ctx: AuthContext) -> FakePasswordHasher:
    assert isinstance(ctx.passwords, FakePasswordHasher)
    return ctx.passwords


async def test_the_right_password_opens_a_session(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    account_id = (await register(tx, ctx)).account_id

    result = await tx.run(sign_in(ctx))

    assert isinstance(result, TokenPair)
    assert store.sessions[result.session_id].account_id == account_id
    assert event_types(store, account_id)[-1] == "SIGN_IN"
    assert store.events_of(account_id)[-1].details["session_id"] == result.session_id


async def test_a_wrong_password_and_an_unknown_account_get_the_same_answer_for_the_same_work(
    tx: FakeTransactions, ctx: AuthContext
) -> None:
    await register(tx, ctx)
    checks_before = hasher(ctx).verifications

    wrong_password = await refusal(tx, sign_in(ctx, "not the password"))
    unknown_account = await refusal(tx, sign_in(ctx, PASSWORD, UNKNOWN))

    assert isinstance(wrong_password, Unauthenticated)
    assert (wrong_password.reason, wrong_password.message) == (
        unknown_account.reason,
        unknown_account.message,
    )
    assert wrong_password.reason == "CREDENTIALS_INVALID"
    assert hasher(ctx).verifications == checks_before + 2


async def test_a_wrong_password_is_recorded_in_the_timeline(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    account_id = (await register(tx, ctx)).account_id

    await refusal(tx, sign_in(ctx, "not the password"))

    assert event_types(store, account_id)[-1] == "SIGN_IN_FAILED"


async def test_repeated_failures_make_the_next_attempt_wait_before_any_password_check(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock
) -> None:
    await register(tx, ctx)
    for _ in range(3):
        await refusal(tx, sign_in(ctx, "not the password", origin=ATTACKER))
    checks_before = hasher(ctx).verifications

    error = await refusal(tx, sign_in(ctx, PASSWORD, origin=ATTACKER))

    assert isinstance(error, ResourceExhausted)
    assert error.reason == Reason.SIGN_IN_THROTTLED
    assert error.retry_after_seconds == 1.0
    assert hasher(ctx).verifications == checks_before
    clock.advance(timedelta(seconds=1))
    assert isinstance(await tx.run(sign_in(ctx, PASSWORD, origin=ATTACKER)), TokenPair)


async def test_an_unknown_identifier_is_throttled_like_an_account(
    tx: FakeTransactions, ctx: AuthContext
) -> None:
    for _ in range(3):
        await refusal(tx, sign_in(ctx, PASSWORD, UNKNOWN, ATTACKER))

    error = await refusal(tx, sign_in(ctx, PASSWORD, UNKNOWN, ATTACKER))

    assert error.reason == Reason.SIGN_IN_THROTTLED


async def test_an_attack_from_elsewhere_does_not_lock_the_owner_out(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, store: FakeStore
) -> None:
    account_id = (await register(tx, ctx)).account_id
    await tx.run(sign_in(ctx))
    for _ in range(12):
        clock.advance(timedelta(minutes=16))
        await refusal(tx, sign_in(ctx, "not the password", origin=ATTACKER))

    attacker = await refusal(tx, sign_in(ctx, PASSWORD, origin=ATTACKER))
    owner = await tx.run(sign_in(ctx))

    assert attacker.reason == Reason.SIGN_IN_THROTTLED
    assert isinstance(owner, TokenPair)
    assert "SIGN_IN_LOCKED" in event_types(store, account_id)


async def test_a_frozen_account_is_told_apart_only_after_the_right_password(
    tx: FakeTransactions, ctx: AuthContext
) -> None:
    account_id = (await register(tx, ctx)).account_id
    await freeze(tx, ctx, account_id)

    wrong_password = await refusal(tx, sign_in(ctx, "not the password"))
    right_password = await refusal(tx, sign_in(ctx))

    assert wrong_password.reason == "CREDENTIALS_INVALID"
    assert isinstance(right_password, FailedPrecondition)
    assert right_password.reason == Reason.ACCOUNT_FROZEN


async def test_a_hash_made_with_old_parameters_is_upgraded_at_sign_in(
    tx: FakeTransactions, clock: FakeClock, store: FakeStore
) -> None:
    old = fake_context(clock, passwords=FakePasswordHasher("v1"))
    account_id = (await register(tx, old)).account_id
    new = fake_context(clock, passwords=FakePasswordHasher("v2"), limiter=old.limiter)

    await tx.run(sign_in(new))

    assert store.accounts[account_id].password_hash.startswith("fake$v2$")


async def test_only_a_device_new_to_the_account_is_notified(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    await register(tx, ctx)
    new_device = Origin(ORIGIN.client_address, Device("tablet-1"))

    await tx.run(sign_in(ctx))
    after_known_device = len(store.notifier.notices_to(PHONE))
    await tx.run(sign_in(ctx, origin=new_device))

    assert after_known_device == 0
    assert [n.event.type.value for n in store.notifier.notices_to(PHONE)] == ["SIGN_IN"]


# -- the second factor -------------------------------------------------------------------------


async def test_with_totp_the_password_only_earns_a_ticket(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, store: FakeStore
) -> None:
    account_id = (await register(tx, ctx)).account_id
    await enable_totp(tx, ctx, clock, account_id)
    sessions_before = len(store.sessions)

    result = await tx.run(sign_in(ctx))

    assert isinstance(result, signin.SecondFactorRequired)
    assert result.allowed_methods == (FactorMethod.TOTP, FactorMethod.RECOVERY_CODE)
    assert result.expires_at == clock() + timedelta(minutes=5)
    assert len(store.sessions) == sessions_before


async def test_a_totp_code_completes_the_sign_in_once(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, store: FakeStore
) -> None:
    account_id = (await register(tx, ctx)).account_id
    app = await enable_totp(tx, ctx, clock, account_id)
    pending = await tx.run(sign_in(ctx))
    assert isinstance(pending, signin.SecondFactorRequired)

    tokens = await tx.run(complete(ctx, pending.ticket, totp=app.code_now(clock)))
    clock.advance(timedelta(seconds=30))
    again = await refusal(tx, complete(ctx, pending.ticket, totp=app.code_now(clock)))

    assert store.sessions[tokens.session_id].account_id == account_id
    assert store.events_of(account_id)[-1].details["method"] == "TOTP"
    assert again.reason == Reason.TICKET_INVALID


async def test_a_replayed_totp_code_is_a_failed_sign_in(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, store: FakeStore
) -> None:
    account_id = (await register(tx, ctx)).account_id
    app = await enable_totp(tx, ctx, clock, account_id)
    code = app.code_now(clock)
    first = await tx.run(sign_in(ctx))
    second = await tx.run(sign_in(ctx))
    assert isinstance(first, signin.SecondFactorRequired)
    assert isinstance(second, signin.SecondFactorRequired)
    await tx.run(complete(ctx, first.ticket, totp=code))
    failed_before = event_types(store, account_id).count("SIGN_IN_FAILED")

    replay = await refusal(tx, complete(ctx, second.ticket, totp=code))

    assert isinstance(replay, InvalidArgument)
    assert replay.reason == Reason.CODE_INVALID
    assert event_types(store, account_id).count("SIGN_IN_FAILED") == failed_before + 1
    assert (
        len(store.code_failure_ledgers[second_factor_ledger_subject(account_id)].recent_failures)
        == 1
    )


async def test_a_recovery_code_completes_the_sign_in(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, store: FakeStore
) -> None:
    account_id = (await register(tx, ctx)).account_id
    app = await enable_totp(tx, ctx, clock, account_id)
    pending = await tx.run(sign_in(ctx))
    assert isinstance(pending, signin.SecondFactorRequired)

    tokens = await tx.run(complete(ctx, pending.ticket, recovery=app.recovery_codes[3]))

    assert store.sessions[tokens.session_id].account_id == account_id
    assert "RECOVERY_CODE_USED" in event_types(store, account_id)


async def test_a_wrong_second_factor_is_counted_and_the_ticket_stays_usable(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, store: FakeStore
) -> None:
    account_id = (await register(tx, ctx)).account_id
    app = await enable_totp(tx, ctx, clock, account_id)
    pending = await tx.run(sign_in(ctx))
    assert isinstance(pending, signin.SecondFactorRequired)
    right = app.code_now(clock)

    error = await refusal(tx, complete(ctx, pending.ticket, totp=f"{(int(right) + 1) % 10**6:06d}"))
    tokens = await tx.run(complete(ctx, pending.ticket, totp=right))

    assert isinstance(error, InvalidArgument)
    assert error.reason == Reason.CODE_INVALID
    assert "SIGN_IN_FAILED" in event_types(store, account_id)
    assert (
        len(store.code_failure_ledgers[second_factor_ledger_subject(account_id)].recent_failures)
        == 1
    )
    assert tokens.session_id in store.sessions


async def test_a_forged_or_expired_ticket_is_refused(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock
) -> None:
    account_id = (await register(tx, ctx)).account_id
    app = await enable_totp(tx, ctx, clock, account_id)
    pending = await tx.run(sign_in(ctx))
    assert isinstance(pending, signin.SecondFactorRequired)
    pending_id = pending.ticket.partition(".")[0]

    forged = await refusal(tx, complete(ctx, f"{pending_id}.guessed", totp=app.code_now(clock)))
    clock.advance(timedelta(minutes=5))
    expired = await refusal(tx, complete(ctx, pending.ticket, totp=app.code_now(clock)))

    assert forged.reason == Reason.TICKET_INVALID
    assert expired.reason == Reason.TICKET_INVALID


async def test_a_ticket_of_an_account_frozen_meanwhile_is_refused(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock
) -> None:
    account_id = (await register(tx, ctx)).account_id
    app = await enable_totp(tx, ctx, clock, account_id)
    pending = await tx.run(sign_in(ctx))
    assert isinstance(pending, signin.SecondFactorRequired)
    await freeze(tx, ctx, account_id)

    error = await refusal(tx, complete(ctx, pending.ticket, totp=app.code_now(clock)))

    assert error.reason == Reason.ACCOUNT_FROZEN
