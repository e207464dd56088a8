"""Rate limiting on real Redis: our one-trip Lua script against the `limits` library.

The RPC under test carries three limits (per destination, per account, per client address), the
shape of "send a code". Measured per check, on REDIS_URL (default redis://127.0.0.1:6379/0):
Redis round trips (counted on the wire) and mean latency, for our script, for `limits` checking
the three one after another (moving window and sliding-window counter), and for one plain PING,
the baseline every ratio is taken against. Then it shows why `limits` cannot be all-or-none.
Every check uses fresh subjects, so each one is admitted and writes all three counters.

Then throughput: checks per second of our limiter from CONCURRENCY tasks on one event loop,
against `redis-benchmark` (when installed) running the very same script by EVALSHA with the same
three keys and limits from CONCURRENCY connections on the same Redis: what Redis itself can do.
"""

from __future__ import annotations

import asyncio
import csv
import itertools
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from limits import RateLimitItem, RateLimitItemPerHour, RateLimitItemPerMinute
from limits.aio.storage import RedisStorage
from limits.aio.strategies import (
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from redis.asyncio import Connection, ConnectionPool, Redis

from benchmarks.report import QUICK, Row, command
from walletcore.ratelimit import Hit, Policy, RedisRateLimiter
from walletcore.ratelimit.redis import _CHECK_AND_RECORD

ROUNDS = 5
CHECKS_PER_ROUND = 500
WARM_UP_CHECKS = 50
BASELINE = "PING (baseline)"
OURS = "ours, one Lua script"
CONCURRENCY = 16
THROUGHPUT_SECONDS = 3.0 if QUICK else 10.0
EVALSHA_REQUESTS = 20_000 if QUICK else 100_000

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


async def _throughput(check: Check) -> float:
    """Checks per second from CONCURRENCY tasks for THROUGHPUT_SECONDS."""
    done = 0
    deadline = time.perf_counter() + THROUGHPUT_SECONDS

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            if not await check(_fresh_subjects()):
                raise RuntimeError("a check with fresh subjects was refused")
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return done / (time.perf_counter() - started)


def _redis_benchmark_evalsha(url: str, sha: str, namespace: str) -> float | None:
    """redis-benchmark's rate of our script with three fresh-ish keys per call, or None when
    redis-benchmark is not installed."""
    program = shutil.which("redis-benchmark")
    if program is None:
        return None
    parts = urlsplit(url)
    keys = [f"{{{namespace}}}:rb{n}:__rand_int__" for n in range(3)]
    args = []
    for policy in (PER_DESTINATION, PER_ACCOUNT, PER_ADDRESS):
        args += [str(policy.limit), str(policy.period_seconds * 1_000_000), "1"]
    database = parts.path.lstrip("/") or "0"
    completed = subprocess.run(  # noqa: S603 - redis-benchmark from PATH, fixed arguments
        [
            program,
            "-h",
            parts.hostname or "127.0.0.1",
            "-p",
            str(parts.port or 6379),
            "--dbnum",
            database,
            "-n",
            str(EVALSHA_REQUESTS),
            "-c",
            str(CONCURRENCY),
            "-r",
            "1000000000",
            "--csv",
            "EVALSHA",
            sha,
            "3",
            *keys,
            *args,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    rows = list(csv.reader(completed.stdout.splitlines()))
    return float(rows[-1][1])


async def _delete(client: Redis, pattern: str) -> None:
    batch = [key async for key in client.scan_iter(match=pattern, count=1000)]
    for start in range(0, len(batch), 1000):
        await client.unlink(*batch[start : start + 1000])


def _counting_pool(url: str) -> ConnectionPool:
    return ConnectionPool.from_url(url, connection_class=CountingConnection)


def _report(
    url: str,
    tallies: dict[str, Tally],
    partial: dict[str, bool],
    rate: float,
    evalsha_rate: float | None,
) -> list[str | Row]:
    baseline = tallies[BASELINE].mean_ms
    ours = tallies[OURS]
    lines: list[str | Row] = [
        f"{ROUNDS * CHECKS_PER_ROUND} checks per variant, 3 limits per check, on {url}",
        Row(
            "rate limiter: Redis round trips per check",
            {"round trips": round(ours.round_trips, 2), "ms/check": round(ours.mean_ms, 3)},
            command("ratelimit"),
            target="exactly 1",
            met=ours.round_trips == 1,
        ),
    ]
    if evalsha_rate is None:
        lines.append(
            Row(
                "rate limiter: checks/s vs redis-benchmark EVALSHA",
                {"checks/s": round(rate)},
                command("ratelimit"),
                note="redis-benchmark is not installed: no EVALSHA baseline",
            )
        )
    else:
        lines.append(
            Row(
                "rate limiter: checks/s vs redis-benchmark EVALSHA",
                {
                    "checks/s": round(rate),
                    "EVALSHA/s": round(evalsha_rate),
                    "x EVALSHA": round(rate / evalsha_rate, 2),
                },
                command("ratelimit"),
                note=f"{CONCURRENCY} concurrent, same script and keys",
            )
        )
    lines.append(
        f"our checks/s from {CONCURRENCY} tasks: {rate:.0f}; redis-benchmark EVALSHA of the "
        f"same script, {CONCURRENCY} connections: "
        + ("not installed" if evalsha_rate is None else f"{evalsha_rate:.0f}/s")
    )
    for name, tally in tallies.items():
        lines.append(
            f"{name:<42} {tally.round_trips:4.2f} round trips/check  "
            f"{tally.mean_ms:6.3f} ms/check  {tally.mean_ms / baseline:5.2f}x PING"
        )
    for name, charged in partial.items():
        verdict = "charged the first two (not all-or-none)" if charged else "charged nothing"
        lines.append(f"refused by its 3rd limit, {name.split(',')[0]}: {verdict}")
    return lines


async def _bench(url: str) -> list[str | Row]:
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
        OURS: _ours(ours),
        "limits moving-window, 3 in turn": _limits_in_turn(MovingWindowRateLimiter(storage)),
        "limits sliding-window-counter, 3 in turn": _limits_in_turn(
            SlidingWindowCounterRateLimiter(storage)
        ),
    }
    try:
        tallies = await _measure({BASELINE: _ping(ping_client), **limiters})
        partial = {name: await _charged_after_refusal(check) for name, check in limiters.items()}
        rate = await _throughput(limiters[OURS])
        sha = await ours_client.script_load(_CHECK_AND_RECORD)
        evalsha_rate = await asyncio.to_thread(_redis_benchmark_evalsha, url, sha, namespace)
    finally:
        await _delete(ours_client, f"{{{namespace}}}:*")
        await _delete(ours_client, f"{limits_prefix}:*")
        for pool in (ping_pool, ours_pool, limits_pool):
            await pool.aclose()
    return _report(url, tallies, partial, rate, evalsha_rate)


def run() -> list[str | Row]:
    return asyncio.run(_bench(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")))
