"""Bulk freeze as the security team runs it: `walletsec bulk-freeze` from a CSV of 10,000 accounts
(300 with QUICK=1) against auth on PostgreSQL, in its default batches, end to end.

Auth runs as in the hotpath bench (its own process, PostgreSQL, Redis limiter); the accounts
(a phone, an e-mail and a live session each) are written with auth's own repositories. Each
freeze changes the account, appends its freeze record, revokes its sessions and writes a
security event, an audit entry and the owner's notice to the outbox, all in the batch's one
transaction. The baseline, measured in the same run on the same rows: PostgreSQL's own rate for
a bare `UPDATE accounts ... WHERE id = ANY(...)` in batches of the same size, one transaction
each, so the ratio is what the freeze's bookkeeping and the RPC path cost on top of the row
write itself. The CLI's wall time includes its interpreter's start (about a second).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Final

from benchmarks.bench_hotpath import _auth_env, _databases, _seed, _start
from benchmarks.report import QUICK, Row, command

ACCOUNTS: Final = 300 if QUICK else 10_000
CLI_TIMEOUT_SECONDS: Final = 600.0


def _operator_env(admin_port: int) -> dict[str, str]:
    from walletcore import keytool

    token = keytool.run(
        ["operator-token", "--operator-id", "bench-officer", "--role", "security_officer"]
    )
    return {
        **os.environ,
        "WALLETSEC_OPERATOR_TOKEN": token,
        "WALLETSEC_AUTH_ADMIN": f"127.0.0.1:{admin_port}",
    }


def _bulk_freeze(csv_file: Path, environment: dict[str, str]) -> tuple[float, dict[str, object]]:
    """Runs the CLI once; its wall time and its JSON report."""
    started = time.perf_counter()
    finished = subprocess.run(  # noqa: S603 - this interpreter and a fixed module, no shell
        [
            *(sys.executable, "-m", "walletsec", "--json", "bulk-freeze", str(csv_file)),
            *("--reason", "benchmark", "--ticket", "BENCH-1"),
        ],
        env=environment,
        capture_output=True,
        timeout=CLI_TIMEOUT_SECONDS,
        check=False,
    )
    seconds = time.perf_counter() - started
    if finished.returncode != 0:
        raise RuntimeError(f"walletsec exited {finished.returncode}: {finished.stderr[-500:]!r}")
    report: dict[str, object] = json.loads(finished.stdout)
    return seconds, report


async def _raw_update_rate(database_url: str, ids: list[str], batch_size: int) -> float:
    """Rows per second of a bare UPDATE of the same rows, batch by batch, one transaction each."""
    import asyncpg
    from sqlalchemy.engine import make_url

    dsn = make_url(database_url).set(drivername="postgresql")
    connection = await asyncpg.connect(dsn.render_as_string(hide_password=False))
    try:
        started = time.perf_counter()
        for first in range(0, len(ids), batch_size):
            async with connection.transaction():
                await connection.execute(
                    "UPDATE accounts SET status = 'FROZEN', version = version + 1 "
                    "WHERE id = ANY($1::text[])",
                    ids[first : first + batch_size],
                )
        return len(ids) / (time.perf_counter() - started)
    finally:
        await connection.close()


async def _bench() -> list[str | Row]:
    from walletsec.bulk import DEFAULT_BATCH_SIZE

    server_url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    async with _databases(server_url, ("auth",)) as urls:
        env = _auth_env(urls["auth"], redis_url)
        with tempfile.TemporaryDirectory() as scratch_dir, ExitStack() as stack:
            scratch = Path(scratch_dir)
            _, ports = _start(stack, scratch, "auth", env)
            seeded_at = time.perf_counter()
            ids = [account_id for account_id, _ in await _seed(env, ACCOUNTS)]
            seed_seconds = time.perf_counter() - seeded_at
            csv_file = scratch / "accounts.csv"
            csv_file.write_text("account_id\n" + "\n".join(ids) + "\n")
            seconds, report = await asyncio.to_thread(
                _bulk_freeze, csv_file, _operator_env(ports["admin"])
            )
            raw = await _raw_update_rate(urls["auth"], ids, DEFAULT_BATCH_SIZE)
    return _report(seconds, report, raw, seed_seconds, DEFAULT_BATCH_SIZE)


def _report(
    seconds: float, report: dict[str, object], raw: float, seed_seconds: float, batch_size: int
) -> list[str | Row]:
    frozen = report.get("frozen")
    rate = ACCOUNTS / seconds
    complete = frozen == ACCOUNTS
    return [
        f"{ACCOUNTS:,} accounts seeded in {seed_seconds:.1f} s; walletsec bulk-freeze in batches "
        f"of {batch_size}: {seconds:.1f} s, {rate:.0f} accounts/s (frozen: {frozen}); bare "
        f"UPDATE of the same rows: {raw:.0f} rows/s",
        Row(
            f"bulk freeze of {ACCOUNTS:,} accounts (walletsec CLI)",
            {
                "accounts/s": round(rate),
                "seconds": round(seconds, 1),
                "bare UPDATE rows/s": round(raw),
                "x bare UPDATE": round(rate / raw, 3),
            },
            command("bulkfreeze"),
            target="every account frozen once",
            met=complete,
            note="" if complete else f"frozen {frozen} of {ACCOUNTS}",
        ),
    ]


def run() -> list[str | Row]:
    return asyncio.run(_bench())
