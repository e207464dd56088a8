"""Password hashing under load: auth's sign-in rate against raw argon2-cffi, and whether the
event loop stays free while the hashing pool is saturated.

Auth runs as in the hotpath bench (its own process, PostgreSQL, Redis limiter) with
AUTH_TRUSTED_PROXY_HEADER set so the load generator can give each sign-in its own client
address (as a proxy would), and SIGN_IN_ACCOUNTS accounts with a real argon2id hash, each
signed in to at most once per job (the per-account limit allows ten a minute). Measured:

- raw argon2-cffi `verify` of the same hash with the same parameters on as many threads as
  auth's hashing pool (AUTH_PASSWORD_HASH_CONCURRENCY, default 1): the ceiling of sign-ins/s;
- SignIn with SIGN_IN_IN_FLIGHT calls in flight from a separate process: sign-ins/s
  (target >= 0.8 of raw);
- GetAccount p99 at CHEAP_IN_FLIGHT calls in flight, idle and while the sign-ins run from a
  second load generator (target <= 2x: hashing never runs on the event loop).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Final

import argon2

from benchmarks.bench_hotpath import (
    GET_ACCOUNT,
    ROUND_SECONDS,
    WARM_UP_SECONDS,
    Call,
    Tally,
    Target,
    _auth_env,
    _databases,
    _process,
    _seed,
    _start,
    reply,
    send_job,
)
from benchmarks.report import Row, command
from services.auth.settings import AuthSettings

SIGN_IN: Final = "/wallet.auth.v1.AuthService/SignIn"
SIGN_IN_ACCOUNTS: Final = 1024
SIGN_IN_IN_FLIGHT: Final = 8
CHEAP_IN_FLIGHT: Final = 8
HASH_THREADS: Final = int(
    os.environ.get("AUTH_PASSWORD_HASH_CONCURRENCY", "")
    or AuthSettings.model_fields["password_hash_concurrency"].default
)
"""Auth's hashing pool in this run (its setting, or the default): the raw rate uses as many."""
PASSWORD: Final = "bench correct horse battery"  # noqa: S105 - the seeded accounts' own
SIGN_IN_TARGET: Final = 0.8
P99_TARGET: Final = 2.0
_MODULE: Final = "benchmarks.bench_hotpath"


def _raw_argon2_rate(stored_hash: str, seconds: float) -> float:
    """Verifications per second of argon2-cffi alone, HASH_THREADS threads, same parameters."""
    hasher = argon2.PasswordHasher(
        time_cost=2, memory_cost=19_456, parallelism=1, type=argon2.Type.ID
    )
    deadline = time.perf_counter() + seconds

    def work() -> int:
        done = 0
        while time.perf_counter() < deadline:
            hasher.verify(stored_hash, PASSWORD)
            done += 1
        return done

    started = time.perf_counter()
    with ThreadPoolExecutor(HASH_THREADS) as pool:
        total = sum(pool.map(lambda _: work(), range(HASH_THREADS)))
    return total / (time.perf_counter() - started)


def _sign_ins(count: int) -> list[Call]:
    """One SignIn per seeded account, each with a fresh request id and client address."""
    from wallet.auth.v1 import auth_service_pb2
    from wallet.common.v1 import client_pb2, contact_pb2

    calls = []
    for number in range(count):
        serial = uuid.uuid4().int
        request = auth_service_pb2.SignInRequest(
            request_id=uuid.uuid4().hex,
            identifier=contact_pb2.Contact(email=f"bench-{number:04d}@example.com"),
            password=PASSWORD,
            client=client_pb2.ClientContext(device_id=f"bench-{number}"),
        )
        address = f"10.{serial >> 16 & 255}.{serial >> 8 & 255}.{serial & 255}"
        calls.append(Call(request.SerializeToString(), None, address))
    return calls


def _reads(pairs: list[tuple[str, str]]) -> list[Call]:
    from services.auth.bootstrap import DEVELOPMENT_KEYS_LABEL
    from wallet.auth.v1 import auth_service_pb2
    from walletcore.tokens import SigningKeyRing, TokenIssuer

    users = TokenIssuer("wallet-auth", SigningKeyRing.development(DEVELOPMENT_KEYS_LABEL))
    body = auth_service_pb2.GetAccountRequest().SerializeToString()
    return [
        Call(
            body,
            users.access_token(
                account_id=account_id, session_id=session_id, ttl=timedelta(minutes=15)
            ).token,
        )
        for account_id, session_id in pairs
    ]


async def _bench() -> list[str | Row]:
    from services.auth.adapters.passwords import PasswordHasher

    server_url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    hasher = PasswordHasher(max_concurrent=1)
    stored_hash = await hasher.hash(PASSWORD)
    hasher.close()
    async with _databases(server_url, ("auth",)) as urls:
        env = {**_auth_env(urls["auth"], redis_url), "AUTH_TRUSTED_PROXY_HEADER": "x-forwarded-for"}
        with tempfile.TemporaryDirectory() as scratch_dir, ExitStack() as stack:
            auth, ports = _start(stack, Path(scratch_dir), "auth", env)
            loads = [
                stack.enter_context(_process(["-m", _MODULE, "load"], {}, sys.stderr.buffer))
                for _ in range(2)
            ]
            pairs = await _seed(env, SIGN_IN_ACCOUNTS, stored_hash)
            public = f"127.0.0.1:{ports['public']}"
            sign_in = Target("SignIn", public, SIGN_IN, auth.pid)
            read = Target("GetAccount", public, GET_ACCOUNT, auth.pid)
            reads = _reads(pairs)

            failures: Counter[str] = Counter()

            def timed(
                load: subprocess.Popen[bytes], target: Target, calls: list[Call], in_flight: int
            ) -> None:
                send_job(load, target, calls, ROUND_SECONDS, in_flight)

            def collect(load: subprocess.Popen[bytes], target: Target) -> Tally:
                result = reply(load, target, tolerate=True)
                failures.update({f"{target.name} {k}": v for k, v in result["failures"].items()})
                return Tally(result["latencies"], result["seconds"])

            def measure() -> tuple[float, Tally, Tally, Tally, Tally]:
                raw = _raw_argon2_rate(stored_hash, ROUND_SECONDS)
                send_job(loads[0], sign_in, _sign_ins(SIGN_IN_ACCOUNTS), WARM_UP_SECONDS)
                collect(loads[0], sign_in)
                send_job(loads[1], read, reads, WARM_UP_SECONDS, CHEAP_IN_FLIGHT)
                collect(loads[1], read)
                timed(loads[1], read, reads, CHEAP_IN_FLIGHT)
                idle = collect(loads[1], read)
                timed(loads[0], sign_in, _sign_ins(SIGN_IN_ACCOUNTS), SIGN_IN_IN_FLIGHT)
                alone = collect(loads[0], sign_in)
                # Both at once: the sign-ins saturate the pool while the reads are timed.
                timed(loads[0], sign_in, _sign_ins(SIGN_IN_ACCOUNTS), SIGN_IN_IN_FLIGHT)
                timed(loads[1], read, reads, CHEAP_IN_FLIGHT)
                loaded_sign_in = collect(loads[0], sign_in)
                loaded = collect(loads[1], read)
                return raw, alone, idle, loaded, loaded_sign_in

            raw, alone, idle, loaded, loaded_sign_in = await asyncio.to_thread(measure)
    return _report(raw, alone, idle, loaded, loaded_sign_in, dict(failures))


def _report(
    raw: float,
    alone: Tally,
    idle: Tally,
    loaded: Tally,
    loaded_sign_in: Tally,
    failures: dict[str, int],
) -> list[str | Row]:
    ratio = alone.rate / raw
    p99_ratio = loaded.percentile(99) / idle.percentile(99)
    # A failed call (a stalled sign-in past the 30 s deadline) is a miss, and said so.
    note = ", ".join(f"{count} {what}" for what, count in failures.items())
    return [
        f"raw argon2-cffi verify, {HASH_THREADS} threads: {raw:.1f}/s; SignIn with "
        f"{SIGN_IN_IN_FLIGHT} in flight: {alone.rate:.1f}/s (p50 {alone.percentile(50) * 1e3:.0f} "
        f"ms), {ratio:.2f}x raw",
        f"GetAccount ({CHEAP_IN_FLIGHT} in flight) p99 idle {idle.percentile(99) * 1e3:.1f} ms, "
        f"while sign-ins run ({loaded_sign_in.rate:.1f}/s) {loaded.percentile(99) * 1e3:.1f} ms: "
        f"{p99_ratio:.2f}x",
        Row(
            "sign-in throughput vs raw argon2-cffi",
            {
                "sign-ins/s": round(alone.rate, 1),
                "raw verify/s": round(raw, 1),
                "x raw": round(ratio, 2),
            },
            command("signin"),
            target=f">= {SIGN_IN_TARGET} x raw",
            met=ratio >= SIGN_IN_TARGET and not failures,
            note=note,
        ),
        Row(
            "GetAccount p99 while sign-ins saturate hashing",
            {
                "idle p99 ms": round(idle.percentile(99) * 1e3, 2),
                "loaded p99 ms": round(loaded.percentile(99) * 1e3, 2),
                "x idle": round(p99_ratio, 2),
                "sign-ins/s meanwhile": round(loaded_sign_in.rate, 1),
            },
            command("signin"),
            target=f"<= {P99_TARGET:.0f}x idle",
            met=p99_ratio <= P99_TARGET and not failures,
            note=note,
        ),
    ]


def run() -> list[str | Row]:
    return asyncio.run(_bench())
