"""Rate limiting on real Redis: our one-trip Lua script against the `limits` library.

The RPC under test carries three limits (per destination, per account, per client address), the
shape of "send a code". Measured per check, on REDIS_URL (default redis://127.0.0.1:6379/0):
Redis round trips (counted on the wire) and mean latency, for our script, for `limits` checking
the three one after another (moving window and sliding-window counter), and for one plain PING,
the baseline every ratio is taken against. Then it shows why `limits` cannot be all-or-none.
Every check uses fresh subjects, so each one is admitted and writes all three counters.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem, RateLimitItemPerHour, RateLimitItemPerMinute
from limits.aio.storage import RedisStorage
from limits.aio.strategies import (
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from redis.asyncio import Connection, ConnectionPool, Redis

from walletcore.ratelimit import Hit, Policy, RedisRateLimiter

ROUNDS = 5
CHECKS_PER_ROUND = 500
WARM_UP_CHECKS = 50
BASELINE = "PING (baseline)"

PER_DESTINATION = Policy("per_destination", 1, 60)
PER_ACCOUNT = Policy("per_account", 20, 3600)
PER_ADDRESS = Policy("per_address", 30, 60)
LIMITS_ITEMS: tuple[RateLimitItem, ...] = (
    RateLimitItemPerMinute(1),
    RateLimitItemPerHour(20),
    RateLimitItemPerMinute(30),
)

Subjects = tuple[str, str, str]
Check = Callable[[Subjects], Awaitable[bool]]


class CountingConnection(Connection):
    """Counts sends: each command or pipeline is one send, so one round trip."""

    sends = 0

    async def send_packed_command(self, *args: Any, **kwargs: Any) -> None:
        type(self).sends += 1
        await super().send_packed_command(*args, **kwargs)


@dataclass
class Tally:
    seconds: float = 0.0
    sends: int = 0
    checks: int = 0

    @property
    def mean_ms(self) -> float:
        return 1000 * self.seconds / self.checks

    @property
    def round_trips(self) -> float:
        return self.sends / self.checks


_serial = itertools.count()


def _fresh_subjects() -> Subjects:
    n = next(_serial)
    return (f"+1415{n:07d}", f"account-{n}", f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}")


def _ours(limiter: RedisRateLimiter) -> Check:
    async def check(subjects: Subjects) -> bool:
        policies = (PER_DESTINATION, PER_ACCOUNT, PER_ADDRESS)
        decision = await limiter.check([Hit(p, s) for p, s in zip(policies, subjects, strict=True)])
        return decision.allowed

    return check


def _limits_in_turn(strategy: RateLimiter) -> Check:
    async def check(subjects: Subjects) -> bool:
        for item, subject in zip(LIMITS_ITEMS, subjects, strict=True):
            if not await strategy.hit(item, subject):
                return False
        return True

    return check


def _ping(client: Redis) -> Check:
    async def check(_: Subjects) -> bool:
        return bool(await client.ping())

    return check


async def _measure(checks: dict[str, Check]) -> dict[str, Tally]:
    """Interleave the variants round by round so drift on the machine hits them all alike."""
    for check in checks.values():
        for _ in range(WARM_UP_CHECKS):  # connects, loads scripts
            await check(_fresh_subjects())
    tallies = {name: Tally() for name in checks}
    for _ in range(ROUNDS):
        for name, check in checks.items():
            tally = tallies[name]
            sends_before = CountingConnection.sends
            started = time.perf_counter()
            for _ in range(CHECKS_PER_ROUND):
                if not await check(_fresh_subjects()):
                    raise RuntimeError(f"{name} refused a check with fresh subjects")
            tally.seconds += time.perf_counter() - started
            tally.sends += CountingConnection.sends - sends_before
            tally.checks += CHECKS_PER_ROUND
    return tallies


async def _charged_after_refusal(check: Check) -> bool:
    """Whether a call refused by its third limit still charged the first two.

    The client address is exhausted; a code request from it for a fresh phone is refused. The
    phone's owner then asks from another network: they are refused too if the refused call
    charged the phone's 1-a-minute limit.
    """
    destination, account, address = _fresh_subjects()
    for _ in range(PER_ADDRESS.limit):
        await check((*_fresh_subjects()[:2], address))
    if await check((destination, account, address)):
        raise RuntimeError("the exhausted address was not refused")
    return not await check((destination, account, _fresh_subjects()[2]))


async def _delete(client: Redis, pattern: str) -> None:
    batch = [key async for key in client.scan_iter(match=pattern, count=1000)]
    for start in range(0, len(batch), 1000):
        await client.unlink(*batch[start : start + 1000])


def _counting_pool(url: str) -> ConnectionPool:
    return ConnectionPool.from_url(url, connection_class=CountingConnection)


def _report(url: str, tallies: dict[str, Tally], partial: dict[str, bool]) -> list[str]:
    baseline = tallies[BASELINE].mean_ms
    lines = [f"{ROUNDS * CHECKS_PER_ROUND} checks per variant, 3 limits per check, on {url}"]
    for name, tally in tallies.items():
        lines.append(
            f"{name:<42} {tally.round_trips:4.2f} round trips/check  "
            f"{tally.mean_ms:6.3f} ms/check  {tally.mean_ms / baseline:5.2f}x PING"
        )
    for name, charged in partial.items():
        verdict = "charged the first two (not all-or-none)" if charged else "charged nothing"
        lines.append(f"refused by its 3rd limit, {name.split(',')[0]}: {verdict}")
    return lines


async def _bench(url: str) -> list[str]:
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    limits_prefix = f"bench-limits-{uuid.uuid4().hex[:8]}"
    ping_pool, ours_pool, limits_pool = (
        _counting_pool(url),
        _counting_pool(url),
        _counting_pool(url),
    )
    ping_client, ours_client = Redis(connection_pool=ping_pool), Redis(connection_pool=ours_pool)
    # limits annotates its storage options too narrowly for a connection pool.
    limits_options: dict[str, Any] = {"connection_pool": limits_pool}
    storage = RedisStorage(
        f"async+{url}", implementation="redispy", key_prefix=limits_prefix, **limits_options
    )
    ours = RedisRateLimiter(ours_client, namespace=namespace, timeout=1)
    limiters = {
        "ours, one Lua script": _ours(ours),
        "limits moving-window, 3 in turn": _limits_in_turn(MovingWindowRateLimiter(storage)),
        "limits sliding-window-counter, 3 in turn": _limits_in_turn(
            SlidingWindowCounterRateLimiter(storage)
        ),
    }
    try:
        tallies = await _measure({BASELINE: _ping(ping_client), **limiters})
        partial = {name: await _charged_after_refusal(check) for name, check in limiters.items()}
    finally:
        await _delete(ours_client, f"{{{namespace}}}:*")
        await _delete(ours_client, f"{limits_prefix}:*")
        for pool in (ping_pool, ours_pool, limits_pool):
            await pool.aclose()
    return _report(url, tallies, partial)


def run() -> list[str]:
    return asyncio.run(_bench(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")))
