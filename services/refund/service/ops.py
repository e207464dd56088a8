"""The refund desk: the queue, approval, rejection, retries and re-routing by operators.

Every mutating action is written to refund's audit chain (operator, action, refund, the state
it left the refund in; the note only in the refund's own history, which operators read) in
the action's transaction.
A change of what counts against a payment locks the payment first and the refund second, in
that order everywhere, so an operator's retry and a user's new request on the same payment
queue instead of deadlocking or over-refunding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from services.refund.domain.payments import CapturedPayment
from services.refund.domain.reasons import Reason
from services.refund.domain.refunds import (
    WAITING_FOR_OPERATOR,
    FailureReason,
    Refund,
    RefundState,
    RejectReason,
    state_invalid,
)
from services.refund.service.context import RefundContext
from services.refund.service.ports import Page, RefundUnitOfWork
from services.refund.service.requests import refund_not_found
from walletcore.audit import AuditRecord
from walletcore.errors import FailedPrecondition, NotFound

OPERATOR_ROLE: Final = "refund_operator"
DEFAULT_QUEUE_STATES: Final = tuple(sorted(WAITING_FOR_OPERATOR))


def operator_actor(operator_id: str) -> str:
    return f"operator:{operator_id}"


@dataclass(frozen=True, slots=True)
class RefundDetail:
    refund: Refund
    payment: CapturedPayment


async def list_queue(
    uow: RefundUnitOfWork, *, states: Sequence[RefundState], page: Page
) -> list[Refund]:
    return await uow.refunds.queue(states or DEFAULT_QUEUE_STATES, page)


async def get_refund_detail(uow: RefundUnitOfWork, refund_id: str) -> RefundDetail:
    refund = await uow.refunds.get(refund_id)
    if refund is None:
        raise refund_not_found()
    payment = await uow.payments.get(refund.payment_id)
    if payment is None:
        raise RuntimeError("a refund's payment is never deleted")
    return RefundDetail(refund, payment)


async def _locked(uow: RefundUnitOfWork, refund_id: str) -> RefundDetail:
    """The refund and its payment, the payment's row locked first."""
    found = await uow.refunds.get(refund_id)
    if found is None:
        raise refund_not_found()
    payment = await uow.payments.get(found.payment_id, for_update=True)
    refund = await uow.refunds.get(refund_id, for_update=True)
    if payment is None or refund is None:
        raise RuntimeError("a refund and its payment are never deleted")
    return RefundDetail(refund, payment)


async def _record(
    uow: RefundUnitOfWork,
    ctx: RefundContext,
    detail: RefundDetail,
    *,
    operator_id: str,
    action: str,
    note: str,
    details: dict[str, str] | None = None,
) -> Refund:
    now = ctx.clock()
    detail.refund.note_operator(operator_id, action, note, now)
    await uow.payments.save_reserved(detail.payment)
    await uow.refunds.save(detail.refund)
    await uow.audit.append(
        AuditRecord(
            actor=operator_id,
            actor_role=OPERATOR_ROLE,
            action=f"refund.{action}",
            target=detail.refund.refund_id,
            details={"state": detail.refund.state.value, **(details or {})},
        ),
        now,
    )
    return detail.refund


async def approve_refund(
    uow: RefundUnitOfWork, ctx: RefundContext, *, operator_id: str, refund_id: str, note: str
) -> Refund:
    detail = await _locked(uow, refund_id)
    detail.refund.approve(ctx.clock(), operator_actor(operator_id))
    return await _record(uow, ctx, detail, operator_id=operator_id, action="approve", note=note)


async def reject_refund(
    uow: RefundUnitOfWork,
    ctx: RefundContext,
    *,
    operator_id: str,
    refund_id: str,
    reason: RejectReason,
    note: str,
) -> Refund:
    detail = await _locked(uow, refund_id)
    detail.refund.reject(detail.payment, reason, ctx.clock(), operator_actor(operator_id))
    return await _record(
        uow,
        ctx,
        detail,
        operator_id=operator_id,
        action="reject",
        note=note,
        details={"reject_reason": reason.value},
    )


async def retry_payout(
    uow: RefundUnitOfWork, ctx: RefundContext, *, operator_id: str, refund_id: str, note: str
) -> Refund:
    detail = await _locked(uow, refund_id)
    detail.refund.resume(detail.payment, ctx.clock(), operator_actor(operator_id))
    return await _record(
        uow, ctx, detail, operator_id=operator_id, action="retry_payout", note=note
    )


async def reroute_refund(
    uow: RefundUnitOfWork,
    ctx: RefundContext,
    *,
    operator_id: str,
    refund_id: str,
    instrument_id: str,
    note: str,
) -> Refund:
    """Only a refund that FAILED with SOURCE_INSTRUMENT_UNAVAILABLE is re-routed; that is
    checked before binding is asked, so any other is REFUND_STATE_INVALID whatever the
    instrument; then the instrument must be the account's
    (INSTRUMENT_NOT_FOUND) and usable (INSTRUMENT_UNAVAILABLE)."""
    detail = await _locked(uow, refund_id)
    refund = detail.refund
    unavailable = refund.failure_reason is FailureReason.SOURCE_INSTRUMENT_UNAVAILABLE
    if refund.state is not RefundState.FAILED or not unavailable:
        raise state_invalid(refund.state)
    try:
        usable = await ctx.holds.is_usable(
            account_id=refund.account_id, instrument_id=instrument_id
        )
    except NotFound:
        raise NotFound("no such instrument", reason=Reason.INSTRUMENT_NOT_FOUND) from None
    if not usable:
        raise FailedPrecondition(
            "the instrument cannot take a refund", reason=Reason.INSTRUMENT_UNAVAILABLE
        )
    refund.resume(
        detail.payment, ctx.clock(), operator_actor(operator_id), instrument_id=instrument_id
    )
    return await _record(
        uow,
        ctx,
        detail,
        operator_id=operator_id,
        action="reroute",
        note=note,
        details={"instrument_id": instrument_id},
    )
