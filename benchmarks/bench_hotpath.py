"""Auth's hot path under load, against a bare grpc.aio echo server as the machine's ceiling.

Every kyc, binding and refund request goes through auth's per-request checks, so their cost
multiplies across the system. Auth runs as `python -m services.auth` on PostgreSQL (a database
of its own, created and dropped here, on DATABASE_URL, default
postgresql://postgres@127.0.0.1:5432/test) with the Redis limiter (REDIS_URL), each in its own
process; the echo server runs in another. One load generator, in a process of its own, drives
each target with the same number of calls in flight:

- the echo server: the ceiling, what grpc.aio and this machine can do at all;
- the same echo behind walletcore's server pipeline (access-token check, rate limit, metrics,
  the per-RPC JSON log line) with no database: the floor any service's RPC starts from;
- `AuthService.GetAccount` with a user's access token (so the session check included);
- `AccountStatusService.GetAccountStatus` with kyc's service token, for an account and session.

The targets take turns round by round, so drift on the machine hits them all alike. Printed:
requests/s, p50 and p99 latency and the server's CPU per call for each, the ratios to the
ceiling (targets: at least 0.5 of its requests/s, p99 under 3x its p99) and auth's resident
memory after the run (target: under 150 MiB). QUICK=1 runs shorter rounds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Final

import grpc
import grpc.aio
from google.protobuf import wrappers_pb2

from benchmarks.bench_server import METHOD, pipeline_server, register_echo
from benchmarks.report import Row, command

IN_FLIGHT: Final = 64
FORWARDED_HEADER: Final = "x-forwarded-for"
ACCOUNTS: Final = 256
QUICK: Final = os.environ.get("QUICK", "") not in ("", "0")
ROUNDS: Final = 2 if QUICK else 3
ROUND_SECONDS: Final = 2.0 if QUICK else 7.0
WARM_UP_SECONDS: Final = 0.5 if QUICK else 3.0
STARTUP_TIMEOUT: Final = 60.0

RATIO_TARGET: Final = 0.5
P99_TARGET: Final = 3.0
RSS_TARGET_MIB: Final = 150

GET_ACCOUNT: Final = "/wallet.auth.v1.AuthService/GetAccount"
GET_ACCOUNT_STATUS: Final = "/wallet.auth.v1.AccountStatusService/GetAccountStatus"

CEILING: Final = "bare grpc.aio echo (ceiling)"
PIPELINE: Final = "walletcore pipeline echo (no database)"
USER_READ: Final = "AuthService.GetAccount (user token)"
STATUS_READ: Final = "GetAccountStatus (service token)"
KYC_READ: Final = "KycService.GetVerification (user token)"
BINDING_READ: Final = "BindingService.ListCards (user token)"
REFUND_READ: Final = "RefundService.ListRefunds (user token)"
KYC_SCALED: Final = "KycService.GetVerification, 2 processes"
BINDING_SCALED: Final = "BindingService.ListCards, 2 processes"
REFUND_SCALED: Final = "RefundService.ListRefunds, 2 processes"
SCALED: Final = {KYC_SCALED: KYC_READ, BINDING_SCALED: BINDING_READ, REFUND_SCALED: REFUND_READ}
"""Each scaling-out row and the one-process row it is compared with."""
SCALED_CONNECTIONS: Final = 8
"""Connections the load generator opens to the two processes of a service sharing one port
(SO_REUSEPORT, `<PREFIX>REUSE_PORT`): the kernel hands each new connection to one of them."""
PEER_RATIO_TARGET: Final = 0.35

GET_VERIFICATION: Final = "/wallet.kyc.v1.KycService/GetVerification"
LIST_CARDS: Final = "/wallet.binding.v1.BindingService/ListCards"
LIST_REFUNDS: Final = "/wallet.refund.v1.RefundService/ListRefunds"

ANSWERS: Final = {KYC_READ: ("OK", "NOT_FOUND"), KYC_SCALED: ("OK", "NOT_FOUND")}
"""Codes that count as answers: a seeded account has no kyc case, so GetVerification answers
NOT_FOUND after the token check and the per-request account check in auth, the path measured."""

_CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")
_NO_SIGN_IN: Final = "not an argon2 hash"
"""The seeded accounts' password hash: they are never signed in to, only read."""
_MODULE: Final = "benchmarks.bench_hotpath"
SHARED_PORTS: Final = ("public", "admin", "internal")
"""The ports two processes of one service share; each has a metrics port of its own."""
PIPELINE_KEYS_LABEL: Final = "bench"
_ROOT: Final = Path(__file__).resolve().parent.parent


# -- the separate processes: echo server and load generator -------------------------------------


async def _serve_echo() -> None:
    server = grpc.aio.server()
    register_echo(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()


async def _serve_pipeline() -> None:
    from walletcore.logging import configure_logging
    from walletcore.tokens import SigningKeyRing

    configure_logging("bench")
    server, port = await pipeline_server(SigningKeyRing.development(PIPELINE_KEYS_LABEL))
    print(port, flush=True)
    await server.run_until_signal()


@dataclass(frozen=True)
class Call:
    """One request the load generator may send: serialized body, bearer token (or none) and
    the client address a trusted proxy would forward (or none)."""

    body: bytes
    token: str | None
    address: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return {"body": self.body.hex(), "token": self.token, "address": self.address}

    def metadata(self) -> tuple[tuple[str, str], ...] | None:
        pairs = []
        if self.token:
            pairs.append(("authorization", f"Bearer {self.token}"))
        if self.address:
            pairs.append((FORWARDED_HEADER, self.address))
        return tuple(pairs) or None


async def _drive(
    target: str,
    method: str,
    calls: list[Call],
    seconds: float,
    answers: Sequence[str] = ("OK",),
    in_flight: int = IN_FLIGHT,
    connections: int = 1,
) -> dict[str, Any]:
    """Keeps `in_flight` calls going for `seconds` over `connections` TCP connections (the
    calls spread evenly); a code outside `answers` is a failure."""
    # A local subchannel pool each: channels of one process to one address would otherwise
    # share a single connection.
    options = [("grpc.use_local_subchannel_pool", 1)] if connections > 1 else []
    channels = [grpc.aio.insecure_channel(target, options=options) for _ in range(connections)]
    try:
        # No serializers: the bodies are already bytes, and the answers are only counted.
        senders: list[grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]] = [
            channel.unary_unary(method) for channel in channels
        ]
        prepared = [(call.body, call.metadata()) for call in calls]
        latencies: list[float] = []
        failures: dict[str, int] = {}
        deadline = time.perf_counter() + seconds

        async def worker(offset: int) -> None:
            index = offset
            send = senders[offset % connections]
            while time.perf_counter() < deadline:
                body, metadata = prepared[index % len(prepared)]
                index += in_flight
                started = time.perf_counter()
                try:
                    await send(body, metadata=metadata, timeout=30)
                except grpc.aio.AioRpcError as error:
                    if error.code().name not in answers:
                        failures[error.code().name] = failures.get(error.code().name, 0) + 1
                        continue
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker(offset) for offset in range(in_flight)))
        elapsed = time.perf_counter() - started
    finally:
        for channel in channels:
            await channel.close()
    return {"latencies": latencies, "seconds": elapsed, "failures": failures}


def _load_main() -> None:
    """Reads one job per line on stdin, answers each with one JSON line on stdout."""
    for line in sys.stdin:
        job = json.loads(line)
        calls = [Call(bytes.fromhex(c["body"]), c["token"], c["address"]) for c in job["calls"]]
        result = asyncio.run(
            _drive(
                job["target"],
                job["method"],
                calls,
                job["seconds"],
                job["answers"],
                job["in_flight"],
                job.get("connections", 1),
            )
        )
        print(json.dumps(result), flush=True)


# -- the parent: database, processes, seeding, report -------------------------------------------


@dataclass
class Tally:
    latencies: list[float]
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    cpu_split: list[float] | None = None
    """CPU seconds per server process of the target, in `Target.pids` order."""

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile(self, p: float) -> float:
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[int(p) - 1]

    @property
    def cpu_ms_per_call(self) -> float:
        return 1000 * self.cpu_seconds / len(self.latencies)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc status")


@asynccontextmanager
async def _databases(server_url: str, services: Sequence[str]) -> AsyncIterator[dict[str, str]]:
    """A database of its own for each of `services`, created here and dropped afterwards."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    from walletcore.db import normalize_url

    run = uuid.uuid4().hex[:10]
    names = {service: f"bench_{service}_{run}" for service in services}
    admin = create_async_engine(normalize_url(server_url), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            for name in names.values():
                await connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield {
            service: make_url(server_url).set(database=name).render_as_string(hide_password=False)
            for service, name in names.items()
        }
    finally:
        async with admin.connect() as connection:
            for name in names.values():
                await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@contextmanager
def _process(
    args: Sequence[str], env: dict[str, str], log: IO[bytes], *, output_to_log: bool = False
) -> Iterator[Any]:
    """`args` under this interpreter, stdin a pipe, stderr to `log`; stdout a pipe for the
    parent to read, or with `output_to_log` the log too. A service's stdout must never be an
    unread pipe: the development console transports print every notification there, and a
    full pipe blocks the service's event loop (sign-ins stalled this way, 30 s deadlines)."""
    process = subprocess.Popen(  # noqa: S603 - this interpreter and fixed module names, no shell
        [sys.executable, *args],
        env={**os.environ, **env},
        stdin=subprocess.PIPE,
        stdout=log if output_to_log else subprocess.PIPE,
        stderr=log,
        cwd=_ROOT,
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_ports(
    log_path: Path, process: subprocess.Popen[bytes], name: str = "auth"
) -> dict[str, int]:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}: {_tail(log_path)}")
        for line in log_path.read_text(errors="replace").splitlines():
            if '"server started"' in line:
                ports: dict[str, int] = json.loads(line)["ports"]
                return ports
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not start in {STARTUP_TIMEOUT:.0f} s: {_tail(log_path)}")


def _port_of(process: subprocess.Popen[bytes]) -> int:
    """The port a server process printed on its first line."""
    assert process.stdout is not None
    return int(process.stdout.readline())


def _tail(path: Path) -> str:
    return " | ".join(path.read_text(errors="replace").splitlines()[-5:])


def _service_env(service: str, database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    """`service`'s development environment on its PostgreSQL database and the Redis limiter;
    `extra` are further settings of that service (names without the prefix)."""
    prefix = service.upper() + "_"
    settings = {
        "PROFILE": "development",
        "DATABASE_URL": database_url,
        "RATE_LIMITER": "redis",
        "REDIS_URL": redis_url,
        "RATE_LIMIT_NAMESPACE": f"bench-{service}-{uuid.uuid4().hex[:8]}",
        "MIGRATE_ON_START": "true",
        "REFLECTION": "false",
        **{name.upper(): value for name, value in extra.items()},
    }
    return {prefix + name: value for name, value in settings.items()}


def _auth_env(database_url: str, redis_url: str) -> dict[str, str]:
    return _service_env("auth", database_url, redis_url)


async def _seed(
    env: dict[str, str], count: int = ACCOUNTS, password_hash: str = _NO_SIGN_IN
) -> list[tuple[str, str]]:
    """`count` accounts (a phone and `bench-NNNN@example.com` each) with one session each,
    written with auth's own repositories and keys; returns their (account id, session id)."""
    from services.auth.adapters import tables
    from services.auth.adapters.repositories import Protection
    from services.auth.adapters.uow import SqlAuthUnitOfWork
    from services.auth.bootstrap import AuthKeys
    from services.auth.domain.account import Account
    from services.auth.domain.contacts import Email, Phone, VerifiedContact
    from services.auth.domain.events import NO_CLIENT
    from services.auth.domain.sessions import Session
    from services.auth.settings import AuthSettings
    from walletcore.db import create_engine, session_factory
    from walletcore.notify import NotificationOutbox

    # The development keys auth derives for itself, as it runs on the same settings.
    settings = AuthSettings(database_url=env["AUTH_DATABASE_URL"])
    keys = AuthKeys.from_settings(settings)
    engine = create_engine(settings.database_url)
    protection = Protection(encryption=keys.encryption, contact_index=keys.contact_index)
    outbox = NotificationOutbox(tables.outbox, keys.encryption)
    now = datetime.now(UTC)
    pairs = []
    try:
        async with SqlAuthUnitOfWork(
            session_factory(engine), protection=protection, outbox=outbox
        ) as uow:
            for number in range(count):
                account_id, session_id = f"bench-{number:04d}", f"bench-session-{number:04d}"
                contacts = [
                    VerifiedContact(f"{account_id}-p", Phone(f"+8613800{number:06d}"), now),
                    VerifiedContact(f"{account_id}-e", Email(f"{account_id}@example.com"), now),
                ]
                await uow.accounts.add(
                    Account(
                        id=account_id,
                        password_hash=password_hash,
                        contacts=contacts,
                        created_at=now,
                    )
                )
                session, token = Session.start(
                    id=session_id,
                    account_id=account_id,
                    origin=NO_CLIENT,
                    first_token_id=f"{session_id}-refresh",
                    first_token=uuid.uuid4().hex,
                    hasher=keys.secrets,
                    now=now,
                )
                await uow.sessions.add(session, token)
                pairs.append((account_id, session_id))
            await uow.commit()
    finally:
        await engine.dispose()
    return pairs


def _calls(env: dict[str, str], pairs: list[tuple[str, str]]) -> dict[str, list[Call]]:
    from services.auth.bootstrap import DEVELOPMENT_KEYS_LABEL
    from wallet.auth.v1 import account_status_service_pb2, auth_service_pb2
    from walletcore.tokens import (
        DEVELOPMENT_IDENTITY_ISSUER,
        DEVELOPMENT_IDENTITY_KEYS_LABEL,
        SigningKeyRing,
        TokenIssuer,
    )

    users = TokenIssuer("wallet-auth", SigningKeyRing.development(DEVELOPMENT_KEYS_LABEL))
    identities = TokenIssuer(
        DEVELOPMENT_IDENTITY_ISSUER, SigningKeyRing.development(DEVELOPMENT_IDENTITY_KEYS_LABEL)
    )
    kyc = identities.service_token(service="kyc", audience="auth", ttl=timedelta(hours=1)).token
    pipeline_user = TokenIssuer("bench", SigningKeyRing.development(PIPELINE_KEYS_LABEL))
    user_tokens = [
        users.access_token(
            account_id=account_id, session_id=session_id, ttl=timedelta(minutes=15)
        ).token
        for account_id, session_id in pairs
    ]
    empty = b""  # GetVerification, ListCards and ListRefunds with every field at its default
    ping = wrappers_pb2.StringValue(value="ping").SerializeToString()
    get_account = auth_service_pb2.GetAccountRequest().SerializeToString()
    return {
        CEILING: [Call(ping, None)],
        PIPELINE: [
            Call(
                ping,
                pipeline_user.access_token(
                    account_id="bench", session_id="bench", ttl=timedelta(minutes=15)
                ).token,
            )
        ],
        USER_READ: [Call(get_account, token) for token in user_tokens],
        KYC_READ: [Call(empty, token) for token in user_tokens],
        BINDING_READ: [Call(empty, token) for token in user_tokens],
        REFUND_READ: [Call(empty, token) for token in user_tokens],
        **{scaled: [Call(empty, token) for token in user_tokens] for scaled in SCALED},
        STATUS_READ: [
            Call(
                account_status_service_pb2.GetAccountStatusRequest(
                    account_id=account_id, session_id=session_id
                ).SerializeToString(),
                kyc,
            )
            for account_id, session_id in pairs
        ],
    }


@dataclass(frozen=True)
class Target:
    name: str
    address: str
    method: str
    pid: int
    also: tuple[int, ...] = ()
    """Further server processes on the same address (SO_REUSEPORT): their CPU counts too."""
    connections: int = 1
    """TCP connections the load generator spreads its calls over."""

    @property
    def pids(self) -> tuple[int, ...]:
        return (self.pid, *self.also)


def send_job(
    load: subprocess.Popen[bytes],
    target: Target,
    calls: list[Call],
    seconds: float,
    in_flight: int = IN_FLIGHT,
) -> None:
    """Hands the load generator one job; `reply` reads its answer."""
    assert load.stdin is not None
    job = {
        "target": target.address,
        "method": target.method,
        "calls": [call.to_json() for call in calls],
        "seconds": seconds,
        "answers": ANSWERS.get(target.name, ("OK",)),
        "in_flight": in_flight,
        "connections": target.connections,
    }
    load.stdin.write(json.dumps(job).encode() + b"\n")
    load.stdin.flush()


def reply(
    load: subprocess.Popen[bytes], target: Target, *, tolerate: bool = False
) -> dict[str, Any]:
    """The load generator's answer to its job on `target`; every call must have succeeded
    unless `tolerate` (then its "failures" count them by status code)."""
    assert load.stdout is not None
    line = load.stdout.readline()
    if not line:
        raise RuntimeError("the load generator exited")
    result: dict[str, Any] = json.loads(line)
    if result["failures"] and not tolerate:
        raise RuntimeError(f"{target.name}: calls failed: {result['failures']}")
    return result


def _job(
    load: subprocess.Popen[bytes], target: Target, calls: list[Call], seconds: float
) -> dict[str, Any]:
    send_job(load, target, calls, seconds)
    return reply(load, target)


def _measure(
    load: subprocess.Popen[bytes], targets: list[Target], calls: dict[str, list[Call]]
) -> dict[str, Tally]:
    for target in targets:
        _job(load, target, calls[target.name], WARM_UP_SECONDS)
    tallies = {target.name: Tally([]) for target in targets}
    for _ in range(ROUNDS):
        for target in targets:
            cpu_before = [_cpu_seconds(pid) for pid in target.pids]
            result = _job(load, target, calls[target.name], ROUND_SECONDS)
            tally = tallies[target.name]
            spent = [
                _cpu_seconds(pid) - before
                for pid, before in zip(target.pids, cpu_before, strict=True)
            ]
            tally.cpu_seconds += sum(spent)
            tally.cpu_split = [
                a + b for a, b in zip(tally.cpu_split or [0.0] * len(spent), spent, strict=True)
            ]
            tally.latencies += result["latencies"]
            tally.seconds += result["seconds"]
    return tallies


def _report(tallies: dict[str, Tally], rss_mib: dict[str, float]) -> list[str | Row]:
    ceiling = tallies[CEILING]
    lines: list[str | Row] = [
        f"{IN_FLIGHT} calls in flight from a separate process, {ROUNDS} rounds of "
        f"{ROUND_SECONDS:.0f} s per target; PostgreSQL + Redis",
        f"{'':<42} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'cpu ms/call':>12} "
        f"{'x ceiling':>10} {'p99 x':>7}",
    ]
    for name, tally in tallies.items():
        ratio = tally.rate / ceiling.rate
        p99_ratio = tally.percentile(99) / ceiling.percentile(99)
        floor = PEER_RATIO_TARGET if name in (KYC_READ, BINDING_READ, REFUND_READ) else RATIO_TARGET
        reported = name in (CEILING, PIPELINE, *SCALED)
        met = None if reported else ratio >= floor and p99_ratio <= P99_TARGET
        verdict = "" if met is None else ("  ok" if met else "  MISSED")
        lines.append(
            f"{name:<42} {tally.rate:8.0f} {tally.percentile(50) * 1e3:8.2f} "
            f"{tally.percentile(99) * 1e3:8.2f} {tally.cpu_ms_per_call:12.3f} "
            f"{ratio:10.2f} {p99_ratio:7.2f}{verdict}"
        )
        figures: dict[str, float | str] = {
            "req/s": round(tally.rate),
            "p50 ms": round(tally.percentile(50) * 1e3, 2),
            "p99 ms": round(tally.percentile(99) * 1e3, 2),
            "cpu ms/call": round(tally.cpu_ms_per_call, 3),
            "x ceiling": round(ratio, 2),
            "p99 x": round(p99_ratio, 2),
        }
        if name in SCALED and SCALED[name] in tallies:
            figures["x 1 process"] = round(tally.rate / tallies[SCALED[name]].rate, 2)
            figures["cpu split"] = "/".join(
                f"{share / tally.cpu_seconds:.0%}" for share in tally.cpu_split or []
            )
            lines.append(
                f"{name}: {figures['x 1 process']} x the one-process rate, the two "
                f"processes' CPU split {figures['cpu split']} over {SCALED_CONNECTIONS} "
                "connections"
            )
        lines.append(
            Row(
                name,
                figures,
                command("hotpath"),
                target="" if met is None else f">= {floor} x ceiling, p99 <= {P99_TARGET:.0f}x",
                met=met,
            )
        )
    lines.append(
        f"targets: auth >= {RATIO_TARGET}, kyc/binding/refund >= {PEER_RATIO_TARGET} x ceiling "
        f"req/s; p99 <= {P99_TARGET:.0f} x ceiling p99"
    )
    lines += _auth_check_share(tallies)
    for service, mib in rss_mib.items():
        met = mib < RSS_TARGET_MIB
        lines.append(f"{service} resident memory after the run: {mib:.0f} MiB")
        lines.append(
            Row(
                f"{service} resident memory after the run",
                {"MiB": round(mib)},
                command("hotpath"),
                target=f"< {RSS_TARGET_MIB} MiB",
                met=met,
            )
        )
    return lines


FREEZE_ACCOUNTS: Final = 16 if QUICK else 64
FREEZE_ACCOUNT: Final = "/wallet.auth.v1.AccountAdminService/FreezeAccount"


def _auth_check_share(tallies: dict[str, Tally]) -> list[str | Row]:
    """What the per-request call to auth costs under this load, from this run's rows: auth's
    CPU per GetAccountStatus (the call each peer request makes) beside each peer's own CPU per
    request, and the share of the two that is auth's."""
    peers = [name for name in (KYC_READ, BINDING_READ, REFUND_READ) if name in tallies]
    if STATUS_READ not in tallies or not peers:
        return []
    check_ms = tallies[STATUS_READ].cpu_ms_per_call
    figures: dict[str, float | str] = {"auth cpu ms/check": round(check_ms, 3)}
    for name in peers:
        service = name.split("Service.")[0].lower()
        figures[f"{service} share"] = f"{check_ms / (check_ms + tallies[name].cpu_ms_per_call):.0%}"
    shares = ", ".join(
        f"{key.removesuffix(' share')} {value}"
        for key, value in figures.items()
        if key.endswith("share")
    )
    return [
        f"the per-request call to auth: {check_ms:.3f} ms of auth's CPU per check; its share of "
        f"the servers' CPU per peer request: {shares}",
        Row(
            "per-request call to auth, under load (GetAccountStatus's CPU beside each peer's)",
            figures,
            command("hotpath"),
            note="the design: one GetAccountStatus per request",
        ),
    ]


async def _freeze_probe(
    admin: str, peers: list[Target], pairs: list[tuple[str, str]], user_calls: list[Call]
) -> dict[str, int]:
    """Freezes FREEZE_ACCOUNTS accounts one by one through auth's admin port; the moment each
    FreezeAccount returns, sends one request of that account to every peer. Returns, per peer,
    how many of those requests were admitted (anything but FAILED_PRECONDITION)."""
    from wallet.auth.v1 import account_admin_service_pb2
    from walletcore.tokens import (
        DEVELOPMENT_IDENTITY_ISSUER,
        DEVELOPMENT_IDENTITY_KEYS_LABEL,
        SigningKeyRing,
        TokenIssuer,
    )

    identities = TokenIssuer(
        DEVELOPMENT_IDENTITY_ISSUER, SigningKeyRing.development(DEVELOPMENT_IDENTITY_KEYS_LABEL)
    )
    officer = identities.operator_token(
        operator_id="bench-officer", role="security_officer", ttl=timedelta(hours=1)
    ).token
    admitted = dict.fromkeys((peer.name for peer in peers), 0)
    channels = {
        target: grpc.aio.insecure_channel(target) for target in {admin, *(p.address for p in peers)}
    }
    try:
        freeze: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channels[admin].unary_unary(
            FREEZE_ACCOUNT
        )

        async def probe(peer: Target, call: Call) -> bool:
            send: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channels[
                peer.address
            ].unary_unary(peer.method)
            try:
                await send(call.body, metadata=call.metadata(), timeout=30)
            except grpc.aio.AioRpcError as error:
                return error.code() is not grpc.StatusCode.FAILED_PRECONDITION
            return True

        for (account_id, _), call in list(zip(pairs, user_calls, strict=True))[-FREEZE_ACCOUNTS:]:
            request = account_admin_service_pb2.FreezeAccountRequest(
                request_id=uuid.uuid4().hex,
                account_id=account_id,
                reason="bench freeze propagation",
                ticket_ref="BENCH-1",
            )
            await freeze(
                request.SerializeToString(),
                metadata=(("authorization", f"Bearer {officer}"),),
                timeout=30,
            )
            results = await asyncio.gather(*(probe(peer, call) for peer in peers))
            for peer, got_through in zip(peers, results, strict=True):
                admitted[peer.name] += got_through
    finally:
        for channel in channels.values():
            await channel.close()
    return admitted


def _freeze_rows(admitted: dict[str, int]) -> list[str | Row]:
    lines: list[str | Row] = []
    for name, count in admitted.items():
        service = name.split("Service.")[0].lower()
        lines.append(
            f"{service}: {count} of {FREEZE_ACCOUNTS} requests admitted right after FreezeAccount"
        )
        lines.append(
            Row(
                f"freeze propagation: {service}",
                {"admitted after freeze": count, "accounts frozen": FREEZE_ACCOUNTS},
                command("hotpath"),
                target="0 admitted",
                met=count == 0,
            )
        )
    return lines


def _start(
    stack: ExitStack, scratch: Path, service: str, env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    """Starts `python -m services.<service>` and waits for its ports."""
    process, wait = _launch(stack, scratch, service, env)
    return process, wait()


def _launch(
    stack: ExitStack, scratch: Path, service: str, env: dict[str, str], *, log_name: str = ""
) -> tuple[subprocess.Popen[bytes], Callable[[], dict[str, int]]]:
    """Starts `python -m services.<service>`, its log to `<log_name or service>.log` in
    `scratch`; the function returned waits for its ports."""
    log_path = scratch / f"{log_name or service}.log"
    log = stack.enter_context(log_path.open("wb"))
    process = stack.enter_context(
        _process(["-m", f"services.{service}"], env, log, output_to_log=True)
    )
    return process, lambda: _wait_for_ports(log_path, process, log_name or service)


def _second_process(
    stack: ExitStack, scratch: Path, service: str, env: dict[str, str], ports: dict[str, int]
) -> tuple[subprocess.Popen[bytes], Callable[[], dict[str, int]]]:
    """A second process of `service` on the first's public, admin and internal ports (both
    started with `<PREFIX>REUSE_PORT`), with a metrics port of its own and no migration."""
    prefix = service.upper()
    return _launch(
        stack,
        scratch,
        service,
        {
            **env,
            f"{prefix}_MIGRATE_ON_START": "false",
            **{f"{prefix}_{kind.upper()}_PORT": str(ports[kind]) for kind in SHARED_PORTS},
        },
        log_name=f"{service}-2",
    )


async def _bench() -> list[str | Row]:
    server_url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    services = ("auth", "kyc", "binding", "refund")
    async with _databases(server_url, services) as urls:
        env = _auth_env(urls["auth"], redis_url)
        with tempfile.TemporaryDirectory() as scratch_dir, ExitStack() as stack:
            scratch = Path(scratch_dir)
            auth, ports = _start(stack, scratch, "auth", env)
            auth_internal = f"127.0.0.1:{ports['internal']}"
            kyc_env = _service_env(
                "kyc",
                urls["kyc"],
                redis_url,
                auth_internal_address=auth_internal,
                reuse_port="true",
            )
            kyc, kyc_ports = _start(stack, scratch, "kyc", kyc_env)
            # Scaling out: a second process of each peer on its three ports (SO_REUSEPORT),
            # starting while the next services do.
            kyc2, kyc2_started = _second_process(stack, scratch, "kyc", kyc_env, kyc_ports)
            binding_env = _service_env(
                "binding",
                urls["binding"],
                redis_url,
                auth_internal_address=auth_internal,
                kyc_internal_address=f"127.0.0.1:{kyc_ports['internal']}",
                vault_database_url=f"sqlite+aiosqlite:///{scratch / 'binding-vault.db'}",
                reuse_port="true",
            )
            binding, binding_ports = _start(stack, scratch, "binding", binding_env)
            binding2, binding2_started = _second_process(
                stack, scratch, "binding", binding_env, binding_ports
            )
            refund_env = _service_env(
                "refund",
                urls["refund"],
                redis_url,
                auth_internal_address=auth_internal,
                binding_internal_address=f"127.0.0.1:{binding_ports['internal']}",
                reuse_port="true",
            )
            refund, refund_ports = _start(stack, scratch, "refund", refund_env)
            refund2, refund2_started = _second_process(
                stack, scratch, "refund", refund_env, refund_ports
            )
            for started in (kyc2_started, binding2_started, refund2_started):
                started()
            pipeline_log = stack.enter_context((scratch / "pipeline.log").open("wb"))
            echo = stack.enter_context(_process(["-m", _MODULE, "echo"], {}, sys.stderr.buffer))
            pipeline = stack.enter_context(_process(["-m", _MODULE, "pipeline"], {}, pipeline_log))
            load = stack.enter_context(_process(["-m", _MODULE, "load"], {}, sys.stderr.buffer))
            echo_port, pipeline_port = _port_of(echo), _port_of(pipeline)
            pairs = await _seed(env)
            calls = _calls(env, pairs)

            targets = [
                Target(CEILING, f"127.0.0.1:{echo_port}", METHOD, echo.pid),
                Target(PIPELINE, f"127.0.0.1:{pipeline_port}", METHOD, pipeline.pid),
                Target(USER_READ, f"127.0.0.1:{ports['public']}", GET_ACCOUNT, auth.pid),
                Target(STATUS_READ, f"127.0.0.1:{ports['internal']}", GET_ACCOUNT_STATUS, auth.pid),
                Target(
                    KYC_READ,
                    f"127.0.0.1:{kyc_ports['public']}",
                    GET_VERIFICATION,
                    kyc.pid,
                    also=(kyc2.pid,),
                ),
                Target(
                    BINDING_READ,
                    f"127.0.0.1:{binding_ports['public']}",
                    LIST_CARDS,
                    binding.pid,
                    also=(binding2.pid,),
                ),
                Target(
                    REFUND_READ,
                    f"127.0.0.1:{refund_ports['public']}",
                    LIST_REFUNDS,
                    refund.pid,
                    also=(refund2.pid,),
                ),
            ]
            # The same calls over SCALED_CONNECTIONS connections, which the kernel spreads over
            # both processes of the service.
            scaled = [
                dataclasses.replace(target, name=name, connections=SCALED_CONNECTIONS)
                for name, one in SCALED.items()
                for target in targets
                if target.name == one
            ]
            tallies = await asyncio.to_thread(_measure, load, [*targets, *scaled], calls)
            admitted = await _freeze_probe(
                f"127.0.0.1:{ports['admin']}", targets[-3:], pairs, calls[USER_READ]
            )
            rss = {
                name: _rss_mib(process.pid)
                for name, process in (
                    ("auth", auth),
                    ("kyc", kyc),
                    ("kyc (second process)", kyc2),
                    ("binding", binding),
                    ("binding (second process)", binding2),
                    ("refund", refund),
                    ("refund (second process)", refund2),
                )
            }
    return [*_report(tallies, rss), *_freeze_rows(admitted)]


def run() -> list[str | Row]:
    return asyncio.run(_bench())


if __name__ == "__main__":
    if sys.argv[1:] == ["echo"]:
        asyncio.run(_serve_echo())
    elif sys.argv[1:] == ["pipeline"]:
        asyncio.run(_serve_pipeline())
    elif sys.argv[1:] == ["load"]:
        _load_main()
    else:
        sys.exit("usage: python -m benchmarks.bench_hotpath echo|pipeline|load (bench: make bench)")
