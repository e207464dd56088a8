"""The refund state machine, its history, and the payout attempts that return the money.

    REQUESTED -> APPROVED | REJECTED
    APPROVED  -> PROCESSING -> SUCCEEDED | FAILED
    FAILED    -> PROCESSING          (an operator's RetryPayout or RerouteRefund)
    SUCCEEDED -> FAILED              (the gateway reports a reversal after confirming)

Every transition is kept with its time and actor. A refund counts against its payment in
every state but REJECTED and FAILED; each method that moves a refund into or out of those
states reserves or releases its amount on the payment passed in, so the caller changes both
in one transaction and the payment's total is never out of step with its refunds.

Payout attempts: an attempt is recorded PENDING before its request goes to the gateway, with
its id as the gateway's idempotency key, so a crash between "sent" and "recorded" leaves a
PENDING attempt that the reconciliation sweep resolves by asking the gateway for that key
(and, if the gateway never received it, by sending it again under the same key, which the
gateway honours, so it pays at most once). A refund has at most one PENDING attempt, and a
new attempt starts only once the previous one is settled. A gateway error (not a decline) is
retried automatically with a fresh attempt up to `max_attempts` per processing round; a
decline or an unusable instrument fails the refund at once, for an operator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final

from walletcore.errors import FailedPrecondition

from .money import Money
from .payments import CapturedPayment
from .reasons import Reason
from .sla import add_working_days, overdue

SYSTEM_ACTOR: Final = "system"
MAX_REASON_DETAIL_LENGTH: Final = 1000
MAX_ORDER_ID_LENGTH: Final = 128
MAX_SCREENSHOTS: Final = 10
MAX_EVIDENCE_REF_LENGTH: Final = 256
MAX_NOTE_LENGTH: Final = 2000


class RefundState(StrEnum):
    REQUESTED = "REQUESTED"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    PROCESSING = "PROCESSING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


NOT_COUNTING: Final = frozenset({RefundState.REJECTED, RefundState.FAILED})
WAITING_FOR_OPERATOR: Final = frozenset({RefundState.REQUESTED, RefundState.FAILED})
FINAL_FOR_USER: Final = frozenset({RefundState.REJECTED, RefundState.SUCCEEDED, RefundState.FAILED})


class RefundReason(StrEnum):
    NOT_RECEIVED = "NOT_RECEIVED"
    NOT_AS_DESCRIBED = "NOT_AS_DESCRIBED"
    DEFECTIVE = "DEFECTIVE"
    ORDER_CANCELLED = "ORDER_CANCELLED"
    DUPLICATE_CHARGE = "DUPLICATE_CHARGE"
    OTHER = "OTHER"


class FailureReason(StrEnum):
    SOURCE_INSTRUMENT_UNAVAILABLE = "SOURCE_INSTRUMENT_UNAVAILABLE"
    PAYOUT_DECLINED = "PAYOUT_DECLINED"
    GATEWAY_ERROR = "GATEWAY_ERROR"


class RejectReason(StrEnum):
    NOT_ELIGIBLE = "NOT_ELIGIBLE"
    INSUFFICIENT_EVIDENCE = "INSUFFICIENT_EVIDENCE"
    DUPLICATE_REQUEST = "DUPLICATE_REQUEST"
    SUSPECTED_FRAUD = "SUSPECTED_FRAUD"
    OTHER = "OTHER"


class AttemptState(StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


_ALLOWED: Final = {
    RefundState.REQUESTED: frozenset({RefundState.APPROVED, RefundState.REJECTED}),
    RefundState.APPROVED: frozenset({RefundState.PROCESSING}),
    RefundState.PROCESSING: frozenset({RefundState.SUCCEEDED, RefundState.FAILED}),
    RefundState.FAILED: frozenset({RefundState.PROCESSING}),
    RefundState.SUCCEEDED: frozenset({RefundState.FAILED}),
    RefundState.REJECTED: frozenset[RefundState](),
}


def state_invalid(state: RefundState) -> FailedPrecondition:
    return FailedPrecondition(
        f"the refund is {state.value} and does not allow this action",
        reason=Reason.REFUND_STATE_INVALID,
        metadata={"state": state.value},
    )


@dataclass(frozen=True, slots=True)
class Evidence:
    order_id: str = ""
    screenshot_refs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Transition:
    from_state: RefundState | None
    to_state: RefundState
    at: datetime
    actor: str


@dataclass(frozen=True, slots=True)
class OperatorAction:
    """An operator's act on a refund as its history shows it (the note stays internal)."""

    operator_id: str
    action: str
    note: str
    at: datetime


@dataclass(slots=True)
class PayoutAttempt:
    attempt_id: str
    instrument_id: str
    amount: Money
    started_at: datetime
    state: AttemptState = AttemptState.PENDING
    gateway_reference: str = ""
    failure_reason: FailureReason | None = None
    gateway_failure_code: str = ""
    finished_at: datetime | None = None


@dataclass(slots=True)
class Refund:
    refund_id: str
    payment_id: str
    account_id: str
    amount: Money
    reason: RefundReason
    reason_detail: str
    evidence: Evidence
    instrument_id: str
    requested_at: datetime
    state: RefundState = RefundState.REQUESTED
    updated_at: datetime | None = None
    failure_reason: FailureReason | None = None
    reject_reason: RejectReason | None = None
    review_working_days: int = 1
    """The service level in force when it was requested."""
    waiting_since: datetime | None = None
    """When it began waiting for an operator (requested, or failed); None otherwise."""
    round_attempts: int = 0
    """Attempts in the current processing round, for the automatic retry limit."""
    hold_placed: bool = False
    history: list[Transition] = field(default_factory=list)
    attempts: list[PayoutAttempt] = field(default_factory=list)
    operator_actions: list[OperatorAction] = field(default_factory=list)

    @classmethod
    def request(
        cls,
        *,
        refund_id: str,
        payment: CapturedPayment,
        amount: Money,
        reason: RefundReason,
        reason_detail: str,
        evidence: Evidence,
        now: datetime,
        actor: str,
        review_working_days: int,
    ) -> Refund:
        """A new REQUESTED refund, its amount reserved on `payment` (the caller checked the
        account, the window and the currency)."""
        payment.reserve(amount)
        refund = cls(
            refund_id=refund_id,
            payment_id=payment.payment_id,
            account_id=payment.account_id,
            amount=amount,
            reason=reason,
            reason_detail=reason_detail,
            evidence=evidence,
            instrument_id=payment.source_instrument_id,
            requested_at=now,
            updated_at=now,
            review_working_days=review_working_days,
            waiting_since=now,
        )
        refund.history.append(Transition(None, RefundState.REQUESTED, now, actor))
        return refund

    @property
    def review_deadline(self) -> datetime | None:
        """When an operator must act by; None while nothing waits for an operator."""
        if self.state not in WAITING_FOR_OPERATOR or self.waiting_since is None:
            return None
        return add_working_days(self.waiting_since, self.review_working_days)

    def overdue(self, now: datetime) -> bool:
        return overdue(self.review_deadline, now)

    def note_operator(self, operator_id: str, action: str, note: str, now: datetime) -> None:
        self.operator_actions.append(OperatorAction(operator_id, action, note, now))

    @property
    def counts(self) -> bool:
        return self.state not in NOT_COUNTING

    @property
    def pending_attempt(self) -> PayoutAttempt | None:
        return next((a for a in self.attempts if a.state is AttemptState.PENDING), None)

    def _move(self, to: RefundState, now: datetime, actor: str) -> None:
        if to not in _ALLOWED[self.state]:
            raise state_invalid(self.state)
        self.history.append(Transition(self.state, to, now, actor))
        self.state = to
        self.updated_at = now
        self.waiting_since = now if to in WAITING_FOR_OPERATOR else None

    def approve(self, now: datetime, actor: str) -> None:
        self._move(RefundState.APPROVED, now, actor)

    def reject(
        self, payment: CapturedPayment, reason: RejectReason, now: datetime, actor: str
    ) -> None:
        self._move(RefundState.REJECTED, now, actor)
        self.reject_reason = reason
        payment.release(self.amount)

    @property
    def ready_for_payout(self) -> bool:
        """APPROVED, or PROCESSING again after an operator's retry or re-route: the worker
        places the hold and starts the round's first attempt."""
        return self.state is RefundState.APPROVED or (
            self.state is RefundState.PROCESSING
            and self.round_attempts == 0
            and self.pending_attempt is None
        )

    @property
    def hold_to_release(self) -> bool:
        """Binding still holds the instrument for a refund that ended (or failed, which an
        operator may resume: the hold is placed again then)."""
        return self.hold_placed and self.state in FINAL_FOR_USER

    def start_payout(self, now: datetime) -> PayoutAttempt:
        """The round's first attempt, once the refund hold is placed (APPROVED moves to
        PROCESSING)."""
        if not self.hold_placed:
            raise ValueError("the refund hold is placed before the payout starts")
        if not self.ready_for_payout:
            raise state_invalid(self.state)
        if self.state is RefundState.APPROVED:
            self._move(RefundState.PROCESSING, now, SYSTEM_ACTOR)
        self.round_attempts = 0
        return self.new_attempt(now)

    def _attempt_id(self) -> str:
        return f"{self.refund_id}-{len(self.attempts) + 1}"

    def new_attempt(self, now: datetime) -> PayoutAttempt:
        if self.state is not RefundState.PROCESSING or self.pending_attempt is not None:
            raise state_invalid(self.state)
        attempt = PayoutAttempt(
            attempt_id=self._attempt_id(),
            instrument_id=self.instrument_id,
            amount=self.amount,
            started_at=now,
        )
        self.attempts.append(attempt)
        self.round_attempts += 1
        return attempt

    def _attempt(self, attempt_id: str) -> PayoutAttempt:
        for attempt in self.attempts:
            if attempt.attempt_id == attempt_id:
                return attempt
        raise ValueError("no such attempt")

    def payout_succeeded(self, attempt_id: str, reference: str, now: datetime) -> bool:
        """Records the gateway's confirmation; False when the attempt was settled before
        (a repeated report changes nothing)."""
        attempt = self._attempt(attempt_id)
        if attempt.state is not AttemptState.PENDING:
            return False
        attempt.state = AttemptState.SUCCEEDED
        attempt.gateway_reference = reference
        attempt.finished_at = now
        self._move(RefundState.SUCCEEDED, now, SYSTEM_ACTOR)
        return True

    def payout_failed(
        self,
        payment: CapturedPayment,
        attempt_id: str,
        *,
        reason: FailureReason,
        gateway_code: str,
        reference: str,
        now: datetime,
        max_attempts: int,
    ) -> PayoutAttempt | None:
        """Records the gateway's refusal. A gateway error within `max_attempts` starts the
        next attempt (returned); anything else fails the refund and releases its amount.
        None also when the attempt was settled before."""
        attempt = self._attempt(attempt_id)
        if attempt.state is not AttemptState.PENDING:
            return None
        attempt.state = AttemptState.FAILED
        attempt.failure_reason = reason
        attempt.gateway_failure_code = gateway_code
        attempt.gateway_reference = reference
        attempt.finished_at = now
        if reason is FailureReason.GATEWAY_ERROR and self.round_attempts < max_attempts:
            return self.new_attempt(now)
        self.fail(payment, reason, now)
        return None

    def fail(self, payment: CapturedPayment, reason: FailureReason, now: datetime) -> None:
        """-> FAILED without a gateway answer: binding refused the hold (the instrument is
        gone) before the payout; an APPROVED refund passes through PROCESSING, so the history
        shows the payout that was started."""
        if self.state is RefundState.APPROVED:
            self._move(RefundState.PROCESSING, now, SYSTEM_ACTOR)
        self._move(RefundState.FAILED, now, SYSTEM_ACTOR)
        self.failure_reason = reason
        payment.release(self.amount)

    def reversed(
        self, payment: CapturedPayment, reason: FailureReason, gateway_code: str, now: datetime
    ) -> bool:
        """The gateway reports a payout it had confirmed as reversed: SUCCEEDED -> FAILED, and
        the amount is refundable again. False when the refund is not SUCCEEDED (a repeat)."""
        if self.state is not RefundState.SUCCEEDED:
            return False
        self._move(RefundState.FAILED, now, SYSTEM_ACTOR)
        self.failure_reason = reason
        for attempt in reversed(self.attempts):
            if attempt.state is AttemptState.SUCCEEDED:
                attempt.gateway_failure_code = gateway_code
                break
        payment.release(self.amount)
        return True

    def resume(
        self,
        payment: CapturedPayment,
        now: datetime,
        actor: str,
        *,
        instrument_id: str | None = None,
    ) -> None:
        """FAILED -> PROCESSING by an operator: RetryPayout (same instrument; refused with
        INSTRUMENT_UNAVAILABLE when that is why it failed) or RerouteRefund (`instrument_id`,
        only after SOURCE_INSTRUMENT_UNAVAILABLE). The amount is reserved again, so
        REFUND_EXCEEDS_CAPTURED when refunds since the failure used the payment up. The worker
        then places the hold again and starts the next attempt (`ready_for_payout`)."""
        if self.state is not RefundState.FAILED:
            raise state_invalid(self.state)
        unavailable = self.failure_reason is FailureReason.SOURCE_INSTRUMENT_UNAVAILABLE
        if instrument_id is None and unavailable:
            raise FailedPrecondition(
                "the instrument is unavailable; re-route the refund instead",
                reason=Reason.INSTRUMENT_UNAVAILABLE,
            )
        if instrument_id is not None and not unavailable:
            raise state_invalid(self.state)
        payment.reserve(self.amount)
        self._move(RefundState.PROCESSING, now, actor)
        if instrument_id is not None:
            self.instrument_id = instrument_id
        self.failure_reason = None
        self.round_attempts = 0
