"""PaymentLedgerService on refund's internal port: the payment system reports captured
payments (its service identity `payments` only; the port's policy refuses every other)."""

from __future__ import annotations

from typing import Any

import grpc.aio

from services.refund.api.convert import external_id, issued_id, money_from, payment_to_proto
from services.refund.domain.payments import CapturedPayment
from services.refund.service import ledger
from services.refund.service.context import RefundContext
from services.refund.service.ports import RefundUnitOfWork
from wallet.refund.v1 import payment_ledger_service_pb2 as pb
from wallet.refund.v1 import payment_ledger_service_pb2_grpc
from walletcore.errors import InvalidArgument
from walletcore.grpc.convert import idempotent, to_datetime
from walletcore.transactions import Transactions

Context = grpc.aio.ServicerContext[Any, Any]


class PaymentLedgerServicer(payment_ledger_service_pb2_grpc.PaymentLedgerServiceServicer):
    def __init__(self, ctx: RefundContext, tx: Transactions[RefundUnitOfWork]) -> None:
        self.ctx = ctx
        self.tx = tx

    async def RecordCapturedPayment(
        self, request: pb.RecordCapturedPaymentRequest, context: Context
    ) -> pb.RecordCapturedPaymentResponse:
        if not request.HasField("captured_at"):
            raise InvalidArgument.field("captured_at", "is required")
        report = CapturedPayment(
            payment_id=external_id(request.payment_id, "payment_id"),
            account_id=issued_id(request.account_id, "account_id"),
            captured=money_from(request.amount, "amount", positive=True),
            source_instrument_id=issued_id(request.source_instrument_id, "source_instrument_id"),
            captured_at=to_datetime(request.captured_at),
        )

        async def work(uow: RefundUnitOfWork) -> bytes:
            payment = await ledger.record_captured_payment(uow, self.ctx, report)
            return pb.RecordCapturedPaymentResponse(
                payment=payment_to_proto(payment, self.ctx.clock())
            ).SerializeToString()

        return await idempotent(self.tx, request, pb.RecordCapturedPaymentResponse, work)

    async def GetPayment(
        self, request: pb.GetPaymentRequest, context: Context
    ) -> pb.GetPaymentResponse:
        payment_id = external_id(request.payment_id, "payment_id")
        payment = await self.tx.run(lambda uow: ledger.get_payment(uow, payment_id))
        return pb.GetPaymentResponse(payment=payment_to_proto(payment, self.ctx.clock()))
