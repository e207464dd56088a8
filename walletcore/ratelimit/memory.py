"""The in-process rate limiter: embedded and development mode only.

It has the semantics of the Redis limiter (the same sliding-window log, all-or-none across the
hits of one call) but its counters live in this process: they vanish on restart and every
replica counts on its own, so N replicas admit N times the policy. That is why a production
configuration refuses to start with it (the check lives in the settings, not here).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from walletcore.ratelimit.base import Decision, Hit, Policy
from walletcore.ratelimit.charges import MICROSECONDS_PER_SECOND, Charge, combine, refusal

# Forgotten counters are dropped at most this often, so memory follows the active subjects
# without a scan on every call.
_SWEEP_INTERVAL_US = 60 * MICROSECONDS_PER_SECOND


def _monotonic_us() -> int:
    return time.monotonic_ns() // 1000


class _Log:
    """Admission times of one counter's newest `limit` units, oldest first."""

    __slots__ = ("limit", "period_us", "times")

    def __init__(self, policy: Policy) -> None:
        self.limit = policy.limit
        self.period_us = policy.period_seconds * MICROSECONDS_PER_SECOND
        self.times: deque[int] = deque(maxlen=policy.limit)

    def wait_us(self, cost: int, now_us: int) -> int:
        """How long until `cost` more units fit; 0 when they fit now."""
        position_from_newest = self.limit - cost
        if position_from_newest >= len(self.times):
            return 0
        blocking = self.times[-1 - position_from_newest]
        return max(0, blocking + self.period_us - now_us)

    def record(self, cost: int, now_us: int) -> None:
        self.times.extend([now_us] * cost)

    def is_empty_at(self, now_us: int) -> bool:
        return not self.times or self.times[-1] + self.period_us <= now_us


class InMemoryRateLimiter:
    """A `RateLimiter` whose counters live in this process (embedded/development mode only).

    `clock` returns microseconds on a monotonic clock; tests pass a fake one. Safe for many
    coroutines and threads: a check holds a lock only for its synchronous work and never awaits.
    """

    def __init__(self, *, clock: Callable[[], int] = _monotonic_us) -> None:
        self._clock = clock
        self._logs: dict[tuple[Policy, str], _Log] = {}
        self._lock = threading.Lock()
        self._next_sweep_us: int | None = None

    async def check(self, hits: Sequence[Hit]) -> Decision:
        charges = combine(hits)
        with self._lock:
            now_us = self._clock()
            self._sweep(now_us)
            return self._check_and_record(charges, now_us)

    async def close(self) -> None:
        with self._lock:
            self._logs.clear()

    def _check_and_record(self, charges: list[Charge], now_us: int) -> Decision:
        refused: list[int] = []
        longest_wait_us = 0
        for index, charge in enumerate(charges):
            log = self._logs.get((charge.policy, charge.subject))
            wait_us = log.wait_us(charge.cost, now_us) if log is not None else 0
            if wait_us > 0:
                refused.append(index)
                longest_wait_us = max(longest_wait_us, wait_us)
        if refused:
            return refusal(charges, refused, longest_wait_us)
        for charge in charges:
            counter = (charge.policy, charge.subject)
            log = self._logs.get(counter)
            if log is None:
                log = self._logs[counter] = _Log(charge.policy)
            log.record(charge.cost, now_us)
        return Decision(allowed=True)

    def _sweep(self, now_us: int) -> None:
        if self._next_sweep_us is not None and now_us < self._next_sweep_us:
            return
        self._next_sweep_us = now_us + _SWEEP_INTERVAL_US
        for counter in [c for c, log in self._logs.items() if log.is_empty_at(now_us)]:
            del self._logs[counter]
