"""Refund's use cases on in-memory fakes: the ledger, refund requests with their rules and
step-up grants, the operators' desk, and the payout worker with binding's holds and a gateway
that times out, loses requests, declines and reverses."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.refund.domain.money import Money
from services.refund.domain.payments import CapturedPayment
from services.refund.domain.policy import GRANT_PURPOSE
from services.refund.domain.reasons import Reason
from services.refund.domain.refunds import (
    AttemptState,
    Evidence,
    FailureReason,
    Refund,
    RefundReason,
    RefundState,
    RejectReason,
)
from services.refund.service import ops
from services.refund.service.fakes import GatewayBehaviour, RefundFakes
from services.refund.service.ledger import record_captured_payment
from services.refund.service.payouts import PayoutWorker
from services.refund.service.ports import Page
from services.refund.service.requests import RefundRequest, get_own_refund, request_refund
from walletcore.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)

ACCOUNT = "acct-1"


@pytest.fixture
def fakes() -> RefundFakes:
    return RefundFakes.create()


def report(fakes: RefundFakes, minor: int = 100_000, payment_id: str = "pay-1") -> CapturedPayment:
    return CapturedPayment(
        payment_id, ACCOUNT, Money(minor, "CNY"), "card-1", fakes.clock() - timedelta(days=1)
    )


async def captured(fakes: RefundFakes, minor: int = 100_000, payment_id: str = "pay-1") -> None:
    fakes.holds.instruments["card-1"] = (ACCOUNT, True)
    await fakes.tx.run(
        lambda uow: record_captured_payment(uow, fakes.ctx, report(fakes, minor, payment_id))
    )


async def request(
    fakes: RefundFakes,
    minor: int,
    *,
    account: str = ACCOUNT,
    payment_id: str = "pay-1",
    currency: str = "CNY",
    grant: str = "",
) -> Refund:
    body = RefundRequest(
        payment_id=payment_id,
        amount=Money(minor, currency),
        reason=RefundReason.DEFECTIVE,
        reason_detail="",
        evidence=Evidence(order_id="o-1"),
        grant=grant,
    )
    return await fakes.tx.run(
        lambda uow: request_refund(uow, fakes.ctx, account_id=account, request=body)
    )


def grant(fakes: RefundFakes, object_id: str = "pay-1") -> str:
    return fakes.store.issue_grant(
        ACCOUNT, GRANT_PURPOSE, object_id, fakes.clock() + timedelta(minutes=5)
    )


def worker(fakes: RefundFakes) -> PayoutWorker:
    return PayoutWorker(fakes.tx, fakes.ctx, pending_grace=timedelta(seconds=30))


# ledger -------------------------------------------------------------------------------


async def test_a_repeated_report_returns_the_first_and_other_data_conflicts(
    fakes: RefundFakes,
) -> None:
    await captured(fakes)
    again = await fakes.tx.run(lambda uow: record_captured_payment(uow, fakes.ctx, report(fakes)))
    assert again.captured == Money(100_000, "CNY")
    other = report(fakes, 99_999)
    with pytest.raises(AlreadyExists) as raised:
        await fakes.tx.run(lambda uow: record_captured_payment(uow, fakes.ctx, other))
    assert raised.value.reason == Reason.PAYMENT_CONFLICT
    assert fakes.store.payments["pay-1"].captured.minor == 100_000


async def test_a_capture_in_the_future_is_refused(fakes: RefundFakes) -> None:
    future = CapturedPayment(
        "p", ACCOUNT, Money(1, "CNY"), "c", fakes.clock() + timedelta(seconds=1)
    )
    with pytest.raises(InvalidArgument):
        await fakes.tx.run(lambda uow: record_captured_payment(uow, fakes.ctx, future))
    assert fakes.store.payments == {}


# requests -----------------------------------------------------------------------------


async def test_small_refunds_approve_themselves_larger_ones_wait(fakes: RefundFakes) -> None:
    await captured(fakes)
    small = await request(fakes, 5_000)
    large = await request(fakes, 5_001)
    assert small.state is RefundState.APPROVED
    assert small.history[-1].actor == "system:auto-approval"
    assert large.state is RefundState.REQUESTED
    assert fakes.store.payments["pay-1"].reserved_minor == 10_001


async def test_another_accounts_payment_is_not_found_like_an_unknown_one(
    fakes: RefundFakes,
) -> None:
    await captured(fakes)
    for account, payment_id in (("acct-2", "pay-1"), (ACCOUNT, "pay-unknown")):
        with pytest.raises(NotFound) as raised:
            await request(fakes, 100, account=account, payment_id=payment_id)
        assert raised.value.reason == Reason.PAYMENT_NOT_FOUND
        assert raised.value.message == "no such payment"


async def test_currency_window_and_total_are_checked(fakes: RefundFakes) -> None:
    await captured(fakes, 10_000)
    with pytest.raises(InvalidArgument) as mismatch:
        await request(fakes, 100, currency="USD")
    assert mismatch.value.reason == Reason.CURRENCY_MISMATCH
    await request(fakes, 4_000)
    with pytest.raises(FailedPrecondition) as over:
        await request(fakes, 6_001)
    assert over.value.reason == Reason.REFUND_EXCEEDS_CAPTURED
    fakes.clock.advance(timedelta(days=365))
    with pytest.raises(FailedPrecondition) as old:
        await request(fakes, 100)
    assert old.value.reason == Reason.PAYMENT_TOO_OLD
    assert fakes.store.payments["pay-1"].reserved_minor == 4_000


async def test_above_the_threshold_a_grant_for_the_payment_is_needed_once(
    fakes: RefundFakes,
) -> None:
    await captured(fakes)
    with pytest.raises(FailedPrecondition) as missing:
        await request(fakes, 20_001)
    assert missing.value.reason == Reason.STEP_UP_REQUIRED
    assert missing.value.metadata == {"purpose": GRANT_PURPOSE}
    other_payment = grant(fakes, "pay-2")
    with pytest.raises(PermissionDenied) as wrong:
        await request(fakes, 20_001, grant=other_payment)
    assert wrong.value.reason == "GRANT_INVALID"
    token = grant(fakes)
    refund = await request(fakes, 20_001, grant=token)
    assert refund.state is RefundState.REQUESTED
    with pytest.raises(PermissionDenied) as reused:
        await request(fakes, 20_001, grant=token)
    assert reused.value.reason == "GRANT_ALREADY_USED"


async def test_a_grant_is_not_spent_by_a_refused_or_small_request(fakes: RefundFakes) -> None:
    await captured(fakes, 30_000)
    token = grant(fakes)
    await request(fakes, 100, grant=token)  # below the threshold: ignored
    with pytest.raises(FailedPrecondition):
        await request(fakes, 40_000, grant=token)  # over the payment: refused first
    assert fakes.store.used_grants == {}
    await request(fakes, 29_900, grant=token)
    assert len(fakes.store.used_grants) == 1


async def test_users_read_only_their_own_refunds(fakes: RefundFakes) -> None:
    await captured(fakes)
    refund = await request(fakes, 100)
    with pytest.raises(NotFound) as raised:
        await fakes.tx.run(
            lambda uow: get_own_refund(uow, account_id="acct-2", refund_id=refund.refund_id)
        )
    assert raised.value.reason == Reason.REFUND_NOT_FOUND


# operators ------------------------------------------------------------------------------


async def test_operators_approve_and_reject_with_audit_entries(fakes: RefundFakes) -> None:
    await captured(fakes)
    first = await request(fakes, 10_000)
    second = await request(fakes, 10_000)
    queue = await fakes.tx.run(lambda uow: ops.list_queue(uow, states=(), page=Page(50)))
    assert [r.refund_id for r in queue] == [first.refund_id, second.refund_id]
    approved = await fakes.tx.run(
        lambda uow: ops.approve_refund(
            uow, fakes.ctx, operator_id="op-1", refund_id=first.refund_id, note="ok"
        )
    )
    rejected = await fakes.tx.run(
        lambda uow: ops.reject_refund(
            uow,
            fakes.ctx,
            operator_id="op-1",
            refund_id=second.refund_id,
            reason=RejectReason.NOT_ELIGIBLE,
            note="terms",
        )
    )
    assert approved.state is RefundState.APPROVED
    assert approved.operator_actions[0].note == "ok"
    assert rejected.state is RefundState.REJECTED
    assert fakes.store.payments["pay-1"].reserved_minor == 10_000
    assert [(r.action, r.target) for r, _ in fakes.store.audit_records] == [
        ("refund.approve", first.refund_id),
        ("refund.reject", second.refund_id),
    ]
    with pytest.raises(FailedPrecondition) as again:
        await fakes.tx.run(
            lambda uow: ops.approve_refund(
                uow, fakes.ctx, operator_id="op-1", refund_id=second.refund_id, note=""
            )
        )
    assert again.value.reason == Reason.REFUND_STATE_INVALID
    assert len(fakes.store.audit_records) == 2


async def test_a_request_past_the_service_level_is_overdue(fakes: RefundFakes) -> None:
    await captured(fakes)
    refund = await request(fakes, 10_000)  # FAKE_START is a Saturday: due Tuesday 00:00
    stored = fakes.store.refunds[refund.refund_id]
    assert stored.review_deadline is not None
    fakes.clock.now = stored.review_deadline
    assert not stored.overdue(fakes.clock())
    fakes.clock.advance(timedelta(seconds=1))
    assert stored.overdue(fakes.clock())
    assert await fakes.tx.run(lambda uow: uow.refunds.count_overdue(fakes.clock())) == 1


# payouts --------------------------------------------------------------------------------


async def test_an_approved_refund_is_held_paid_once_and_released(fakes: RefundFakes) -> None:
    await captured(fakes)
    refund = await request(fakes, 1_000)
    report_ = await worker(fakes).run_once()
    stored = fakes.store.refunds[refund.refund_id]
    assert stored.state is RefundState.SUCCEEDED
    assert fakes.holds.calls == [f"place:{refund.refund_id}:card-1", f"release:{refund.refund_id}"]
    assert list(fakes.gateway.paid.values()) == [("card-1", Money(1_000, "CNY"))]
    assert report_.started == 1
    assert report_.released == 1
    await worker(fakes).run_once()
    assert fakes.gateway.pay_calls == 1


async def test_binding_unreachable_leaves_the_refund_approved_for_the_next_pass(
    fakes: RefundFakes,
) -> None:
    await captured(fakes)
    refund = await request(fakes, 1_000)
    fakes.holds.available = False
    await worker(fakes).run_once()
    assert fakes.store.refunds[refund.refund_id].state is RefundState.APPROVED
    assert fakes.gateway.pay_calls == 0
    fakes.holds.available = True
    await worker(fakes).run_once()
    assert fakes.store.refunds[refund.refund_id].state is RefundState.SUCCEEDED


async def test_a_gone_instrument_fails_the_refund_and_a_reroute_pays_the_other_card(
    fakes: RefundFakes,
) -> None:
    await captured(fakes)
    refund = await request(fakes, 1_000)
    fakes.holds.instruments["card-1"] = (ACCOUNT, False)
    fakes.holds.instruments["card-2"] = (ACCOUNT, True)
    fakes.holds.instruments["card-x"] = ("acct-2", True)
    await worker(fakes).run_once()
    stored = fakes.store.refunds[refund.refund_id]
    assert stored.state is RefundState.FAILED
    assert stored.failure_reason is FailureReason.SOURCE_INSTRUMENT_UNAVAILABLE
    assert fakes.store.payments["pay-1"].reserved_minor == 0
    assert fakes.gateway.pay_calls == 0

    def reroute(instrument: str):  # type: ignore[no-untyped-def]
        return fakes.tx.run(
            lambda uow: ops.reroute_refund(
                uow,
                fakes.ctx,
                operator_id="op-1",
                refund_id=refund.refund_id,
                instrument_id=instrument,
                note="user agreed",
            )
        )

    with pytest.raises(FailedPrecondition) as retry:
        await fakes.tx.run(
            lambda uow: ops.retry_payout(
                uow, fakes.ctx, operator_id="op-1", refund_id=refund.refund_id, note=""
            )
        )
    assert retry.value.reason == Reason.INSTRUMENT_UNAVAILABLE
    with pytest.raises(NotFound) as other_account:
        await reroute("card-x")
    assert other_account.value.reason == Reason.INSTRUMENT_NOT_FOUND
    with pytest.raises(FailedPrecondition) as unusable:
        await reroute("card-1")
    assert unusable.value.reason == Reason.INSTRUMENT_UNAVAILABLE
    await reroute("card-2")
    await worker(fakes).run_once()
    stored = fakes.store.refunds[refund.refund_id]
    assert stored.state is RefundState.SUCCEEDED
    assert list(fakes.gateway.paid.values()) == [("card-2", Money(1_000, "CNY"))]
    assert fakes.holds.holds == {}


async def test_a_timeout_after_paying_is_resolved_by_the_sweep_without_paying_twice(
    fakes: RefundFakes,
) -> None:
    await captured(fakes)
    refund = await request(fakes, 1_000)
    fakes.gateway.behaviours = [GatewayBehaviour.PAY_THEN_TIME_OUT]
    await worker(fakes).run_once()
    stored = fakes.store.refunds[refund.refund_id]
    assert stored.state is RefundState.PROCESSING
    assert stored.attempts[0].state is AttemptState.PENDING
    await worker(fakes).run_once()  # within the grace period: not asked yet
    assert fakes.store.refunds[refund.refund_id].state is RefundState.PROCESSING
    fakes.clock.advance(timedelta(seconds=31))
    await worker(fakes).run_once()
    assert fakes.store.refunds[refund.refund_id].state is RefundState.SUCCEEDED
    assert len(fakes.gateway.paid) == 1
    assert fakes.gateway.pay_calls == 1


async def test_a_request_the_gateway_never_received_is_sent_again_under_its_key(
    fakes: RefundFakes,
) -> None:
    await captured(fakes)
    refund = await request(fakes, 1_000)
    fakes.gateway.behaviours = [GatewayBehaviour.LOSE_REQUEST]
    await worker(fakes).run_once()
    fakes.clock.advance(timedelta(seconds=31))
    await worker(fakes).run_once()
    stored = fakes.store.refunds[refund.refund_id]
    assert stored.state is RefundState.SUCCEEDED
    assert [a.attempt_id for a in stored.attempts] == [f"{refund.refund_id}-1"]
    assert list(fakes.gateway.paid) == [f"{refund.refund_id}-1"]


async def test_gateway_errors_retry_then_an_operator_retry_succeeds(fakes: RefundFakes) -> None:
    await captured(fakes)
    refund = await request(fakes, 1_000)
    fakes.gateway.behaviours = [GatewayBehaviour.ERROR] * 3
    await worker(fakes).run_once()
    stored = fakes.store.refunds[refund.refund_id]
    assert stored.state is RefundState.FAILED
    assert stored.failure_reason is FailureReason.GATEWAY_ERROR
    assert len(stored.attempts) == 3
    await fakes.tx.run(
        lambda uow: ops.retry_payout(
            uow, fakes.ctx, operator_id="op-1", refund_id=refund.refund_id, note="issuer back"
        )
    )
    await worker(fakes).run_once()
    assert fakes.store.refunds[refund.refund_id].state is RefundState.SUCCEEDED
    assert len(fakes.gateway.paid) == 1


async def test_a_late_reversal_fails_the_refund_and_frees_the_amount(fakes: RefundFakes) -> None:
    await captured(fakes, 1_000)
    refund = await request(fakes, 1_000)
    await worker(fakes).run_once()
    fakes.gateway.reverse(f"{refund.refund_id}-1", "CHARGEBACK")
    report_ = await worker(fakes).run_once()
    assert report_.reversed == 1
    stored = fakes.store.refunds[refund.refund_id]
    assert stored.state is RefundState.FAILED
    assert stored.failure_reason is FailureReason.PAYOUT_DECLINED
    assert fakes.store.payments["pay-1"].reserved_minor == 0
    assert (await worker(fakes).run_once()).reversed == 0
    again = await request(fakes, 1_000)
    assert again.state is RefundState.APPROVED


async def test_a_decline_retried_after_the_payment_was_used_up_is_refused(
    fakes: RefundFakes,
) -> None:
    await captured(fakes, 1_000)
    refund = await request(fakes, 1_000)
    fakes.gateway.behaviours = [GatewayBehaviour.DECLINE]
    await worker(fakes).run_once()
    await request(fakes, 500)
    with pytest.raises(DomainError) as raised:
        await fakes.tx.run(
            lambda uow: ops.retry_payout(
                uow, fakes.ctx, operator_id="op-1", refund_id=refund.refund_id, note=""
            )
        )
    assert raised.value.reason == Reason.REFUND_EXCEEDS_CAPTURED
    assert fakes.store.audit_records == []
