"""Kyc on real ports next to a real auth, for the API tests.

`kyc_app` starts auth (tests/api/auth's `start_auth`, on SQLite: auth's storage is not what
these tests are about) and then kyc through its own composition root, calling that auth over
gRPC. Kyc runs once on SQLite with the in-process limiter and once on PostgreSQL with Redis.

    async def test_submit(kyc_app: KycTestApp) -> None:
        user = await kyc_app.auth.register()
        reply = await kyc_app.public.SubmitVerification(submit_request(), metadata=user.metadata)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any

import grpc.aio
import pytest

from services.kyc.bootstrap import build
from services.kyc.settings import KycSettings
from tests.api.auth.conftest import (
    start_auth,  # noqa: F401 (a fixture this folder's tests use)
)
from tests.api.auth.harness import AuthTestApp, StartAuth
from tests.api.kyc.harness import KycTestApp
from tests.support.notify import (
    sms_webhook_catcher,  # noqa: F401 (fixtures start_auth uses)
    smtp_catcher,  # noqa: F401
)
from wallet.kyc.v1 import (
    kyc_review_service_pb2_grpc,
    kyc_service_pb2_grpc,
    kyc_status_service_pb2_grpc,
)
from walletcore.clock import Clock

StartKyc = Callable[..., AbstractAsyncContextManager[KycTestApp]]


@pytest.fixture
def auth_backend(tmp_path: Any) -> dict[str, Any]:
    """Auth beside kyc: SQLite in a file of its own, the in-process limiter."""
    return {"database_url": f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}", "rate_limiter": "memory"}


@pytest.fixture(params=["sqlite", "postgresql"])
def kyc_backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "sqlite":
        return {"database_url": request.getfixturevalue("sqlite_url"), "rate_limiter": "memory"}
    return {
        "database_url": request.getfixturevalue("postgres_url"),
        "redis_url": request.getfixturevalue("redis_url"),
        "rate_limiter": "redis",
        # The shared machine can stall Redis past the production default (0.25 s); a
        # timeout here would be a flake, not a finding (the timeout is tested on its own).
        "redis_timeout_seconds": 5.0,
        "rate_limit_namespace": request.getfixturevalue("redis_prefix"),
    }


@pytest.fixture
def start_kyc(start_auth: StartAuth, kyc_backend: dict[str, Any]) -> StartKyc:  # noqa: F811
    """`async with start_kyc(clock=..., **settings) as app:` starts auth and a kyc calling it;
    `start_kyc(auth=...)` starts only the kyc, calling an auth the test already runs."""

    @asynccontextmanager
    async def start(
        *, clock: Clock | None = None, auth: AuthTestApp | None = None, **settings: Any
    ) -> AsyncIterator[KycTestApp]:
        async with start_auth() if auth is None else nullcontext(auth) as auth:
            values: dict[str, Any] = {
                "profile": "development",
                "host": "127.0.0.1",
                "public_port": 0,
                "admin_port": 0,
                "internal_port": 0,
                "metrics_port": 0,
                "migrate_on_start": True,
                "shutdown_grace_seconds": 1.0,
                "auth_internal_address": f"127.0.0.1:{auth.ports['internal']}",
                **kyc_backend,
                **settings,
            }
            extras: dict[str, Any] = {} if clock is None else {"clock": clock}
            app = build(KycSettings(**values), **extras)
            try:
                ports = await app.start()
                channels = {
                    kind: grpc.aio.insecure_channel(f"127.0.0.1:{ports[kind]}")
                    for kind in ("public", "admin", "internal")
                }
                try:
                    yield KycTestApp(
                        app=app,
                        auth=auth,
                        ports=ports,
                        public=kyc_service_pb2_grpc.KycServiceStub(channels["public"]),
                        review=kyc_review_service_pb2_grpc.KycReviewServiceStub(channels["admin"]),
                        status=kyc_status_service_pb2_grpc.KycStatusServiceStub(
                            channels["internal"]
                        ),
                    )
                finally:
                    for channel in channels.values():
                        await channel.close()
            finally:
                await app.close(grace=0)

    return start


@pytest.fixture
async def kyc_app(start_kyc: StartKyc) -> AsyncIterator[KycTestApp]:
    async with start_kyc() as app:
        yield app
