"""`python -m services.auth` and `python -m services.kyc` as two processes: a freeze in auth is
refused by kyc on the very next request, and kyc stops cleanly on SIGTERM without having
logged any identity data."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.api.auth.harness import operator_metadata
from tests.api.kyc.harness import LEGAL_NAME, RESIDENT_ID, submit_request
from tests.support.notify import SmsWebhookCatcher, extract_code
from wallet.auth.v1 import account_admin_service_pb2 as admin_pb
from wallet.auth.v1 import account_admin_service_pb2_grpc, auth_service_pb2, auth_service_pb2_grpc
from wallet.common.v1 import client_pb2, contact_pb2
from wallet.kyc.v1 import kyc_service_pb2, kyc_service_pb2_grpc, types_pb2
from walletcore.grpc.status import error_details

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"
PHONE = "+8613800138123"
CLIENT = client_pb2.ClientContext(device_id="e2e-kyc-device", platform=client_pb2.PLATFORM_IOS)
STARTUP_SECONDS = 30.0
STOP_SECONDS = 15.0
KINDS = ("PUBLIC", "ADMIN", "INTERNAL", "METRICS")


def free_port() -> int:
    """A port nothing listens on now (the process binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ServiceProcess:
    name: str
    process: asyncio.subprocess.Process
    ports: dict[str, int]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def address(self, kind: str) -> str:
        return f"127.0.0.1:{self.ports[kind]}"


async def start(
    name: str, tmp_path: Path, settings: dict[str, str], ports: dict[str, int] | None = None
) -> ServiceProcess:
    """`python -m services.<name>` on `ports` (by kind; free ones by default), serving once
    its internal port's health check says so and its own log says it started: a health answer
    alone may come from another test's process still holding the port (this one then fails to
    bind and exits), and a test talking to that one fails in ways that point elsewhere."""
    prefix = name.upper() + "_"
    ports = ports or {kind: free_port() for kind in KINDS}
    environment = {key: value for key, value in os.environ.items() if not key.startswith(prefix)}
    environment.update({f"{prefix}{kind}_PORT": str(port) for kind, port in ports.items()})
    environment[f"{prefix}DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / (name + '.db')}"
    environment.update({prefix + key: value for key, value in settings.items()})
    log = tmp_path / f"{name}.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            f"services.{name}",
            cwd=ROOT,
            env=environment,
            stdout=sink,
            stderr=sink,
        )
    running = ServiceProcess(name, process, ports, log)
    async with grpc.aio.insecure_channel(running.address("INTERNAL")) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        async with asyncio.timeout(STARTUP_SECONDS):
            while process.returncode is None:
                try:
                    reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    started = '"server started"' in running.output()
                    if reply.status == health_pb2.HealthCheckResponse.SERVING and started:
                        return running
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.1)
    pytest.fail(f"{name} exited with {process.returncode}:\n{running.output()}")


def fixed_ports(base_port: int, names: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """Four ports (by kind) per service of `names`, from `base_port` on: fixed, so each service
    learns its peers' addresses before they start."""
    return {
        name: {kind: base_port + 4 * index + offset for offset, kind in enumerate(KINDS)}
        for index, name in enumerate(names)
    }


@asynccontextmanager
async def started_in_order(
    tmp_path: Path, settings: dict[str, dict[str, str]], ports: dict[str, dict[str, int]]
) -> AsyncIterator[dict[str, ServiceProcess]]:
    """Each service of `settings`, in its order, on its `ports`; those still running after
    the test (or a failed start) are killed."""
    running: dict[str, ServiceProcess] = {}
    try:
        for name, values in settings.items():
            running[name] = await start(name, tmp_path, values, ports[name])
        yield running
    finally:
        for service in reversed(running.values()):
            if service.process.returncode is None:
                service.process.kill()
                await service.process.wait()


async def stop(running: ServiceProcess) -> int:
    running.process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(STOP_SECONDS):
        return await running.process.wait()


@pytest.fixture
async def auth_and_kyc(
    tmp_path: Path, sms_webhook_catcher: SmsWebhookCatcher
) -> AsyncIterator[tuple[ServiceProcess, ServiceProcess]]:
    auth = await start(
        "auth",
        tmp_path,
        {
            "RATE_LIMITER": "memory",
            "OUTBOX_POLL_SECONDS": "0.05",
            "NOTIFIER__SMS_ADAPTER": "webhook",
            "NOTIFIER__SMS_WEBHOOK_URL": sms_webhook_catcher.url,
        },
    )
    kyc: ServiceProcess | None = None
    try:
        kyc = await start(
            "kyc",
            tmp_path,
            {"RATE_LIMITER": "memory", "AUTH_INTERNAL_ADDRESS": auth.address("INTERNAL")},
        )
        yield auth, kyc
    finally:
        for running in (kyc, auth):
            if running is not None and running.process.returncode is None:
                running.process.kill()
                await running.process.wait()


def request_id() -> str:
    return uuid.uuid4().hex


async def test_a_freeze_in_auth_is_refused_by_kyc_on_the_next_request(
    auth_and_kyc: tuple[ServiceProcess, ServiceProcess], sms_webhook_catcher: SmsWebhookCatcher
) -> None:
    auth, kyc = auth_and_kyc
    phone = contact_pb2.Contact(phone=PHONE)
    async with (
        grpc.aio.insecure_channel(auth.address("PUBLIC")) as auth_public,
        grpc.aio.insecure_channel(auth.address("ADMIN")) as auth_admin,
        grpc.aio.insecure_channel(kyc.address("PUBLIC")) as kyc_public,
    ):
        users = auth_service_pb2_grpc.AuthServiceStub(auth_public)
        started = await users.StartRegistration(
            auth_service_pb2.StartRegistrationRequest(
                request_id=request_id(), password=PASSWORD, contact=phone
            )
        )
        code = extract_code((await sms_webhook_catcher.wait_for(to=PHONE)).text)
        registered = await users.CompleteRegistration(
            auth_service_pb2.CompleteRegistrationRequest(
                request_id=request_id(),
                registration_id=started.registration_id,
                code=code,
                client=CLIENT,
            )
        )
        metadata = (("authorization", f"Bearer {registered.tokens.access_token}"),)
        verifications = kyc_service_pb2_grpc.KycServiceStub(kyc_public)
        submitted = await verifications.SubmitVerification(submit_request(), metadata=metadata)
        assert submitted.verification.state == types_pb2.VERIFICATION_STATE_PENDING

        await account_admin_service_pb2_grpc.AccountAdminServiceStub(auth_admin).FreezeAccount(
            admin_pb.FreezeAccountRequest(
                request_id=request_id(),
                account_id=registered.account_id,
                reason="reported stolen phone",
                ticket_ref="INC-7",
            ),
            metadata=operator_metadata(),
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await verifications.GetVerification(
                kyc_service_pb2.GetVerificationRequest(), metadata=metadata
            )
        auth_status = await stop(auth)
        kyc_status = await stop(kyc)

    details = error_details(refused.value)
    assert (details.code, details.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ACCOUNT_FROZEN")
    assert kyc_status == 0, kyc.output()
    assert auth_status == 0, auth.output()
    logs = kyc.output()
    assert '"message": "server stopped"' in logs
    for secret in (RESIDENT_ID, RESIDENT_ID[:10], LEGAL_NAME, registered.tokens.access_token):
        assert secret not in logs
