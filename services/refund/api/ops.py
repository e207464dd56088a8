"""RefundOpsService on refund's admin port: the refund desk.

The port's access policy admits `refund_operator`s (and `security_officer`s for the audit
RPCs); the caller's subject is the operator id every use case acts and audits as.
"""

from __future__ import annotations

from typing import Any

import grpc.aio

from services.refund.api.convert import (
    attempt_to_proto,
    issued_id,
    next_token,
    page_from,
    payment_to_proto,
    refund_to_proto,
    transition_to_proto,
)
from services.refund.domain.reasons import Reason
from services.refund.domain.refunds import MAX_NOTE_LENGTH, Refund, RefundState, RejectReason
from services.refund.service import ops
from services.refund.service.context import RefundContext
from services.refund.service.ports import RefundUnitOfWork
from wallet.refund.v1 import refund_ops_service_pb2 as pb
from wallet.refund.v1 import refund_ops_service_pb2_grpc, types_pb2
from walletcore.audit_rpcs import (
    AuditExportTokens,
    AuditReader,
    audit_entry_to_proto,
    export_audit_log,
    export_page,
    optional_time,
    verify_audit_log,
)
from walletcore.audit_rpcs import verification_to_proto as audit_verification_to_proto
from walletcore.errors import FieldViolation, InvalidArgument
from walletcore.grpc.convert import (
    enum_from_proto,
    idempotent,
    page_of,
    page_response,
    timestamp,
)
from walletcore.identity import current_caller
from walletcore.transactions import Transactions
from walletcore.validation import checked_text

Context = grpc.aio.ServicerContext[Any, Any]


def _note(raw: str) -> str:
    return checked_text(raw, "note", max_length=MAX_NOTE_LENGTH, multiline=True)


class RefundOpsServicer(refund_ops_service_pb2_grpc.RefundOpsServiceServicer):
    def __init__(
        self,
        ctx: RefundContext,
        tx: Transactions[RefundUnitOfWork],
        audit_reader: AuditReader,
        export_tokens: AuditExportTokens,
    ) -> None:
        self.ctx = ctx
        self.tx = tx
        self.audit_reader = audit_reader
        self.export_tokens = export_tokens

    def _refund(self, refund: Refund) -> types_pb2.Refund:
        return refund_to_proto(refund, self.ctx.policy, self.ctx.clock())

    async def ListRefundQueue(
        self, request: pb.ListRefundQueueRequest, context: Context
    ) -> pb.ListRefundQueueResponse:
        states = [
            enum_from_proto(types_pb2.RefundState, value, RefundState, f"states[{n}]")
            for n, value in enumerate(request.states)
        ]
        page = page_from(page_of(request.page))
        queue = await self.tx.run(lambda uow: ops.list_queue(uow, states=states, page=page))
        now = self.ctx.clock()
        items = []
        for refund in queue:
            item = pb.RefundQueueItem(
                refund=self._refund(refund),
                account_id=refund.account_id,
                overdue=refund.overdue(now),
            )
            if refund.review_deadline is not None:
                item.sla_deadline.CopyFrom(timestamp(refund.review_deadline))
            items.append(item)
        positions = [(r.waiting_since or r.requested_at, r.refund_id) for r in queue]
        return pb.ListRefundQueueResponse(
            items=items, page=page_response(next_token(positions, page))
        )

    async def GetRefund(
        self, request: pb.RefundOpsServiceGetRefundRequest, context: Context
    ) -> pb.RefundOpsServiceGetRefundResponse:
        refund_id = issued_id(request.refund_id, "refund_id")
        detail = await self.tx.run(lambda uow: ops.get_refund_detail(uow, refund_id))
        refund = detail.refund
        response = pb.RefundOpsServiceGetRefundResponse(
            refund=self._refund(refund),
            account_id=refund.account_id,
            payment=payment_to_proto(detail.payment, self.ctx.clock()),
            payout_attempts=[attempt_to_proto(a) for a in refund.attempts],
            operator_actions=[
                pb.OperatorAction(
                    operator_id=a.operator_id,
                    action=a.action,
                    note=a.note,
                    occurred_at=timestamp(a.at),
                )
                for a in refund.operator_actions
            ],
            transitions=[transition_to_proto(t) for t in refund.history],
        )
        if refund.review_deadline is not None:
            response.sla_deadline.CopyFrom(timestamp(refund.review_deadline))
        return response

    async def ApproveRefund(
        self, request: pb.ApproveRefundRequest, context: Context
    ) -> pb.ApproveRefundResponse:
        refund_id = issued_id(request.refund_id, "refund_id")
        note = _note(request.note)
        operator_id = current_caller().subject

        async def work(uow: RefundUnitOfWork) -> bytes:
            refund = await ops.approve_refund(
                uow, self.ctx, operator_id=operator_id, refund_id=refund_id, note=note
            )
            return pb.ApproveRefundResponse(refund=self._refund(refund)).SerializeToString()

        return await idempotent(self.tx, request, pb.ApproveRefundResponse, work)

    async def RejectRefund(
        self, request: pb.RejectRefundRequest, context: Context
    ) -> pb.RejectRefundResponse:
        refund_id = issued_id(request.refund_id, "refund_id")
        if request.reason_code == types_pb2.REFUND_REJECT_REASON_UNSPECIFIED:
            raise InvalidArgument(
                [FieldViolation("reason_code", "is required")],
                "a rejection needs a reason the user is shown",
                reason=Reason.REASON_REQUIRED,
            )
        reason = enum_from_proto(
            types_pb2.RefundRejectReason, request.reason_code, RejectReason, "reason_code"
        )
        note = _note(request.note)
        operator_id = current_caller().subject

        async def work(uow: RefundUnitOfWork) -> bytes:
            refund = await ops.reject_refund(
                uow,
                self.ctx,
                operator_id=operator_id,
                refund_id=refund_id,
                reason=reason,
                note=note,
            )
            return pb.RejectRefundResponse(refund=self._refund(refund)).SerializeToString()

        return await idempotent(self.tx, request, pb.RejectRefundResponse, work)

    async def RetryPayout(
        self, request: pb.RetryPayoutRequest, context: Context
    ) -> pb.RetryPayoutResponse:
        refund_id = issued_id(request.refund_id, "refund_id")
        note = _note(request.note)
        operator_id = current_caller().subject

        async def work(uow: RefundUnitOfWork) -> bytes:
            refund = await ops.retry_payout(
                uow, self.ctx, operator_id=operator_id, refund_id=refund_id, note=note
            )
            return pb.RetryPayoutResponse(refund=self._refund(refund)).SerializeToString()

        return await idempotent(self.tx, request, pb.RetryPayoutResponse, work)

    async def RerouteRefund(
        self, request: pb.RerouteRefundRequest, context: Context
    ) -> pb.RerouteRefundResponse:
        refund_id = issued_id(request.refund_id, "refund_id")
        instrument_id = issued_id(request.instrument_id, "instrument_id")
        note = _note(request.note)
        operator_id = current_caller().subject

        async def work(uow: RefundUnitOfWork) -> bytes:
            refund = await ops.reroute_refund(
                uow,
                self.ctx,
                operator_id=operator_id,
                refund_id=refund_id,
                instrument_id=instrument_id,
                note=note,
            )
            return pb.RerouteRefundResponse(refund=self._refund(refund)).SerializeToString()

        return await idempotent(self.tx, request, pb.RerouteRefundResponse, work)

    async def VerifyAuditLog(
        self, request: pb.VerifyAuditLogRequest, context: Context
    ) -> pb.VerifyAuditLogResponse:
        check = await verify_audit_log(self.audit_reader, self.ctx.clock)
        return pb.VerifyAuditLogResponse(verification=audit_verification_to_proto(check))

    async def ExportAuditLog(
        self, request: pb.ExportAuditLogRequest, context: Context
    ) -> pb.ExportAuditLogResponse:
        start = optional_time(request.start_time, request.HasField("start_time"), "start_time")
        end = optional_time(request.end_time, request.HasField("end_time"), "end_time")
        page_size, page_token = export_page(request.page)
        export = await export_audit_log(
            self.audit_reader,
            self.export_tokens,
            self.ctx.clock(),
            operator_id=current_caller().subject,
            start=start,
            end=end,
            page_size=page_size,
            page_token=page_token,
        )
        return pb.ExportAuditLogResponse(
            entries=[audit_entry_to_proto(entry) for entry in export.entries],
            page=page_response(export.next_page_token),
        )
