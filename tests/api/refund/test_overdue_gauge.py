"""The overdue count operators and dashboards watch (`refund_overdue_refunds` on the metrics
port): a refund waiting for an operator past its service-level deadline is counted, and stops
being counted once an operator acts. Auth and refund share a FakeClock the test moves; the
payout worker, which refreshes the gauge, runs every 50 ms."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.api.auth.conftest import StartAuth
from tests.api.auth.harness import AuthTestApp, operator_metadata, request_id
from tests.api.refund.conftest import RefundTestApp
from wallet.refund.v1 import refund_ops_service_pb2 as ops_pb
from wallet.refund.v1 import types_pb2
from walletcore.clock import utc_now
from walletcore.fakes import FakeClock
from walletcore.identity import OperatorRole

pytestmark = pytest.mark.api

GAUGE = "refund_overdue_refunds"
SETTLE_SECONDS = 15.0


@pytest.fixture
async def auth_app(start_auth: StartAuth) -> AsyncIterator[AuthTestApp]:
    async with start_auth(clock=FakeClock(utc_now())) as app:
        yield app


@pytest.fixture
def refund_overrides() -> dict[str, Any]:
    return {"payout_interval_seconds": 0.05}


def moved_clock(app: RefundTestApp) -> FakeClock:
    clock = app.auth.app.ctx.clock
    assert isinstance(clock, FakeClock)
    return clock


async def overdue_count(app: RefundTestApp) -> float:
    async with httpx.AsyncClient() as http:
        reply = await http.get(f"http://127.0.0.1:{app.ports['metrics']}/metrics")
    for line in reply.text.splitlines():
        if line.startswith(f"{GAUGE} "):
            return float(line.split()[1])
    raise AssertionError(f"{GAUGE} is not exported")


async def settled_count(app: RefundTestApp, expected: float) -> float:
    """The gauge once it reads `expected`, or what it last read after SETTLE_SECONDS (the
    worker refreshes it on each pass; this waits for a pass, it times nothing)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_SECONDS
    value = await overdue_count(app)
    while value != expected and loop.time() < deadline:
        await asyncio.sleep(0.05)
        value = await overdue_count(app)
    return value


async def test_the_gauge_counts_refunds_past_the_deadline_until_an_operator_acts(
    refund_app: RefundTestApp,
) -> None:
    clock = moved_clock(refund_app)
    holder = await refund_app.new_holder()
    payment = await refund_app.capture(holder)
    # Above auto-approval (5,000), below the grant threshold (20,000): an operator decides.
    waiting = await refund_app.request(holder, payment.payment_id, 10_000)
    assert waiting.state == types_pb2.REFUND_STATE_REQUESTED
    assert await settled_count(refund_app, 0) == 0

    clock.advance(timedelta(days=5))  # past one working day from any weekday
    operator = operator_metadata(OperatorRole.REFUND_OPERATOR, "ops-1", clock=clock)
    queue = await refund_app.ops.ListRefundQueue(ops_pb.ListRefundQueueRequest(), metadata=operator)
    counted = await settled_count(refund_app, 1)
    await refund_app.ops.ApproveRefund(
        ops_pb.ApproveRefundRequest(request_id=request_id(), refund_id=waiting.refund_id),
        metadata=operator,
    )
    after_approval = await settled_count(refund_app, 0)

    assert [(i.refund.refund_id, i.overdue) for i in queue.items] == [(waiting.refund_id, True)]
    assert counted == 1
    assert after_approval == 0
