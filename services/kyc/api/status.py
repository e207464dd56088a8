"""KycStatusService: what other wallet services may know, on kyc's internal port (service
identities only; the caller's subject is the calling service's name)."""

from __future__ import annotations

from typing import Any

import grpc.aio

from services.kyc.service import status
from services.kyc.service.context import KycContext
from services.kyc.service.ports import KycUnitOfWork
from wallet.kyc.v1 import kyc_status_service_pb2 as pb
from wallet.kyc.v1 import kyc_status_service_pb2_grpc, types_pb2
from walletcore.grpc.convert import enum_to_proto, id_from, timestamp
from walletcore.transactions import Transactions

Context = grpc.aio.ServicerContext[Any, Any]


class KycStatusServicer(kyc_status_service_pb2_grpc.KycStatusServiceServicer):
    def __init__(self, ctx: KycContext, tx: Transactions[KycUnitOfWork]) -> None:
        self.ctx = ctx
        self.tx = tx

    async def GetVerificationLevel(
        self, request: pb.GetVerificationLevelRequest, context: Context
    ) -> pb.GetVerificationLevelResponse:
        account_id = id_from(request.account_id, "account_id")
        found = await self.tx.run(lambda uow: status.verification_level(uow, account_id=account_id))
        response = pb.GetVerificationLevelResponse(
            level=enum_to_proto(types_pb2.VerificationLevel, found.level)
        )
        if found.approved_at is not None:
            response.approved_at.CopyFrom(timestamp(found.approved_at))
        return response

    async def MatchVerifiedName(
        self, request: pb.MatchVerifiedNameRequest, context: Context
    ) -> pb.MatchVerifiedNameResponse:
        account_id = id_from(request.account_id, "account_id")
        matches = await self.tx.run(
            lambda uow: status.match_verified_name(uow, account_id=account_id, name=request.name)
        )
        return pb.MatchVerifiedNameResponse(matches=matches)
