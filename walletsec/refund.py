"""The refund queue: list refunds waiting for an operator (oldest first, overdue flagged), show
one with its transitions and payout attempts, approve, reject, retry a failed payout, or
re-route it to another card of the same account.

Refund's ops RPCs need a `refund_operator` identity; every action lands in refund's audit chain.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any, Final

import typer
from google.protobuf.message import Message
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from wallet.refund.v1 import refund_ops_service_pb2 as pb
from wallet.refund.v1 import refund_ops_service_pb2_grpc as rpc
from wallet.refund.v1 import types_pb2
from walletsec.app import enum_name, handled, paged, state_of, to_dict, when
from walletsec.connection import CliError, ExitCode

_REASON_PREFIX: Final = "REFUND_REJECT_REASON_"
REJECT_REASONS: Final = [
    name.removeprefix(_REASON_PREFIX).lower().replace("_", "-")
    for name in types_pb2.RefundRejectReason.DESCRIPTOR.values_by_name
    if name != f"{_REASON_PREFIX}UNSPECIFIED"
]

commands = typer.Typer(
    help="The refund queue: list, show, approve, reject, retry, reroute.", no_args_is_help=True
)
RefundArgument = Annotated[str, typer.Argument(help="The refund id.")]
NoteOption = Annotated[str, typer.Option("--note", help="Why (kept in the audit chain).")]
RequestIdOption = Annotated[
    str | None,
    typer.Option(
        "--request-id", help="Idempotency key (default: a fresh one).", show_default=False
    ),
]


def _stub(ctx: typer.Context) -> rpc.RefundOpsServiceStub:
    return rpc.RefundOpsServiceStub(state_of(ctx).connect().channel("refund"))


def _state(value: int) -> str:
    return enum_name(value, types_pb2.RefundState.Name, "REFUND_STATE_")


def _amount(refund: types_pb2.Refund) -> str:
    return f"{refund.amount.amount_minor} {refund.amount.currency} (minor units)"


@commands.command("list")
@handled
def list_queue(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=1, help="The most refunds to list.")] = 50,
) -> None:
    """List refunds waiting for an operator, oldest first; overdue ones are flagged."""
    state = state_of(ctx)
    stub = _stub(ctx)
    items: list[pb.RefundQueueItem] = paged(
        lambda page: state.connect().call(
            "refund", stub.ListRefundQueue, pb.ListRefundQueueRequest(page=page)
        ),
        lambda reply: reply.items,
        limit,
    )
    if state.json_output:
        state.emit([to_dict(item) for item in items])
        return
    table = Table("refund", "account", "amount", "state", "requested", "deadline", "overdue")
    table.title = "Refund queue"
    for item in items:
        table.add_row(
            Text(item.refund.refund_id),
            Text(item.account_id),
            _amount(item.refund),
            _state(item.refund.state),
            when(item.refund.requested_at),
            when(item.sla_deadline),
            "[bold red]OVERDUE[/]" if item.overdue else "",
        )
    state.out.print(table)


@commands.command("show")
@handled
def show(ctx: typer.Context, refund_id: RefundArgument) -> None:
    """Show one refund: its payment, transitions, payout attempts and operator actions."""
    state = state_of(ctx)
    reply = state.connect().call(
        "refund", _stub(ctx).GetRefund, pb.RefundOpsServiceGetRefundRequest(refund_id=refund_id)
    )
    if state.json_output:
        state.emit(to_dict(reply))
        return
    refund = reply.refund
    table = Table("", "", title=Text(f"refund {refund.refund_id}"), show_header=False)
    rows = [
        ("account", reply.account_id),
        ("payment", refund.payment_id),
        ("amount", _amount(refund)),
        ("state", _state(refund.state)),
        ("instrument", refund.instrument_id),
        ("requested", when(refund.requested_at)),
        ("deadline", when(reply.sla_deadline)),
        ("overdue", "yes" if refund.overdue else ""),
    ]
    rows += [
        (
            "transition",
            f"{when(t.occurred_at)} {_state(t.from_state)} -> {_state(t.to_state)} by {t.actor}",
        )
        for t in reply.transitions
    ]
    for label, value in rows:
        if value:
            table.add_row(label, Text(value))
    state.out.print(table)


def _act(
    ctx: typer.Context,
    verb: str,
    method: Callable[[Any], Callable[..., Any]],
    request: Message,
) -> None:
    state = state_of(ctx)
    reply = state.connect().call("refund", method(_stub(ctx)), request)
    refund = reply.refund
    if state.json_output:
        state.emit(to_dict(refund))
        return
    state.out.print(f"refund {escape(refund.refund_id)} {verb}: [bold]{_state(refund.state)}[/]")


@commands.command("approve")
@handled
def approve(
    ctx: typer.Context,
    refund_id: RefundArgument,
    note: NoteOption = "",
    request_id: RequestIdOption = None,
) -> None:
    """Approve a refund waiting for an operator (the payout worker then pays it)."""
    _act(
        ctx,
        "approved",
        lambda stub: stub.ApproveRefund,
        pb.ApproveRefundRequest(
            request_id=request_id or uuid.uuid4().hex, refund_id=refund_id, note=note
        ),
    )


@commands.command("reject")
@handled
def reject(
    ctx: typer.Context,
    refund_id: RefundArgument,
    reason: Annotated[str, typer.Option("--reason", help=f"One of: {', '.join(REJECT_REASONS)}.")],
    note: NoteOption = "",
    request_id: RequestIdOption = None,
) -> None:
    """Reject a refund waiting for an operator, with the reason the user is shown."""
    if reason not in REJECT_REASONS:
        raise CliError(
            f"--reason must be one of: {', '.join(REJECT_REASONS)} (got {reason!r})",
            ExitCode.BAD_INPUT,
        )
    code = types_pb2.RefundRejectReason.Value(_REASON_PREFIX + reason.upper().replace("-", "_"))
    _act(
        ctx,
        "rejected",
        lambda stub: stub.RejectRefund,
        pb.RejectRefundRequest(
            request_id=request_id or uuid.uuid4().hex,
            refund_id=refund_id,
            reason_code=code,
            note=note,
        ),
    )


@commands.command("retry")
@handled
def retry(
    ctx: typer.Context,
    refund_id: RefundArgument,
    note: NoteOption = "",
    request_id: RequestIdOption = None,
) -> None:
    """Retry the payout of a failed refund to the same instrument."""
    _act(
        ctx,
        "queued for payout again",
        lambda stub: stub.RetryPayout,
        pb.RetryPayoutRequest(
            request_id=request_id or uuid.uuid4().hex, refund_id=refund_id, note=note
        ),
    )


@commands.command("reroute")
@handled
def reroute(
    ctx: typer.Context,
    refund_id: RefundArgument,
    instrument: Annotated[
        str, typer.Option("--instrument", help="Another bound card of the same account.")
    ],
    note: NoteOption = "",
    request_id: RequestIdOption = None,
) -> None:
    """Re-route a refund whose source instrument is gone to another card of the account."""
    _act(
        ctx,
        f"re-routed to {instrument}",
        lambda stub: stub.RerouteRefund,
        pb.RerouteRefundRequest(
            request_id=request_id or uuid.uuid4().hex,
            refund_id=refund_id,
            instrument_id=instrument,
            note=note,
        ),
    )
