"""What refund's servicers share: money, refunds and payments as protobuf, request strings
checked at the edge, and keyset page tokens.

A page token is the url-safe base64 of the last item's (time, id). It only positions a query
within what the caller may read anyway (their own refunds, or the operators' queue), so it
needs no seal: a made-up token shows nothing new. One that does not decode is
INVALID_ARGUMENT / PAGE_TOKEN_INVALID.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Final

from services.refund.domain.money import Money
from services.refund.domain.payments import CapturedPayment
from services.refund.domain.policy import RefundPolicy
from services.refund.domain.refunds import (
    MAX_EVIDENCE_REF_LENGTH,
    MAX_ORDER_ID_LENGTH,
    MAX_SCREENSHOTS,
    AttemptState,
    Evidence,
    FailureReason,
    PayoutAttempt,
    Refund,
    RefundState,
    RejectReason,
    Transition,
)
from services.refund.service.ports import Page
from wallet.common.v1 import money_pb2
from wallet.refund.v1 import types_pb2
from walletcore.errors import FieldViolation, InvalidArgument
from walletcore.grpc.convert import PageSpec, enum_to_proto, timestamp
from walletcore.validation import ISSUED_ID, checked_text, checked_token

PAGE_TOKEN_INVALID: Final = "PAGE_TOKEN_INVALID"  # noqa: S105 (a reason, not a password)
EXTERNAL_ID_LENGTH: Final = 128
"""Ids the payment system chooses (payment ids, account ids it reports)."""


def money(amount: Money) -> money_pb2.Money:
    return money_pb2.Money(amount_minor=amount.minor, currency=amount.currency)


def money_from(message: money_pb2.Money, field: str, *, positive: bool) -> Money:
    return Money.parse(message.amount_minor, message.currency, field=field, positive=positive)


def external_id(raw: str, field: str) -> str:
    """An id another system chose (a payment id): 1 to 128 characters of single-line text."""
    return checked_text(raw, field, max_length=EXTERNAL_ID_LENGTH, required=True)


def issued_id(raw: str, field: str) -> str:
    """An id refund or binding issued (uuid hex)."""
    return checked_token(raw, field, ISSUED_ID)


def evidence_from(message: types_pb2.Evidence) -> Evidence:
    order_id = checked_text(message.order_id, "evidence.order_id", max_length=MAX_ORDER_ID_LENGTH)
    if len(message.screenshot_refs) > MAX_SCREENSHOTS:
        raise InvalidArgument.field(
            "evidence.screenshot_refs", f"must hold at most {MAX_SCREENSHOTS} references"
        )
    refs = tuple(
        checked_text(
            ref, f"evidence.screenshot_refs[{n}]", max_length=MAX_EVIDENCE_REF_LENGTH, required=True
        )
        for n, ref in enumerate(message.screenshot_refs)
    )
    return Evidence(order_id=order_id, screenshot_refs=refs)


def _state(state: RefundState) -> types_pb2.RefundState.ValueType:
    return enum_to_proto(types_pb2.RefundState, state)


def _failure(reason: FailureReason | None) -> types_pb2.RefundFailureReason.ValueType:
    if reason is None:
        return types_pb2.REFUND_FAILURE_REASON_UNSPECIFIED
    return enum_to_proto(types_pb2.RefundFailureReason, reason)


def _reject(reason: RejectReason | None) -> types_pb2.RefundRejectReason.ValueType:
    if reason is None:
        return types_pb2.REFUND_REJECT_REASON_UNSPECIFIED
    return enum_to_proto(types_pb2.RefundRejectReason, reason)


def refund_to_proto(refund: Refund, policy: RefundPolicy, now: datetime) -> types_pb2.Refund:
    message = types_pb2.Refund(
        refund_id=refund.refund_id,
        payment_id=refund.payment_id,
        amount=money(refund.amount),
        state=_state(refund.state),
        reason=enum_to_proto(types_pb2.RefundReason, refund.reason),
        reason_detail=refund.reason_detail,
        evidence=types_pb2.Evidence(
            order_id=refund.evidence.order_id, screenshot_refs=refund.evidence.screenshot_refs
        ),
        failure_reason=_failure(
            refund.failure_reason if refund.state is RefundState.FAILED else None
        ),
        reject_reason=_reject(refund.reject_reason),
        instrument_id=refund.instrument_id,
        requested_at=timestamp(refund.requested_at),
        updated_at=timestamp(refund.updated_at or refund.requested_at),
        overdue=refund.overdue(now),
    )
    expected = policy.expected_completion(refund)
    if expected is not None:
        message.expected_completion.CopyFrom(timestamp(expected))
    deadline = refund.review_deadline
    if deadline is not None:
        message.review_deadline.CopyFrom(timestamp(deadline))
    return message


def payment_to_proto(payment: CapturedPayment, now: datetime) -> types_pb2.Payment:
    return types_pb2.Payment(
        payment_id=payment.payment_id,
        account_id=payment.account_id,
        captured_amount=money(payment.captured),
        refundable_amount=money(payment.refundable(now)),
        source_instrument_id=payment.source_instrument_id,
        captured_at=timestamp(payment.captured_at),
        refundable_until=timestamp(payment.refundable_until),
    )


def attempt_to_proto(attempt: PayoutAttempt) -> types_pb2.PayoutAttempt:
    message = types_pb2.PayoutAttempt(
        attempt_id=attempt.attempt_id,
        instrument_id=attempt.instrument_id,
        amount=money(attempt.amount),
        state=enum_to_proto(types_pb2.PayoutAttemptState, attempt.state),
        gateway_reference=attempt.gateway_reference,
        failure_reason=_failure(
            attempt.failure_reason if attempt.state is AttemptState.FAILED else None
        ),
        gateway_failure_code=attempt.gateway_failure_code,
        started_at=timestamp(attempt.started_at),
    )
    if attempt.finished_at is not None:
        message.finished_at.CopyFrom(timestamp(attempt.finished_at))
    return message


def transition_to_proto(transition: Transition) -> types_pb2.RefundTransition:
    return types_pb2.RefundTransition(
        from_state=(
            types_pb2.REFUND_STATE_UNSPECIFIED
            if transition.from_state is None
            else _state(transition.from_state)
        ),
        to_state=_state(transition.to_state),
        actor=transition.actor,
        occurred_at=timestamp(transition.at),
    )


# -- paging ------------------------------------------------------------------------------------


def page_token(at: datetime, key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([at.isoformat(), key]).encode()).decode()


def page_from(spec: PageSpec, field: str = "page") -> Page:
    if not spec.token:
        return Page(size=spec.size)
    try:
        at_text, key = json.loads(base64.urlsafe_b64decode(spec.token.encode()))
        at = datetime.fromisoformat(at_text)
        if at.utcoffset() is None or not isinstance(key, str):
            raise ValueError("not a position")
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise InvalidArgument(
            [FieldViolation(f"{field}.page_token", "is not a page token this service issued")],
            "the page token is invalid",
            reason=PAGE_TOKEN_INVALID,
        ) from None
    return Page(size=spec.size, after=(at, key))


def next_token(items: list[tuple[datetime, str]], page: Page) -> str:
    """A token after the last item of a full page; empty when the list ended."""
    if len(items) < page.size or not items:
        return ""
    at, key = items[-1]
    return page_token(at, key)
