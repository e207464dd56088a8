"""RefundService on refund's public port: account holders request refunds and follow them.

The port's verifier (walletcore.users.ActiveUserVerifier) has already refused a frozen account
or an ended session; the caller's subject is the account every use case acts for.
"""

from __future__ import annotations

from typing import Any

import grpc.aio

from services.refund.api.convert import (
    evidence_from,
    external_id,
    issued_id,
    money_from,
    next_token,
    page_from,
    payment_to_proto,
    refund_to_proto,
)
from services.refund.domain.refunds import MAX_REASON_DETAIL_LENGTH, RefundReason
from services.refund.service import requests
from services.refund.service.context import RefundContext
from services.refund.service.ports import Reads, RefundUnitOfWork
from wallet.refund.v1 import refund_service_pb2 as pb
from wallet.refund.v1 import refund_service_pb2_grpc, types_pb2
from walletcore.grpc.convert import enum_from_proto, idempotent, page_of, page_response
from walletcore.identity import current_caller
from walletcore.transactions import Transactions
from walletcore.validation import COMPACT_JWS, checked_text, checked_token

Context = grpc.aio.ServicerContext[Any, Any]


class RefundServicer(refund_service_pb2_grpc.RefundServiceServicer):
    def __init__(
        self, ctx: RefundContext, tx: Transactions[RefundUnitOfWork], reads: Reads
    ) -> None:
        self.ctx = ctx
        self.tx = tx
        self.reads = reads

    async def RequestRefund(
        self, request: pb.RequestRefundRequest, context: Context
    ) -> pb.RequestRefundResponse:
        payment_id = external_id(request.payment_id, "payment_id")
        amount = money_from(request.amount, "amount", positive=True)
        reason = enum_from_proto(types_pb2.RefundReason, request.reason, RefundReason, "reason")
        detail = checked_text(
            request.reason_detail,
            "reason_detail",
            max_length=MAX_REASON_DETAIL_LENGTH,
            multiline=True,
            required=reason is RefundReason.OTHER,
        )
        evidence = evidence_from(request.evidence)
        grant = checked_token(request.grant, "grant", COMPACT_JWS, required=False)
        body = requests.RefundRequest(payment_id, amount, reason, detail, evidence, grant)
        account_id = current_caller().subject

        async def work(uow: RefundUnitOfWork) -> bytes:
            refund = await requests.request_refund(
                uow, self.ctx, account_id=account_id, request=body
            )
            return pb.RequestRefundResponse(
                refund=refund_to_proto(refund, self.ctx.policy, self.ctx.clock())
            ).SerializeToString()

        return await idempotent(self.tx, request, pb.RequestRefundResponse, work)

    async def GetRefund(
        self, request: pb.GetRefundRequest, context: Context
    ) -> pb.GetRefundResponse:
        refund_id = issued_id(request.refund_id, "refund_id")
        account_id = current_caller().subject
        refund = await self.tx.run(
            lambda uow: requests.get_own_refund(uow, account_id=account_id, refund_id=refund_id)
        )
        return pb.GetRefundResponse(
            refund=refund_to_proto(refund, self.ctx.policy, self.ctx.clock())
        )

    async def ListRefunds(
        self, request: pb.ListRefundsRequest, context: Context
    ) -> pb.ListRefundsResponse:
        payment_id = external_id(request.payment_id, "payment_id") if request.payment_id else None
        page = page_from(page_of(request.page))
        account_id = current_caller().subject
        # A read of one statement, outside any transaction (the hot path under load).
        refunds = await requests.list_own_refunds(
            self.reads, account_id=account_id, payment_id=payment_id, page=page
        )
        now = self.ctx.clock()
        return pb.ListRefundsResponse(
            refunds=[refund_to_proto(r, self.ctx.policy, now) for r in refunds],
            page=page_response(next_token([(r.requested_at, r.refund_id) for r in refunds], page)),
        )

    async def ListPayments(
        self, request: pb.ListPaymentsRequest, context: Context
    ) -> pb.ListPaymentsResponse:
        page = page_from(page_of(request.page))
        account_id = current_caller().subject
        payments = await self.tx.run(
            lambda uow: requests.list_own_payments(uow, account_id=account_id, page=page)
        )
        now = self.ctx.clock()
        return pb.ListPaymentsResponse(
            payments=[payment_to_proto(p, now) for p in payments],
            page=page_response(next_token([(p.captured_at, p.payment_id) for p in payments], page)),
        )
