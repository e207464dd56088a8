"""One way to act on a rate-limit decision, for interceptors and service layers alike."""

from __future__ import annotations

from collections.abc import Sequence

from walletcore.errors import QuotaViolation, ResourceExhausted
from walletcore.ratelimit.base import Decision, Hit, Policy, RateLimiter


def refusal(decision: Decision) -> ResourceExhausted:
    """RESOURCE_EXHAUSTED with RetryInfo and one QuotaFailure violation per exceeded policy."""
    return ResourceExhausted(
        "too many requests; retry later",
        retry_after_seconds=decision.retry_after_seconds,
        violations=[_violation(policy) for policy in decision.exceeded],
    )


async def enforce(limiter: RateLimiter, hits: Sequence[Hit]) -> None:
    """Charge all `hits` in one atomic check; raise the refusal when any limit is exceeded.
    The limiter's Unavailable passes through: limited calls fail closed."""
    if not hits:
        return
    decision = await limiter.check(hits)
    if not decision.allowed:
        raise refusal(decision)


def _violation(policy: Policy) -> QuotaViolation:
    return QuotaViolation(
        subject=policy.name,
        description=f"at most {policy.limit} per {policy.period_seconds} seconds",
    )
