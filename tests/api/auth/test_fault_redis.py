"""Fault: the rate limiter's Redis crashes under load and comes back on the same port.

Auth runs on a `redis-server` of this test's own (tests/support/faults.py). While it is gone
the limited security RPCs (SignIn, StartCredentialReset) fail closed with UNAVAILABLE, the
RPCs without limits (GetAccount, GetAccountStatus) keep answering, and once Redis is back the
limited RPCs succeed again without auth being restarted.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.api.auth.harness import AuthTestApp, StartAuth, phone_contact, service_metadata
from tests.api.auth.recovery_helpers import Holder, new_holder, start_reset
from tests.support.faults import OwnRedis, code_of, eventually, report_fault
from wallet.auth.v1 import account_status_service_pb2 as status_pb
from wallet.auth.v1 import auth_service_pb2 as pb

REDIS_PORT = 30300
OK, UNAVAILABLE = grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE
KYC = service_metadata("kyc")


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[OwnRedis]:
    async with OwnRedis(REDIS_PORT, tmp_path) as redis:
        yield redis


@pytest.fixture
def auth_backend(sqlite_url: str, own_redis: OwnRedis, redis_prefix: str) -> dict[str, Any]:
    """SQLite for the data, the test's own Redis for the limits."""
    return {
        "database_url": sqlite_url,
        "rate_limiter": "redis",
        "redis_url": own_redis.url,
        "redis_timeout_seconds": 2.0,
        "rate_limit_namespace": redis_prefix,
    }


Call = Callable[[], Awaitable[object]]


def limited_calls(app: AuthTestApp, holder: Holder, sign_ins: int, resets: int) -> list[Call]:
    """Sign-ins of `holder` and password-reset starts for phones no account has (each one a
    fresh destination, so no per-destination limit is reached while Redis is up)."""
    calls: list[Call] = [lambda: app.sign_in(holder.by_phone) for _ in range(sign_ins)]
    for _ in range(resets):
        phone = app.new_phone()
        calls.append(lambda phone=phone: start_reset(app, phone_contact(phone)))  # type: ignore[misc]
    return calls


def unlimited_calls(app: AuthTestApp, holder: Holder, count: int) -> list[Call]:
    own = (("authorization", f"Bearer {holder.tokens.access_token}"),)
    status = status_pb.GetAccountStatusRequest(account_id=holder.account_id)
    calls: list[Call] = []
    for index in range(count):
        if index % 2:
            calls.append(lambda: app.public.GetAccount(pb.GetAccountRequest(), metadata=own))
        else:
            calls.append(lambda: app.internal.GetAccountStatus(status, metadata=KYC))
    return calls


async def answers(calls: list[Call]) -> Counter[grpc.StatusCode]:
    return Counter(await asyncio.gather(*(code_of(call()) for call in calls)))


async def test_limited_rpcs_fail_closed_while_redis_is_down_and_recover_when_it_returns(
    start_auth: StartAuth, own_redis: OwnRedis
) -> None:
    async with start_auth() as app:
        holder = await new_holder(app)

        # Up: everything answers.
        limited, unlimited = await asyncio.gather(
            answers(limited_calls(app, holder, sign_ins=2, resets=3)),
            answers(unlimited_calls(app, holder, 20)),
        )
        assert (limited, unlimited) == (Counter({OK: 5}), Counter({OK: 20}))

        # Redis killed while a batch is in flight, once its first call has answered: a limited
        # call either got its counters in before the kill or is refused; nothing else fails.
        batch = [
            asyncio.ensure_future(code_of(call()))
            for call in limited_calls(app, holder, sign_ins=4, resets=10)
        ]
        unlimited_batch = asyncio.ensure_future(answers(unlimited_calls(app, holder, 20)))
        await asyncio.wait(batch, return_when=asyncio.FIRST_COMPLETED)
        await own_redis.stop()
        in_flight = Counter(await asyncio.gather(*batch))
        in_flight_unlimited = await unlimited_batch
        assert set(in_flight) <= {OK, UNAVAILABLE}
        assert in_flight[OK] >= 1
        assert sum(in_flight.values()) == 14
        assert in_flight_unlimited == Counter({OK: 20})

        # Down: every limited call fails closed, the others keep answering.
        down, down_unlimited = await asyncio.gather(
            answers(limited_calls(app, holder, sign_ins=10, resets=10)),
            answers(unlimited_calls(app, holder, 40)),
        )
        assert down == Counter({UNAVAILABLE: 20})
        assert down_unlimited == Counter({OK: 40})

        # Back on the same port, with every counter lost: auth reconnects by itself.
        await own_redis.start()

        async def signs_in() -> bool:
            return await code_of(app.sign_in(holder.by_phone)) == OK

        looks = await eventually(signs_in, "a sign-in after Redis came back")
        after, after_unlimited = await asyncio.gather(
            answers(limited_calls(app, holder, sign_ins=2, resets=3)),
            answers(unlimited_calls(app, holder, 20)),
        )
        assert (after, after_unlimited) == (Counter({OK: 5}), Counter({OK: 20}))

    report_fault(
        "Redis killed and restarted under load",
        f"limited calls in flight at the kill: {in_flight[OK]} OK, "
        f"{in_flight[UNAVAILABLE]} UNAVAILABLE, 0 other; "
        f"while down: {down[UNAVAILABLE]}/20 limited UNAVAILABLE, "
        f"{down_unlimited[OK] + in_flight_unlimited[OK]}/60 unlimited OK; "
        f"after restart: first sign-in OK on look {looks}, then 5/5 limited OK, no auth restart",
    )
