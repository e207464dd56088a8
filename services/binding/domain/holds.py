"""Refund holds on cards, and the withdrawal cooling-off window after a contact change.

A refund hold keeps a card bound while a refund to it is in flight: one hold per refund id,
holding one card at a time. Placing it again for the same card changes nothing (so refund may
repeat the call); placing it for another card moves it there (refund re-routed the payout).
Only a card usable for a refund (bound and not expired) can be held. The race with an unbind
is settled by the caller locking the card first in both operations: whichever locks first
wins, and the other sees its result (`Card.unbind` counts the holds under that lock).

The withdrawal hold: after any phone or email change withdrawals are blocked for 24 hours
from the change; a further change restarts the window from the later change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from walletcore.errors import FailedPrecondition

from .cards import Card
from .reasons import Reason

WITHDRAWAL_HOLD_PERIOD: Final = timedelta(hours=24)


def instrument_unavailable() -> FailedPrecondition:
    return FailedPrecondition(
        "the instrument is unbound or expired", reason=Reason.INSTRUMENT_UNAVAILABLE
    )


@dataclass(slots=True)
class RefundHold:
    refund_id: str
    card_id: str
    placed_at: datetime


def place_refund_hold(
    card: Card, existing: RefundHold | None, *, refund_id: str, now: datetime
) -> RefundHold | None:
    """The hold to store for `refund_id` on `card` (new, or `existing` moved to `card`), or
    None when `existing` already holds `card`. FAILED_PRECONDITION / INSTRUMENT_UNAVAILABLE
    for a card that is unbound or expired."""
    if existing is not None and existing.refund_id != refund_id:
        raise ValueError("the existing hold belongs to another refund")
    if not card.usable_for_refund(now):
        raise instrument_unavailable()
    if existing is None:
        return RefundHold(refund_id=refund_id, card_id=card.id, placed_at=now)
    if existing.card_id == card.id:
        return None
    existing.card_id = card.id
    existing.placed_at = now
    return existing


@dataclass(frozen=True, slots=True)
class HoldWindow:
    """What the query RPCs answer: whether withdrawals are blocked now, and until when
    (None when the account never changed a contact)."""

    in_window: bool
    until: datetime | None


NO_WINDOW: Final = HoldWindow(in_window=False, until=None)


@dataclass(slots=True)
class WithdrawalHold:
    """An account's latest contact change, which the cooling-off window runs from."""

    account_id: str
    last_change_at: datetime

    @property
    def until(self) -> datetime:
        return self.last_change_at + WITHDRAWAL_HOLD_PERIOD

    def restart(self, changed_at: datetime) -> None:
        """A further change restarts the window; an older one (a late, reordered report)
        never shortens it."""
        self.last_change_at = max(self.last_change_at, changed_at)

    def window(self, now: datetime) -> HoldWindow:
        return HoldWindow(in_window=now < self.until, until=self.until)


def window_of(hold: WithdrawalHold | None, now: datetime) -> HoldWindow:
    return NO_WINDOW if hold is None else hold.window(now)
