"""Self-freeze: a code to a verified contact freezes the account and ends every session at once;
the start tells nobody whether the account exists; a frozen account resets and steps up no more."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from services.auth.domain.account import AccountStatus
from services.auth.domain.contacts import Contact, Phone
from services.auth.domain.events import ActorKind, RevokeReason, SecurityEventType
from services.auth.domain.otp import OtpChannel
from services.auth.domain.proofs import FactorMethod
from services.auth.domain.stepup import StepUpPurpose
from services.auth.service import reset, self_freeze, stepup
from services.auth.service.context import AuthContext
from services.auth.service.fakes import FakeClock, FakeStore, FakeTransactions, fake_context
from services.auth.service.ports import AuthUnitOfWork
from tests.unit.auth.service.recovery_helpers import (
    EMAIL,
    ORIGIN,
    PHONE,
    add_account,
    add_session,
    refusal,
)
from walletcore.errors import FailedPrecondition, InvalidArgument, ResourceExhausted

UNKNOWN_PHONE = Phone("+8613900139000")


def starting(
    ctx: AuthContext, identifier: Contact = PHONE, channel: OtpChannel = OtpChannel.SMS
) -> Callable[[AuthUnitOfWork], Awaitable[reset.CodeChallengeStarted]]:
    async def work(uow: AuthUnitOfWork) -> reset.CodeChallengeStarted:
        return await self_freeze.start_self_freeze(
            uow, ctx, identifier=identifier, channel=channel, origin=ORIGIN
        )

    return work


def confirming(
    ctx: AuthContext, challenge_id: str, code: str
) -> Callable[[AuthUnitOfWork], Awaitable[self_freeze.SelfFreezeConfirmed]]:
    async def work(uow: AuthUnitOfWork) -> self_freeze.SelfFreezeConfirmed:
        return await self_freeze.confirm_self_freeze(
            uow, ctx, challenge_id=challenge_id, code=code, origin=ORIGIN
        )

    return work


async def freeze_by_email(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> self_freeze.SelfFreezeConfirmed:
    started = await tx.run(starting(ctx, PHONE, OtpChannel.EMAIL))
    return await tx.run(confirming(ctx, started.challenge_id, store.notifier.last_code(EMAIL)))


async def test_a_code_freezes_the_account_and_revokes_every_session(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, store: FakeStore
) -> None:
    await add_account(tx, ctx)
    await add_session(tx, ctx, "acc-1", "session-1")
    await add_session(tx, ctx, "acc-1", "session-2")

    confirmed = await freeze_by_email(tx, ctx, store)

    account = store.accounts["acc-1"]
    assert account.status is AccountStatus.FROZEN
    assert confirmed.frozen_at == account.frozen_at == clock()
    assert account.freeze_history[-1].actor.kind is ActorKind.USER
    assert {s.revoke_reason for s in store.sessions.values()} == {RevokeReason.ACCOUNT_FROZEN}


async def test_a_self_freeze_is_recorded_and_notified_to_every_contact(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    await add_account(tx, ctx)

    await freeze_by_email(tx, ctx, store)

    frozen = [e for e in store.events_of("acc-1") if e.type is SecurityEventType.ACCOUNT_FROZEN]
    assert [e.details for e in frozen] == [{"self_freeze": "true"}]
    for contact in (PHONE, EMAIL):
        notices = store.notifier.notices_to(contact)
        assert [n.event.type for n in notices] == [SecurityEventType.ACCOUNT_FROZEN]


async def test_confirming_for_a_frozen_account_answers_with_the_first_freeze(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, store: FakeStore
) -> None:
    await add_account(tx, ctx)
    first = await freeze_by_email(tx, ctx, store)
    clock.advance(timedelta(minutes=5))

    again = await freeze_by_email(tx, ctx, store)

    assert again.frozen_at == first.frozen_at
    assert len(store.accounts["acc-1"].freeze_history) == 1


async def test_an_unknown_account_gets_the_same_answer_and_no_code(
    tx: FakeTransactions, clock: FakeClock, store: FakeStore
) -> None:
    ctx = fake_context(clock, new_code=lambda: "111111")
    await add_account(tx, ctx)
    known = await tx.run(starting(ctx, PHONE))
    unknown = await tx.run(starting(ctx, UNKNOWN_PHONE))

    assert [sent.to for sent in store.notifier.codes] == [PHONE]
    assert len(unknown.challenge_id) == len(known.challenge_id)
    assert unknown.expires_at == known.expires_at

    error = await refusal(tx, confirming(ctx, unknown.challenge_id, "123456"))
    assert isinstance(error, InvalidArgument)
    assert error.reason == "CODE_INVALID"


async def test_an_unknown_account_is_charged_the_same_send_limits(
    tx: FakeTransactions, ctx: AuthContext
) -> None:
    await add_account(tx, ctx)
    for identifier in (PHONE, UNKNOWN_PHONE):
        await tx.run(starting(ctx, identifier))

        error = await refusal(tx, starting(ctx, identifier))

        assert isinstance(error, ResourceExhausted)
        assert [v.subject for v in error.violations] == ["codes_sent_per_destination_minute"]


async def test_five_wrong_codes_end_the_challenge_even_for_the_right_code(
    tx: FakeTransactions, ctx: AuthContext, store: FakeStore
) -> None:
    await add_account(tx, ctx)
    started = await tx.run(starting(ctx))
    code = store.notifier.last_code(PHONE)
    for _ in range(5):
        await refusal(tx, confirming(ctx, started.challenge_id, f"{(int(code) + 1) % 10**6:06d}"))

    error = await refusal(tx, confirming(ctx, started.challenge_id, code))

    assert error.reason == "TOO_MANY_ATTEMPTS"
    assert store.accounts["acc-1"].status is AccountStatus.ACTIVE


async def test_a_frozen_account_can_neither_reset_nor_step_up(
    tx: FakeTransactions, ctx: AuthContext, clock: FakeClock, store: FakeStore
) -> None:
    await add_account(tx, ctx)
    await freeze_by_email(tx, ctx, store)
    clock.advance(timedelta(minutes=1))
    sent_before = len(store.notifier.codes)

    await tx.run(
        lambda uow: reset.start_credential_reset(
            uow, ctx, identifier=PHONE, channel=OtpChannel.SMS, origin=ORIGIN
        )
    )
    step_up = await refusal(
        tx,
        lambda uow: stepup.start_step_up(
            uow,
            ctx,
            account_id="acc-1",
            purpose=StepUpPurpose.UNBIND_CARD,
            object_id="card-1",
            method=FactorMethod.SMS,
        ),
    )

    assert len(store.notifier.codes) == sent_before
    assert isinstance(step_up, FailedPrecondition)
    assert step_up.reason == "ACCOUNT_FROZEN"
