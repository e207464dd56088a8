"""`BindingAdminService` on the admin port: the security officer's assisted contact change
(for a user who lost the old phone or email) and binding's audit chain.

The port's access policy admits only operators with the role `security_officer`; the caller's
subject is the officer id every use case acts and audits as. Each mutation runs once per
request_id (walletcore.grpc.convert.idempotent) in one unit of work.
"""

from __future__ import annotations

from typing import Any

import grpc.aio

from services.binding.api.convert import code_from, id_from, new_contact_from, window_to_proto
from services.binding.service import contacts
from services.binding.service.context import BindingContext
from services.binding.service.ports import BindingUnitOfWork
from wallet.binding.v1 import binding_admin_service_pb2 as pb
from wallet.binding.v1 import binding_admin_service_pb2_grpc
from walletcore.audit_rpcs import AuditRpcs
from walletcore.grpc.convert import idempotent, timestamp
from walletcore.identity import current_caller
from walletcore.transactions import Transactions

Context = grpc.aio.ServicerContext[Any, Any]


class BindingAdminServicer(binding_admin_service_pb2_grpc.BindingAdminServiceServicer):
    def __init__(
        self, ctx: BindingContext, tx: Transactions[BindingUnitOfWork], audit: AuditRpcs
    ) -> None:
        self.ctx = ctx
        self.tx = tx
        self.audit = audit

    async def StartAssistedContactChange(
        self, request: pb.StartAssistedContactChangeRequest, context: Context
    ) -> pb.StartAssistedContactChangeResponse:
        operator_id = current_caller().subject
        account_id = id_from(request.account_id, "account_id")
        new_contact = new_contact_from(request.new_contact)

        async def work(uow: BindingUnitOfWork) -> bytes:
            started = await contacts.start_assisted_contact_change(
                uow,
                self.ctx,
                operator_id=operator_id,
                account_id=account_id,
                new_contact=new_contact,
                reason=request.reason,
                ticket_ref=request.ticket_ref,
            )
            return pb.StartAssistedContactChangeResponse(
                change_id=started.change_id,
                masked_destination=started.masked_destination,
                expires_at=timestamp(started.expires_at),
            ).SerializeToString()

        return await idempotent(self.tx, request, pb.StartAssistedContactChangeResponse, work)

    async def CompleteAssistedContactChange(
        self, request: pb.CompleteAssistedContactChangeRequest, context: Context
    ) -> pb.CompleteAssistedContactChangeResponse:
        operator_id = current_caller().subject
        change_id = id_from(request.change_id, "change_id")
        code = code_from(request.code)

        async def work(uow: BindingUnitOfWork) -> bytes:
            completed = await contacts.complete_assisted_contact_change(
                uow,
                self.ctx,
                operator_id=operator_id,
                change_id=change_id,
                code=code,
                request_id=request.request_id,
            )
            return pb.CompleteAssistedContactChangeResponse(
                changed_at=timestamp(completed.changed_at),
                withdrawal_hold=window_to_proto(completed.withdrawal_hold),
            ).SerializeToString()

        return await idempotent(self.tx, request, pb.CompleteAssistedContactChangeResponse, work)

    async def VerifyAuditLog(
        self, request: pb.VerifyAuditLogRequest, context: Context
    ) -> pb.VerifyAuditLogResponse:
        return pb.VerifyAuditLogResponse(verification=await self.audit.verify())

    async def ExportAuditLog(
        self, request: pb.ExportAuditLogRequest, context: Context
    ) -> pb.ExportAuditLogResponse:
        entries, page = await self.audit.export(request, operator_id=current_caller().subject)
        return pb.ExportAuditLogResponse(entries=entries, page=page)
