"""Refund through real gRPC, next to a real auth, on SQLite and on PostgreSQL: the ledger,
refund requests and their refusals, step-up grants from auth, the operators' desk, and the
payout worker against binding's holds and a gateway that times out, declines and reverses."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc
import pytest

from services.refund.service.fakes import GatewayBehaviour
from tests.api.auth.harness import operator_metadata, request_id, service_metadata
from tests.api.auth.recovery_helpers import refused
from tests.api.refund.conftest import (
    CARD,
    OFFICER,
    OPERATOR,
    OTHER_CARD,
    PAYMENTS,
    RefundTestApp,
    request_body,
)
from wallet.auth.v1 import account_admin_service_pb2 as auth_admin_pb
from wallet.refund.v1 import payment_ledger_service_pb2 as ledger_pb
from wallet.refund.v1 import refund_ops_service_pb2 as ops_pb
from wallet.refund.v1 import refund_service_pb2 as refund_pb
from wallet.refund.v1 import types_pb2
from walletcore.identity import OperatorRole

pytestmark = pytest.mark.api

APPROVED = types_pb2.REFUND_STATE_APPROVED
REQUESTED = types_pb2.REFUND_STATE_REQUESTED
SUCCEEDED = types_pb2.REFUND_STATE_SUCCEEDED
FAILED = types_pb2.REFUND_STATE_FAILED


async def test_the_ledger_takes_a_repeat_and_refuses_other_data(refund_app: RefundTestApp) -> None:
    holder = await refund_app.new_holder()
    at = refund_app.now() - timedelta(hours=2)
    payment = await refund_app.capture(holder, 10_000, payment_id="pay_ledger_1", captured_at=at)
    assert payment.refundable_amount.amount_minor == 10_000
    again = await refund_app.capture(holder, 10_000, payment_id="pay_ledger_1", captured_at=at)
    assert again == payment
    conflict = await refused(
        refund_app.capture(holder, 9_999, payment_id="pay_ledger_1", captured_at=at)
    )
    assert conflict.code is grpc.StatusCode.ALREADY_EXISTS
    assert conflict.reason == "PAYMENT_CONFLICT"


async def test_only_the_payment_system_may_report_payments(refund_app: RefundTestApp) -> None:
    holder = await refund_app.new_holder()
    call = refund_app.ledger.GetPayment(
        ledger_pb.GetPaymentRequest(payment_id="pay_x"),
        metadata=service_metadata("binding", audience="refund"),
    )
    denied = await refused(call)
    assert denied.code is grpc.StatusCode.PERMISSION_DENIED
    as_user = await refused(
        refund_app.ledger.GetPayment(
            ledger_pb.GetPaymentRequest(payment_id="pay_x"), metadata=holder.metadata
        )
    )
    assert as_user.code is grpc.StatusCode.UNAUTHENTICATED
    missing = await refused(
        refund_app.ledger.GetPayment(
            ledger_pb.GetPaymentRequest(payment_id="pay_x"), metadata=PAYMENTS
        )
    )
    assert missing.reason == "PAYMENT_NOT_FOUND"


async def test_a_replay_returns_the_first_refund_and_another_body_is_refused(
    refund_app: RefundTestApp,
) -> None:
    holder = await refund_app.new_holder()
    payment = await refund_app.capture(holder)
    rid = request_id()
    first = await refund_app.request(holder, payment.payment_id, 1_000, rid=rid)
    again = await refund_app.request(holder, payment.payment_id, 1_000, rid=rid)
    assert again == first
    other = await refused(refund_app.request(holder, payment.payment_id, 1_001, rid=rid))
    assert other.code is grpc.StatusCode.INVALID_ARGUMENT
    assert other.reason == "IDEMPOTENCY_KEY_REUSED"
    listed = await refund_app.public.ListPayments(
        refund_pb.ListPaymentsRequest(), metadata=holder.metadata
    )
    assert [p.refundable_amount.amount_minor for p in listed.payments] == [99_000]


async def test_refunds_never_exceed_the_capture(refund_app: RefundTestApp) -> None:
    holder = await refund_app.new_holder()
    payment = await refund_app.capture(holder, 8_000)
    await refund_app.request(holder, payment.payment_id, 5_000)
    over = await refused(refund_app.request(holder, payment.payment_id, 3_001))
    assert over.code is grpc.StatusCode.FAILED_PRECONDITION
    assert over.reason == "REFUND_EXCEEDS_CAPTURED"
    last = await refund_app.request(holder, payment.payment_id, 3_000)
    assert last.state == APPROVED


async def test_another_accounts_payment_is_not_found_like_an_unknown_one(
    refund_app: RefundTestApp,
) -> None:
    owner, stranger = await refund_app.new_holder(), await refund_app.new_holder()
    payment = await refund_app.capture(owner)
    theirs = await refused(refund_app.request(stranger, payment.payment_id, 100))
    unknown = await refused(refund_app.request(stranger, "pay_unknown", 100))
    assert theirs.code is unknown.code is grpc.StatusCode.NOT_FOUND
    assert theirs.reason == unknown.reason == "PAYMENT_NOT_FOUND"
    assert theirs.message == unknown.message


async def test_old_payments_other_currencies_and_non_positive_amounts_are_refused(
    refund_app: RefundTestApp,
) -> None:
    holder = await refund_app.new_holder()
    old = await refund_app.capture(holder, age=timedelta(days=366))
    assert old.refundable_amount.amount_minor == 0
    too_old = await refused(refund_app.request(holder, old.payment_id, 100))
    assert (too_old.code, too_old.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "PAYMENT_TOO_OLD",
    )
    payment = await refund_app.capture(holder)
    mismatch = await refused(refund_app.request(holder, payment.payment_id, 100, currency="USD"))
    assert (mismatch.code, mismatch.reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "CURRENCY_MISMATCH",
    )
    for minor in (0, -5):
        bad = await refused(refund_app.request(holder, payment.payment_id, minor))
        assert (bad.code, bad.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "AMOUNT_INVALID")
        assert [v.field for v in bad.field_violations] == ["amount.amount_minor"]


async def test_above_the_threshold_a_grant_for_that_payment_is_spent_once(
    refund_app: RefundTestApp,
) -> None:
    holder = await refund_app.new_holder()
    payment = await refund_app.capture(holder)
    other = await refund_app.capture(holder)
    missing = await refused(refund_app.request(holder, payment.payment_id, 20_001))
    assert (missing.code, missing.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "STEP_UP_REQUIRED",
    )
    grant = await refund_app.grant(holder, payment.payment_id)
    wrong = await refused(refund_app.request(holder, other.payment_id, 20_001, grant=grant))
    assert (wrong.code, wrong.reason) == (grpc.StatusCode.PERMISSION_DENIED, "GRANT_INVALID")
    refund = await refund_app.request(holder, payment.payment_id, 20_001, grant=grant)
    assert refund.state == REQUESTED
    assert refund.HasField("review_deadline")
    assert not refund.overdue
    reused = await refused(refund_app.request(holder, payment.payment_id, 20_001, grant=grant))
    assert (reused.code, reused.reason) == (grpc.StatusCode.PERMISSION_DENIED, "GRANT_ALREADY_USED")


async def test_operators_approve_and_reject_and_others_are_refused(
    refund_app: RefundTestApp,
) -> None:
    holder = await refund_app.new_holder()
    payment = await refund_app.capture(holder)
    first = await refund_app.request(holder, payment.payment_id, 10_000)
    second = await refund_app.request(holder, payment.payment_id, 10_000)
    queue = await refund_app.ops.ListRefundQueue(ops_pb.ListRefundQueueRequest(), metadata=OPERATOR)
    assert [i.refund.refund_id for i in queue.items][-2:] == [first.refund_id, second.refund_id]
    assert all(i.HasField("sla_deadline") and not i.overdue for i in queue.items)
    for metadata in (holder.metadata, operator_metadata(OperatorRole.KYC_REVIEWER, "rev-1")):
        denied = await refused(
            refund_app.ops.ApproveRefund(
                ops_pb.ApproveRefundRequest(request_id=request_id(), refund_id=first.refund_id),
                metadata=metadata,
            )
        )
        assert denied.code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
    approved = await refund_app.ops.ApproveRefund(
        ops_pb.ApproveRefundRequest(request_id=request_id(), refund_id=first.refund_id, note="ok"),
        metadata=OPERATOR,
    )
    assert approved.refund.state == APPROVED
    no_reason = await refused(
        refund_app.ops.RejectRefund(
            ops_pb.RejectRefundRequest(request_id=request_id(), refund_id=second.refund_id),
            metadata=OPERATOR,
        )
    )
    assert no_reason.reason == "REASON_REQUIRED"
    rejected = await refund_app.ops.RejectRefund(
        ops_pb.RejectRefundRequest(
            request_id=request_id(),
            refund_id=second.refund_id,
            reason_code=types_pb2.REFUND_REJECT_REASON_INSUFFICIENT_EVIDENCE,
            note="internal only",
        ),
        metadata=OPERATOR,
    )
    assert rejected.refund.state == types_pb2.REFUND_STATE_REJECTED
    seen = await refund_app.public.GetRefund(
        refund_pb.GetRefundRequest(refund_id=second.refund_id), metadata=holder.metadata
    )
    assert seen.refund.reject_reason == types_pb2.REFUND_REJECT_REASON_INSUFFICIENT_EVIDENCE
    again = await refused(
        refund_app.ops.ApproveRefund(
            ops_pb.ApproveRefundRequest(request_id=request_id(), refund_id=second.refund_id),
            metadata=OPERATOR,
        )
    )
    assert again.reason == "REFUND_STATE_INVALID"
    detail = await refund_app.ops.GetRefund(
        ops_pb.RefundOpsServiceGetRefundRequest(refund_id=first.refund_id), metadata=OPERATOR
    )
    assert [a.action for a in detail.operator_actions] == ["approve"]
    assert [t.to_state for t in detail.transitions] == [REQUESTED, APPROVED]
    audit = await refund_app.ops.VerifyAuditLog(ops_pb.VerifyAuditLogRequest(), metadata=OFFICER)
    assert audit.verification.intact
    exported = await refund_app.ops.ExportAuditLog(ops_pb.ExportAuditLogRequest(), metadata=OFFICER)
    assert [e.action for e in exported.entries] == ["refund.approve", "refund.reject"]


async def test_an_approved_refund_is_held_paid_and_released(refund_app: RefundTestApp) -> None:
    holder = await refund_app.new_holder()
    payment = await refund_app.capture(holder)
    refund = await refund_app.request(holder, payment.payment_id, 1_000)
    await refund_app.pay_out()
    done = await refund_app.public.GetRefund(
        refund_pb.GetRefundRequest(refund_id=refund.refund_id), metadata=holder.metadata
    )
    assert done.refund.state == SUCCEEDED
    assert not done.refund.HasField("expected_completion")
    assert refund_app.holds.calls == [
        f"place:{refund.refund_id}:{CARD}{holder.account_id}",
        f"release:{refund.refund_id}",
    ]
    assert list(refund_app.gateway.paid) == [f"{refund.refund_id}-1"]


async def test_an_unavailable_instrument_fails_and_a_reroute_pays_another_card(
    refund_app: RefundTestApp,
) -> None:
    holder = await refund_app.new_holder()
    payment = await refund_app.capture(holder)
    refund = await refund_app.request(holder, payment.payment_id, 1_000)
    refund_app.holds.instruments[f"{CARD}{holder.account_id}"] = (holder.account_id, False)
    await refund_app.pay_out()
    failed = await refund_app.public.GetRefund(
        refund_pb.GetRefundRequest(refund_id=refund.refund_id), metadata=holder.metadata
    )
    assert failed.refund.state == FAILED
    assert (
        failed.refund.failure_reason
        == types_pb2.REFUND_FAILURE_REASON_SOURCE_INSTRUMENT_UNAVAILABLE
    )
    retry = await refused(
        refund_app.ops.RetryPayout(
            ops_pb.RetryPayoutRequest(request_id=request_id(), refund_id=refund.refund_id),
            metadata=OPERATOR,
        )
    )
    assert retry.reason == "INSTRUMENT_UNAVAILABLE"
    rerouted = await refund_app.ops.RerouteRefund(
        ops_pb.RerouteRefundRequest(
            request_id=request_id(),
            refund_id=refund.refund_id,
            instrument_id=f"{OTHER_CARD}{holder.account_id}",
            note="user agreed by phone",
        ),
        metadata=OPERATOR,
    )
    assert rerouted.refund.state == types_pb2.REFUND_STATE_PROCESSING
    await refund_app.pay_out()
    done = await refund_app.public.GetRefund(
        refund_pb.GetRefundRequest(refund_id=refund.refund_id), metadata=holder.metadata
    )
    assert done.refund.state == SUCCEEDED
    assert done.refund.instrument_id == f"{OTHER_CARD}{holder.account_id}"
    assert next(iter(refund_app.gateway.paid.values()))[0] == f"{OTHER_CARD}{holder.account_id}"


async def test_a_gateway_timeout_is_resolved_by_the_sweep_with_one_payout(
    refund_app: RefundTestApp,
) -> None:
    holder = await refund_app.new_holder()
    payment = await refund_app.capture(holder)
    refund = await refund_app.request(holder, payment.payment_id, 1_000)
    refund_app.gateway.behaviours = [GatewayBehaviour.PAY_THEN_TIME_OUT]
    await refund_app.app.worker.start_ready()
    pending = await refund_app.ops.GetRefund(
        ops_pb.RefundOpsServiceGetRefundRequest(refund_id=refund.refund_id), metadata=OPERATOR
    )
    assert pending.refund.state == types_pb2.REFUND_STATE_PROCESSING
    assert [a.state for a in pending.payout_attempts] == [types_pb2.PAYOUT_ATTEMPT_STATE_PENDING]
    await refund_app.pay_out()
    done = await refund_app.ops.GetRefund(
        ops_pb.RefundOpsServiceGetRefundRequest(refund_id=refund.refund_id), metadata=OPERATOR
    )
    assert done.refund.state == SUCCEEDED
    assert len(done.payout_attempts) == 1
    assert refund_app.gateway.pay_calls == 1
    assert len(refund_app.gateway.paid) == 1


async def test_a_late_reversal_fails_the_refund_and_frees_the_amount(
    refund_app: RefundTestApp,
) -> None:
    holder = await refund_app.new_holder()
    payment = await refund_app.capture(holder, 1_000)
    refund = await refund_app.request(holder, payment.payment_id, 1_000)
    await refund_app.pay_out()
    refund_app.gateway.reverse(f"{refund.refund_id}-1", "CHARGEBACK")
    await refund_app.pay_out()
    seen = await refund_app.public.GetRefund(
        refund_pb.GetRefundRequest(refund_id=refund.refund_id), metadata=holder.metadata
    )
    assert seen.refund.state == FAILED
    assert seen.refund.failure_reason == types_pb2.REFUND_FAILURE_REASON_PAYOUT_DECLINED
    listed = await refund_app.public.ListPayments(
        refund_pb.ListPaymentsRequest(), metadata=holder.metadata
    )
    assert listed.payments[0].refundable_amount.amount_minor == 1_000


async def test_a_frozen_account_cannot_request_but_its_approved_refund_completes(
    refund_app: RefundTestApp,
) -> None:
    holder = await refund_app.new_holder()
    payment = await refund_app.capture(holder)
    refund = await refund_app.request(holder, payment.payment_id, 1_000)
    assert refund.state == APPROVED
    await refund_app.auth.admin.FreezeAccount(
        auth_admin_pb.FreezeAccountRequest(
            request_id=request_id(),
            account_id=holder.account_id,
            reason="stolen phone",
            ticket_ref="INC-1",
        ),
        metadata=operator_metadata(),
    )
    frozen = await refused(refund_app.request(holder, payment.payment_id, 1_000))
    assert (frozen.code, frozen.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ACCOUNT_FROZEN")
    await refund_app.pay_out()
    done = await refund_app.ops.GetRefund(
        ops_pb.RefundOpsServiceGetRefundRequest(refund_id=refund.refund_id), metadata=OPERATOR
    )
    assert done.refund.state == SUCCEEDED


@pytest.mark.parametrize(
    ("field", "value"),
    [("payment_id", "pay\x00x"), ("payment_id", "p" * 129), ("reason_detail", "a\x00b")],
)
async def test_bad_request_strings_are_invalid_argument_naming_the_field(
    refund_app: RefundTestApp, field: str, value: str
) -> None:
    holder = await refund_app.new_holder()
    body = request_body("pay_1", 100)
    setattr(body, field, value)
    bad = await refused(refund_app.public.RequestRefund(body, metadata=holder.metadata))
    assert bad.code is grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in bad.field_violations] == [field]


async def test_a_user_token_is_no_credential_on_the_admin_port(refund_app: RefundTestApp) -> None:
    holder = await refund_app.new_holder()
    denied = await refused(
        refund_app.ops.ListRefundQueue(ops_pb.ListRefundQueueRequest(), metadata=holder.metadata)
    )
    assert denied.code is grpc.StatusCode.UNAUTHENTICATED


async def test_request_refund_is_limited_to_100_an_hour_per_account(
    refund_app: RefundTestApp,
) -> None:
    holder, other = await refund_app.new_holder(), await refund_app.new_holder()
    payment = await refund_app.capture(holder)
    refused_ones = await asyncio.gather(
        *(refused(refund_app.request(holder, payment.payment_id, 200_000)) for _ in range(40))
    )
    assert {r.reason for r in refused_ones} == {"REFUND_EXCEEDS_CAPTURED"}
    accepted = await asyncio.gather(
        *(refund_app.request(holder, payment.payment_id, 1) for _ in range(60))
    )
    assert len(accepted) == 60
    limited = await refused(refund_app.request(holder, payment.payment_id, 1))
    assert (limited.code, limited.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
    theirs = await refund_app.capture(other)
    assert (await refund_app.request(other, theirs.payment_id, 1)).state == APPROVED
