"""Captured payments, the only things refunds are made against, and what is left of each.

`reserved` is the sum of the payment's refunds that are neither REJECTED nor FAILED. Every
refund that starts or resumes counting reserves its amount here and every refund that stops
counting releases it, in the same transaction as its state change, so the invariant
`reserved <= captured` is one comparison on one row, which the SQL adapter backs with a CHECK
constraint and a row lock (`Payments.get(..., for_update=True)`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from walletcore.errors import AlreadyExists, FailedPrecondition

from .money import Money
from .reasons import Reason

REFUND_WINDOW: Final = timedelta(days=365)


@dataclass(slots=True)
class CapturedPayment:
    payment_id: str
    account_id: str
    captured: Money
    source_instrument_id: str
    captured_at: datetime
    reserved_minor: int = 0

    @property
    def refundable_until(self) -> datetime:
        return self.captured_at + REFUND_WINDOW

    @property
    def reserved(self) -> Money:
        return Money(self.reserved_minor, self.captured.currency)

    def within_window(self, now: datetime) -> bool:
        return now <= self.refundable_until

    def refundable(self, now: datetime) -> Money:
        """What a new refund may still take: zero once the 365 days are over."""
        if not self.within_window(now):
            return Money.zero(self.captured.currency)
        return self.captured - self.reserved

    def same_report(self, other: CapturedPayment) -> bool:
        """Whether `other` reports this payment with the same data (a repeat, not a conflict)."""
        return (
            self.payment_id == other.payment_id
            and self.account_id == other.account_id
            and self.captured == other.captured
            and self.source_instrument_id == other.source_instrument_id
            and self.captured_at == other.captured_at
        )

    def reserve(self, amount: Money) -> None:
        """Counts `amount` against the payment; REFUND_EXCEEDS_CAPTURED when it does not fit."""
        if amount.currency != self.captured.currency:
            raise ValueError("a refund is in its payment's currency")
        if self.reserved_minor + amount.minor > self.captured.minor:
            raise FailedPrecondition(
                "the refunds of this payment would exceed the captured amount",
                reason=Reason.REFUND_EXCEEDS_CAPTURED,
                metadata={"refundable_minor": str(self.captured.minor - self.reserved_minor)},
            )
        self.reserved_minor += amount.minor

    def release(self, amount: Money) -> None:
        if amount.minor > self.reserved_minor:
            raise ValueError("released more than was reserved")
        self.reserved_minor -= amount.minor


def payment_conflict() -> AlreadyExists:
    return AlreadyExists(
        "this payment id is recorded with other data", reason=Reason.PAYMENT_CONFLICT
    )


def reconcile_report(existing: CapturedPayment | None, report: CapturedPayment) -> bool:
    """True when `report` is new and must be stored; False when it repeats `existing`;
    ALREADY_EXISTS / PAYMENT_CONFLICT when it contradicts it."""
    if existing is None:
        return True
    if existing.same_report(report):
        return False
    raise payment_conflict()
