"""Binding's kyc client over a real gRPC channel, against a stand-in KycStatusService that
answers as kyc's contract says (the kyc service itself is built in its own issue): names
match or not, no approved KYC is FAILED_PRECONDITION / KYC_NOT_APPROVED and stays that error
in binding, binding's service token arrives, and kyc down is UNAVAILABLE."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
import pytest

from services.binding.adapters.peers import KYC_READS, KycStatusClient
from wallet.kyc.v1 import kyc_status_service_pb2 as kyc_pb
from wallet.kyc.v1 import kyc_status_service_pb2_grpc, types_pb2
from walletcore.errors import FailedPrecondition, Unavailable
from walletcore.grpc.clients import (
    InternalClients,
    InternalTarget,
    InternalTargetOptions,
    ServiceTokens,
    service_token_issuer,
)
from walletcore.grpc.status import to_grpc_status
from walletcore.tokens import (
    DEVELOPMENT_IDENTITY_ISSUER,
    DEVELOPMENT_IDENTITY_KEYS_LABEL,
    ServiceTokenVerifier,
    SigningKeyRing,
    StaticKeySet,
)

Context = grpc.aio.ServicerContext[Any, Any]
APPROVED = {"acc-1": "Test Holder"}


@dataclass
class StandInKyc(kyc_status_service_pb2_grpc.KycStatusServiceServicer):
    callers: list[str] = field(default_factory=list)

    async def _check_caller(self, context: Context) -> None:
        metadata = dict(context.invocation_metadata() or ())
        verifier = ServiceTokenVerifier(
            StaticKeySet(SigningKeyRing.development(DEVELOPMENT_IDENTITY_KEYS_LABEL).public_jwks()),
            DEVELOPMENT_IDENTITY_ISSUER,
            audience="kyc",
            allowed_services=["binding"],
        )
        caller = await verifier.verify(str(metadata["authorization"]).removeprefix("Bearer "))
        self.callers.append(caller.subject)

    async def MatchVerifiedName(
        self, request: kyc_pb.MatchVerifiedNameRequest, context: Context
    ) -> kyc_pb.MatchVerifiedNameResponse:
        await self._check_caller(context)
        approved = APPROVED.get(request.account_id)
        if approved is None:
            error = FailedPrecondition("no approved verification", reason="KYC_NOT_APPROVED")
            await context.abort_with_status(to_grpc_status(error, "kyc.wallet"))
        return kyc_pb.MatchVerifiedNameResponse(
            matches=" ".join(request.name.casefold().split()) == approved.casefold()
        )

    async def GetVerificationLevel(
        self, request: kyc_pb.GetVerificationLevelRequest, context: Context
    ) -> kyc_pb.GetVerificationLevelResponse:
        await self._check_caller(context)
        level = (
            types_pb2.VERIFICATION_LEVEL_APPROVED
            if request.account_id in APPROVED
            else types_pb2.VERIFICATION_LEVEL_PENDING
        )
        return kyc_pb.GetVerificationLevelResponse(level=level)


@pytest.fixture
async def kyc_server() -> AsyncIterator[tuple[str, StandInKyc]]:
    server = grpc.aio.server()
    servicer = StandInKyc()
    kyc_status_service_pb2_grpc.add_KycStatusServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        await server.stop(grace=None)


@pytest.fixture
async def clients() -> AsyncIterator[InternalClients]:
    clients = InternalClients(
        ServiceTokens(service_token_issuer(None, DEVELOPMENT_IDENTITY_ISSUER), "binding")
    )
    yield clients
    await clients.close()


def kyc_at(clients: InternalClients, address: str) -> KycStatusClient:
    options = InternalTargetOptions(deadline_seconds=1.0)
    return KycStatusClient(
        clients.channel(InternalTarget("kyc", address, options), reads=KYC_READS)
    )


async def test_names_are_matched_by_kyc_as_binding(
    kyc_server: tuple[str, StandInKyc], clients: InternalClients
) -> None:
    address, servicer = kyc_server
    kyc = kyc_at(clients, address)

    assert await kyc.match_verified_name("acc-1", "test  HOLDER") is True
    assert await kyc.match_verified_name("acc-1", "Someone Else") is False
    assert await kyc.is_approved("acc-1") is True
    assert await kyc.is_approved("acc-2") is False
    assert set(servicer.callers) == {"binding"}


async def test_no_approved_kyc_comes_back_as_kycs_own_refusal(
    kyc_server: tuple[str, StandInKyc], clients: InternalClients
) -> None:
    kyc = kyc_at(clients, kyc_server[0])

    with pytest.raises(FailedPrecondition) as caught:
        await kyc.match_verified_name("acc-2", "Test Holder")

    assert caught.value.reason == "KYC_NOT_APPROVED"


async def test_kyc_down_is_unavailable(clients: InternalClients) -> None:
    # A port bound but never listening: connections to it are refused while the test runs.
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        kyc = kyc_at(clients, f"127.0.0.1:{reserved.getsockname()[1]}")

        with pytest.raises(Unavailable):
            await kyc.match_verified_name("acc-1", "Test Holder")
