"""Fault: `python -m services.auth` is killed with SIGKILL in the middle of a bulk freeze.

Auth runs as a process on PostgreSQL (a database of this test's own). `walletsec bulk-freeze`
sends the accounts in batches of 6. The test holds a row lock on the fourth account of the
third batch, so that batch stops at its start, with the first two committed; the test then
takes the audit chain's lock (the advisory lock every audit append takes) and lets the row
go, so the third batch freezes all six of its accounts in its open transaction (status, freeze
records, security events, notices) and waits at its first audit entry, where auth is killed.
The test then releases the chain: the orphaned transaction can never commit (only the killed
process could have sent COMMIT). The first two batches are frozen whole, nothing of
the third; the operator's run stops, and after auth is started again on the same ports the
rerun of the same command freezes the rest. Every account is frozen once: one freeze in its
history, one FREEZE_ACCOUNT audit entry.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc.aio
import pytest
import sqlalchemy as sa
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncConnection

from services.auth.adapters import tables
from tests.api.auth.access_helpers import add_accounts
from tests.api.auth.conftest import start_auth  # noqa: F401 (a fixture used here)
from tests.api.auth.harness import StartAuth
from tests.api.walletsec.cli_helpers import Walletsec, operator_token
from tests.support.faults import eventually, report_fault
from tests.support.stack import ROOT
from walletcore.audit import _lock_key
from walletcore.db import create_engine
from walletcore.identity import OperatorRole
from walletsec import bulk
from walletsec.connection import ExitCode

pytestmark = pytest.mark.e2e

PORTS = {"PUBLIC": 30330, "ADMIN": 30331, "INTERNAL": 30332, "METRICS": 30333}
ACCOUNTS, BATCH, KILLED_BATCH, LOCKED_POSITION = 30, 6, 2, 3
"""Five batches; the third (index 2) is first stopped at its fourth account (sorted, as auth
locks them). Small: a batch costs auth about 60 ms an account on the 2-core machine."""

_WAITING_ON = sa.text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
    "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' AND wait_event = :lock"
)
"""Backends waiting on a row lock (`tuple`, or `transactionid` behind it) or an `advisory` one."""
_OTHERS = sa.text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
    "AND pid <> pg_backend_pid() AND NOT (pid = ANY(:holders))"
)
"""The killed auth's connections: all but the test's own (this one and the lock holders)."""


@pytest.fixture
def auth_backend(postgres_url: str) -> dict[str, Any]:
    return {"database_url": postgres_url, "rate_limiter": "memory"}


@pytest.fixture
async def stored_accounts(start_auth: StartAuth) -> list[str]:  # noqa: F811
    """Accounts written by an in-process auth into the database the process then serves."""
    async with start_auth() as app:
        return await add_accounts(app, ACCOUNTS)


@pytest.fixture
async def database(auth_backend: dict[str, Any]) -> AsyncIterator[AsyncConnection]:
    engine = create_engine(auth_backend["database_url"])
    async with engine.connect() as connection:
        yield connection
    await engine.dispose()


async def start_auth_process(database_url: str, log: Path) -> asyncio.subprocess.Process:
    environment = {n: v for n, v in os.environ.items() if not n.startswith("AUTH_")}
    environment.update({f"AUTH_{kind}_PORT": str(port) for kind, port in PORTS.items()})
    environment.update({"AUTH_DATABASE_URL": database_url, "AUTH_RATE_LIMITER": "memory"})
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.auth", cwd=ROOT, env=environment, stdout=out, stderr=out
        )

    async def serving() -> bool:
        if process.returncode is not None:
            raise AssertionError(f"auth exited early; its output is in {log}")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{PORTS['ADMIN']}") as channel:
            try:
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=0.5
                )
            except grpc.aio.AioRpcError:
                return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    await eventually(serving, "auth serving")
    return process


async def freezes(connection: AsyncConnection) -> tuple[Counter[str], Counter[str], set[str]]:
    """Per account: freezes in its history, FREEZE_ACCOUNT audit entries; and the frozen ids."""
    async with connection.begin():
        history = Counter(
            (
                await connection.execute(
                    sa.select(tables.freeze_history.c.account_id).where(
                        tables.freeze_history.c.frozen
                    )
                )
            ).scalars()
        )
        audited = Counter(
            target.removeprefix("account:")
            for target in (
                await connection.execute(
                    sa.select(tables.audit_log.c.target).where(
                        tables.audit_log.c.action == "FREEZE_ACCOUNT"
                    )
                )
            ).scalars()
        )
        frozen = set(
            (
                await connection.execute(
                    sa.select(tables.accounts.c.id).where(tables.accounts.c.status == "FROZEN")
                )
            ).scalars()
        )
    return history, audited, frozen


async def rows_held_by_others(connection: AsyncConnection, account_ids: list[str]) -> int:
    """How many of the accounts' rows another transaction holds (those SKIP LOCKED skips)."""
    free = await connection.scalar(
        sa.select(sa.func.count()).select_from(
            sa.select(tables.accounts.c.id)
            .where(tables.accounts.c.id.in_(account_ids))
            .with_for_update(skip_locked=True)
            .subquery()
        )
    )
    await connection.commit()
    return len(account_ids) - int(free or 0)


async def test_auth_killed_mid_bulk_freeze_leaves_whole_batches_and_the_rerun_freezes_once(
    stored_accounts: list[str],
    auth_backend: dict[str, Any],
    database: AsyncConnection,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database_url = auth_backend["database_url"]
    csv_file = tmp_path / "breach.csv"
    csv_file.write_text("\n".join(["account_id", *stored_accounts]) + "\n", encoding="utf-8")
    cli = Walletsec(
        {
            "WALLETSEC_OPERATOR_TOKEN": operator_token(OperatorRole.SECURITY_OFFICER),
            "WALLETSEC_AUTH_ADMIN": f"127.0.0.1:{PORTS['ADMIN']}",
        }
    )
    args = ["--json", "bulk-freeze", str(csv_file), "--reason", "breach", "--ticket", "INC-7"]
    args += ["--batch-size", str(BATCH)]
    batches = [stored_accounts[i : i + BATCH] for i in range(0, ACCOUNTS, BATCH)]
    locked = sorted(batches[KILLED_BATCH])[LOCKED_POSITION]
    # The operator's retries of the lost batch find auth gone at once: no waiting.
    monkeypatch.setattr(bulk, "RETRY_DELAYS_SECONDS", (0.0, 0.0))
    log = tmp_path / "auth.log"

    auth = await start_auth_process(database_url, log)
    try:
        lock = await database.begin()
        holder = await database.scalar(sa.text("SELECT pg_backend_pid()"))
        await database.execute(
            sa.select(tables.accounts.c.id).where(tables.accounts.c.id == locked).with_for_update()
        )
        first_run = asyncio.ensure_future(cli(*args))
        killer = create_engine(database_url)
        async with killer.connect() as admin, killer.connect() as chain:

            def batch_waits_on(*locks: str) -> Callable[[], Awaitable[bool]]:
                async def waiting() -> bool:
                    counts = [
                        int(await admin.scalar(_WAITING_ON, {"lock": lock}) or 0) for lock in locks
                    ]
                    await admin.commit()
                    return sum(counts) == 1

                return waiting

            await eventually(
                batch_waits_on("tuple", "transactionid"), "the third batch at its fourth account"
            )
            chain_lock = await chain.begin()
            chain_holder = await chain.scalar(sa.text("SELECT pg_backend_pid()"))
            await chain.execute(sa.select(sa.func.pg_advisory_xact_lock(_lock_key("audit_log"))))
            await lock.rollback()
            await eventually(batch_waits_on("advisory"), "the third batch at its audit entry")
            held = await rows_held_by_others(admin, batches[KILLED_BATCH])
            auth.send_signal(signal.SIGKILL)
            await auth.wait()
            await chain_lock.rollback()

            async def orphan_gone() -> bool:
                others = await admin.scalar(_OTHERS, {"holders": [holder, chain_holder]})
                await admin.commit()
                return bool(others == 0)

            await eventually(orphan_gone, "the killed auth's backends ending")
        await killer.dispose()
        interrupted = await first_run
    finally:
        if auth.returncode is None:
            auth.send_signal(signal.SIGKILL)
            await auth.wait()

    history, audited, frozen = await freezes(database)
    whole_batches = {account for batch in batches[:KILLED_BATCH] for account in batch}
    assert held == BATCH
    assert interrupted.exit_code == ExitCode.UNREACHABLE, interrupted.stderr
    assert frozen == whole_batches
    assert set(history) == set(audited) == whole_batches
    assert set(history.values()) == set(audited.values()) == {1}

    auth = await start_auth_process(database_url, log)
    try:
        rerun = await cli(*args)
    finally:
        auth.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(auth.wait(), 15) == 0

    assert rerun.exit_code == 0, rerun.stderr
    report = rerun.json()
    assert (report["resumed_batches"], report["batches"]) == (KILLED_BATCH, len(batches))
    assert (report["frozen"], report["already_frozen"], report["failed"]) == (
        ACCOUNTS,
        0,
        [],
    )
    history, audited, frozen = await freezes(database)
    assert frozen == set(stored_accounts)
    assert set(history.values()) == set(audited.values()) == {1}
    assert len(history) == len(audited) == ACCOUNTS

    report_fault(
        "auth SIGKILLed during a bulk freeze",
        f"{ACCOUNTS} accounts in {len(batches)} batches of {BATCH}; killed while batch "
        f"{KILLED_BATCH + 1} waited for the audit chain with all {held} of its accounts frozen "
        f"in its open transaction: after the kill "
        f"{len(whole_batches)} frozen = {KILLED_BATCH} whole batches, 0 of the killed batch; "
        f"the rerun resumed {KILLED_BATCH} batches and finished: {len(frozen)}/{ACCOUNTS} "
        f"frozen, each exactly once (1 freeze in its history, 1 FREEZE_ACCOUNT audit entry)",
    )
