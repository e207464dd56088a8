"""A stand-in for kyc's internal KycStatusService, answering as kyc's contract says, for the
tests of binding (the kyc service itself is built in its own issue): only binding's service
token is let in, names compare after case folding and whitespace collapsing, an account
without an approved name is FAILED_PRECONDITION / KYC_NOT_APPROVED."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio

from wallet.kyc.v1 import kyc_status_service_pb2 as kyc_pb
from wallet.kyc.v1 import kyc_status_service_pb2_grpc, types_pb2
from walletcore.errors import DomainError, FailedPrecondition
from walletcore.grpc.status import to_grpc_status
from walletcore.tokens import (
    DEVELOPMENT_IDENTITY_ISSUER,
    DEVELOPMENT_IDENTITY_KEYS_LABEL,
    ServiceTokenVerifier,
    SigningKeyRing,
    StaticKeySet,
)

Context = grpc.aio.ServicerContext[Any, Any]
DOMAIN = "kyc.wallet"


def _name_key(name: str) -> str:
    return " ".join(name.casefold().split())


@dataclass
class StandInKyc(kyc_status_service_pb2_grpc.KycStatusServiceServicer):
    approved: dict[str, str] = field(default_factory=dict)
    callers: list[str] = field(default_factory=list)
    address: str = ""
    server: grpc.aio.Server | None = None

    async def stop(self) -> None:
        """Kyc goes down: its port stops answering."""
        if self.server is not None:
            await self.server.stop(grace=None)

    def approve(self, account_id: str, name: str) -> None:
        self.approved[account_id] = name

    async def _check_caller(self, context: Context) -> None:
        metadata = dict(context.invocation_metadata() or ())
        verifier = ServiceTokenVerifier(
            StaticKeySet(SigningKeyRing.development(DEVELOPMENT_IDENTITY_KEYS_LABEL).public_jwks()),
            DEVELOPMENT_IDENTITY_ISSUER,
            audience="kyc",
            allowed_services=["binding"],
        )
        try:
            caller = await verifier.verify(
                str(metadata.get("authorization", "")).removeprefix("Bearer ")
            )
        except DomainError as error:
            await context.abort_with_status(to_grpc_status(error, DOMAIN))
        self.callers.append(caller.subject)

    async def MatchVerifiedName(
        self, request: kyc_pb.MatchVerifiedNameRequest, context: Context
    ) -> kyc_pb.MatchVerifiedNameResponse:
        await self._check_caller(context)
        approved = self.approved.get(request.account_id)
        if approved is None:
            error = FailedPrecondition("no approved verification", reason="KYC_NOT_APPROVED")
            await context.abort_with_status(to_grpc_status(error, DOMAIN))
        return kyc_pb.MatchVerifiedNameResponse(
            matches=_name_key(request.name) == _name_key(approved)
        )

    async def GetVerificationLevel(
        self, request: kyc_pb.GetVerificationLevelRequest, context: Context
    ) -> kyc_pb.GetVerificationLevelResponse:
        await self._check_caller(context)
        level = (
            types_pb2.VERIFICATION_LEVEL_APPROVED
            if request.account_id in self.approved
            else types_pb2.VERIFICATION_LEVEL_NONE
        )
        return kyc_pb.GetVerificationLevelResponse(level=level)


@asynccontextmanager
async def running_kyc() -> AsyncIterator[StandInKyc]:
    server = grpc.aio.server()
    servicer = StandInKyc()
    kyc_status_service_pb2_grpc.add_KycStatusServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    servicer.address = f"127.0.0.1:{port}"
    servicer.server = server
    await server.start()
    try:
        yield servicer
    finally:
        await server.stop(grace=None)
