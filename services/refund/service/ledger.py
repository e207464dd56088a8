"""The payment system's reports of captured payments."""

from __future__ import annotations

from services.refund.domain.payments import CapturedPayment, reconcile_report
from services.refund.domain.reasons import Reason
from services.refund.service.context import RefundContext
from services.refund.service.ports import RefundUnitOfWork
from walletcore.errors import FieldViolation, InvalidArgument, NotFound


def payment_not_found() -> NotFound:
    return NotFound("no such payment", reason=Reason.PAYMENT_NOT_FOUND)


async def record_captured_payment(
    uow: RefundUnitOfWork, ctx: RefundContext, report: CapturedPayment
) -> CapturedPayment:
    """The payment as recorded: `report` when new or a repeat of the same data, ALREADY_EXISTS
    / PAYMENT_CONFLICT when the id is recorded with other data. A capture time in the future
    is INVALID_ARGUMENT."""
    if report.captured_at > ctx.clock():
        raise InvalidArgument(
            [FieldViolation("captured_at", "must not be in the future")],
            "the capture time is in the future",
            reason=Reason.CAPTURE_TIME_INVALID,
        )
    stored = await uow.payments.add_if_absent(report)
    reconcile_report(stored, report)
    return stored


async def get_payment(uow: RefundUnitOfWork, payment_id: str) -> CapturedPayment:
    payment = await uow.payments.get(payment_id)
    if payment is None:
        raise payment_not_found()
    return payment
