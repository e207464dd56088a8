"""Another service calling a real auth through walletcore's internal client factory, and
authenticating auth's users on its own public port (walletcore.grpc.clients, walletcore.users).

The "other service" is kyc's identity: the development identity ring signs its service tokens,
as every service's does in development.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import grpc.aio
import jwt
import pytest

from tests.api.auth.harness import AuthTestApp, StartAuth, operator_metadata, request_id
from tests.api.auth.test_admin_freeze import freeze_request
from wallet.auth.v1 import account_status_service_pb2 as status_pb
from wallet.auth.v1 import account_status_service_pb2_grpc as status_grpc
from wallet.auth.v1 import auth_service_pb2 as auth_pb
from walletcore.errors import FailedPrecondition, NotFound, Unauthenticated, Unavailable
from walletcore.grpc.clients import (
    TIMEOUT_REASON,
    UNREACHABLE_REASON,
    InternalClients,
    InternalTarget,
    InternalTargetOptions,
    ServiceTokens,
    service_token_issuer,
)
from walletcore.logging import current_request_id, reset_request_id, set_request_id
from walletcore.tokens import DEVELOPMENT_IDENTITY_ISSUER, AccessTokenVerifier
from walletcore.users import (
    AUTH_READS,
    STATUS_SERVICE_NAME,
    ActiveUserVerifier,
    AuthStatusClient,
    auth_keyset,
)


@asynccontextmanager
async def auth_client(
    address: str, *, deadline_seconds: float = 2.0
) -> AsyncIterator[tuple[AuthStatusClient, ActiveUserVerifier]]:
    """kyc's view of auth at `address`: the status client and the user verifier."""
    clients = InternalClients(
        ServiceTokens(service_token_issuer(None, DEVELOPMENT_IDENTITY_ISSUER), "kyc")
    )
    options = InternalTargetOptions(deadline_seconds=deadline_seconds)
    client = AuthStatusClient(
        clients.channel(InternalTarget("auth", address, options), reads=AUTH_READS)
    )
    users = ActiveUserVerifier(AccessTokenVerifier(auth_keyset(client), "wallet-auth"), client)
    try:
        yield client, users
    finally:
        await clients.close()


def internal_address(app: AuthTestApp) -> str:
    return f"127.0.0.1:{app.ports['internal']}"


def signing_key_spec() -> str:
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return f"k{uuid.uuid4().hex[:8]}:{secret}"


async def test_a_live_session_of_an_active_account_is_let_in(auth_app: AuthTestApp) -> None:
    user = await auth_app.register()
    async with auth_client(internal_address(auth_app)) as (_, users):
        caller = await users.verify(user.tokens.access_token)
    assert caller.subject == user.account_id


async def test_a_freeze_refuses_the_very_next_request(auth_app: AuthTestApp) -> None:
    user = await auth_app.register()
    async with auth_client(internal_address(auth_app)) as (_, users):
        await users.verify(user.tokens.access_token)
        await auth_app.admin.FreezeAccount(
            freeze_request(user.account_id), metadata=operator_metadata()
        )
        with pytest.raises(FailedPrecondition) as refused:
            await users.verify(user.tokens.access_token)
    assert refused.value.reason == "ACCOUNT_FROZEN"


async def test_a_signed_out_session_is_refused(auth_app: AuthTestApp) -> None:
    user = await auth_app.register()
    await auth_app.public.SignOut(
        auth_pb.SignOutRequest(request_id=request_id()), metadata=user.metadata
    )
    async with auth_client(internal_address(auth_app)) as (_, users):
        with pytest.raises(Unauthenticated) as refused:
            await users.verify(user.tokens.access_token)
    assert refused.value.reason == "SESSION_REVOKED"


async def test_a_stopped_auth_is_unavailable_never_internal(start_auth: StartAuth) -> None:
    async with start_auth() as app:
        user = await app.register()
        address = internal_address(app)
        async with auth_client(address) as (_, users):
            await users.verify(user.tokens.access_token)
            await app.app.close(grace=0)
            with pytest.raises(Unavailable) as refused:
                await users.verify(user.tokens.access_token)
    assert refused.value.reason == UNREACHABLE_REASON


async def test_the_remotes_reason_comes_back(auth_app: AuthTestApp) -> None:
    async with auth_client(internal_address(auth_app)) as (client, _):
        with pytest.raises(NotFound) as missing:
            await client.account_status(uuid.uuid4().hex)
    assert missing.value.reason == "ACCOUNT_NOT_FOUND"


@pytest.mark.parametrize("auth_backend", ["sqlite"], indirect=True)
async def test_auth_logs_the_callers_request_id(
    auth_app: AuthTestApp, caplog: pytest.LogCaptureFixture
) -> None:
    user = await auth_app.register()
    seen: list[tuple[str | None, Any]] = []

    class Capture(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            # Runs in auth's handler task: the id there is the one auth read from metadata.
            seen.append((current_request_id(), getattr(record, "grpc_method", None)))
            return True

    auth_logger = logging.getLogger("services.auth")
    capture = Capture()
    auth_logger.addFilter(capture)
    token = set_request_id("kyc-call-4711")
    try:
        async with auth_client(internal_address(auth_app)) as (_, users):
            with caplog.at_level(logging.DEBUG, logger="services.auth"):
                await users.verify(user.tokens.access_token)
    finally:
        reset_request_id(token)
        auth_logger.removeFilter(capture)
    assert ("kyc-call-4711", f"/{STATUS_SERVICE_NAME}/GetAccountStatus") in seen


async def test_every_call_has_a_deadline() -> None:
    """A target that never answers: the call ends at its deadline as Unavailable."""
    never = asyncio.Event()

    async def hang(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        await never.wait()
        return b""

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                STATUS_SERVICE_NAME, {"GetAccountStatus": grpc.unary_unary_rpc_method_handler(hang)}
            )
        ]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with auth_client(f"127.0.0.1:{port}", deadline_seconds=0.3) as (client, _):
            with pytest.raises(Unavailable) as late:
                await client.account_status(uuid.uuid4().hex)
    finally:
        await server.stop(0)
    assert late.value.reason == TIMEOUT_REASON


async def test_a_key_rotation_in_a_running_auth_needs_no_restart_here(
    start_auth: StartAuth,
) -> None:
    old_key, new_key = signing_key_spec(), signing_key_spec()
    async with start_auth(signing_keys=old_key) as first:
        user = await first.register()
        address, internal_port = internal_address(first), first.ports["internal"]
        async with auth_client(address) as (_, users):
            await users.verify(user.tokens.access_token)  # caches the old key alone
            await first.app.close(grace=0)
            # The same auth, restarted with a new active key prepended on the same address.
            async with start_auth(
                signing_keys=f"{new_key},{old_key}", internal_port=internal_port
            ) as rotated:
                tokens = await rotated.signed_in(user)
                caller = await users.verify(tokens.access_token)
                still_valid = await users.verify(user.tokens.access_token)
    new_kid, old_kid = (new_key.split(":")[0], old_key.split(":")[0])
    assert jwt.get_unverified_header(tokens.access_token)["kid"] == new_kid
    assert jwt.get_unverified_header(user.tokens.access_token)["kid"] == old_kid
    assert caller.subject == still_valid.subject == user.account_id


async def test_reads_are_retried_on_unavailable_and_nothing_else_is() -> None:
    attempts: list[str] = []

    def flaky(name: str) -> Any:
        async def handle(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            attempts.append(name)
            if attempts.count(name) == 1:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "warming up")
            return b""

        return grpc.unary_unary_rpc_method_handler(handle)

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                STATUS_SERVICE_NAME,
                {"GetAccountStatus": flaky("read"), "CompleteContactChange": flaky("write")},
            )
        ]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with auth_client(f"127.0.0.1:{port}") as (client, _):
            await client.account_status(uuid.uuid4().hex)
            stub = status_grpc.AccountStatusServiceStub(client.channel.channel)
            with pytest.raises(Unavailable):
                await client.channel.call(
                    stub.CompleteContactChange, status_pb.CompleteContactChangeRequest()
                )
    finally:
        await server.stop(0)
    assert attempts == ["read", "read", "write"]
