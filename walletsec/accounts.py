"""One account: freeze, unfreeze, revoke sessions, show it, read its security timeline."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from wallet.auth.v1 import account_admin_service_pb2 as pb
from wallet.auth.v1 import account_admin_service_pb2_grpc as rpc
from wallet.auth.v1 import types_pb2
from wallet.common.v1 import paging_pb2
from walletsec.app import enum_name, handled, state_of, to_dict, when
from walletsec.connection import CliError, ExitCode

ReasonOption = Annotated[
    str, typer.Option("--reason", help="Why, for the audit trail (1 to 500 characters).")
]
TicketOption = Annotated[
    str, typer.Option("--ticket", help="The incident or support ticket (1 to 64 characters).")
]
RequestIdOption = Annotated[
    str | None,
    typer.Option(
        "--request-id",
        help="Idempotency key: repeat a call that may have failed midway with the same id "
        "and it changes nothing more (default: a fresh one).",
        show_default=False,
    ),
]
AccountArgument = Annotated[str, typer.Argument(help="The account id.")]

_EVENT_PREFIX = "SECURITY_EVENT_TYPE_"
EVENT_TYPES = [
    name.removeprefix(_EVENT_PREFIX).lower()
    for name in types_pb2.SecurityEventType.DESCRIPTOR.values_by_name
    if name != f"{_EVENT_PREFIX}UNSPECIFIED"
]


def _stub(ctx: typer.Context) -> rpc.AccountAdminServiceStub:
    return rpc.AccountAdminServiceStub(state_of(ctx).connect().channel("auth"))


def _request_id(given: str | None) -> str:
    return given or uuid.uuid4().hex


def _event_type(raw: str) -> types_pb2.SecurityEventType.ValueType:
    name = f"{_EVENT_PREFIX}{raw.upper().replace('-', '_')}"
    if (
        name not in types_pb2.SecurityEventType.DESCRIPTOR.values_by_name
        or raw.lower() == "unspecified"
    ):
        raise CliError(
            f"--type must be one of: {', '.join(EVENT_TYPES)} (got {raw!r})", ExitCode.BAD_INPUT
        )
    return types_pb2.SecurityEventType.Value(name)


def freeze(
    ctx: typer.Context,
    account_id: AccountArgument,
    reason: ReasonOption,
    ticket: TicketOption,
    request_id: RequestIdOption = None,
) -> None:
    """Freeze one account: every session is revoked and every service refuses it."""
    state = state_of(ctx)
    reply = state.connect().call(
        "auth",
        _stub(ctx).FreezeAccount,
        pb.FreezeAccountRequest(
            request_id=_request_id(request_id),
            account_id=account_id,
            reason=reason,
            ticket_ref=ticket,
        ),
    )
    if state.json_output:
        state.emit({"account_id": account_id, **to_dict(reply)})
    elif reply.already_frozen:
        state.out.print(f"{escape(account_id)} was already frozen (since {when(reply.frozen_at)})")
    else:
        state.out.print(
            f"[bold]{escape(account_id)} frozen[/] at {when(reply.frozen_at)}; "
            f"{reply.revoked_session_count} session(s) revoked"
        )


def unfreeze(
    ctx: typer.Context,
    account_id: AccountArgument,
    reason: ReasonOption,
    ticket: TicketOption,
    request_id: RequestIdOption = None,
) -> None:
    """Unfreeze one account (the sessions the freeze revoked stay revoked)."""
    state = state_of(ctx)
    reply = state.connect().call(
        "auth",
        _stub(ctx).UnfreezeAccount,
        pb.UnfreezeAccountRequest(
            request_id=_request_id(request_id),
            account_id=account_id,
            reason=reason,
            ticket_ref=ticket,
        ),
    )
    if state.json_output:
        state.emit({"account_id": account_id, **to_dict(reply)})
    else:
        state.out.print(f"[bold]{escape(account_id)} unfrozen[/] at {when(reply.unfrozen_at)}")


def revoke_sessions(
    ctx: typer.Context,
    account_id: AccountArgument,
    reason: ReasonOption,
    ticket: Annotated[
        str, typer.Option("--ticket", help="The incident or support ticket, if any.")
    ] = "",
    request_id: RequestIdOption = None,
) -> None:
    """Revoke every session and refresh token of an account without freezing it."""
    state = state_of(ctx)
    reply = state.connect().call(
        "auth",
        _stub(ctx).RevokeAccountSessions,
        pb.RevokeAccountSessionsRequest(
            request_id=_request_id(request_id),
            account_id=account_id,
            reason=reason,
            ticket_ref=ticket,
        ),
    )
    if state.json_output:
        state.emit({"account_id": account_id, **to_dict(reply)})
    else:
        state.out.print(f"{reply.revoked_session_count} session(s) of {escape(account_id)} revoked")


def show(ctx: typer.Context, account_id: AccountArgument) -> None:
    """Show an account as officers see it, with its freeze history."""
    state = state_of(ctx)
    reply = state.connect().call(
        "auth",
        _stub(ctx).GetAccount,
        pb.AccountAdminServiceGetAccountRequest(account_id=account_id),
    )
    view = reply.account
    if state.json_output:
        state.emit(to_dict(view))
        return
    status = enum_name(view.status, types_pb2.AccountStatus.Name, "ACCOUNT_STATUS_")
    state.out.print(f"[bold]{escape(view.account_id)}[/]  {status}")
    state.out.print(
        f"created {when(view.created_at)}; {view.active_session_count} active session(s); "
        f"TOTP {'on' if view.totp_enabled else 'off'}; "
        f"{view.recovery_codes_remaining} recovery code(s) left"
    )
    for contact in view.contacts:
        state.out.print(f"contact: {contact.masked_value}", markup=False)
    if view.freeze_history:
        history = Table("when", "action", "by", "ticket", "reason", title="freeze history")
        for record in view.freeze_history:
            history.add_row(
                when(record.occurred_at),
                "freeze" if record.frozen else "unfreeze",
                Text(record.actor.id),
                Text(record.ticket_ref),
                Text(record.reason),
            )
        state.out.print(history)


def timeline(
    ctx: typer.Context,
    account_id: AccountArgument,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="The most events to show, newest first.")
    ] = 50,
    types: Annotated[
        list[str] | None,
        typer.Option(
            "--type",
            help=f"Only events of this type (repeatable): {', '.join(EVENT_TYPES)}.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Show an account's security timeline, newest first."""
    state = state_of(ctx)
    wanted = [_event_type(raw) for raw in types or []]
    stub = _stub(ctx)
    events: list[types_pb2.SecurityEvent] = []
    token = ""
    while len(events) < limit:
        reply = state.connect().call(
            "auth",
            stub.ListSecurityEvents,
            pb.AccountAdminServiceListSecurityEventsRequest(
                account_id=account_id,
                page=paging_pb2.PageRequest(
                    page_size=min(limit - len(events), 200), page_token=token
                ),
                types=wanted,
            ),
        )
        events.extend(reply.events)
        token = reply.page.next_page_token
        if not token:
            break
    events = events[:limit]
    if state.json_output:
        state.emit([to_dict(event) for event in events])
        return
    table = Table(
        "when", "event", "actor", "address", "summary", title=Text(f"timeline of {account_id}")
    )
    for event in events:
        actor = enum_name(event.actor.kind, types_pb2.ActorKind.Name, "ACTOR_KIND_")
        table.add_row(
            when(event.occurred_at),
            enum_name(event.type, types_pb2.SecurityEventType.Name, _EVENT_PREFIX),
            Text(f"{actor} {event.actor.id}".strip()),
            Text(event.client_address),
            Text(event.summary),
        )
    state.out.print(table)


def register(app: typer.Typer) -> None:
    for name, command in (
        ("freeze", freeze),
        ("unfreeze", unfreeze),
        ("revoke-sessions", revoke_sessions),
        ("show", show),
        ("timeline", timeline),
    ):
        app.command(name)(handled(command))
