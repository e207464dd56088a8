"""Credential reset by SMS or e-mail code: the new password, revoked sessions, notices, 2FA kept,
and a start that tells nobody whether the account exists."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

import pytest

from services.auth.domain.contacts import Contact, Email, Phone
from services.auth.domain.events import RevokeReason, SecurityEventType
from services.auth.domain.ledger import second_factor_ledger_subject
from services.auth.domain.otp import OtpChannel
from services.auth.domain.proofs import FactorMethod
from services.auth.domain.throttling import CounterScope, FailureCounter
from services.auth.service import reset
from services.auth.service.context import AuthContext
from services.auth.service.fakes import FakeClock, FakeStore, FakeTransactions, fake_context
from services.auth.service.ports import AuthUnitOfWork
from tests.unit.auth.service.recovery_helpers import (
    EMAIL,
    ORIGIN,
    PASSWORD,
    PHONE,
    add_account,
    add_session,
    enable_totp,
    freeze_by_officer,
    refusal,
)
from walletcore.errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from walletcore.ratelimit.base import Decision, Hit, RateLimiter

NEW_PASSWORD = "a much better passphrase"
UNKNOWN_PHONE = Phone("+8613900139000")
OTHER_PHONE = Phone("+8613700137000")
OTHER_EMAIL = Email("bob@example.com")
SEND_LIMIT_MINUTE = "codes_sent_per_destination_minute"


def starting(
    ctx: AuthContext, identifier: Contact, channel: OtpChannel
) -> Callable[[AuthUnitOfWork], Awaitable[reset.CodeChallengeStarted]]:
    async def work(uow: AuthUnitOfWork) -> reset.CodeChallengeStarted:
        return await reset.start_credential_reset(
            uow, ctx, identifier=identifier, channel=channel, origin=ORIGIN
        )

    return work


async def start(
    tx: FakeTransactions,
    ctx: AuthContext,
    identifier: Contact = PHONE,
    channel: OtpChannel = OtpChannel.SMS,
) -> reset.CodeChallengeStarted:
    return await tx.run(starting(ctx, identifier, channel))


def complete(
    ctx: AuthContext,
    reset_id: str,
    code: str,
    *,
    new_password: str = NEW_PASSWORD,
    second_factor: tuple[FactorMethod, str] | None = None,
) -> Callable[[AuthUnitOfWork], Awaitable[None]]:
    async def work(uow: AuthUnitOfWork) -> None:
        await reset.complete_credential_reset(
            uow,
            ctx,
            reset_id=reset_id,
            code=code,
            new_password=new_password,
            second_factor=second_factor,
            origin=ORIGIN,
        )

    return work


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def password_works(store: FakeStore, ctx: AuthContext, password: str) -> bool:
    matches, _ = await ctx.passwords.verify_and_update(
        password, store.accounts["acc-1"].password_hash
    )
    return matches


async def test_a_code_by_sms_sets_the_new_password_and_revokes_every_session(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    await add_account(tx, ctx)
    await add_session(tx, ctx, "acc-1", "session-1")
    await add_session(tx, ctx, "acc-1", "session-2")

    started = await start(tx, ctx)
    await tx.run(complete(ctx, started.challenge_id, store.notifier.last_code(PHONE)))

    assert await password_works(store, ctx, NEW_PASSWORD)
    assert not await password_works(store, ctx, PASSWORD)
    assert {s.revoke_reason for s in store.sessions.values()} == {RevokeReason.CREDENTIAL_RESET}


async def test_a_completed_reset_is_recorded_and_notified_to_every_contact(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    await add_account(tx, ctx)
    started = await start(tx, ctx)
    await tx.run(complete(ctx, started.challenge_id, store.notifier.last_code(PHONE)))

    assert SecurityEventType.CREDENTIAL_RESET in [e.type for e in store.events_of("acc-1")]
    for contact in (PHONE, EMAIL):
        notices = store.notifier.notices_to(contact)
        assert [n.event.type for n in notices] == [SecurityEventType.CREDENTIAL_RESET]


async def test_the_channel_picks_the_contact_whatever_the_identifier(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    await add_account(tx, ctx)
    started = await start(tx, ctx, identifier=PHONE, channel=OtpChannel.EMAIL)

    assert store.notifier.codes_to(PHONE) == []
    await tx.run(complete(ctx, started.challenge_id, store.notifier.last_code(EMAIL)))
    assert await password_works(store, ctx, NEW_PASSWORD)


@pytest.mark.parametrize(
    ("contacts", "identifier", "channel", "frozen"),
    [
        pytest.param((PHONE,), UNKNOWN_PHONE, OtpChannel.SMS, False, id="unknown-account"),
        pytest.param((PHONE,), PHONE, OtpChannel.EMAIL, False, id="no-contact-of-channel"),
        pytest.param((PHONE, EMAIL), PHONE, OtpChannel.SMS, True, id="frozen-account"),
    ],
)
async def test_a_start_that_can_send_nothing_answers_like_one_that_sent_a_code(
    tx: FakeTransactions,
    ctx: AuthContext,
    store: FakeStore,
    contacts: tuple[Phone | Email, ...],
    identifier: Contact,
    channel: OtpChannel,
    frozen: bool,
) -> None:
    await add_account(tx, ctx, *contacts)
    if frozen:
        await freeze_by_officer(tx, ctx)
    await add_account(tx, ctx, OTHER_PHONE, OTHER_EMAIL, account_id="acc-2")
    known = await start(tx, ctx, identifier=OTHER_PHONE, channel=channel)
    sent_before = len(store.notifier.codes)

    answer = await start(tx, ctx, identifier=identifier, channel=channel)

    assert len(store.notifier.codes) == sent_before
    assert len(answer.challenge_id) == len(known.challenge_id)
    assert answer.challenge_id != known.challenge_id
    assert answer.expires_at - ctx.clock() == known.expires_at - ctx.clock()


async def test_an_unknown_account_is_charged_the_same_send_limits(
    tx: FakeTransactions, ctx: AuthContext
) -> None:
    await add_account(tx, ctx)
    await start(tx, ctx, identifier=PHONE)
    await start(tx, ctx, identifier=UNKNOWN_PHONE)

    for identifier in (PHONE, UNKNOWN_PHONE):
        error = await refusal(tx, starting(ctx, identifier, OtpChannel.SMS))
        assert isinstance(error, ResourceExhausted)
        assert [v.subject for v in error.violations] == [SEND_LIMIT_MINUTE]


async def test_one_client_address_cannot_pump_codes_to_many_destinations(
    tx: FakeTransactions, ctx: AuthContext
) -> None:
    for index in range(30):
        await start(tx, ctx, identifier=Email(f"user{index}@example.com"), channel=OtpChannel.EMAIL)

    error = await refusal(tx, starting(ctx, Email("one-more@example.com"), OtpChannel.EMAIL))
    assert isinstance(error, ResourceExhausted)
    assert [v.subject for v in error.violations] == ["codes_sent_per_client_address_hour"]


@pytest.mark.parametrize("identifier", [PHONE, UNKNOWN_PHONE], ids=["known", "unknown"])
async def test_wrong_codes_fail_alike_whether_or_not_the_account_exists(
    tx: FakeTransactions, clock: FakeClock, identifier: Phone
) -> None:
    ctx = fake_context(clock, new_code=lambda: "123456")
    await add_account(tx, ctx)
    started = await start(tx, ctx, identifier=identifier)

    answers = []
    for _ in range(5):
        error = await refusal(tx, complete(ctx, started.challenge_id, "654321"))
        answers.append((type(error), error.reason, dict(error.metadata)))

    assert answers == [
        (InvalidArgument, "CODE_INVALID", {"attempts_left": str(left)}) for left in (4, 3, 2, 1)
    ] + [(FailedPrecondition, "TOO_MANY_ATTEMPTS", {})]


async def test_after_five_wrong_codes_even_the_right_one_is_refused(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    await add_account(tx, ctx)
    started = await start(tx, ctx)
    code = store.notifier.last_code(PHONE)
    for _ in range(5):
        await refusal(tx, complete(ctx, started.challenge_id, wrong(code)))

    error = await refusal(tx, complete(ctx, started.challenge_id, code))

    assert error.reason == "TOO_MANY_ATTEMPTS"
    assert await password_works(store, ctx, PASSWORD)


async def test_a_new_code_does_not_reset_the_accounts_failure_count(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, store: FakeStore
) -> None:
    await add_account(tx, ctx)
    for _ in range(2):
        started = await start(tx, ctx)
        for _ in range(5):
            await refusal(
                tx, complete(ctx, started.challenge_id, wrong(store.notifier.last_code(PHONE)))
            )
        clock.advance(timedelta(minutes=1))

    started = await start(tx, ctx)
    error = await refusal(tx, complete(ctx, started.challenge_id, store.notifier.last_code(PHONE)))

    assert isinstance(error, ResourceExhausted)
    assert await password_works(store, ctx, PASSWORD)


async def test_a_used_code_does_not_work_again(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    await add_account(tx, ctx)
    started = await start(tx, ctx)
    code = store.notifier.last_code(PHONE)
    await tx.run(complete(ctx, started.challenge_id, code))

    error = await refusal(
        tx, complete(ctx, started.challenge_id, code, new_password="yet another passphrase")
    )

    assert error.reason == "CODE_EXPIRED"
    assert await password_works(store, ctx, NEW_PASSWORD)


@pytest.mark.parametrize(
    ("channel", "lifetime"),
    [(OtpChannel.SMS, timedelta(minutes=10)), (OtpChannel.EMAIL, timedelta(minutes=15))],
)
async def test_a_code_expires_with_its_channels_lifetime(
    tx: FakeTransactions,
    ctx: AuthContext,
    clock: FakeClock,
    store: FakeStore,
    channel: OtpChannel,
    lifetime: timedelta,
) -> None:
    await add_account(tx, ctx)
    started = await start(tx, ctx, channel=channel)
    code = store.notifier.last_code(PHONE if channel is OtpChannel.SMS else EMAIL)
    assert started.expires_at == clock() + lifetime

    clock.advance(lifetime)
    error = await refusal(tx, complete(ctx, started.challenge_id, code))

    assert error.reason == "CODE_EXPIRED"


async def test_a_rejected_password_leaves_the_code_usable(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    await add_account(tx, ctx)
    started = await start(tx, ctx)
    code = store.notifier.last_code(PHONE)

    error = await refusal(tx, complete(ctx, started.challenge_id, code, new_password="password"))
    assert isinstance(error, InvalidArgument)
    assert error.reason == "PASSWORD_REJECTED"
    assert [v.field for v in error.violations] == ["new_password"]

    await tx.run(complete(ctx, started.challenge_id, code))
    assert await password_works(store, ctx, NEW_PASSWORD)


async def test_an_account_with_totp_also_needs_its_second_factor(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, store: FakeStore
) -> None:
    await add_account(tx, ctx)
    factor = await enable_totp(tx, ctx, clock)
    started = await start(tx, ctx)
    code = store.notifier.last_code(PHONE)

    error = await refusal(tx, complete(ctx, started.challenge_id, code))
    assert error.reason == "SECOND_FACTOR_REQUIRED"

    totp = (FactorMethod.TOTP, factor.code_now(clock))
    await tx.run(complete(ctx, started.challenge_id, code, second_factor=totp))
    assert await password_works(store, ctx, NEW_PASSWORD)


async def test_a_recovery_code_can_be_the_second_factor_once(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, store: FakeStore
) -> None:
    await add_account(tx, ctx)
    factor = await enable_totp(tx, ctx, clock)
    recovery = (FactorMethod.RECOVERY_CODE, factor.recovery_codes[0])
    started = await start(tx, ctx)
    await tx.run(
        complete(ctx, started.challenge_id, store.notifier.last_code(PHONE), second_factor=recovery)
    )
    clock.advance(timedelta(minutes=1))

    again = await start(tx, ctx)
    error = await refusal(
        tx,
        complete(
            ctx,
            again.challenge_id,
            store.notifier.last_code(PHONE),
            second_factor=recovery,
            new_password="third passphrase here",
        ),
    )

    # A reused recovery code is a wrong second factor.
    assert error.reason == "SECOND_FACTOR_INVALID"
    assert await password_works(store, ctx, NEW_PASSWORD)


async def test_a_wrong_second_factor_is_reported_on_its_field_and_uses_up_the_code(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, store: FakeStore
) -> None:
    await add_account(tx, ctx)
    factor = await enable_totp(tx, ctx, clock)
    started = await start(tx, ctx)
    code = store.notifier.last_code(PHONE)

    error = await refusal(
        tx,
        complete(
            ctx,
            started.challenge_id,
            code,
            second_factor=(FactorMethod.TOTP, wrong(factor.code_now(clock))),
        ),
    )
    assert isinstance(error, InvalidArgument)
    assert error.reason == "SECOND_FACTOR_INVALID"
    assert [v.field for v in error.violations] == ["second_factor.totp_code"]

    retry = await refusal(
        tx,
        complete(
            ctx,
            started.challenge_id,
            code,
            second_factor=(FactorMethod.TOTP, factor.code_now(clock)),
        ),
    )
    assert retry.reason == "CODE_EXPIRED"


async def test_a_reset_ends_the_sign_in_lock_of_the_account(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    await add_account(tx, ctx)
    locked = FailureCounter.for_account("acc-1")
    locked.consecutive_failures = ctx.rules.throttle.ceiling
    pair = FailureCounter.for_pair("acc-1", ORIGIN.client_address or "")
    pair.consecutive_failures = 12
    for counter in (locked, pair):
        store.failure_counters[(counter.scope, counter.key)] = counter

    started = await start(tx, ctx)
    await tx.run(complete(ctx, started.challenge_id, store.notifier.last_code(PHONE)))

    assert store.failure_counters[(CounterScope.ACCOUNT, locked.key)].consecutive_failures == 0
    assert (
        store.failure_counters[(CounterScope.ACCOUNT_ADDRESS, pair.key)].consecutive_failures == 0
    )


async def test_a_code_sent_before_a_freeze_cannot_reset_the_frozen_account(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    await add_account(tx, ctx)
    started = await start(tx, ctx)
    await freeze_by_officer(tx, ctx)

    error = await refusal(tx, complete(ctx, started.challenge_id, store.notifier.last_code(PHONE)))

    assert error.reason == "ACCOUNT_FROZEN"
    assert await password_works(store, ctx, PASSWORD)


class RecordingLimiter:
    """The context's limiter, recording the subjects each check charges."""

    def __init__(self, inner: RateLimiter) -> None:
        self.inner = inner
        self.subjects: list[str] = []

    async def check(self, hits: Sequence[Hit]) -> Decision:
        self.subjects.extend(hit.subject for hit in hits)
        return await self.inner.check(hits)

    async def close(self) -> None:
        await self.inner.close()


async def test_the_second_factor_is_charged_only_once_the_reset_code_was_right(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, store: FakeStore
) -> None:
    """Anyone can start a reset for the owner's phone and send wrong codes with a second
    factor: those must not spend the owner's second-factor checks (SPEC 3)."""
    await add_account(tx, ctx)
    factor = await enable_totp(tx, ctx, clock)
    started = await start(tx, ctx)
    limiter = RecordingLimiter(ctx.limiter)
    recorded = dataclasses.replace(ctx, limiter=limiter)
    code = store.notifier.last_code(PHONE)
    totp = (FactorMethod.TOTP, factor.code_now(clock))
    second_factor_subject = second_factor_ledger_subject("acc-1")

    wrong_code = f"{(int(code) + 1) % 1_000_000:06d}"
    await refusal(tx, complete(recorded, started.challenge_id, wrong_code, second_factor=totp))
    assert second_factor_subject not in limiter.subjects
    await tx.run(complete(recorded, started.challenge_id, code, second_factor=totp))

    assert limiter.subjects.count(second_factor_subject) == 1
