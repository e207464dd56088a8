"""A crash of refund between "sent to the gateway" and "recorded": `python -m services.refund`
is killed with SIGKILL while the simulated gateway (its own process) is paying, then started
again. The gateway's own ledger shows exactly one payout for the refund, and the refund ends
SUCCEEDED: the restarted worker asks the gateway by the attempt's key instead of paying again.

Binding is a stand-in gRPC server in the test process (its holds succeed); the refund is
created in refund's database through refund's own use cases before the process starts, so no
auth is needed for this path (the worker asks nobody about the account)."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.refund.adapters import tables
from services.refund.adapters.uow import SqlRefundUnitOfWork
from services.refund.domain.money import Money
from services.refund.domain.payments import CapturedPayment
from services.refund.domain.policy import RefundPolicy
from services.refund.domain.refunds import Evidence, RefundReason, RefundState
from services.refund.service.context import RefundContext
from services.refund.service.fakes import FakeGateway, FakeHolds
from services.refund.service.ledger import record_captured_payment
from services.refund.service.requests import RefundRequest, request_refund
from tests.e2e.refund_peers import ROOT, StandInBinding, binding, free_port, gateway  # noqa: F401
from walletcore.db import create_engine, session_factory
from walletcore.migrations import service_migrations_dir, upgrade_to_head

pytestmark = pytest.mark.e2e

STARTUP_SECONDS = 30.0


async def approved_refund(database_url: str) -> str:
    """A captured payment and an automatically approved refund of it, in refund's database."""
    await upgrade_to_head(database_url, service_migrations_dir("refund"))
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    ids = (f"crash{n:04d}" for n in itertools.count(1))
    ctx = RefundContext(
        clock=lambda: datetime.now(UTC),
        new_id=lambda: next(ids),
        policy=RefundPolicy(auto_approve_limits={"CNY": 5_000}, grant_thresholds={"CNY": 9_000}),
        holds=FakeHolds(),
        gateway=FakeGateway(),
    )

    async def run(work: Any) -> Any:
        async with SqlRefundUnitOfWork(sessions, grants=None) as uow:  # type: ignore[arg-type]
            result = await work(uow)
            await uow.commit()
            return result

    now = ctx.clock()
    await run(
        lambda uow: record_captured_payment(
            uow,
            ctx,
            CapturedPayment(
                "pay_crash", "acct1", Money(5_000, "CNY"), "card1", now - timedelta(hours=1)
            ),
        )
    )
    body = RefundRequest(
        "pay_crash", Money(2_500, "CNY"), RefundReason.DEFECTIVE, "", Evidence(), ""
    )
    refund = await run(lambda uow: request_refund(uow, ctx, account_id="acct1", request=body))
    await engine.dispose()
    assert refund.state is RefundState.APPROVED
    return str(refund.refund_id)


async def start_refund(environment: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.refund",
            cwd=ROOT,
            env=environment,
            stdout=out,
            stderr=out,
        )


async def refund_state(database_url: str, refund_id: str) -> tuple[str, list[str]]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            state = (
                (
                    await connection.execute(
                        tables.refunds.select().where(tables.refunds.c.refund_id == refund_id)
                    )
                )
                .one()
                .state
            )
            attempts = (
                await connection.execute(
                    tables.payout_attempts.select().where(
                        tables.payout_attempts.c.refund_id == refund_id
                    )
                )
            ).all()
        return state, [a.state for a in attempts]
    finally:
        await engine.dispose()


async def test_a_refund_killed_mid_payout_is_paid_exactly_once(
    tmp_path: Path,
    binding: tuple[str, StandInBinding],  # noqa: F811 (the fixture imported above)
    gateway: str,  # noqa: F811
) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'refund.db'}"
    refund_id = await approved_refund(database_url)
    environment = {n: v for n, v in os.environ.items() if not n.startswith("REFUND_")}
    environment.update(
        {
            f"REFUND_{kind}_PORT": str(free_port())
            for kind in ("PUBLIC", "ADMIN", "INTERNAL", "METRICS")
        }
    )
    environment.update(
        {
            "REFUND_DATABASE_URL": database_url,
            "REFUND_BINDING_INTERNAL_ADDRESS": binding[0],
            "REFUND_AUTH_INTERNAL_ADDRESS": f"127.0.0.1:{free_port()}",
            "REFUND_GATEWAY_URL": gateway,
            "REFUND_GATEWAY_TIMEOUT_SECONDS": "30",
            "REFUND_PAYOUT_INTERVAL_SECONDS": "0.2",
            "REFUND_PENDING_GRACE_SECONDS": "1",
        }
    )
    key = f"{refund_id}-1"
    log = tmp_path / "refund.log"
    first = await start_refund(environment, log)
    async with httpx.AsyncClient() as client:
        # "Sent": the gateway has the payout under the attempt's key (and is still answering).
        for _ in range(int(STARTUP_SECONDS / 0.05)):
            if (await client.get(f"{gateway}/payouts/{key}")).status_code == 200:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"refund never paid out:\n{log.read_text()}")
        first.send_signal(signal.SIGKILL)
        await first.wait()
        state, attempts = await refund_state(database_url, refund_id)
        assert (state, attempts) == (RefundState.PROCESSING.value, ["PENDING"])

        second = await start_refund(environment, log)
        try:
            for _ in range(int(STARTUP_SECONDS / 0.1)):
                state, attempts = await refund_state(database_url, refund_id)
                if state == RefundState.SUCCEEDED.value:
                    break
                await asyncio.sleep(0.1)
            assert (state, attempts) == (RefundState.SUCCEEDED.value, ["SUCCEEDED"])
            paid = (await client.get(f"{gateway}/ledger")).json()["paid"]
            assert list(paid) == [key]
            assert paid[key]["amount_minor"] == 2_500
        finally:
            second.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.wait(), 15) == 0
