"""What one check charges, shared by every limiter so they agree on the edge cases.

Both limiters keep, per (policy, subject), a sliding-window log: the admission times of the last
`limit` units. A charge of `cost` units fits when the unit that would be pushed out of those
`limit` entries has already left the window, so a policy of N per period admits exactly N in
any window of one period, never more, and refuses only what would break that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from walletcore.ratelimit.base import Decision, Hit, Policy

MICROSECONDS_PER_SECOND = 1_000_000


@dataclass(frozen=True, slots=True)
class Charge:
    """All units one check charges to one (policy, subject) counter."""

    policy: Policy
    subject: str
    cost: int

    @property
    def period_us(self) -> int:
        return self.policy.period_seconds * MICROSECONDS_PER_SECOND


def combine(hits: Sequence[Hit]) -> list[Charge]:
    """Merge hits on the same policy and subject into one charge, in first-seen order.

    A counter is checked once per call: two separate hits on it would each see the one free
    unit and both be counted. Raises ValueError for programming errors (never client input):
    a cost below 1, a charge larger than its policy's limit (it could never be admitted), or two
    different policies sharing a name (they would share counters).
    """
    policies: dict[str, Policy] = {}
    costs: dict[tuple[str, str], int] = {}
    for hit in hits:
        if hit.cost < 1:
            raise ValueError(f"a hit on {hit.policy.name!r} must cost at least 1")
        known = policies.setdefault(hit.policy.name, hit.policy)
        if known != hit.policy:
            raise ValueError(f"two different policies are named {hit.policy.name!r}")
        counter = (hit.policy.name, hit.subject)
        costs[counter] = costs.get(counter, 0) + hit.cost
    charges = [Charge(policies[name], subject, cost) for (name, subject), cost in costs.items()]
    for charge in charges:
        if charge.cost > charge.policy.limit:
            raise ValueError(
                f"a charge of {charge.cost} can never fit {charge.policy.name!r} "
                f"(limit {charge.policy.limit})"
            )
    return charges


def refusal(charges: Sequence[Charge], refused: Sequence[int], wait_us: int) -> Decision:
    """The decision for refused charges (indexes into `charges`) and the longest wait among them.

    After `wait_us` every refused counter has room again, if nothing else is charged meanwhile.
    """
    exceeded = dict.fromkeys(charges[index].policy for index in refused)
    return Decision(
        allowed=False,
        retry_after_seconds=wait_us / MICROSECONDS_PER_SECOND,
        exceeded=tuple(exceeded),
    )
