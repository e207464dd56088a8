"""Fifty-five partial refunds fired at once at one payment through real gRPC on PostgreSQL
(each its own RPC, transaction and request_id): the accepted total equals the capture, never
more, and the refused ones are all REFUND_EXCEEDS_CAPTURED. One account sends them all, so
the per-account rate limit (100 an hour) must not refuse any of them."""

from __future__ import annotations

import asyncio
from collections import Counter

import grpc
import pytest

from tests.api.refund.conftest import RefundTestApp
from wallet.common.v1 import paging_pb2
from wallet.refund.v1 import refund_service_pb2 as refund_pb
from wallet.refund.v1 import types_pb2
from walletcore.grpc.status import error_details

pytestmark = pytest.mark.api

CALLS = 55
EACH = 1_000
CAPTURED = 50_000


@pytest.mark.parametrize("auth_backend", ["postgresql"], indirect=True)
async def test_simultaneous_partial_refunds_never_exceed_the_capture(
    refund_app: RefundTestApp,
) -> None:
    holder = await refund_app.new_holder()
    payment = await refund_app.capture(holder, CAPTURED)
    start = asyncio.Event()

    async def one() -> str:
        await start.wait()
        try:
            refund = await refund_app.request(holder, payment.payment_id, EACH)
        except grpc.aio.AioRpcError as error:
            return str(error_details(error).reason)
        return types_pb2.RefundState.Name(refund.state)

    tasks = [asyncio.create_task(one()) for _ in range(CALLS)]
    await asyncio.sleep(0)
    start.set()
    outcomes = await asyncio.gather(*tasks)
    assert Counter(outcomes) == {
        "REFUND_STATE_APPROVED": CAPTURED // EACH,
        "REFUND_EXCEEDS_CAPTURED": CALLS - CAPTURED // EACH,
    }
    listed = await refund_app.public.ListRefunds(
        refund_pb.ListRefundsRequest(
            payment_id=payment.payment_id, page=paging_pb2.PageRequest(page_size=200)
        ),
        metadata=holder.metadata,
    )
    assert sum(r.amount.amount_minor for r in listed.refunds) == CAPTURED
    payments = await refund_app.public.ListPayments(
        refund_pb.ListPaymentsRequest(), metadata=holder.metadata
    )
    assert payments.payments[0].refundable_amount.amount_minor == 0
