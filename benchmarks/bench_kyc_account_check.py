"""What kyc's per-request account check costs: an authenticated kyc RPC with the check, against
the same RPC with the check stubbed out.

A real auth and two kycs on one SQLite database (in a temporary folder), all in this process
on loopback. Both kycs verify the access token's signature with auth's published keys; the
first also asks auth on every call whether the account is active and the session alive
(`walletcore.users.ActiveUserVerifier`, one GetAccountStatus over gRPC), the second does not.
The RPC is GetVerification of a submitted case; the two variants' rounds alternate, so the
ratio holds on a noisy machine.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc.aio

from benchmarks.report import QUICK, Row, command
from benchmarks.timing import interleaved_medians
from services.auth.bootstrap import build as build_auth
from services.auth.settings import AuthSettings
from services.kyc.bootstrap import build as build_kyc
from services.kyc.settings import KycSettings
from wallet.auth.v1 import auth_service_pb2, auth_service_pb2_grpc
from wallet.common.v1 import client_pb2, contact_pb2
from wallet.kyc.v1 import kyc_service_pb2, kyc_service_pb2_grpc, types_pb2
from walletcore.grpc.clients import InternalTarget
from walletcore.notify import Transports
from walletcore.notify.transports import ConsoleEmailTransport, ConsoleSmsTransport
from walletcore.tokens import AccessTokenVerifier
from walletcore.users import AUTH_READS, AuthStatusClient, auth_keyset

ROUNDS = 5 if QUICK else 9
CALLS_PER_ROUND = 100 if QUICK else 200
WARM_UP_CALLS = 50
PHONE = "+8613900139000"
PASSWORD = "correct horse battery staple"  # noqa: S105 (the bench account's own)
_CODE = re.compile(r"\b(\d{6})\b")


def _ports() -> dict[str, Any]:
    return {"public_port": 0, "admin_port": 0, "internal_port": 0, "metrics_port": 0}


async def _register(auth_port: int, sms: io.StringIO) -> str:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{auth_port}") as channel:
        users = auth_service_pb2_grpc.AuthServiceStub(channel)
        started = await users.StartRegistration(
            auth_service_pb2.StartRegistrationRequest(
                request_id=uuid.uuid4().hex,
                password=PASSWORD,
                contact=contact_pb2.Contact(phone=PHONE),
            )
        )
        # The console transport writes the code into `sms` once the outbox delivers it.
        while not (found := _CODE.search(sms.getvalue())):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        completed = await users.CompleteRegistration(
            auth_service_pb2.CompleteRegistrationRequest(
                request_id=uuid.uuid4().hex,
                registration_id=started.registration_id,
                code=found.group(1),
                client=client_pb2.ClientContext(device_id="bench"),
            )
        )
        return completed.tokens.access_token


def _submission() -> kyc_service_pb2.SubmitVerificationRequest:
    def image(content: bytes, content_type: str) -> types_pb2.DocumentImage:
        return types_pb2.DocumentImage(content=content, content_type=content_type)

    return kyc_service_pb2.SubmitVerificationRequest(
        request_id=uuid.uuid4().hex,
        legal_name="Bench Mark",
        document=types_pb2.IdentityDocument(
            type=types_pb2.DOCUMENT_TYPE_CN_RESIDENT_ID,
            number="11010519491231002X",
            issuing_country="CN",
        ),
        front_image=image(b"\xff\xd8\xff\xe0" + b"\x00" * 1024, "image/jpeg"),
        back_image=image(b"\xff\xd8\xff\xe0" + b"\x01" * 1024, "image/jpeg"),
        selfie_image=image(b"\xff\xd8\xff\xe0" + b"\x02" * 1024, "image/jpeg"),
    )


async def _run(folder: Path) -> list[str | Row]:
    for name in ("services.auth", "services.kyc"):
        # The per-RPC log lines would dominate the measurement with terminal I/O.
        logging.getLogger(name).setLevel(logging.WARNING)
    sms = io.StringIO()
    auth = build_auth(
        AuthSettings(
            database_url=f"sqlite+aiosqlite:///{folder / 'auth.db'}",
            outbox_poll_seconds=0.05,
            **_ports(),
        ),
        transports=Transports(
            email=ConsoleEmailTransport(io.StringIO()), sms=ConsoleSmsTransport(sms)
        ),
    )
    auth_ports = await auth.start()
    kyc_settings = KycSettings(
        database_url=f"sqlite+aiosqlite:///{folder / 'kyc.db'}",
        auth_internal_address=f"127.0.0.1:{auth_ports['internal']}",
        **_ports(),
    )
    checked = build_kyc(kyc_settings)
    status = AuthStatusClient(checked.clients.channel(_auth_target(kyc_settings), reads=AUTH_READS))
    unchecked = build_kyc(
        kyc_settings,
        users=AccessTokenVerifier(auth_keyset(status), kyc_settings.auth_issuer),
    )
    try:
        checked_port = (await checked.start())["public"]
        unchecked_port = (await unchecked.start())["public"]
        metadata = (("authorization", f"Bearer {await _register(auth_ports['public'], sms)}"),)
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{unchecked_port}") as stubbed_channel,
            grpc.aio.insecure_channel(f"127.0.0.1:{checked_port}") as checked_channel,
        ):
            stubbed = kyc_service_pb2_grpc.KycServiceStub(stubbed_channel)
            checked_stub = kyc_service_pb2_grpc.KycServiceStub(checked_channel)
            await stubbed.SubmitVerification(_submission(), metadata=metadata)
            baseline, cost = await interleaved_medians(
                [_reader(stubbed, metadata), _reader(checked_stub, metadata)],
                rounds=ROUNDS,
                calls_per_round=CALLS_PER_ROUND,
                warm_up=WARM_UP_CALLS,
            )
    finally:
        await checked.close(grace=0)
        await unchecked.close(grace=0)
        await auth.close(grace=0)
    return [
        f"kyc GetVerification, account check stubbed out (baseline): {baseline * 1e3:.3f} ms/call,"
        " 1.00x",
        f"kyc GetVerification, GetAccountStatus asked of auth per call: {cost * 1e3:.3f} ms/call, "
        f"{cost / baseline:.2f}x",
        f"({ROUNDS} interleaved rounds of {CALLS_PER_ROUND} sequential calls each, median round; "
        "SQLite)",
        Row(
            "per-request call to auth (kyc, in process)",
            {
                "ms/call with": round(cost * 1e3, 3),
                "ms/call without": round(baseline * 1e3, 3),
                "x without": round(cost / baseline, 2),
            },
            command("kyc_account_check"),
            note="sequential calls, SQLite; the design: one GetAccountStatus per request",
        ),
    ]


def _reader(
    stub: kyc_service_pb2_grpc.KycServiceAsyncStub, metadata: tuple[tuple[str, str], ...]
) -> Callable[[], Awaitable[object]]:
    request = kyc_service_pb2.GetVerificationRequest()

    async def read() -> object:
        return await stub.GetVerification(request, metadata=metadata)

    return read


def _auth_target(settings: KycSettings) -> InternalTarget:
    return InternalTarget("auth", settings.auth_internal_address, settings.auth_internal)


def run() -> list[str | Row]:
    with tempfile.TemporaryDirectory() as folder:
        return asyncio.run(_run(Path(folder)))
