"""A security officer freezes and unfreezes accounts through the admin port, one at a time or
thousands after a breach, and the frozen account stops working everywhere at once."""

from __future__ import annotations

import grpc

from tests.api.auth.access_helpers import add_accounts
from tests.api.auth.harness import (
    AuthTestApp,
    Registered,
    operator_metadata,
    request_id,
    service_metadata,
)
from tests.api.auth.recovery_helpers import refused
from wallet.auth.v1 import account_admin_service_pb2 as admin_pb
from wallet.auth.v1 import account_status_service_pb2 as status_pb
from wallet.auth.v1 import auth_service_pb2 as auth_pb
from wallet.auth.v1 import types_pb2

OFFICER = operator_metadata(operator_id="officer-7")


def freeze_request(account_id: str, **fields: str) -> admin_pb.FreezeAccountRequest:
    return admin_pb.FreezeAccountRequest(
        request_id=fields.get("request_id", request_id()),
        account_id=account_id,
        reason=fields.get("reason", "reported stolen phone"),
        ticket_ref=fields.get("ticket_ref", "INC-1042"),
    )


async def list_sessions(app: AuthTestApp, user: Registered) -> object:
    return await app.public.ListSessions(auth_pb.ListSessionsRequest(), metadata=user.metadata)


async def test_a_frozen_account_is_refused_from_the_next_request(auth_app: AuthTestApp) -> None:
    user = await auth_app.register()

    frozen = await auth_app.admin.FreezeAccount(freeze_request(user.account_id), metadata=OFFICER)

    assert (frozen.already_frozen, frozen.revoked_session_count) == (False, 1)
    old_token = await refused(list_sessions(auth_app, user))
    assert (old_token.code, old_token.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "ACCOUNT_FROZEN",
    )
    sign_in = await refused(auth_app.sign_in(user.contact, user.password))
    assert (sign_in.code, sign_in.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ACCOUNT_FROZEN")
    status = await auth_app.internal.GetAccountStatus(
        status_pb.GetAccountStatusRequest(account_id=user.account_id),
        metadata=service_metadata("kyc"),
    )
    assert status.status == types_pb2.ACCOUNT_STATUS_FROZEN
    assert status.frozen_at == frozen.frozen_at
    assert "frozen" in await auth_app.next_message_text(user.destination)


async def test_an_unfreeze_restores_sign_in_but_not_the_old_sessions(
    auth_app: AuthTestApp,
) -> None:
    user = await auth_app.register()
    await auth_app.admin.FreezeAccount(freeze_request(user.account_id), metadata=OFFICER)
    again = await auth_app.admin.FreezeAccount(freeze_request(user.account_id), metadata=OFFICER)

    await auth_app.admin.UnfreezeAccount(
        admin_pb.UnfreezeAccountRequest(
            request_id=request_id(),
            account_id=user.account_id,
            reason="owner identified at a branch",
            ticket_ref="INC-1042",
        ),
        metadata=OFFICER,
    )

    assert again.already_frozen
    assert (await auth_app.signed_in(user)).access_token
    old_token = await refused(list_sessions(auth_app, user))
    assert (old_token.code, old_token.reason) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "SESSION_REVOKED",
    )
    view = await auth_app.admin.GetAccount(
        admin_pb.AccountAdminServiceGetAccountRequest(account_id=user.account_id),
        metadata=OFFICER,
    )
    assert view.account.status == types_pb2.ACCOUNT_STATUS_ACTIVE
    assert [record.frozen for record in view.account.freeze_history] == [False, True]
    assert view.account.freeze_history[1].actor.id == "officer-7"


async def test_officers_get_the_documented_refusals(
    auth_app: AuthTestApp,
) -> None:
    user = await auth_app.register()

    not_frozen = await refused(
        auth_app.admin.UnfreezeAccount(
            admin_pb.UnfreezeAccountRequest(
                request_id=request_id(), account_id=user.account_id, reason="r", ticket_ref="t"
            ),
            metadata=OFFICER,
        )
    )
    no_ticket = await refused(
        auth_app.admin.FreezeAccount(
            freeze_request(user.account_id, ticket_ref=""), metadata=OFFICER
        )
    )
    unknown = await refused(
        auth_app.admin.FreezeAccount(freeze_request("no-such-account"), metadata=OFFICER)
    )
    no_ids = await refused(
        auth_app.admin.BulkFreezeAccounts(
            admin_pb.BulkFreezeAccountsRequest(
                request_id=request_id(), reason="breach", ticket_ref="INC-1"
            ),
            metadata=OFFICER,
        )
    )

    assert (not_frozen.code, not_frozen.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "ACCOUNT_NOT_FROZEN",
    )
    assert no_ticket.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [violation.field for violation in no_ticket.field_violations] == ["ticket_ref"]
    assert (unknown.code, unknown.reason) == (grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND")
    assert no_ids.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [violation.field for violation in no_ids.field_violations] == ["account_ids"]


async def test_a_bulk_freeze_reports_every_account_and_locks_out_its_users(
    auth_app: AuthTestApp,
) -> None:
    user = await auth_app.register()
    stored = await add_accounts(auth_app, 48)
    await auth_app.admin.FreezeAccount(freeze_request(stored[0]), metadata=OFFICER)
    account_ids = [*stored, user.account_id, "ghost-1", stored[5], "ghost-2"]
    request = admin_pb.BulkFreezeAccountsRequest(
        request_id=request_id(),
        account_ids=account_ids,
        reason="credential stuffing wave",
        ticket_ref="INC-2001",
    )

    reply = await auth_app.admin.BulkFreezeAccounts(request, metadata=OFFICER)
    retried = await auth_app.admin.BulkFreezeAccounts(request, metadata=OFFICER)

    assert [result.account_id for result in reply.results] == [
        *stored,
        user.account_id,
        "ghost-1",
        "ghost-2",
    ]
    outcomes = {result.account_id: result.outcome for result in reply.results}
    assert outcomes[stored[0]] == types_pb2.FREEZE_OUTCOME_ALREADY_FROZEN
    assert outcomes["ghost-2"] == types_pb2.FREEZE_OUTCOME_NOT_FOUND
    assert (reply.frozen_count, reply.already_frozen_count, reply.not_found_count) == (48, 1, 2)
    assert retried == reply
    old_token = await refused(list_sessions(auth_app, user))
    assert old_token.reason == "ACCOUNT_FROZEN"
