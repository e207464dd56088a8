"""Refund's write path on PostgreSQL: RequestRefunds per second from 16 concurrent clients, on
one payment and on many, and the share of their time spent in the database.

Refund is wired by `services.refund.bootstrap.build` on a PostgreSQL database of its own
(created and dropped here, on DATABASE_URL's server), and its public servicer's RequestRefund
runs in this process exactly as the gRPC server would run it once the port's verifier has let
the account in: request checks, the idempotency record, the payment's row lock, the refund row
and the response, one transaction each. No gRPC and no per-request call to auth (the hotpath
rows measure those); no background task runs (no payouts). Each of the 16 clients is an asyncio
task sending one request after another, each with its own request_id, 1 fen at a time so no
payment runs out:

- one payment: all 16 clients refund the same payment of one account, so every request waits
  for the payment's row lock (`SELECT ... FOR UPDATE`) and they are decided one at a time;
- many payments: 64 payments of 64 accounts, client i taking payments i, i+16, i+32 and i+48
  in turn, so no two requests ever wait for one another's lock.

The share of time in the database is PostgreSQL's own accounting for the bench database
(`pg_stat_database`): `active_time` (its backends executing statements, lock waits included)
and `idle_in_transaction_time` (a transaction open while the backend waits for refund's next
statement), each over the clients' summed request time. Backends report those times when they
exit at the latest, so the engine's connections are closed around every round.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import defaultdict
from datetime import timedelta
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from benchmarks.bench_hotpath import _databases
from benchmarks.report import QUICK, Row, command
from services.refund.adapters.repositories import SqlReads
from services.refund.api.refund_service import RefundServicer
from services.refund.bootstrap import MIGRATIONS_DIR, RefundApp, build
from services.refund.domain.money import Money
from services.refund.domain.payments import CapturedPayment
from services.refund.service.ledger import record_captured_payment
from services.refund.settings import RefundSettings
from wallet.common.v1 import money_pb2
from wallet.refund.v1 import refund_service_pb2 as pb
from wallet.refund.v1 import types_pb2
from walletcore.db import normalize_url
from walletcore.identity import Caller, CallerKind, set_current_caller
from walletcore.migrations import upgrade_to_head
from walletcore.settings import Profile

CLIENTS: Final = 16
MANY_PAYMENTS: Final = 64
ROUNDS: Final = 1 if QUICK else 3
ROUND_SECONDS: Final = 2.0 if QUICK else 5.0
WARM_UP_SECONDS: Final = 0.5 if QUICK else 2.0
CURRENCY: Final = "CNY"
CAPTURED_MINOR: Final = 10**12
"""So much that 1-fen refunds never exhaust a payment within a run."""

ONE: Final = "one payment"
MANY: Final = "many payments"


Tally = defaultdict[str, float]
"""A load's figures summed over its rounds: "requests", "seconds" (wall), "request seconds"
(the clients' summed request time), "cpu seconds" (this process's), "active ms" and
"idle in transaction ms" (PostgreSQL's), and a "failed: <exception>" count per failure."""


def _refund_request(payment_id: str) -> pb.RequestRefundRequest:
    return pb.RequestRefundRequest(
        request_id=uuid.uuid4().hex,
        payment_id=payment_id,
        amount=money_pb2.Money(amount_minor=1, currency=CURRENCY),
        reason=types_pb2.REFUND_REASON_NOT_RECEIVED,
    )


async def _seed(app: RefundApp, count: int) -> list[tuple[str, str]]:
    """`count` captured payments, each of an account of its own: (account id, payment id)."""
    captured_at = app.ctx.clock() - timedelta(days=1)
    pairs = []
    for _ in range(count):
        payment = CapturedPayment(
            payment_id=f"pay-{uuid.uuid4().hex}",
            account_id=uuid.uuid4().hex,
            captured=Money(CAPTURED_MINOR, CURRENCY),
            source_instrument_id=uuid.uuid4().hex,
            captured_at=captured_at,
        )

        async def record(uow: Any, payment: CapturedPayment = payment) -> CapturedPayment:
            return await record_captured_payment(uow, app.ctx, payment)

        await app.tx.run(record)
        pairs.append((payment.account_id, payment.payment_id))
    return pairs


async def _drive(
    servicer: RefundServicer, plans: list[list[tuple[str, str]]], seconds: float
) -> Tally:
    """Each plan is one client's (account, payment) cycle; every client sends requests one
    after another for `seconds`."""
    tally: Tally = defaultdict(float)
    deadline = time.perf_counter() + seconds

    async def client(plan: list[tuple[str, str]]) -> None:
        index = 0
        while time.perf_counter() < deadline:
            account_id, payment_id = plan[index % len(plan)]
            index += 1
            set_current_caller(Caller(CallerKind.USER, account_id, session_id="bench"))
            started = time.perf_counter()
            try:
                await servicer.RequestRefund(_refund_request(payment_id), None)  # type: ignore[arg-type]
            except Exception as error:  # counted, and the run fails below
                tally[f"failed: {type(error).__name__}"] += 1
                continue
            tally["request seconds"] += time.perf_counter() - started
            tally["requests"] += 1

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(asyncio.create_task(client(plan)) for plan in plans))
    tally["seconds"] = time.perf_counter() - started
    tally["cpu seconds"] = time.process_time() - cpu
    return tally


async def _database_times(
    admin: AsyncEngine, database: str, engine: AsyncEngine
) -> tuple[float, float]:
    """(active_time, idle_in_transaction_time) in ms of `database` so far, once every
    connection of `engine` is closed and its backend gone (and so has reported them)."""
    await engine.dispose()
    async with admin.connect() as connection:
        for _ in range(200):
            left = await connection.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE datname = :name"),
                {"name": database},
            )
            if not left:
                break
            await asyncio.sleep(0.05)
        row = (
            await connection.execute(
                text(
                    "SELECT active_time, idle_in_transaction_time FROM pg_stat_database "
                    "WHERE datname = :name"
                ),
                {"name": database},
            )
        ).one()
    return float(row.active_time), float(row.idle_in_transaction_time)


async def _bench() -> list[str | Row]:
    server_url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    async with _databases(server_url, ["refund"]) as urls:
        url = urls["refund"]
        database = url.rsplit("/", 1)[1].split("?")[0]
        await upgrade_to_head(url, MIGRATIONS_DIR)
        app = build(
            RefundSettings(
                profile=Profile.DEVELOPMENT,
                database_url=url,
                rate_limiter="memory",
                migrate_on_start=False,
            )
        )
        admin = create_async_engine(normalize_url(server_url), isolation_level="AUTOCOMMIT")
        try:
            servicer = RefundServicer(app.ctx, app.tx, SqlReads(app.statements))
            one = await _seed(app, 1)
            many = await _seed(app, MANY_PAYMENTS)
            plans: dict[str, list[list[tuple[str, str]]]] = {
                ONE: [one] * CLIENTS,
                MANY: [many[i::CLIENTS] for i in range(CLIENTS)],
            }
            for plan in plans.values():
                await _drive(servicer, plan, WARM_UP_SECONDS)
            tallies: dict[str, Tally] = {name: defaultdict(float) for name in plans}
            for _ in range(ROUNDS):
                for name, plan in plans.items():
                    active, idle = await _database_times(admin, database, app.engine)
                    for key, value in (await _drive(servicer, plan, ROUND_SECONDS)).items():
                        tallies[name][key] += value
                    active_after, idle_after = await _database_times(admin, database, app.engine)
                    tallies[name]["active ms"] += active_after - active
                    tallies[name]["idle in transaction ms"] += idle_after - idle
        finally:
            await admin.dispose()
            await app.close()
    return _report(tallies)


def _report(tallies: dict[str, Tally]) -> list[str | Row]:
    lines: list[str | Row] = [
        f"RequestRefund in process on PostgreSQL, {CLIENTS} concurrent clients, {ROUNDS} rounds "
        f"of {ROUND_SECONDS:.0f} s per load; one payment: all on one; many: {MANY_PAYMENTS} "
        f"payments, never two clients on one at once"
    ]
    for name, tally in tallies.items():
        if failures := {key: n for key, n in tally.items() if key.startswith("failed: ")}:
            raise RuntimeError(f"RequestRefund on {name}: {failures}")
        busy = tally["request seconds"]
        rate = tally["requests"] / tally["seconds"]
        active = tally["active ms"] / 1000 / busy
        idle = tally["idle in transaction ms"] / 1000 / busy
        ms = 1000 * busy / tally["requests"]
        cpu_ms = 1000 * tally["cpu seconds"] / tally["requests"]
        lines.append(
            f"{name}: {rate:.0f} requests/s, {ms:.1f} ms per request ({cpu_ms:.2f} ms of refund's "
            f"CPU), database active "
            f"{active:.0%} and idle in transaction {idle:.0%} of the request time"
        )
        figures: dict[str, Any] = {
            "requests/s": round(rate),
            "ms/request": round(ms, 1),
            "cpu ms/request": round(cpu_ms, 2),
            "db active share": round(active, 2),
            "idle in tx share": round(idle, 2),
        }
        lines.append(
            Row(
                f"RequestRefund, {CLIENTS} clients, {name} (PostgreSQL)",
                figures,
                command("refund"),
            )
        )
    return lines


def run() -> list[str | Row]:
    return asyncio.run(_bench())
