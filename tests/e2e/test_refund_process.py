"""`python -m services.refund` as a process next to `python -m services.auth`: a user of auth
requests a refund, a freeze in auth is refused by refund on the very next request, the refund
approved before the freeze is still paid to its card, and refund stops cleanly on SIGTERM.

Binding is a stand-in gRPC server in the test process whose refund holds wait until the test
opens them, so the payout provably happens after the freeze; the gateway is the simulated one
as its own process."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.api.auth.harness import bearer, operator_metadata, request_id, service_metadata
from tests.api.auth.test_admin_freeze import freeze_request
from tests.e2e.refund_peers import ROOT, StandInBinding, binding, free_port, gateway  # noqa: F401
from tests.e2e.test_auth_process import (
    STARTUP_SECONDS,
    STOP_SECONDS,
    AuthProcess,
    auth_process,  # noqa: F401 (the fixture this test uses)
)
from tests.e2e.test_binding_process import _subject_of, registered_access_token
from tests.support.notify import SmsWebhookCatcher
from wallet.auth.v1 import account_admin_service_pb2_grpc
from wallet.common.v1 import money_pb2
from wallet.refund.v1 import payment_ledger_service_pb2 as ledger_pb
from wallet.refund.v1 import (
    payment_ledger_service_pb2_grpc,
    refund_ops_service_pb2_grpc,
    refund_service_pb2_grpc,
    types_pb2,
)
from wallet.refund.v1 import refund_ops_service_pb2 as ops_pb
from wallet.refund.v1 import refund_service_pb2 as refund_pb
from walletcore.grpc.convert import timestamp
from walletcore.grpc.status import error_details
from walletcore.identity import OperatorRole

pytestmark = pytest.mark.e2e


def output(log: Path) -> str:
    return log.read_text(errors="replace")


async def wait_until_serving(port: int, process: asyncio.subprocess.Process, log: Path) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        async with asyncio.timeout(STARTUP_SECONDS):
            while process.returncode is None:
                try:
                    reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.1)
    pytest.fail(f"refund exited with {process.returncode}:\n{output(log)}")


async def test_a_freeze_is_refused_on_the_next_request_and_an_approved_refund_completes(
    tmp_path: Path,
    auth_process: AuthProcess,  # noqa: F811
    binding: tuple[str, StandInBinding],  # noqa: F811
    gateway: str,  # noqa: F811
    sms_webhook_catcher: SmsWebhookCatcher,
) -> None:
    ports = {kind: free_port() for kind in ("PUBLIC", "ADMIN", "INTERNAL", "METRICS")}
    environment = {n: v for n, v in os.environ.items() if not n.startswith("REFUND_")}
    environment.update({f"REFUND_{kind}_PORT": str(port) for kind, port in ports.items()})
    environment.update(
        {
            "REFUND_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'refund.db'}",
            "REFUND_AUTH_INTERNAL_ADDRESS": f"127.0.0.1:{auth_process.ports['INTERNAL']}",
            "REFUND_BINDING_INTERNAL_ADDRESS": binding[0],
            "REFUND_GATEWAY_URL": gateway,
            "REFUND_PAYOUT_INTERVAL_SECONDS": "0.1",
        }
    )
    stand_in = binding[1]
    stand_in.open.clear()
    log = tmp_path / "refund.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.refund",
            cwd=ROOT,
            env=environment,
            stdout=sink,
            stderr=sink,
        )
    try:
        await wait_until_serving(ports["PUBLIC"], process, log)
        token = await registered_access_token(auth_process.public_port, sms_webhook_catcher)
        account_id = _subject_of(token)
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{ports['PUBLIC']}") as public_channel,
            grpc.aio.insecure_channel(f"127.0.0.1:{ports['ADMIN']}") as admin_channel,
            grpc.aio.insecure_channel(f"127.0.0.1:{ports['INTERNAL']}") as internal_channel,
            grpc.aio.insecure_channel(f"127.0.0.1:{auth_process.ports['ADMIN']}") as auth_admin,
        ):
            public = refund_service_pb2_grpc.RefundServiceStub(public_channel)
            ops = refund_ops_service_pb2_grpc.RefundOpsServiceStub(admin_channel)
            recorded = await payment_ledger_service_pb2_grpc.PaymentLedgerServiceStub(
                internal_channel
            ).RecordCapturedPayment(
                ledger_pb.RecordCapturedPaymentRequest(
                    request_id=request_id(),
                    payment_id="pay_e2e_1",
                    account_id=account_id,
                    amount=money_pb2.Money(amount_minor=10_000, currency="CNY"),
                    source_instrument_id="card0001",
                    captured_at=timestamp(datetime.now(UTC) - timedelta(hours=1)),
                ),
                metadata=service_metadata("payments", audience="refund"),
            )

            def ask(minor: int) -> refund_pb.RequestRefundRequest:
                return refund_pb.RequestRefundRequest(
                    request_id=request_id(),
                    payment_id=recorded.payment.payment_id,
                    amount=money_pb2.Money(amount_minor=minor, currency="CNY"),
                    reason=types_pb2.REFUND_REASON_NOT_RECEIVED,
                )

            approved = await public.RequestRefund(ask(1_000), metadata=bearer(token))
            assert approved.refund.state == types_pb2.REFUND_STATE_APPROVED

            await account_admin_service_pb2_grpc.AccountAdminServiceStub(auth_admin).FreezeAccount(
                freeze_request(account_id), metadata=operator_metadata()
            )
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await public.RequestRefund(ask(1_000), metadata=bearer(token))
            details = error_details(refused.value)
            assert (details.code, details.reason) == (
                grpc.StatusCode.FAILED_PRECONDITION,
                "ACCOUNT_FROZEN",
            )

            stand_in.open.set()
            operator = operator_metadata(OperatorRole.REFUND_OPERATOR, "op-1")
            state = types_pb2.REFUND_STATE_UNSPECIFIED
            async with asyncio.timeout(STARTUP_SECONDS):
                while state != types_pb2.REFUND_STATE_SUCCEEDED:
                    await asyncio.sleep(0.1)
                    seen = await ops.GetRefund(
                        ops_pb.RefundOpsServiceGetRefundRequest(
                            refund_id=approved.refund.refund_id
                        ),
                        metadata=operator,
                    )
                    state = seen.refund.state
            assert [a.state for a in seen.payout_attempts] == [
                types_pb2.PAYOUT_ATTEMPT_STATE_SUCCEEDED
            ]
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), STOP_SECONDS) == 0
        assert token not in output(log)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
