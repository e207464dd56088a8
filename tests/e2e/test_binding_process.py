"""`python -m services.binding` as a process next to `python -m services.auth`: a user of auth
is served by binding, a freeze in auth is refused by binding on the very next request, and
binding stops cleanly on SIGTERM without a contact in its logs."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import grpc.aio
import jwt
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.api.auth.harness import bearer, operator_metadata
from tests.api.auth.test_admin_freeze import freeze_request
from tests.e2e.test_auth_process import (
    CLIENT,
    PASSWORD,
    PHONE,
    ROOT,
    STARTUP_SECONDS,
    STOP_SECONDS,
    AuthProcess,
    auth_process,  # noqa: F401 (the fixture this test uses)
    free_port,
    request_id,
)
from tests.support.notify import SmsWebhookCatcher, extract_code
from wallet.auth.v1 import account_admin_service_pb2_grpc, auth_service_pb2, auth_service_pb2_grpc
from wallet.binding.v1 import binding_service_pb2, binding_service_pb2_grpc
from wallet.common.v1 import contact_pb2
from walletcore.grpc.status import error_details


@dataclass
class BindingProcess:
    process: asyncio.subprocess.Process
    public_port: int
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
async def binding_process(
    tmp_path: Path,
    auth_process: AuthProcess,  # noqa: F811
) -> AsyncIterator[BindingProcess]:
    ports = {kind: free_port() for kind in ("PUBLIC", "ADMIN", "INTERNAL", "METRICS")}
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("BINDING_")
    }
    environment.update({f"BINDING_{kind}_PORT": str(port) for kind, port in ports.items()})
    environment.update(
        {
            "BINDING_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'var' / 'binding.db'}",
            "BINDING_AUTH_INTERNAL_ADDRESS": f"127.0.0.1:{auth_process.ports['INTERNAL']}",
            # No kyc in this test: nothing here needs it, and binding starts without it.
            "BINDING_KYC_INTERNAL_ADDRESS": f"127.0.0.1:{free_port()}",
        }
    )
    log = tmp_path / "binding.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.binding",
            cwd=ROOT,
            env=environment,
            stdout=sink,
            stderr=sink,
        )
    running = BindingProcess(process, ports["PUBLIC"], log)
    try:
        await wait_until_serving(running)
        yield running
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def wait_until_serving(running: BindingProcess) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.public_port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        async with asyncio.timeout(STARTUP_SECONDS):
            while running.process.returncode is None:
                try:
                    reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.1)
    pytest.fail(f"binding exited with {running.process.returncode}:\n{running.output()}")


async def registered_access_token(
    auth_port: int, sms: SmsWebhookCatcher, number: str = PHONE
) -> str:
    """An access token of a new account registered by `number` and signed in with it."""
    phone = contact_pb2.Contact(phone=number)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{auth_port}") as channel:
        auth = auth_service_pb2_grpc.AuthServiceStub(channel)
        started = await auth.StartRegistration(
            auth_service_pb2.StartRegistrationRequest(
                request_id=request_id(), password=PASSWORD, contact=phone
            )
        )
        code = extract_code((await sms.wait_for(to=number)).text)
        await auth.CompleteRegistration(
            auth_service_pb2.CompleteRegistrationRequest(
                request_id=request_id(),
                registration_id=started.registration_id,
                code=code,
                client=CLIENT,
            )
        )
        signed_in = await auth.SignIn(
            auth_service_pb2.SignInRequest(
                request_id=request_id(), identifier=phone, password=PASSWORD, client=CLIENT
            )
        )
    return signed_in.tokens.access_token


async def test_a_freeze_in_auth_is_refused_by_binding_on_the_next_request(
    auth_process: AuthProcess,  # noqa: F811
    binding_process: BindingProcess,
    sms_webhook_catcher: SmsWebhookCatcher,
) -> None:
    token = await registered_access_token(auth_process.public_port, sms_webhook_catcher)
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{binding_process.public_port}") as binding_channel,
        grpc.aio.insecure_channel(f"127.0.0.1:{auth_process.ports['ADMIN']}") as admin_channel,
    ):
        binding = binding_service_pb2_grpc.BindingServiceStub(binding_channel)
        listed = await binding.ListCards(
            binding_service_pb2.ListCardsRequest(), metadata=bearer(token)
        )
        account_id = _subject_of(token)
        await account_admin_service_pb2_grpc.AccountAdminServiceStub(admin_channel).FreezeAccount(
            freeze_request(account_id), metadata=operator_metadata()
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await binding.ListCards(binding_service_pb2.ListCardsRequest(), metadata=bearer(token))

    assert list(listed.cards) == []
    details = error_details(refused.value)
    assert (details.code, details.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ACCOUNT_FROZEN")

    binding_process.process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(STOP_SECONDS):
        exit_status = await binding_process.process.wait()
    logs = binding_process.output()
    assert exit_status == 0, logs
    assert '"message": "server stopped"' in logs
    assert PHONE not in logs
    assert token not in logs


def _subject_of(token: str) -> str:
    """The account id in an access token (read, not verified: the test holds auth's token)."""
    return str(jwt.decode(token, options={"verify_signature": False})["sub"])
