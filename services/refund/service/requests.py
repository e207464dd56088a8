"""What account holders do: request refunds of their captured payments and follow them.

RequestRefund checks in this order, and the first rule broken is the answer: the payment is
the caller's (NOT_FOUND otherwise, the same answer as for an unknown id, so nobody learns
another account's payment exists), the amount is in its currency (CURRENCY_MISMATCH), the
payment is within 365 days (PAYMENT_TOO_OLD), the amount fits what is left
(REFUND_EXCEEDS_CAPTURED), and only then the step-up grant above the threshold
(STEP_UP_REQUIRED, or the grant's refusal). A grant is checked last so a user is never sent
through a step-up for a refund that cannot happen; it is spent in the refund's own
transaction, so a refused request leaves it usable, and below the threshold it is ignored
without being looked at (and not spent).

Every check and the reservation run after the payment's row is locked, so concurrent requests
against one payment are decided one after the other on the same total.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.refund.domain.money import Money
from services.refund.domain.payments import CapturedPayment
from services.refund.domain.policy import GRANT_PURPOSE
from services.refund.domain.reasons import Reason
from services.refund.domain.refunds import SYSTEM_ACTOR, Evidence, Refund, RefundReason
from services.refund.service.context import RefundContext
from services.refund.service.ledger import payment_not_found
from services.refund.service.ports import Page, Reads, RefundUnitOfWork
from walletcore.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound

AUTO_APPROVAL_ACTOR = f"{SYSTEM_ACTOR}:auto-approval"


def account_actor(account_id: str) -> str:
    return f"account:{account_id}"


def refund_not_found() -> NotFound:
    return NotFound("no such refund", reason=Reason.REFUND_NOT_FOUND)


@dataclass(frozen=True, slots=True)
class RefundRequest:
    payment_id: str
    amount: Money
    reason: RefundReason
    reason_detail: str
    evidence: Evidence
    grant: str


async def request_refund(
    uow: RefundUnitOfWork, ctx: RefundContext, *, account_id: str, request: RefundRequest
) -> Refund:
    now = ctx.clock()
    payment = await uow.payments.get(request.payment_id, for_update=True)
    if payment is None or payment.account_id != account_id:
        raise payment_not_found()
    if not request.amount.same_currency(payment.captured):
        raise InvalidArgument(
            [FieldViolation("amount.currency", "must be the payment's currency")],
            "the amount is not in the payment's currency",
            reason=Reason.CURRENCY_MISMATCH,
        )
    if not payment.within_window(now):
        raise FailedPrecondition(
            "refunds are possible for 365 days after capture", reason=Reason.PAYMENT_TOO_OLD
        )
    refund = Refund.request(
        refund_id=ctx.new_id(),
        payment=payment,
        amount=request.amount,
        reason=request.reason,
        reason_detail=request.reason_detail,
        evidence=request.evidence,
        now=now,
        actor=account_actor(account_id),
        review_working_days=ctx.policy.review_working_days,
    )
    if ctx.policy.needs_grant(request.amount):
        if not request.grant:
            raise FailedPrecondition(
                "refunds above the threshold need a step-up",
                reason=Reason.STEP_UP_REQUIRED,
                metadata={"purpose": GRANT_PURPOSE},
            )
        await uow.grants.accept(
            request.grant,
            account_id=account_id,
            purpose=GRANT_PURPOSE,
            object_id=payment.payment_id,
        )
    if ctx.policy.approves_automatically(request.amount):
        refund.approve(now, AUTO_APPROVAL_ACTOR)
    await uow.payments.save_reserved(payment)
    await uow.refunds.add(refund)
    return refund


async def get_own_refund(uow: RefundUnitOfWork, *, account_id: str, refund_id: str) -> Refund:
    refund = await uow.refunds.get(refund_id)
    if refund is None or refund.account_id != account_id:
        raise refund_not_found()
    return refund


async def list_own_refunds(
    reads: Reads, *, account_id: str, payment_id: str | None, page: Page
) -> list[Refund]:
    return await reads.refunds.list_for_account(account_id, payment_id, page)


async def list_own_payments(
    uow: RefundUnitOfWork, *, account_id: str, page: Page
) -> list[CapturedPayment]:
    return await uow.payments.list_for_account(account_id, page)
