"""Refund on real ports, wired by its own composition root, next to a real auth.

`refund_app` starts auth (auth's API fixtures) and then refund (`services.refund.bootstrap.
build`) on ephemeral ports, with binding and the payout gateway replaced by the in-memory
stand-ins of `services.refund.service.fakes` (binding's holds and instruments, a gateway
that honours idempotency keys and keeps a ledger), so each test scripts what binding and the
gateway answer. Refund's database is a SQLite file with the in-process limiter, or a fresh
PostgreSQL database and Redis when auth runs on PostgreSQL: the same tests pass on both.

The payout worker's background loop runs once at start and then waits an hour: tests drive
it with `refund_app.pay_out()`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import grpc.aio
import pytest

from services.refund.bootstrap import RefundApp, build
from services.refund.service.fakes import FakeGateway, FakeHolds
from services.refund.service.payouts import PassReport
from services.refund.settings import RefundSettings
from tests.api.auth.conftest import auth_app, auth_backend, start_auth  # noqa: F401
from tests.api.auth.harness import AuthTestApp, operator_metadata, request_id, service_metadata
from tests.api.auth.recovery_helpers import Holder, new_holder
from tests.conftest import fresh_postgres_database
from tests.support.notify import sms_webhook_catcher, smtp_catcher  # noqa: F401
from wallet.auth.v1 import auth_service_pb2 as auth_pb
from wallet.auth.v1 import types_pb2 as auth_types
from wallet.common.v1 import money_pb2
from wallet.refund.v1 import (
    payment_ledger_service_pb2 as ledger_pb,
)
from wallet.refund.v1 import (
    payment_ledger_service_pb2_grpc,
    refund_ops_service_pb2_grpc,
    refund_service_pb2_grpc,
    types_pb2,
)
from wallet.refund.v1 import refund_service_pb2 as refund_pb
from walletcore.grpc.convert import timestamp
from walletcore.identity import OperatorRole
from walletcore.settings import Profile

PAYMENTS = service_metadata("payments", audience="refund")
OPERATOR = operator_metadata(OperatorRole.REFUND_OPERATOR, "op-1")
OFFICER = operator_metadata(OperatorRole.SECURITY_OFFICER, "officer-1")
CARD = "card0001"
OTHER_CARD = "card0002"


@dataclass
class RefundTestApp:
    app: RefundApp
    auth: AuthTestApp
    holds: FakeHolds
    gateway: FakeGateway
    ports: dict[str, int]
    public: refund_service_pb2_grpc.RefundServiceAsyncStub
    ops: refund_ops_service_pb2_grpc.RefundOpsServiceAsyncStub
    ledger: payment_ledger_service_pb2_grpc.PaymentLedgerServiceAsyncStub

    def now(self) -> datetime:
        return self.app.ctx.clock()

    async def new_holder(self) -> Holder:
        """A signed-in account of auth whose cards binding knows (both usable)."""
        holder = await new_holder(self.auth)
        self.holds.instruments[f"{CARD}{holder.account_id}"] = (holder.account_id, True)
        self.holds.instruments[f"{OTHER_CARD}{holder.account_id}"] = (holder.account_id, True)
        return holder

    async def capture(
        self,
        holder: Holder,
        minor: int = 100_000,
        *,
        currency: str = "CNY",
        age: timedelta = timedelta(days=1),
        payment_id: str | None = None,
        captured_at: datetime | None = None,
    ) -> types_pb2.Payment:
        reply = await self.ledger.RecordCapturedPayment(
            ledger_pb.RecordCapturedPaymentRequest(
                request_id=request_id(),
                payment_id=payment_id or f"pay_{request_id()}",
                account_id=holder.account_id,
                amount=money_pb2.Money(amount_minor=minor, currency=currency),
                source_instrument_id=f"{CARD}{holder.account_id}",
                captured_at=timestamp(captured_at or self.now() - age),
            ),
            metadata=PAYMENTS,
        )
        return reply.payment

    async def request(
        self,
        holder: Holder,
        payment_id: str,
        minor: int,
        *,
        currency: str = "CNY",
        grant: str = "",
        rid: str | None = None,
    ) -> types_pb2.Refund:
        reply = await self.public.RequestRefund(
            request_body(payment_id, minor, currency=currency, grant=grant, rid=rid),
            metadata=holder.metadata,
        )
        return reply.refund

    async def grant(self, holder: Holder, payment_id: str) -> str:
        """A REFUND_ABOVE_THRESHOLD grant from auth for `payment_id`, proved by SMS code."""
        challenge = await self.auth.public.StartStepUp(
            auth_pb.StartStepUpRequest(
                request_id=request_id(),
                purpose=auth_types.STEP_UP_PURPOSE_REFUND_ABOVE_THRESHOLD,
                object_id=payment_id,
                method=auth_types.STEP_UP_METHOD_SMS,
            ),
            metadata=holder.metadata,
        )
        completed = await self.auth.public.CompleteStepUp(
            auth_pb.CompleteStepUpRequest(
                request_id=request_id(),
                challenge_id=challenge.challenge_id,
                code=await self.auth.next_code(holder.phone),
            ),
            metadata=holder.metadata,
        )
        return completed.grant.token

    async def pay_out(self) -> PassReport:
        return await self.app.worker.run_once()


def request_body(
    payment_id: str,
    minor: int,
    *,
    currency: str = "CNY",
    grant: str = "",
    rid: str | None = None,
) -> refund_pb.RequestRefundRequest:
    return refund_pb.RequestRefundRequest(
        request_id=rid or request_id(),
        payment_id=payment_id,
        amount=money_pb2.Money(amount_minor=minor, currency=currency),
        reason=types_pb2.REFUND_REASON_DEFECTIVE,
        evidence=types_pb2.Evidence(order_id="order-1", screenshot_refs=["shots/1.png"]),
        grant=grant,
    )


@pytest.fixture
async def refund_storage(
    auth_backend: dict[str, Any],  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> AsyncIterator[dict[str, str]]:
    if "redis_url" not in auth_backend:
        yield {"database_url": f"sqlite+aiosqlite:///{tmp_path / 'refund.db'}"}
        return
    server_url = str(request.getfixturevalue("postgres_server_url"))
    async with fresh_postgres_database(server_url) as database_url:
        yield {
            "database_url": database_url,
            # Limits are per account, and every test's accounts are new: Redis is shared safely.
            "redis_url": auth_backend["redis_url"],
            "rate_limiter": "redis",
            # As auth's API tests: a loaded machine can stall one check past the 0.25 s default.
            "redis_timeout_seconds": "5.0",
        }


@pytest.fixture
def refund_overrides() -> dict[str, Any]:
    """Settings a test module changes (override this fixture there)."""
    return {}


@pytest.fixture
async def refund_app(
    auth_app: AuthTestApp,  # noqa: F811
    refund_storage: dict[str, str],
    refund_overrides: dict[str, Any],
) -> AsyncIterator[RefundTestApp]:
    async with AsyncExitStack() as stack:
        storage: dict[str, Any] = dict(refund_storage)
        settings = RefundSettings(
            profile=Profile.DEVELOPMENT,
            host="127.0.0.1",
            public_port=0,
            admin_port=0,
            internal_port=0,
            metrics_port=0,
            migrate_on_start=True,
            shutdown_grace_seconds=1.0,
            auth_internal_address=f"127.0.0.1:{auth_app.ports['internal']}",
            auth_issuer=auth_app.settings.issuer,
            **{
                "payout_interval_seconds": 3600,
                "pending_grace_seconds": 0,
                "auto_approve_limits": {"CNY": 5_000},
                "grant_thresholds": {"CNY": 20_000},
                **storage,
                **refund_overrides,
            },
        )
        holds, gateway = FakeHolds(), FakeGateway()
        app = build(settings, clock=auth_app.app.ctx.clock, gateway=gateway, holds=holds)
        ports = await app.start()
        stack.push_async_callback(app.close, 0)
        channels = {
            kind: grpc.aio.insecure_channel(f"127.0.0.1:{ports[kind]}")
            for kind in ("public", "admin", "internal")
        }
        for channel in channels.values():
            stack.push_async_callback(channel.close)
        yield RefundTestApp(
            app=app,
            auth=auth_app,
            holds=holds,
            gateway=gateway,
            ports=ports,
            public=refund_service_pb2_grpc.RefundServiceStub(channels["public"]),
            ops=refund_ops_service_pb2_grpc.RefundOpsServiceStub(channels["admin"]),
            ledger=payment_ledger_service_pb2_grpc.PaymentLedgerServiceStub(channels["internal"]),
        )
