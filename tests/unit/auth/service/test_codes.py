"""Sending and checking codes: one limiter check per send, committed refusals, second factors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import pytest

from services.auth.domain.contacts import Contact, Email
from services.auth.domain.ledger import second_factor_ledger_subject
from services.auth.domain.otp import OtpChallenge
from services.auth.domain.proofs import ChallengePurpose, FactorMethod, VerifiedFactor
from services.auth.domain.reasons import Reason
from services.auth.service import codes
from services.auth.service.context import AuthContext, AuthRules
from services.auth.service.fakes import FakeClock, FakeStore, FakeTransactions, fake_context
from services.auth.service.ports import AuthUnitOfWork
from tests.unit.auth.service.access_helpers import (
    ORIGIN,
    PHONE,
    enable_totp,
    refusal,
    register,
)
from walletcore.crypto import DecryptionFailed
from walletcore.errors import (
    FailedPrecondition,
    InvalidArgument,
    ResourceExhausted,
)
from walletcore.ratelimit.base import Hit, Policy
from walletcore.ratelimit.policies import codes_sent_per_destination

PURPOSE = ChallengePurpose.CREDENTIAL_RESET

_T = TypeVar("_T")
Work = Callable[[AuthUnitOfWork], Awaitable[_T]]


def send(
    ctx: AuthContext, destination: Contact = PHONE, extra_hits: list[Hit] | None = None
) -> Work[OtpChallenge]:
    async def work(uow: AuthUnitOfWork) -> OtpChallenge:
        return await codes.send_code(
            uow,
            ctx,
            account_id="acc-1",
            purpose=PURPOSE,
            destination=destination,
            destination_ref="contact-1",
            extra_hits=extra_hits or [],
        )

    return work


def check(ctx: AuthContext, challenge_id: str, code: str) -> Work[VerifiedFactor]:
    async def work(uow: AuthUnitOfWork) -> VerifiedFactor:
        return await codes.check_code(
            uow, ctx, challenge_id=challenge_id, raw_code=code, purpose=PURPOSE
        )

    return work


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


# -- sending -----------------------------------------------------------------------------------


async def test_the_code_sent_proves_the_challenge_it_belongs_to(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    challenge = await tx.run(send(ctx))
    code = store.notifier.last_code(to=PHONE)

    proof = await tx.run(check(ctx, challenge.id, code))

    assert (proof.account_id, proof.method, proof.purpose, proof.challenge_id) == (
        "acc-1",
        FactorMethod.SMS,
        PURPOSE,
        challenge.id,
    )
    assert code not in store.otp_challenges[challenge.id].code_hash


async def test_a_second_code_to_one_destination_within_a_minute_is_refused_and_not_sent(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore, clock: FakeClock
) -> None:
    await tx.run(send(ctx))

    error = await refusal(tx, send(ctx))

    assert isinstance(error, ResourceExhausted)
    assert [v.subject for v in error.violations] == ["codes_sent_per_destination_minute"]
    assert len(store.notifier.codes_to(PHONE)) == 1
    clock.advance(timedelta(seconds=61))
    await tx.run(send(ctx))
    assert len(store.notifier.codes_to(PHONE)) == 2


async def test_the_resend_interval_of_the_rules_decides_when_a_destination_may_have_another(
    tx: FakeTransactions, store: FakeStore, clock: FakeClock
) -> None:
    ctx = fake_context(clock, rules=AuthRules(code_resend=codes_sent_per_destination(15)))
    await tx.run(send(ctx))
    clock.advance(timedelta(seconds=14))

    error = await refusal(tx, send(ctx))

    assert isinstance(error, ResourceExhausted)
    assert [v.subject for v in error.violations] == ["codes_sent_per_destination_minute"]
    assert 0 < error.retry_after_seconds <= 1
    clock.advance(timedelta(seconds=1))
    await tx.run(send(ctx))
    assert len(store.notifier.codes_to(PHONE)) == 2


async def test_an_address_in_another_case_counts_as_the_same_destination(
    tx: FakeTransactions, ctx: AuthContext
) -> None:
    await tx.run(send(ctx, Email.parse("Alice@example.com")))

    error = await refusal(tx, send(ctx, Email.parse("alice@EXAMPLE.com")))

    assert isinstance(error, ResourceExhausted)


async def test_a_refused_extra_limit_sends_nothing_and_charges_the_destination_nothing(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    exhausted = Hit(Policy("test_one_a_minute", 1, 60), "203.0.113.9")
    await ctx.limiter.check([exhausted])

    error = await refusal(tx, send(ctx, extra_hits=[exhausted]))

    assert isinstance(error, ResourceExhausted)
    assert store.notifier.codes_to(PHONE) == []
    await tx.run(send(ctx))
    assert len(store.notifier.codes_to(PHONE)) == 1


# -- checking ----------------------------------------------------------------------------------


async def test_an_unknown_challenge_reads_as_an_expired_code(
    tx: FakeTransactions, ctx: AuthContext
) -> None:
    error = await refusal(tx, check(ctx, "no-such-challenge", "123456"))

    assert isinstance(error, FailedPrecondition)
    assert error.reason == Reason.CODE_EXPIRED


async def test_a_wrong_code_is_refused_and_its_attempt_stays_counted(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    challenge = await tx.run(send(ctx))
    code = store.notifier.last_code(to=PHONE)

    error = await refusal(tx, check(ctx, challenge.id, wrong(code)))

    assert isinstance(error, InvalidArgument)
    assert (error.reason, error.metadata["attempts_left"]) == (Reason.CODE_INVALID, "4")
    assert store.otp_challenges[challenge.id].failed_attempts == 1
    assert len(store.code_failure_ledgers[challenge.ledger_subject].recent_failures) == 1


async def test_five_wrong_codes_end_the_challenge_even_for_the_right_code(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    challenge = await tx.run(send(ctx))
    code = store.notifier.last_code(to=PHONE)
    for _ in range(5):
        await refusal(tx, check(ctx, challenge.id, wrong(code)))

    error = await refusal(tx, check(ctx, challenge.id, code))

    assert isinstance(error, FailedPrecondition)
    assert error.reason == Reason.TOO_MANY_ATTEMPTS


async def test_a_used_code_cannot_be_replayed(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    challenge = await tx.run(send(ctx))
    code = store.notifier.last_code(to=PHONE)
    await tx.run(check(ctx, challenge.id, code))

    error = await refusal(tx, check(ctx, challenge.id, code))

    assert error.reason == Reason.CODE_EXPIRED


async def test_an_sms_code_expires_after_ten_minutes(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore, clock: FakeClock
) -> None:
    challenge = await tx.run(send(ctx))
    code = store.notifier.last_code(to=PHONE)
    clock.advance(timedelta(minutes=10))

    error = await refusal(tx, check(ctx, challenge.id, code))

    assert error.reason == Reason.CODE_EXPIRED


async def test_code_checks_are_limited_per_account_whatever_the_outcome(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    challenge = await tx.run(send(ctx))
    code = store.notifier.last_code(to=PHONE)
    await tx.run(check(ctx, challenge.id, code))
    for _ in range(19):
        await refusal(tx, check(ctx, challenge.id, code))

    error = await refusal(tx, check(ctx, challenge.id, code))

    assert isinstance(error, ResourceExhausted)
    assert [v.subject for v in error.violations] == ["code_checks_per_account_hour"]


# -- second factors ----------------------------------------------------------------------------


def second_factor(
    ctx: AuthContext, account_id: str, *, totp: str | None = None, recovery: str | None = None
) -> Work[VerifiedFactor]:
    async def work(uow: AuthUnitOfWork) -> VerifiedFactor:
        account = await uow.accounts.get(account_id)
        assert account is not None
        return await codes.check_second_factor(
            uow,
            ctx,
            account,
            totp_code=totp,
            recovery_code=recovery,
            purpose=ChallengePurpose.SIGN_IN,
            origin=ORIGIN,
        )

    return work


def answer(error: Exception) -> tuple[object, ...]:
    """What a client sees of a code refusal."""
    assert isinstance(error, InvalidArgument)
    return (type(error), error.reason, error.message, error.violations, error.metadata)


async def test_a_totp_code_is_accepted_once_and_a_replay_is_a_counted_wrong_code(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, store: FakeStore
) -> None:
    account_id = (await register(tx, ctx)).account_id
    app = await enable_totp(tx, ctx, clock, account_id)
    code = app.code_now(clock)

    proof = await tx.run(second_factor(ctx, account_id, totp=code))
    replay = await refusal(tx, second_factor(ctx, account_id, totp=code))
    wrong_code = await refusal(tx, second_factor(ctx, account_id, totp=wrong(code)))

    assert (proof.method, proof.purpose) == (FactorMethod.TOTP, ChallengePurpose.SIGN_IN)
    assert answer(replay) == answer(wrong_code)
    ledger = store.code_failure_ledgers[second_factor_ledger_subject(account_id)]
    assert len(ledger.recent_failures) == 2


async def test_a_wrong_totp_code_names_the_request_field_and_counts_in_the_ledger(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, store: FakeStore
) -> None:
    account_id = (await register(tx, ctx)).account_id
    app = await enable_totp(tx, ctx, clock, account_id)

    error = await refusal(tx, second_factor(ctx, account_id, totp=wrong(app.code_now(clock))))

    assert isinstance(error, InvalidArgument)
    assert error.reason == Reason.CODE_INVALID
    assert [v.field for v in error.violations] == ["second_factor.totp_code"]
    assert (
        len(store.code_failure_ledgers[second_factor_ledger_subject(account_id)].recent_failures)
        == 1
    )


async def test_a_malformed_totp_code_costs_no_attempt(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, store: FakeStore
) -> None:
    account_id = (await register(tx, ctx)).account_id
    await enable_totp(tx, ctx, clock, account_id)

    error = await refusal(tx, second_factor(ctx, account_id, totp="12ab56"))

    assert isinstance(error, InvalidArgument)
    assert [v.field for v in error.violations] == ["second_factor.totp_code"]
    assert second_factor_ledger_subject(account_id) not in store.code_failure_ledgers


async def test_a_recovery_code_works_once_and_every_contact_hears_of_it(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, store: FakeStore
) -> None:
    account_id = (await register(tx, ctx)).account_id
    app = await enable_totp(tx, ctx, clock, account_id)
    code = app.recovery_codes[0]

    proof = await tx.run(second_factor(ctx, account_id, recovery=code.lower()))
    again = await refusal(tx, second_factor(ctx, account_id, recovery=code))
    wrong_code = await refusal(tx, second_factor(ctx, account_id, recovery="AAAA-AAAA-AAAA-AAAA"))

    assert proof.method is FactorMethod.RECOVERY_CODE
    assert answer(again) == answer(wrong_code)
    ledger = store.code_failure_ledgers[second_factor_ledger_subject(account_id)]
    assert len(ledger.recent_failures) == 2
    notices = store.notifier.notices_to(PHONE)
    assert [n.event.type.value for n in notices][-1] == "RECOVERY_CODE_USED"
    remaining = store.accounts[account_id].recovery_codes
    assert remaining is not None
    assert remaining.remaining == 9


@pytest.mark.parametrize(("totp", "recovery"), [(None, None), ("123456", "ABCD-EFGH-JKMN-PQRS")])
async def test_exactly_one_second_factor_is_required(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, totp: str | None, recovery: str | None
) -> None:
    account_id = (await register(tx, ctx)).account_id
    await enable_totp(tx, ctx, clock, account_id)

    error = await refusal(tx, second_factor(ctx, account_id, totp=totp, recovery=recovery))

    assert isinstance(error, InvalidArgument)
    assert [v.field for v in error.violations] == ["second_factor"]


async def test_an_account_without_totp_has_no_second_factor(
    tx: FakeTransactions, ctx: AuthContext
) -> None:
    account_id = (await register(tx, ctx)).account_id

    error = await refusal(tx, second_factor(ctx, account_id, totp="123456"))

    assert error.reason == Reason.TOTP_NOT_ENABLED


def test_a_totp_secret_decrypts_only_for_its_own_account(ctx: AuthContext) -> None:
    sealed = codes.encrypt_totp_secret(ctx, "acc-1", "JBSWY3DPEHPK3PXP")

    assert codes.decrypt_totp_secret(ctx, "acc-1", sealed) == "JBSWY3DPEHPK3PXP"
    with pytest.raises(DecryptionFailed):
        codes.decrypt_totp_secret(ctx, "acc-2", sealed)
