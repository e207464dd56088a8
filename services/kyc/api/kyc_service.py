"""KycService: the account holder's API on kyc's public port.

The port's verifier (walletcore.users.ActiveUserVerifier) has asked auth about the account
and the session on this very call; the caller's subject is the account id.
"""

from __future__ import annotations

from typing import Any

import grpc.aio

from services.kyc.api.convert import submission_from, verification_to_proto
from services.kyc.service import verification
from services.kyc.service.context import KycContext
from services.kyc.service.ports import KycReads, KycUnitOfWork
from wallet.kyc.v1 import kyc_service_pb2 as pb
from wallet.kyc.v1 import kyc_service_pb2_grpc
from walletcore.grpc.convert import idempotent
from walletcore.identity import current_caller
from walletcore.transactions import Transactions

Context = grpc.aio.ServicerContext[Any, Any]


class KycServicer(kyc_service_pb2_grpc.KycServiceServicer):
    def __init__(self, ctx: KycContext, tx: Transactions[KycUnitOfWork], reads: KycReads) -> None:
        self.ctx = ctx
        self.tx = tx
        self.reads = reads

    async def SubmitVerification(
        self, request: pb.SubmitVerificationRequest, context: Context
    ) -> pb.SubmitVerificationResponse:
        account_id = current_caller().subject
        submission = submission_from(request)

        async def work(uow: KycUnitOfWork) -> bytes:
            case = await verification.submit_verification(
                uow, self.ctx, account_id=account_id, submission=submission
            )
            return pb.SubmitVerificationResponse(
                verification=verification_to_proto(case)
            ).SerializeToString()

        return await idempotent(self.tx, request, pb.SubmitVerificationResponse, work)

    async def GetVerification(
        self, request: pb.GetVerificationRequest, context: Context
    ) -> pb.GetVerificationResponse:
        account_id = current_caller().subject
        # A read of one statement, outside any transaction (the hot path under load).
        case = await verification.get_verification(self.reads, account_id=account_id)
        return pb.GetVerificationResponse(verification=verification_to_proto(case))
