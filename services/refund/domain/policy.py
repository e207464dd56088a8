"""Refund's configured rules: which amounts approve themselves, which need a step-up grant,
how long operators have, and when the money is expected back.

Amounts are per currency in minor units, since 100 minor units are a dollar but 100 yen. A
currency the configuration does not name has no automatic approval and needs a grant for
every amount: a forgotten currency errs on the side of a human looking at it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .money import Money
from .refunds import Refund, RefundState

GRANT_PURPOSE = "REFUND_ABOVE_THRESHOLD"


@dataclass(frozen=True, slots=True)
class RefundPolicy:
    auto_approve_limits: Mapping[str, int] = field(default_factory=dict)
    """Per currency: refunds at or below this many minor units are approved automatically."""
    grant_thresholds: Mapping[str, int] = field(default_factory=dict)
    """Per currency: refunds above this many minor units need a REFUND_ABOVE_THRESHOLD grant."""
    review_working_days: int = 1
    payout_estimate: timedelta = timedelta(days=5)
    """How long a payout takes to reach the instrument once started (the user's estimate)."""
    max_gateway_attempts: int = 3

    def __post_init__(self) -> None:
        for limits in (self.auto_approve_limits, self.grant_thresholds):
            if any(value < 0 for value in limits.values()):
                raise ValueError("limits are zero or more minor units")
        if self.review_working_days < 0 or self.max_gateway_attempts < 1:
            raise ValueError("a service level is zero or more days; at least one attempt")

    def approves_automatically(self, amount: Money) -> bool:
        limit = self.auto_approve_limits.get(amount.currency)
        return limit is not None and amount.minor <= limit

    def needs_grant(self, amount: Money) -> bool:
        threshold = self.grant_thresholds.get(amount.currency)
        return threshold is None or amount.minor > threshold

    def expected_completion(self, refund: Refund) -> datetime | None:
        """An estimate of when the money is back; None once the refund is final (for the
        user: rejected, succeeded or failed)."""
        if refund.state is RefundState.REQUESTED:
            deadline = refund.review_deadline
            if deadline is None:  # an invariant, checked also under python -O
                raise RuntimeError("a requested refund has a review deadline")
            return deadline + self.payout_estimate
        if refund.state in (RefundState.APPROVED, RefundState.PROCESSING):
            started = refund.updated_at or refund.requested_at
            return started + self.payout_estimate
        return None
