"""What officers read: an account found by its contact, its security timeline, session
revocation, and auth's audit trail, which records every officer action in a verifiable
hash chain that can be exported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from tests.api.auth.harness import (
    AuthTestApp,
    Registered,
    operator_metadata,
    phone_contact,
    request_id,
)
from tests.api.auth.recovery_helpers import refused
from wallet.auth.v1 import account_admin_service_pb2 as admin_pb
from wallet.auth.v1 import auth_service_pb2 as auth_pb
from wallet.auth.v1 import types_pb2
from wallet.common.v1 import paging_pb2

OFFICER_ID = "officer-7"
OFFICER = operator_metadata(operator_id=OFFICER_ID)
GENESIS = "0" * 64


async def freeze_and_unfreeze(app: AuthTestApp, user: Registered) -> None:
    await app.admin.FreezeAccount(
        admin_pb.FreezeAccountRequest(
            request_id=request_id(),
            account_id=user.account_id,
            reason="suspicious payouts",
            ticket_ref="INC-77",
        ),
        metadata=OFFICER,
    )
    await app.admin.UnfreezeAccount(
        admin_pb.UnfreezeAccountRequest(
            request_id=request_id(),
            account_id=user.account_id,
            reason="payouts were the owner's",
            ticket_ref="INC-77",
        ),
        metadata=OFFICER,
    )


async def test_officer_actions_form_a_chain_that_verifies_and_exports_in_pages(
    auth_app: AuthTestApp,
) -> None:
    user = await auth_app.register()
    await freeze_and_unfreeze(auth_app, user)
    await auth_app.admin.FindAccount(
        admin_pb.FindAccountRequest(contact=user.contact), metadata=OFFICER
    )

    verified = await auth_app.admin.VerifyAuditLog(
        admin_pb.VerifyAuditLogRequest(), metadata=OFFICER
    )
    first = await auth_app.admin.ExportAuditLog(
        admin_pb.ExportAuditLogRequest(page=paging_pb2.PageRequest(page_size=2)),
        metadata=OFFICER,
    )
    rest = await auth_app.admin.ExportAuditLog(
        admin_pb.ExportAuditLogRequest(
            page=paging_pb2.PageRequest(page_size=2, page_token=first.page.next_page_token)
        ),
        metadata=OFFICER,
    )
    tomorrow = Timestamp()
    tomorrow.FromDatetime(datetime.now(UTC) + timedelta(days=1))
    future = await auth_app.admin.ExportAuditLog(
        admin_pb.ExportAuditLogRequest(start_time=tomorrow), metadata=OFFICER
    )
    token_of_another_range = await refused(
        auth_app.admin.ExportAuditLog(
            admin_pb.ExportAuditLogRequest(
                end_time=tomorrow,
                page=paging_pb2.PageRequest(page_token=first.page.next_page_token),
            ),
            metadata=OFFICER,
        )
    )

    entries = [*first.entries, *rest.entries]
    assert verified.verification.intact
    assert verified.verification.entries_checked == 3
    assert [entry.action for entry in entries] == [
        "FREEZE_ACCOUNT",
        "UNFREEZE_ACCOUNT",
        "FIND_ACCOUNT",
    ]
    assert [entry.sequence for entry in entries] == [1, 2, 3]
    assert [entry.prev_hash for entry in entries] == [GENESIS, entries[0].hash, entries[1].hash]
    assert verified.verification.head_hash == entries[-1].hash
    assert rest.page.next_page_token == ""
    assert {(entry.operator_id, entry.operator_role, entry.target) for entry in entries} == {
        (OFFICER_ID, "security_officer", f"account:{user.account_id}")
    }
    assert entries[0].details["ticket_ref"] == "INC-77"
    assert all(user.destination not in str(dict(entry.details)) for entry in entries)
    assert list(future.entries) == []
    assert (token_of_another_range.code, token_of_another_range.reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "PAGE_TOKEN_INVALID",
    )


async def test_an_officer_finds_an_account_by_phone_and_reads_its_timeline(
    auth_app: AuthTestApp,
) -> None:
    user = await auth_app.register()
    await freeze_and_unfreeze(auth_app, user)

    found = await auth_app.admin.FindAccount(
        admin_pb.FindAccountRequest(contact=user.contact), metadata=OFFICER
    )
    unknown = await refused(
        auth_app.admin.FindAccount(
            admin_pb.FindAccountRequest(contact=phone_contact(auth_app.new_phone())),
            metadata=OFFICER,
        )
    )
    malformed = await refused(
        auth_app.admin.FindAccount(
            admin_pb.FindAccountRequest(contact=phone_contact("+1 not a number")),
            metadata=OFFICER,
        )
    )
    timeline = await auth_app.admin.ListSecurityEvents(
        admin_pb.AccountAdminServiceListSecurityEventsRequest(
            account_id=user.account_id, types=[types_pb2.SECURITY_EVENT_TYPE_ACCOUNT_FROZEN]
        ),
        metadata=OFFICER,
    )
    view = await auth_app.admin.GetAccount(
        admin_pb.AccountAdminServiceGetAccountRequest(account_id=user.account_id),
        metadata=OFFICER,
    )

    assert found.account_id == user.account_id
    assert (unknown.code, unknown.reason) == (grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND")
    assert [violation.field for violation in malformed.field_violations] == ["contact.phone"]
    [frozen] = timeline.events
    assert (frozen.actor.kind, frozen.actor.id) == (types_pb2.ACTOR_KIND_OPERATOR, OFFICER_ID)
    assert frozen.client_address == "127.0.0.1"
    assert frozen.details["ticket_ref"] == "INC-77"
    [contact] = view.account.contacts
    assert contact.masked_value.endswith(user.destination[-4:])
    assert user.destination not in contact.masked_value


async def test_revoking_sessions_signs_every_device_out_without_freezing(
    auth_app: AuthTestApp,
) -> None:
    user = await auth_app.register()
    await auth_app.signed_in(user)

    revoked = await auth_app.admin.RevokeAccountSessions(
        admin_pb.RevokeAccountSessionsRequest(
            request_id=request_id(), account_id=user.account_id, reason="phone reported lost"
        ),
        metadata=OFFICER,
    )

    assert revoked.revoked_session_count == 2
    old_token = await refused(
        auth_app.public.ListSessions(auth_pb.ListSessionsRequest(), metadata=user.metadata)
    )
    assert (old_token.code, old_token.reason) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "SESSION_REVOKED",
    )
    assert (await auth_app.signed_in(user)).access_token
