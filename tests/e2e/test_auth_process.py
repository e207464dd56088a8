"""`python -m services.auth` as an operator runs it: configured by environment alone, sending
real SMS and e-mail, and stopping cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from redis.asyncio import Redis

from services.auth.bootstrap import DEVELOPMENT_RATE_LIMIT_KEY_LABEL
from services.auth.domain.contacts import Phone
from services.auth.service.codes import destination_subject
from tests.support.notify import SmsWebhookCatcher, SmtpCatcher, extract_code
from wallet.auth.v1 import auth_service_pb2, auth_service_pb2_grpc, types_pb2
from wallet.common.v1 import client_pb2, contact_pb2
from walletcore.grpc.status import error_details
from walletcore.keys import development_keys
from walletcore.ratelimit import CODES_SENT_PER_DESTINATION_MINUTE, RedisRateLimiter

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"
PHONE = "+8613800138000"
CLIENT = client_pb2.ClientContext(device_id="e2e-device", platform=client_pb2.PLATFORM_IOS)
STARTUP_SECONDS = 30.0
STOP_SECONDS = 15.0


def free_port() -> int:
    """A port nothing listens on now (the process binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class AuthProcess:
    process: asyncio.subprocess.Process
    public_port: int
    log: Path
    ports: dict[str, int]
    """Every port by kind (PUBLIC, ADMIN, INTERNAL, METRICS)."""

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
async def auth_process(
    tmp_path: Path,
    redis_url: str,
    redis_prefix: str,
    smtp_catcher: SmtpCatcher,
    sms_webhook_catcher: SmsWebhookCatcher,
) -> AsyncIterator[AuthProcess]:
    ports = {kind: free_port() for kind in ("PUBLIC", "ADMIN", "INTERNAL", "METRICS")}
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("AUTH_")
    }
    environment.update({f"AUTH_{kind}_PORT": str(port) for kind, port in ports.items()})
    environment.update(
        {
            "AUTH_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'var' / 'auth.db'}",
            # Redis, so the test can end a rate-limit window as a minute of waiting would.
            "AUTH_RATE_LIMITER": "redis",
            "AUTH_REDIS_URL": redis_url,
            "AUTH_RATE_LIMIT_NAMESPACE": redis_prefix,
            "AUTH_OUTBOX_POLL_SECONDS": "0.05",
            "AUTH_NOTIFIER__EMAIL_ADAPTER": "smtp",
            "AUTH_NOTIFIER__SMTP_HOST": smtp_catcher.host,
            "AUTH_NOTIFIER__SMTP_PORT": str(smtp_catcher.port),
            "AUTH_NOTIFIER__SMTP_STARTTLS": "false",
            "AUTH_NOTIFIER__SMS_ADAPTER": "webhook",
            "AUTH_NOTIFIER__SMS_WEBHOOK_URL": sms_webhook_catcher.url,
        }
    )
    log = tmp_path / "auth.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.auth",
            cwd=ROOT,
            env=environment,
            stdout=sink,
            stderr=sink,
        )
    running = AuthProcess(process, ports["PUBLIC"], log, ports)
    try:
        await wait_until_serving(running)
        yield running
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def wait_until_serving(running: AuthProcess) -> None:
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
    pytest.fail(f"auth exited with {running.process.returncode}:\n{running.output()}")


def request_id() -> str:
    return uuid.uuid4().hex


async def end_the_code_minute_of(phone: str, redis_url: str, namespace: str) -> None:
    """What waiting a minute would do: the destination may be sent a code again. (A self-freeze
    code goes to a verified contact, which registration sent a code to moments before.)"""
    limiter = RedisRateLimiter(
        redis_url,
        namespace=namespace,
        subject_key=development_keys(DEVELOPMENT_RATE_LIMIT_KEY_LABEL)[0].secret,
    )
    key = limiter.key_for(CODES_SENT_PER_DESTINATION_MINUTE, destination_subject(Phone(phone)))
    await limiter.close()
    async with Redis.from_url(redis_url) as redis:
        assert await redis.delete(key) == 1


async def test_register_sign_in_self_freeze_and_stop_on_sigterm(
    auth_process: AuthProcess,
    sms_webhook_catcher: SmsWebhookCatcher,
    redis_url: str,
    redis_prefix: str,
) -> None:
    phone = contact_pb2.Contact(phone=PHONE)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{auth_process.public_port}") as channel:
        auth = auth_service_pb2_grpc.AuthServiceStub(channel)

        started = await auth.StartRegistration(
            auth_service_pb2.StartRegistrationRequest(
                request_id=request_id(), password=PASSWORD, contact=phone
            )
        )
        sign_up_code = extract_code((await sms_webhook_catcher.wait_for(to=PHONE)).text)
        await auth.CompleteRegistration(
            auth_service_pb2.CompleteRegistrationRequest(
                request_id=request_id(),
                registration_id=started.registration_id,
                code=sign_up_code,
                client=CLIENT,
            )
        )
        sign_in = auth_service_pb2.SignInRequest(
            request_id=request_id(), identifier=phone, password=PASSWORD, client=CLIENT
        )
        signed_in = await auth.SignIn(sign_in)
        assert signed_in.WhichOneof("result") == "tokens"

        await end_the_code_minute_of(PHONE, redis_url, redis_prefix)
        freeze = await auth.StartSelfFreeze(
            auth_service_pb2.StartSelfFreezeRequest(
                request_id=request_id(),
                identifier=phone,
                channel=types_pb2.DELIVERY_CHANNEL_SMS,
            )
        )
        freeze_code = extract_code((await sms_webhook_catcher.wait_for(to=PHONE)).text)
        await auth.ConfirmSelfFreeze(
            auth_service_pb2.ConfirmSelfFreezeRequest(
                request_id=request_id(), challenge_id=freeze.challenge_id, code=freeze_code
            )
        )

        sign_in.request_id = request_id()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await auth.SignIn(sign_in)

    details = error_details(refused.value)
    assert (details.code, details.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ACCOUNT_FROZEN")

    auth_process.process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(STOP_SECONDS):
        exit_status = await auth_process.process.wait()
    logs = auth_process.output()
    assert exit_status == 0, logs
    assert '"message": "server stopped"' in logs
    for secret in (PHONE, sign_up_code, freeze_code, PASSWORD):
        assert secret not in logs
