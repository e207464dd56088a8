"""The refund state machine: allowed transitions with time and actor, the payout attempts
and their retry rules, and the invariant that what counts against a payment never exceeds it."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.refund.domain.money import Money
from services.refund.domain.payments import CapturedPayment
from services.refund.domain.policy import RefundPolicy
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
from tests.support.profiles import examples
from walletcore.errors import DomainError, FailedPrecondition

NOW = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)


def new_payment(minor: int = 10_000) -> CapturedPayment:
    return CapturedPayment("pay-1", "acct-1", Money(minor, "CNY"), "card-1", NOW)


def new_refund(payment: CapturedPayment, minor: int = 1_000, n: int = 1) -> Refund:
    return Refund.request(
        refund_id=f"r{n}",
        payment=payment,
        amount=Money(minor, "CNY"),
        reason=RefundReason.DEFECTIVE,
        reason_detail="",
        evidence=Evidence(order_id="o-1"),
        now=NOW,
        actor="account:acct-1",
        review_working_days=1,
    )


def processing(payment: CapturedPayment) -> tuple[Refund, str]:
    refund = new_refund(payment)
    refund.approve(NOW, "operator:op-1")
    refund.hold_placed = True
    attempt = refund.start_payout(NOW)
    return refund, attempt.attempt_id


def test_the_happy_path_records_every_transition_with_time_and_actor() -> None:
    payment = new_payment()
    refund, attempt_id = processing(payment)
    later = NOW + timedelta(minutes=1)
    assert refund.payout_succeeded(attempt_id, "gw-ref", later)
    assert refund.state is RefundState.SUCCEEDED
    assert [(t.from_state, t.to_state, t.actor) for t in refund.history] == [
        (None, RefundState.REQUESTED, "account:acct-1"),
        (RefundState.REQUESTED, RefundState.APPROVED, "operator:op-1"),
        (RefundState.APPROVED, RefundState.PROCESSING, "system"),
        (RefundState.PROCESSING, RefundState.SUCCEEDED, "system"),
    ]
    assert refund.history[-1].at == later
    assert payment.reserved_minor == 1_000
    assert refund.hold_to_release


def test_a_repeated_gateway_report_changes_nothing() -> None:
    payment = new_payment()
    refund, attempt_id = processing(payment)
    assert refund.payout_succeeded(attempt_id, "gw-ref", NOW)
    assert not refund.payout_succeeded(attempt_id, "gw-ref", NOW)
    assert len(refund.history) == 4


@pytest.mark.parametrize(
    "action",
    [
        lambda r, p: r.reject(p, RejectReason.NOT_ELIGIBLE, NOW, "operator:op-1"),
        lambda r, p: r.approve(NOW, "operator:op-1"),
        lambda r, p: r.resume(p, NOW, "operator:op-1"),
    ],
)
def test_a_decided_refund_refuses_a_second_decision(action) -> None:  # type: ignore[no-untyped-def]
    payment = new_payment()
    refund = new_refund(payment)
    refund.approve(NOW, "operator:op-1")
    with pytest.raises(FailedPrecondition) as raised:
        action(refund, payment)
    assert raised.value.reason == Reason.REFUND_STATE_INVALID


def test_rejection_releases_the_amount() -> None:
    payment = new_payment()
    refund = new_refund(payment, 4_000)
    refund.reject(payment, RejectReason.INSUFFICIENT_EVIDENCE, NOW, "operator:op-1")
    assert refund.reject_reason is RejectReason.INSUFFICIENT_EVIDENCE
    assert payment.reserved_minor == 0


def test_gateway_errors_are_retried_up_to_the_limit_then_fail_for_an_operator() -> None:
    payment = new_payment()
    refund, attempt_id = processing(payment)
    for _ in range(2):
        nxt = refund.payout_failed(
            payment,
            attempt_id,
            reason=FailureReason.GATEWAY_ERROR,
            gateway_code="E500",
            reference="",
            now=NOW,
            max_attempts=3,
        )
        assert nxt is not None
        attempt_id = nxt.attempt_id
    assert (
        refund.payout_failed(
            payment,
            attempt_id,
            reason=FailureReason.GATEWAY_ERROR,
            gateway_code="E500",
            reference="",
            now=NOW,
            max_attempts=3,
        )
        is None
    )
    assert refund.state is RefundState.FAILED
    assert refund.failure_reason is FailureReason.GATEWAY_ERROR
    assert [a.attempt_id for a in refund.attempts] == ["r1-1", "r1-2", "r1-3"]
    assert payment.reserved_minor == 0


def test_a_decline_fails_at_once_and_an_operator_retry_reserves_again() -> None:
    payment = new_payment()
    refund, attempt_id = processing(payment)
    refund.payout_failed(
        payment,
        attempt_id,
        reason=FailureReason.PAYOUT_DECLINED,
        gateway_code="DECLINED",
        reference="gw-1",
        now=NOW,
        max_attempts=3,
    )
    assert refund.state is RefundState.FAILED
    refund.resume(payment, NOW, "operator:op-1")
    assert refund.history[-1].to_state is RefundState.PROCESSING
    assert refund.ready_for_payout
    assert payment.reserved_minor == 1_000
    assert refund.start_payout(NOW).attempt_id == "r1-2"


def test_a_retry_is_refused_when_newer_refunds_used_up_the_payment() -> None:
    payment = new_payment(1_000)
    refund, attempt_id = processing(payment)
    refund.payout_failed(
        payment,
        attempt_id,
        reason=FailureReason.PAYOUT_DECLINED,
        gateway_code="D",
        reference="",
        now=NOW,
        max_attempts=1,
    )
    new_refund(payment, 600, n=2)
    with pytest.raises(FailedPrecondition) as raised:
        refund.resume(payment, NOW, "operator:op-1")
    assert raised.value.reason == Reason.REFUND_EXCEEDS_CAPTURED
    assert refund.state is RefundState.FAILED


def test_an_unavailable_instrument_is_rerouted_not_retried() -> None:
    payment = new_payment()
    refund = new_refund(payment)
    refund.approve(NOW, "system")
    refund.fail(payment, FailureReason.SOURCE_INSTRUMENT_UNAVAILABLE, NOW)
    assert [t.to_state for t in refund.history][-2:] == [
        RefundState.PROCESSING,
        RefundState.FAILED,
    ]
    with pytest.raises(FailedPrecondition) as raised:
        refund.resume(payment, NOW, "operator:op-1")
    assert raised.value.reason == Reason.INSTRUMENT_UNAVAILABLE
    refund.resume(payment, NOW, "operator:op-1", instrument_id="card-2")
    assert refund.instrument_id == "card-2"
    assert refund.state is RefundState.PROCESSING


def test_a_declined_refund_cannot_be_rerouted() -> None:
    payment = new_payment()
    refund, attempt_id = processing(payment)
    refund.payout_failed(
        payment,
        attempt_id,
        reason=FailureReason.PAYOUT_DECLINED,
        gateway_code="D",
        reference="",
        now=NOW,
        max_attempts=1,
    )
    with pytest.raises(FailedPrecondition) as raised:
        refund.resume(payment, NOW, "operator:op-1", instrument_id="card-2")
    assert raised.value.reason == Reason.REFUND_STATE_INVALID


def test_a_late_reversal_fails_a_succeeded_refund_and_frees_the_amount() -> None:
    payment = new_payment()
    refund, attempt_id = processing(payment)
    refund.payout_succeeded(attempt_id, "gw-ref", NOW)
    assert refund.reversed(payment, FailureReason.PAYOUT_DECLINED, "REVERSED", NOW)
    assert not refund.reversed(payment, FailureReason.PAYOUT_DECLINED, "REVERSED", NOW)
    assert refund.state is RefundState.FAILED
    assert refund.attempts[0].state is AttemptState.SUCCEEDED
    assert refund.attempts[0].gateway_failure_code == "REVERSED"
    assert payment.reserved_minor == 0


def test_no_payout_starts_without_the_hold_or_beside_a_pending_attempt() -> None:
    payment = new_payment()
    refund = new_refund(payment)
    refund.approve(NOW, "system")
    with pytest.raises(ValueError, match="hold"):
        refund.start_payout(NOW)
    refund.hold_placed = True
    refund.start_payout(NOW)
    assert not refund.ready_for_payout
    with pytest.raises(FailedPrecondition):
        refund.new_attempt(NOW)


def test_policy_thresholds_are_per_currency_and_unlisted_ones_need_a_human() -> None:
    policy = RefundPolicy(auto_approve_limits={"CNY": 5_000}, grant_thresholds={"CNY": 20_000})
    assert policy.approves_automatically(Money(5_000, "CNY"))
    assert not policy.approves_automatically(Money(5_001, "CNY"))
    assert not policy.needs_grant(Money(20_000, "CNY"))
    assert policy.needs_grant(Money(20_001, "CNY"))
    assert not policy.approves_automatically(Money(1, "USD"))
    assert policy.needs_grant(Money(1, "USD"))


def test_the_deadline_runs_from_the_request_and_again_from_a_failure() -> None:
    policy = RefundPolicy(review_working_days=1)
    payment = new_payment()
    refund = new_refund(payment)
    assert refund.review_deadline == NOW + timedelta(days=1)
    assert policy.expected_completion(refund) == NOW + timedelta(days=6)
    refund.approve(NOW, "system")
    assert refund.review_deadline is None
    failed_at = NOW + timedelta(days=4)  # a Friday
    refund.fail(payment, FailureReason.SOURCE_INSTRUMENT_UNAVAILABLE, failed_at)
    assert refund.review_deadline == failed_at + timedelta(days=3)
    assert policy.expected_completion(refund) is None


# The operations a sequence may apply to one refund of a payment; each may be refused.
OPERATIONS = st.sampled_from(
    [
        "approve",
        "reject",
        "hold_and_start",
        "succeed",
        "gateway_error",
        "decline",
        "unavailable",
        "reverse",
        "retry",
        "reroute",
        "new",
    ]
)


def apply(operation: str, refund: Refund, payment: CapturedPayment) -> None:
    pending = refund.pending_attempt
    match operation:
        case "approve":
            refund.approve(NOW, "operator:op")
        case "reject":
            refund.reject(payment, RejectReason.OTHER, NOW, "operator:op")
        case "hold_and_start":
            refund.hold_placed = True
            refund.start_payout(NOW)
        case "succeed" if pending is not None:
            refund.payout_succeeded(pending.attempt_id, "ref", NOW)
        case "gateway_error" | "decline" if pending is not None:
            reason = (
                FailureReason.GATEWAY_ERROR
                if operation == "gateway_error"
                else FailureReason.PAYOUT_DECLINED
            )
            refund.payout_failed(
                payment,
                pending.attempt_id,
                reason=reason,
                gateway_code="X",
                reference="",
                now=NOW,
                max_attempts=2,
            )
        case "unavailable" if refund.state in (RefundState.APPROVED, RefundState.PROCESSING):
            if pending is not None:
                return
            refund.fail(payment, FailureReason.SOURCE_INSTRUMENT_UNAVAILABLE, NOW)
        case "reverse":
            refund.reversed(payment, FailureReason.PAYOUT_DECLINED, "R", NOW)
        case "retry":
            refund.resume(payment, NOW, "operator:op")
        case "reroute":
            refund.resume(payment, NOW, "operator:op", instrument_id="card-9")
        case _:
            return


@pytest.mark.fuzz
@settings(max_examples=examples(300))
@given(
    captured=st.integers(min_value=1, max_value=10_000),
    amounts=st.lists(st.integers(min_value=1, max_value=6_000), min_size=1, max_size=6),
    steps=st.lists(st.tuples(st.integers(min_value=0, max_value=5), OPERATIONS), max_size=60),
)
def test_no_sequence_of_actions_lets_counting_refunds_exceed_the_payment(
    captured: int, amounts: list[int], steps: list[tuple[int, str]]
) -> None:
    payment = new_payment(captured)
    refunds: list[Refund] = []
    for n, amount in enumerate(amounts):
        with contextlib.suppress(FailedPrecondition):
            refunds.append(new_refund(payment, amount, n=n))
    for index, operation in steps:
        if not refunds:
            break
        refund = refunds[index % len(refunds)]
        before = (refund.state, len(refund.history))
        try:
            apply(operation, refund, payment)
        except DomainError:
            assert (refund.state, len(refund.history)) == before
        counting = sum(r.amount.minor for r in refunds if r.counts)
        assert payment.reserved_minor == counting <= captured
        assert len([a for a in refund.attempts if a.state is AttemptState.PENDING]) <= 1
        assert refund.state in {t.to_state for t in refund.history[-1:]}
        if refund.state is RefundState.REJECTED:
            assert refund.attempts == []
