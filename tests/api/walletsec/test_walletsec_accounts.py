"""A security officer works one account from the command line: freeze, unfreeze, revoke its
sessions, read it and its timeline; and every failure is one line with a non-zero exit."""

from __future__ import annotations

import grpc
import pytest

from tests.api.auth.harness import AuthTestApp, operator_metadata
from tests.api.auth.recovery_helpers import refused
from tests.api.walletsec.cli_helpers import Walletsec, one_line_error
from wallet.auth.v1 import account_admin_service_pb2 as admin_pb
from wallet.auth.v1 import auth_service_pb2 as auth_pb
from wallet.auth.v1 import types_pb2
from walletcore.identity import OperatorRole
from walletsec.connection import ExitCode

OFFICER = operator_metadata()


async def status_of(auth_app: AuthTestApp, account_id: str) -> int:
    reply = await auth_app.admin.GetAccount(
        admin_pb.AccountAdminServiceGetAccountRequest(account_id=account_id), metadata=OFFICER
    )
    return reply.account.status


async def test_an_officer_freezes_and_unfreezes_an_account_and_reads_its_timeline(
    auth_app: AuthTestApp, cli: Walletsec
) -> None:
    user = await auth_app.register()

    frozen = await cli("freeze", user.account_id, "--reason", "stolen phone", "--ticket", "INC-7")
    refusal = await refused(
        auth_app.public.ListSessions(auth_pb.ListSessionsRequest(), metadata=user.metadata)
    )
    status_while_frozen = await status_of(auth_app, user.account_id)
    again = await cli(
        "--json", "freeze", user.account_id, "--reason", "stolen phone", "--ticket", "INC-7"
    )
    unfrozen = await cli(
        "unfreeze", user.account_id, "--reason", "owner verified", "--ticket", "INC-7"
    )
    shown = await cli("show", user.account_id)
    timeline = await cli("--json", "timeline", user.account_id)
    only_freezes = await cli("--json", "timeline", user.account_id, "--type", "account_frozen")

    assert frozen.exit_code == 0, frozen.stderr
    assert f"{user.account_id} frozen" in frozen.stdout
    assert "1 session(s) revoked" in frozen.stdout
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ACCOUNT_FROZEN")
    assert status_while_frozen == types_pb2.ACCOUNT_STATUS_FROZEN
    assert again.exit_code == 0
    assert again.json()["already_frozen"] is True
    assert unfrozen.exit_code == 0, unfrozen.stderr
    assert await status_of(auth_app, user.account_id) == types_pb2.ACCOUNT_STATUS_ACTIVE
    assert shown.exit_code == 0
    assert "active" in shown.stdout
    assert "INC-7" in shown.stdout
    types = [event["type"] for event in timeline.json()]
    assert types[:2] == [
        "SECURITY_EVENT_TYPE_ACCOUNT_UNFROZEN",
        "SECURITY_EVENT_TYPE_ACCOUNT_FROZEN",
    ]
    assert "SECURITY_EVENT_TYPE_ACCOUNT_CREATED" in types
    assert [event["type"] for event in only_freezes.json()] == [
        "SECURITY_EVENT_TYPE_ACCOUNT_FROZEN"
    ]


async def test_an_officer_revokes_the_sessions_of_an_account_without_freezing_it(
    auth_app: AuthTestApp, cli: Walletsec
) -> None:
    user = await auth_app.register()

    revoked = await cli("revoke-sessions", user.account_id, "--reason", "shared password")
    refusal = await refused(
        auth_app.public.ListSessions(auth_pb.ListSessionsRequest(), metadata=user.metadata)
    )

    assert revoked.exit_code == 0, revoked.stderr
    assert "1 session(s)" in revoked.stdout
    assert refusal.code == grpc.StatusCode.UNAUTHENTICATED
    assert await status_of(auth_app, user.account_id) == types_pb2.ACCOUNT_STATUS_ACTIVE


async def test_a_reviewer_token_is_refused_with_one_line_and_nothing_is_frozen(
    auth_app: AuthTestApp, cli: Walletsec
) -> None:
    user = await auth_app.register()

    run = await cli.as_role(OperatorRole.KYC_REVIEWER)(
        "freeze", user.account_id, "--reason", "r", "--ticket", "t"
    )

    assert run.exit_code == ExitCode.DENIED
    assert "PERMISSION_DENIED" in one_line_error(run.stderr)
    assert await status_of(auth_app, user.account_id) == types_pb2.ACCOUNT_STATUS_ACTIVE


@pytest.mark.parametrize("auth_backend", ["sqlite"], indirect=True)
async def test_operator_mistakes_end_with_one_line_and_their_exit_status(
    auth_app: AuthTestApp, cli: Walletsec, tmp_path: object
) -> None:
    unknown = await cli("freeze", "no-such-account", "--reason", "r", "--ticket", "t")
    no_ticket = await cli("freeze", "no-such-account", "--reason", "r", "--ticket", "")
    no_token = await cli("timeline", "abc", WALLETSEC_OPERATOR_TOKEN="")
    bad_token = await cli("timeline", "abc", WALLETSEC_OPERATOR_TOKEN="not-a-token")
    forged = await cli("timeline", "abc", WALLETSEC_OPERATOR_TOKEN="a.b.c")
    unreachable = await cli("timeline", "abc", WALLETSEC_AUTH_ADMIN="127.0.0.1:1")
    bad_type = await cli("timeline", "abc", "--type", "sign_in_sideways")

    assert unknown.exit_code == ExitCode.NOT_FOUND
    assert "ACCOUNT_NOT_FOUND" in one_line_error(unknown.stderr)
    assert no_ticket.exit_code == ExitCode.BAD_INPUT
    assert "ticket_ref" in one_line_error(no_ticket.stderr)
    assert no_token.exit_code == ExitCode.DENIED
    assert "WALLETSEC_OPERATOR_TOKEN" in one_line_error(no_token.stderr)
    assert bad_token.exit_code == ExitCode.DENIED
    assert "does not hold an operator token" in one_line_error(bad_token.stderr)
    assert forged.exit_code == ExitCode.DENIED
    assert "UNAUTHENTICATED" in one_line_error(forged.stderr)
    assert unreachable.exit_code == ExitCode.UNREACHABLE
    assert "cannot be reached (UNAVAILABLE)" in one_line_error(unreachable.stderr)
    assert bad_type.exit_code == ExitCode.BAD_INPUT
    assert "--type must be one of" in one_line_error(bad_type.stderr)
