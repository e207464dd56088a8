"""Auth on real ports, wired by its own composition root, for the API tests.

`auth_app` starts the whole service (`services.auth.bootstrap.build`) on ephemeral ports, once
on SQLite with the in-process limiter and once on PostgreSQL with the Redis limiter (a key
namespace of its own per test). Its messages go out through the outbox to a real SMTP server
and a real SMS webhook (tests/support/notify.py), so a test reads a code the way a user does:

    async def test_sign_in(auth_app: AuthTestApp) -> None:
        user = await auth_app.register(email=auth_app.new_email())
        reply = await auth_app.sign_in(user.contact, user.password)
        account = await auth_app.public.GetAccount(
            auth_service_pb2.GetAccountRequest(), metadata=bearer(reply.tokens.access_token)
        )

The client side (AuthTestApp, Registered, bearer, operator_metadata, service_metadata, ...)
is in harness.py and re-exported here. Fixtures: `auth_app`; its stubs `public`
(AuthService), `admin` (AccountAdminService), `internal` (AccountStatusService); and
`start_auth` for a test that needs its own app, e.g. on a clock it moves:
`async with start_auth(clock=...) as app:`.
A test whose outcome cannot depend on storage (an access check in the interceptors) may run
on one backend: `@pytest.mark.parametrize("auth_backend", ["sqlite"], indirect=True)`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

import grpc.aio
import pytest

from services.auth.bootstrap import build
from services.auth.settings import AuthSettings
from tests.api.auth.harness import (
    DEFAULT_CLIENT,
    DEFAULT_PASSWORD,
    AuthTestApp,
    Metadata,
    Registered,
    StartAuth,
    bearer,
    email_contact,
    operator_metadata,
    phone_contact,
    request_id,
    service_metadata,
)
from tests.support.notify import (
    SmsWebhookCatcher,
    SmtpCatcher,
    notifier_settings,
    sms_webhook_catcher,  # noqa: F401 (fixtures this folder's tests use)
    smtp_catcher,  # noqa: F401
)
from wallet.auth.v1 import (
    account_admin_service_pb2_grpc,
    account_status_service_pb2_grpc,
    auth_service_pb2_grpc,
)
from walletcore.clock import Clock

__all__ = [
    "DEFAULT_CLIENT",
    "DEFAULT_PASSWORD",
    "AuthTestApp",
    "Metadata",
    "Registered",
    "StartAuth",
    "bearer",
    "email_contact",
    "operator_metadata",
    "phone_contact",
    "request_id",
    "service_metadata",
]

OUTBOX_POLL_SECONDS: Final = 0.05
"""How often the app's dispatcher looks for messages: codes arrive within a poll."""


@pytest.fixture(params=["sqlite", "postgresql"])
def auth_backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The storage settings: SQLite with the in-process limiter, or PostgreSQL with Redis."""
    if request.param == "sqlite":
        return {
            "database_url": request.getfixturevalue("sqlite_url"),
            "rate_limiter": "memory",
        }
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
def start_auth(
    auth_backend: dict[str, Any],
    smtp_catcher: SmtpCatcher,  # noqa: F811 (the fixture imported above)
    sms_webhook_catcher: SmsWebhookCatcher,  # noqa: F811
) -> StartAuth:
    """`async with start_auth(clock=..., rules=..., **settings) as app:` starts an auth of
    its own (on this test's backend and inboxes) and stops it after."""

    @asynccontextmanager
    async def start(
        *, clock: Clock | None = None, rules: Any = None, **settings: Any
    ) -> AsyncIterator[AuthTestApp]:
        values: dict[str, Any] = {
            "profile": "development",
            "host": "127.0.0.1",
            "public_port": 0,
            "admin_port": 0,
            "internal_port": 0,
            "metrics_port": 0,
            "notifier": notifier_settings(smtp_catcher, sms_webhook_catcher),
            "migrate_on_start": True,
            "outbox_poll_seconds": OUTBOX_POLL_SECONDS,
            "shutdown_grace_seconds": 1.0,
            **auth_backend,
            **settings,
        }
        extras: dict[str, Any] = {"rules": rules}
        if clock is not None:
            extras["clock"] = clock
        app = build(AuthSettings(**values), **extras)
        try:
            ports = await app.start()
            channels = {
                kind: grpc.aio.insecure_channel(f"127.0.0.1:{ports[kind]}")
                for kind in ("public", "admin", "internal")
            }
            try:
                yield AuthTestApp(
                    app=app,
                    ports=ports,
                    public=auth_service_pb2_grpc.AuthServiceStub(channels["public"]),
                    admin=account_admin_service_pb2_grpc.AccountAdminServiceStub(channels["admin"]),
                    internal=account_status_service_pb2_grpc.AccountStatusServiceStub(
                        channels["internal"]
                    ),
                    channels=channels,
                    smtp=smtp_catcher,
                    sms=sms_webhook_catcher,
                )
            finally:
                for channel in channels.values():
                    await channel.close()
        finally:
            await app.close(grace=0)

    return start


@pytest.fixture
async def auth_app(start_auth: StartAuth) -> AsyncIterator[AuthTestApp]:
    """Auth with its default settings, on both backends."""
    async with start_auth() as app:
        yield app


@pytest.fixture
def public(auth_app: AuthTestApp) -> auth_service_pb2_grpc.AuthServiceAsyncStub:
    return auth_app.public


@pytest.fixture
def admin(auth_app: AuthTestApp) -> account_admin_service_pb2_grpc.AccountAdminServiceAsyncStub:
    return auth_app.admin


@pytest.fixture
def internal(
    auth_app: AuthTestApp,
) -> account_status_service_pb2_grpc.AccountStatusServiceAsyncStub:
    return auth_app.internal
