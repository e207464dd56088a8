"""AccountAdminService: the security team's API on auth's admin port.

The port's access policy admits only operators with the role `security_officer`; the caller's
subject is the officer id every use case acts and audits as.
"""

from __future__ import annotations

from typing import Any

import grpc.aio

from services.auth.api.convert import (
    actor_to_proto,
    contact_from,
    origin_of,
    reason_from,
    security_event_to_proto,
    security_event_types_from,
    ticket_ref_from,
)
from services.auth.domain.account import FreezeRecord
from services.auth.service import admin, timeline
from services.auth.service.context import AuthContext
from services.auth.service.ports import AuthUnitOfWork, Transactions
from wallet.auth.v1 import account_admin_service_pb2 as pb
from wallet.auth.v1 import account_admin_service_pb2_grpc, types_pb2
from wallet.common.v1 import contact_pb2
from walletcore.audit_rpcs import AuditExportTokens, AuditLogServicer, AuditReader, AuditResponses
from walletcore.grpc.convert import (
    enum_to_proto,
    id_from,
    idempotent,
    page_of,
    page_response,
    timestamp,
)
from walletcore.identity import current_caller

Context = grpc.aio.ServicerContext[Any, Any]


class AccountAdminServicer(
    AuditLogServicer[pb.VerifyAuditLogResponse, pb.ExportAuditLogResponse],
    account_admin_service_pb2_grpc.AccountAdminServiceServicer,
):
    audit_responses = AuditResponses(pb.VerifyAuditLogResponse, pb.ExportAuditLogResponse)

    def __init__(self, ctx: AuthContext, tx: Transactions, audit_reader: AuditReader) -> None:
        self.ctx = ctx
        self.tx = tx
        self.audit_reader = audit_reader
        self.export_tokens = AuditExportTokens(ctx.encryption, "auth")
        self.audit_clock = ctx.clock

    async def FreezeAccount(
        self, request: pb.FreezeAccountRequest, context: Context
    ) -> pb.FreezeAccountResponse:
        account_id = id_from(request.account_id, "account_id")
        reason = reason_from(request.reason)
        ticket_ref = ticket_ref_from(request.ticket_ref)

        async def work(uow: AuthUnitOfWork) -> bytes:
            result = await admin.freeze_account(
                uow,
                self.ctx,
                officer_id=current_caller().subject,
                account_id=account_id,
                reason=reason,
                ticket_ref=ticket_ref,
                origin=origin_of(),
            )
            return pb.FreezeAccountResponse(
                frozen_at=timestamp(result.frozen_at),
                already_frozen=result.already_frozen,
                revoked_session_count=result.revoked_session_count,
            ).SerializeToString()

        return await idempotent(self.tx, request, pb.FreezeAccountResponse, work)

    async def UnfreezeAccount(
        self, request: pb.UnfreezeAccountRequest, context: Context
    ) -> pb.UnfreezeAccountResponse:
        account_id = id_from(request.account_id, "account_id")
        reason = reason_from(request.reason)
        ticket_ref = ticket_ref_from(request.ticket_ref)

        async def work(uow: AuthUnitOfWork) -> bytes:
            unfrozen_at = await admin.unfreeze_account(
                uow,
                self.ctx,
                officer_id=current_caller().subject,
                account_id=account_id,
                reason=reason,
                ticket_ref=ticket_ref,
                origin=origin_of(),
            )
            response = pb.UnfreezeAccountResponse(unfrozen_at=timestamp(unfrozen_at))
            return response.SerializeToString()

        return await idempotent(self.tx, request, pb.UnfreezeAccountResponse, work)

    async def BulkFreezeAccounts(
        self, request: pb.BulkFreezeAccountsRequest, context: Context
    ) -> pb.BulkFreezeAccountsResponse:
        account_ids = [
            id_from(account_id, f"account_ids[{index}]")
            for index, account_id in enumerate(request.account_ids)
        ]
        reason = reason_from(request.reason)
        ticket_ref = ticket_ref_from(request.ticket_ref)

        async def work(uow: AuthUnitOfWork) -> bytes:
            result = await admin.bulk_freeze_accounts(
                uow,
                self.ctx,
                officer_id=current_caller().subject,
                account_ids=account_ids,
                reason=reason,
                ticket_ref=ticket_ref,
                origin=origin_of(),
            )
            return pb.BulkFreezeAccountsResponse(
                results=[
                    pb.BulkFreezeResult(
                        account_id=account_id,
                        outcome=enum_to_proto(types_pb2.FreezeOutcome, outcome),
                    )
                    for account_id, outcome in result.outcomes
                ],
                frozen_count=result.count(admin.FreezeOutcome.FROZEN),
                already_frozen_count=result.count(admin.FreezeOutcome.ALREADY_FROZEN),
                not_found_count=result.count(admin.FreezeOutcome.NOT_FOUND),
            ).SerializeToString()

        return await idempotent(self.tx, request, pb.BulkFreezeAccountsResponse, work)

    async def RevokeAccountSessions(
        self, request: pb.RevokeAccountSessionsRequest, context: Context
    ) -> pb.RevokeAccountSessionsResponse:
        account_id = id_from(request.account_id, "account_id")
        reason = reason_from(request.reason)
        ticket_ref = ticket_ref_from(request.ticket_ref)

        async def work(uow: AuthUnitOfWork) -> bytes:
            revoked = await admin.revoke_account_sessions(
                uow,
                self.ctx,
                officer_id=current_caller().subject,
                account_id=account_id,
                reason=reason,
                ticket_ref=ticket_ref,
                origin=origin_of(),
            )
            response = pb.RevokeAccountSessionsResponse(revoked_session_count=revoked)
            return response.SerializeToString()

        return await idempotent(self.tx, request, pb.RevokeAccountSessionsResponse, work)

    async def GetAccount(
        self, request: pb.AccountAdminServiceGetAccountRequest, context: Context
    ) -> pb.AccountAdminServiceGetAccountResponse:
        account_id = id_from(request.account_id, "account_id")

        async def work(uow: AuthUnitOfWork) -> admin.AdminAccountView:
            return await admin.get_account(uow, self.ctx, account_id=account_id)

        view = await self.tx.run(work)
        return pb.AccountAdminServiceGetAccountResponse(account=_account_view(view))

    async def FindAccount(
        self, request: pb.FindAccountRequest, context: Context
    ) -> pb.FindAccountResponse:
        contact = contact_from(request.contact, "contact")

        async def work(uow: AuthUnitOfWork) -> str:
            return await admin.find_account(
                uow, self.ctx, officer_id=current_caller().subject, contact=contact
            )

        return pb.FindAccountResponse(account_id=await self.tx.run(work))

    async def ListSecurityEvents(
        self, request: pb.AccountAdminServiceListSecurityEventsRequest, context: Context
    ) -> pb.AccountAdminServiceListSecurityEventsResponse:
        account_id = id_from(request.account_id, "account_id")
        page = page_of(request.page)
        types = security_event_types_from(request.types)

        async def work(uow: AuthUnitOfWork) -> timeline.EventsPage:
            return await admin.list_security_events(
                uow,
                self.ctx,
                account_id=account_id,
                page_size=page.size,
                page_token=page.token,
                types=types,
            )

        events = await self.tx.run(work)
        return pb.AccountAdminServiceListSecurityEventsResponse(
            events=[security_event_to_proto(each, officer_view=True) for each in events.events],
            page=page_response(events.next_page_token),
        )


def _account_view(view: admin.AdminAccountView) -> pb.AdminAccountView:
    return pb.AdminAccountView(
        account_id=view.account_id,
        status=enum_to_proto(types_pb2.AccountStatus, view.status),
        contacts=[masked_contact_to_proto(contact) for contact in view.contacts],
        totp_enabled=view.totp_enabled,
        recovery_codes_remaining=view.recovery_codes_remaining,
        created_at=timestamp(view.created_at),
        active_session_count=view.active_session_count,
        freeze_history=[_freeze_record(record) for record in view.freeze_history],
    )


def masked_contact_to_proto(contact: admin.MaskedContactView) -> types_pb2.MaskedContact:
    return types_pb2.MaskedContact(
        kind=enum_to_proto(contact_pb2.ContactKind, contact.kind),
        masked_value=contact.masked_value,
        verified_at=timestamp(contact.verified_at),
    )


def _freeze_record(record: FreezeRecord) -> types_pb2.FreezeRecord:
    return types_pb2.FreezeRecord(
        frozen=record.frozen,
        actor=actor_to_proto(record.actor, officer_view=True),
        reason=record.reason,
        ticket_ref=record.ticket_ref,
        occurred_at=timestamp(record.occurred_at),
    )
