"""Binding on real ports, wired by its own composition root, next to a real auth.

`binding_app` starts auth (auth's API fixtures: its own database, SMTP server and SMS webhook)
and a kyc stand-in (tests/api/binding/kyc_stand_in.py), then binding
(`services.binding.bootstrap.build`) on ephemeral ports, calling both through its internal
clients. Binding's database and its card vault's are two SQLite files with the in-process
limiter, or two fresh PostgreSQL databases and Redis when auth runs on PostgreSQL: the same
tests pass on both.

    async def test_bind(binding_app: BindingTestApp) -> None:
        holder = await binding_app.new_holder()          # verified phone, signed in, KYC approved
        reply = await binding_app.public.BindCard(bind_request(), metadata=holder.metadata)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc.aio
import pytest

from services.binding.bootstrap import BindingApp, build
from services.binding.settings import BindingSettings
from tests.api.auth.conftest import auth_app, auth_backend, start_auth  # noqa: F401
from tests.api.auth.harness import AuthTestApp, operator_metadata, request_id, service_metadata
from tests.api.auth.recovery_helpers import Holder, new_holder
from tests.api.binding.kyc_stand_in import StandInKyc, running_kyc
from tests.conftest import fresh_postgres_database
from tests.support.notify import sms_webhook_catcher, smtp_catcher  # noqa: F401
from wallet.auth.v1 import auth_service_pb2 as auth_pb
from wallet.auth.v1 import types_pb2 as auth_types
from wallet.binding.v1 import (
    binding_admin_service_pb2_grpc,
    binding_query_service_pb2_grpc,
    binding_service_pb2_grpc,
)
from walletcore.identity import OperatorRole
from walletcore.settings import Profile

REFUND = service_metadata("refund", audience="binding")
OFFICER = operator_metadata(OperatorRole.SECURITY_OFFICER, "officer-7")
HOLDER_NAME = "Test Holder"


@dataclass
class BindingTestApp:
    app: BindingApp
    auth: AuthTestApp
    kyc: StandInKyc
    ports: dict[str, int]
    public: binding_service_pb2_grpc.BindingServiceAsyncStub
    query: binding_query_service_pb2_grpc.BindingQueryServiceAsyncStub
    admin: binding_admin_service_pb2_grpc.BindingAdminServiceAsyncStub

    async def new_holder(self, *, kyc_name: str | None = HOLDER_NAME) -> Holder:
        """A signed-in account of auth with a verified phone, its KYC approved under
        `kyc_name` (None: never verified)."""
        holder = await new_holder(self.auth)
        if kyc_name is not None:
            self.kyc.approve(holder.account_id, kyc_name)
        return holder

    async def grant(
        self, holder: Holder, purpose: int, object_id: str, *, by_email: bool = False
    ) -> str:
        """A step-up grant from auth, proved with the code sent to the holder's phone (or
        email: auth sends one code a minute to each destination)."""
        challenge = await self.auth.public.StartStepUp(
            auth_pb.StartStepUpRequest(
                request_id=request_id(),
                purpose=purpose,  # type: ignore[arg-type]
                object_id=object_id,
                method=auth_types.STEP_UP_METHOD_EMAIL
                if by_email
                else auth_types.STEP_UP_METHOD_SMS,
            ),
            metadata=holder.metadata,
        )
        completed = await self.auth.public.CompleteStepUp(
            auth_pb.CompleteStepUpRequest(
                request_id=request_id(),
                challenge_id=challenge.challenge_id,
                code=await self.auth.next_code(holder.email if by_email else holder.phone),
            ),
            metadata=holder.metadata,
        )
        return completed.grant.token


@pytest.fixture
async def binding_storage(
    auth_backend: dict[str, Any],  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> AsyncIterator[dict[str, str]]:
    if "redis_url" not in auth_backend:
        yield {
            "database_url": f"sqlite+aiosqlite:///{tmp_path / 'binding.db'}",
            "vault_database_url": f"sqlite+aiosqlite:///{tmp_path / 'binding-vault.db'}",
        }
        return
    server_url = str(request.getfixturevalue("postgres_server_url"))
    async with (
        fresh_postgres_database(server_url) as database_url,
        fresh_postgres_database(server_url) as vault_database_url,
    ):
        yield {
            "database_url": database_url,
            "vault_database_url": vault_database_url,
            # Limits are per account, and every test's accounts are new: Redis is shared safely.
            "redis_url": auth_backend["redis_url"],
            "rate_limiter": "redis",
            # The shared machine can stall Redis past the production default (0.25 s); a
            # timeout here would be a flake, not a finding (the timeout is tested on its own).
            "redis_timeout_seconds": "5.0",
        }


@pytest.fixture
async def binding_app(
    auth_app: AuthTestApp,  # noqa: F811
    binding_storage: dict[str, str],
) -> AsyncIterator[BindingTestApp]:
    async with AsyncExitStack() as stack:
        kyc = await stack.enter_async_context(running_kyc())
        values: dict[str, Any] = {
            **binding_storage,
            "auth_internal_address": f"127.0.0.1:{auth_app.ports['internal']}",
            "kyc_internal_address": kyc.address,
            "auth_issuer": auth_app.settings.issuer,
        }
        settings = BindingSettings(
            profile=Profile.DEVELOPMENT,
            host="127.0.0.1",
            public_port=0,
            admin_port=0,
            internal_port=0,
            metrics_port=0,
            migrate_on_start=True,
            shutdown_grace_seconds=1.0,
            **values,
        )
        app = build(settings, clock=auth_app.app.ctx.clock)
        ports = await app.start()
        stack.push_async_callback(app.close, 0)
        public = grpc.aio.insecure_channel(f"127.0.0.1:{ports['public']}")
        internal = grpc.aio.insecure_channel(f"127.0.0.1:{ports['internal']}")
        admin = grpc.aio.insecure_channel(f"127.0.0.1:{ports['admin']}")
        for channel in (public, internal, admin):
            stack.push_async_callback(channel.close)
        yield BindingTestApp(
            app=app,
            auth=auth_app,
            kyc=kyc,
            ports=ports,
            public=binding_service_pb2_grpc.BindingServiceStub(public),
            query=binding_query_service_pb2_grpc.BindingQueryServiceStub(internal),
            admin=binding_admin_service_pb2_grpc.BindingAdminServiceStub(admin),
        )
