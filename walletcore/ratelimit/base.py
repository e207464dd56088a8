"""The rate limiter's contract: declarative policies, one atomic check for all of an RPC's limits.

An RPC names every limit it is subject to as `Hit`s (a policy plus the subject it counts, such
as a destination phone number or a client address) and checks them together with one call,
which for Redis is one round trip. Either every hit is admitted and counted, or none is counted
and the caller gets the longest retry-after among the exceeded ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Policy:
    """`limit` calls per `period_seconds` for one subject. `name` appears in QuotaFailure."""

    name: str
    limit: int
    period_seconds: int

    def __post_init__(self) -> None:
        if self.limit < 1 or self.period_seconds < 1:
            raise ValueError("a policy needs a positive limit and period")


@dataclass(frozen=True, slots=True)
class Hit:
    """One unit of a policy charged against one subject (hashed before it becomes a key)."""

    policy: Policy
    subject: str
    cost: int = 1


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after_seconds: float = 0.0
    exceeded: tuple[Policy, ...] = ()


class RateLimiter(Protocol):
    async def check(self, hits: Sequence[Hit]) -> Decision:
        """Admit and count all hits atomically, or none of them.

        Raises `walletcore.errors.Unavailable` when the backing store cannot be reached:
        security RPCs fail closed.
        """
        ...

    async def close(self) -> None: ...
