"""Every service's audit chain: verify it on the server, export it as JSON lines."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from rich.table import Table

from wallet.auth.v1 import account_admin_service_pb2, account_admin_service_pb2_grpc
from wallet.common.v1 import paging_pb2
from wallet.kyc.v1 import kyc_review_service_pb2, kyc_review_service_pb2_grpc
from walletsec.app import handled, parse_time, state_of, to_dict, when
from walletsec.connection import CliError, ExitCode

EXPORT_PAGE_SIZE: Final = 1000
"""The servers' largest export page."""


# Binding's and refund's admin services declare the same two RPCs (binding_admin_service.proto,
# refund_ops_service.proto): each becomes one more entry here once its service serves its
# admin port (binding's bootstrap does not yet; refund is not built yet).
@dataclass(frozen=True)
class AuditedService:
    """Where a service serves its audit RPCs: the admin stub and its two request types."""

    stub: Callable[[Any], Any]
    verify_request: Callable[[], Any]
    export_request: Callable[..., Any]


AUDITED: Final = {
    "auth": AuditedService(
        account_admin_service_pb2_grpc.AccountAdminServiceStub,
        account_admin_service_pb2.VerifyAuditLogRequest,
        account_admin_service_pb2.ExportAuditLogRequest,
    ),
    "kyc": AuditedService(
        kyc_review_service_pb2_grpc.KycReviewServiceStub,
        kyc_review_service_pb2.VerifyAuditLogRequest,
        kyc_review_service_pb2.ExportAuditLogRequest,
    ),
}

ServiceArgument = Annotated[
    str, typer.Argument(help=f"The service whose chain to read: {', '.join(AUDITED)}.")
]

commands = typer.Typer(
    help="Verify and export a service's hash-chained audit trail.", no_args_is_help=True
)


def _audited(service: str) -> AuditedService:
    if service not in AUDITED:
        raise CliError(
            f"unknown service {service!r}: choose one of {', '.join(AUDITED)}", ExitCode.BAD_INPUT
        )
    return AUDITED[service]


@commands.command("verify")
@handled
def verify(ctx: typer.Context, service: ServiceArgument) -> None:
    """Recompute a service's audit chain from its first entry; exit 1 when it is broken."""
    state = state_of(ctx)
    audited = _audited(service)
    connection = state.connect()
    stub = audited.stub(connection.channel(service))
    result = connection.call(service, stub.VerifyAuditLog, audited.verify_request()).verification
    if state.json_output:
        state.emit({"service": service, **to_dict(result)})
    else:
        table = Table("", "", title=f"{service} audit chain", show_header=False)
        table.add_row("intact", "[green]yes[/]" if result.intact else "[red]NO[/]")
        table.add_row("entries checked", str(result.entries_checked))
        if not result.intact:
            table.add_row("first broken entry", str(result.first_broken_sequence))
        table.add_row("head hash", result.head_hash)
        table.add_row("verified at", when(result.verified_at))
        state.out.print(table)
    if not result.intact:
        raise CliError(
            f"{service}'s audit chain is broken at entry {result.first_broken_sequence}",
            ExitCode.FAILED,
        )


@commands.command("export")
@handled
def export(
    ctx: typer.Context,
    service: ServiceArgument,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write to this file (default: stdout).", show_default=False
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Only entries at or after this ISO 8601 time (UTC unless it names an offset).",
            show_default=False,
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", help="Only entries before this ISO 8601 time.", show_default=False),
    ] = None,
) -> None:
    """Export a service's audit entries in sequence order, one JSON object a line."""
    state = state_of(ctx)
    audited = _audited(service)
    start, end = parse_time(since, "--since"), parse_time(until, "--until")
    connection = state.connect()
    stub = audited.stub(connection.channel(service))
    try:
        sink = sys.stdout if output is None else output.open("w", encoding="utf-8")
    except OSError as error:
        raise CliError(f"cannot write {output}: {error.strerror}", ExitCode.BAD_INPUT) from None
    count, last_hash, token = 0, "", ""
    try:
        while True:
            reply = connection.call(
                service,
                stub.ExportAuditLog,
                audited.export_request(
                    start_time=start,
                    end_time=end,
                    page=paging_pb2.PageRequest(page_size=EXPORT_PAGE_SIZE, page_token=token),
                ),
            )
            for entry in reply.entries:
                sink.write(json.dumps(to_dict(entry), sort_keys=True) + "\n")
                count, last_hash = count + 1, entry.hash
            token = reply.page.next_page_token
            if not token:
                break
    finally:
        if output is not None:
            sink.close()
    state.err.print(
        f"exported {count} {service} audit entries" + (f"; last hash {last_hash}" if count else ""),
        markup=False,
    )
