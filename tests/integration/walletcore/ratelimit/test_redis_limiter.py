"""The Redis limiter on real Redis: exact under races, all-or-none, one round trip, fail closed."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from redis.asyncio import BlockingConnectionPool, Connection, ConnectionPool, Redis
from redis.crc import key_slot

from walletcore.errors import Unavailable
from walletcore.ratelimit import Hit, Policy, RedisRateLimiter

SECOND_US = 1_000_000


class CountingConnection(Connection):
    """Counts what goes on the wire: one send per command, so one per round trip."""

    sends = 0

    async def send_packed_command(self, *args: Any, **kwargs: Any) -> None:
        type(self).sends += 1
        await super().send_packed_command(*args, **kwargs)


@pytest.fixture
async def redis(redis_url: str, redis_prefix: str) -> AsyncIterator[Redis]:
    """A client for inspecting Redis; removes this test's keys afterwards."""
    client = Redis.from_url(redis_url)
    yield client
    async for key in client.scan_iter(match=f"{{{redis_prefix}}}:*"):
        await client.delete(key)
    await client.aclose()


@pytest.fixture
async def limiter(
    redis: Redis, redis_url: str, redis_prefix: str
) -> AsyncIterator[RedisRateLimiter]:
    limiter = RedisRateLimiter(redis_url, namespace=redis_prefix)
    yield limiter
    await limiter.close()


@pytest.fixture
async def pooled_limiter(
    redis: Redis, redis_url: str, redis_prefix: str
) -> AsyncIterator[RedisRateLimiter]:
    """A limiter sharing 20 connections among its callers, as a busy server would."""
    pool = BlockingConnectionPool.from_url(redis_url, max_connections=20)
    yield RedisRateLimiter(Redis(connection_pool=pool), namespace=redis_prefix, timeout=5)
    await pool.aclose()


async def test_racing_callers_get_exactly_the_limit(
    pooled_limiter: RedisRateLimiter, redis: Redis
) -> None:
    policy = Policy("codes_sent", 37, 3600)
    hit = Hit(policy, "+14155550100")

    decisions = await asyncio.gather(*(pooled_limiter.check([hit]) for _ in range(200)))

    assert sum(decision.allowed for decision in decisions) == 37
    assert await redis.llen(pooled_limiter.key_for(policy, hit.subject)) == 37
    refused = [decision for decision in decisions if not decision.allowed]
    assert all(0 < decision.retry_after_seconds <= 3600 for decision in refused)
    assert all(decision.exceeded == (policy,) for decision in refused)


async def test_racing_calls_count_all_their_limits_or_none(
    pooled_limiter: RedisRateLimiter, redis: Redis
) -> None:
    per_account = Policy("per_account", 20, 3600)
    per_address = Policy("per_address", 50, 3600)
    both = [Hit(per_account, "account-1"), Hit(per_address, "10.0.0.1")]
    address_only = [Hit(per_address, "10.0.0.1")]

    calls = [pooled_limiter.check(both if i % 2 else address_only) for i in range(200)]
    decisions = await asyncio.gather(*calls)

    admitted_both = sum(d.allowed for i, d in enumerate(decisions) if i % 2)
    admitted_address_only = sum(d.allowed for i, d in enumerate(decisions) if not i % 2)
    account_count = await redis.llen(pooled_limiter.key_for(per_account, "account-1"))
    address_count = await redis.llen(pooled_limiter.key_for(per_address, "10.0.0.1"))
    assert admitted_both <= 20
    assert account_count == admitted_both
    assert address_count == admitted_both + admitted_address_only == 50


async def test_the_window_slides_on_the_redis_clock(
    limiter: RedisRateLimiter, redis: Redis
) -> None:
    policy = Policy("two_per_minute", 2, 60)
    key = limiter.key_for(policy, "10.0.0.1")
    seconds, micros = await redis.time()
    now_us = seconds * SECOND_US + micros
    # Seed the log as if calls had been admitted 61 s and 30 s ago (newest first).
    await redis.rpush(key, now_us - 30 * SECOND_US, now_us - 61 * SECOND_US)

    assert (await limiter.check([Hit(policy, "10.0.0.1")])).allowed
    refused = await limiter.check([Hit(policy, "10.0.0.1")])

    assert not refused.allowed
    assert 29 < refused.retry_after_seconds <= 30


async def test_each_check_is_one_round_trip(
    redis: Redis, redis_url: str, redis_prefix: str
) -> None:
    pool = ConnectionPool.from_url(redis_url, connection_class=CountingConnection)
    limiter = RedisRateLimiter(Redis(connection_pool=pool), namespace=redis_prefix)
    hits = [
        Hit(Policy("per_destination", 1000, 60), "+14155550100"),
        Hit(Policy("per_account", 1000, 60), "account-1"),
        Hit(Policy("per_address", 1000, 60), "10.0.0.1"),
    ]
    try:
        await limiter.check(hits)  # connects and, on a fresh server, loads the script
        sends_before = CountingConnection.sends
        evalsha_before = await evalsha_calls(redis)

        for _ in range(25):
            assert (await limiter.check(hits)).allowed

        assert CountingConnection.sends - sends_before == 25
        assert await evalsha_calls(redis) - evalsha_before == 25
    finally:
        await pool.aclose()


async def evalsha_calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def test_a_server_that_forgot_the_script_gets_it_again(
    limiter: RedisRateLimiter, redis: Redis
) -> None:
    real_sha = limiter._script.sha
    limiter._script.sha = "0" * 40  # what a restarted or failed-over server answers NOSCRIPT to

    assert (await limiter.check([Hit(Policy("p", 1, 60), "s")])).allowed
    assert not (await limiter.check([Hit(Policy("p", 1, 60), "s")])).allowed
    assert limiter._script.sha == real_sha


async def test_keys_expire_with_their_period_and_hide_the_subject(
    limiter: RedisRateLimiter, redis: Redis, redis_prefix: str
) -> None:
    minute, day = Policy("per_minute", 5, 60), Policy("per_day", 5, 86400)
    subjects = ["+8613800138000", "alice@example.com", "203.0.113.7"]
    for subject in subjects:
        await limiter.check([Hit(minute, subject), Hit(day, subject)])

    keys = [key.decode() async for key in redis.scan_iter(match=f"{{{redis_prefix}}}:*")]

    assert len(keys) == 6
    for key in keys:
        assert not any(subject in key for subject in subjects)
        period_ms = 60_000 if ":per_minute:" in key else 86_400_000
        assert 0 < await redis.pttl(key) <= period_ms
    assert {key_slot(key.encode()) for key in keys} == {key_slot(f"{{{redis_prefix}}}".encode())}


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_an_unreachable_redis_fails_closed(closed_port: int) -> None:
    limiter = RedisRateLimiter(f"redis://127.0.0.1:{closed_port}/0", namespace="test")
    try:
        async with asyncio.timeout(5):
            with pytest.raises(Unavailable) as refused:
                await limiter.check([Hit(Policy("p", 1, 60), "+14155550100")])
    finally:
        await limiter.close()
    assert "+14155550100" not in str(refused.value)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never answers: a hung Redis."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    yield int(listener.getsockname()[1])
    listener.close()


@pytest.mark.parametrize("client_from", ["url", "caller"])
async def test_a_hung_redis_fails_closed_after_the_timeout(
    silent_server: int, client_from: str
) -> None:
    url = f"redis://127.0.0.1:{silent_server}/0"
    # A caller's client without socket timeouts still gets the limiter's deadline.
    redis: str | Redis = url if client_from == "url" else Redis.from_url(url, socket_timeout=None)
    limiter = RedisRateLimiter(redis, namespace="test", timeout=0.2)
    try:
        async with asyncio.timeout(5):
            with pytest.raises(Unavailable):
                await limiter.check([Hit(Policy("p", 1, 60), "s")])
    finally:
        await limiter.close()
        if isinstance(redis, Redis):
            await redis.aclose()
