"""The root command: global options, the state commands share, output and error handling."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console

from wallet.common.v1 import paging_pb2
from walletsec.connection import (
    TOKEN_ENV,
    TOKEN_FILE_ENV,
    CliError,
    Connection,
    ExitCode,
    Transport,
    admin_addresses,
    environ,
    read_operator_token,
)

_P = ParamSpec("_P")
_R = TypeVar("_R")

app = typer.Typer(
    name="walletsec",
    help=(
        "The security team's command line: freeze accounts (one or thousands), revoke "
        "sessions, read timelines, verify audit chains, review KYC cases.\n\n"
        f"The operator identity comes from --token-file, {TOKEN_FILE_ENV} or {TOKEN_ENV}; "
        "admin addresses from WALLETSEC_<SERVICE>_ADMIN (default: the local stack's ports); "
        "TLS roots from WALLETSEC_CA_FILE (client certificate: WALLETSEC_CERT_FILE and "
        "WALLETSEC_KEY_FILE)."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@dataclass
class State:
    """What the global options set, and the connection once a command opens it."""

    token_file: Path | None = None
    json_output: bool = False
    connection: Connection | None = None
    # soft_wrap: a line longer than the terminal (or a pipe's 80 columns) stays one line.
    out: Console = field(
        default_factory=lambda: Console(file=sys.stdout, highlight=False, soft_wrap=True)
    )
    err: Console = field(
        default_factory=lambda: Console(file=sys.stderr, highlight=False, soft_wrap=True)
    )

    def connect(self) -> Connection:
        if self.connection is None:
            env = environ()
            self.connection = Connection(
                token=read_operator_token(self.token_file, env),
                addresses=admin_addresses(env),
                transport=Transport.from_environ(env),
            )
        return self.connection

    def emit(self, value: Any) -> None:
        """Prints `value` as JSON for scripts (with --json)."""
        self.out.print_json(json.dumps(value, default=str, sort_keys=True))


@app.callback()
def root(
    ctx: typer.Context,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            help=f"File holding the operator token (or set {TOKEN_FILE_ENV} / {TOKEN_ENV}).",
            show_default=False,
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")
    ] = False,
) -> None:
    state = State(token_file=token_file, json_output=json_output)
    ctx.obj = state
    ctx.call_on_close(lambda: state.connection.close() if state.connection else None)


def state_of(ctx: typer.Context) -> State:
    state = ctx.find_object(State)
    if state is None:  # an invariant, checked also under python -O
        raise RuntimeError("the root callback sets the state")
    return state


def paged(
    fetch: Callable[[paging_pb2.PageRequest], Any], items_of: Callable[[Any], Any], limit: int
) -> list[Any]:
    """Up to `limit` items over as many pages as it takes: `fetch(page)` makes one call and
    `items_of(reply)` picks its repeated field."""
    items: list[Any] = []
    token = ""
    while len(items) < limit:
        reply = fetch(
            paging_pb2.PageRequest(page_size=min(limit - len(items), 200), page_token=token)
        )
        items.extend(items_of(reply))
        token = reply.page.next_page_token
        if not token:
            break
    return items[:limit]


def handled(command: Callable[_P, _R]) -> Callable[_P, _R]:
    """Wraps a command so that a CliError ends it with its one line on stderr and its exit
    status, never a traceback."""

    @functools.wraps(command)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return command(*args, **kwargs)
        except CliError as error:
            Console(file=sys.stderr, highlight=False, soft_wrap=True).print(
                f"walletsec: error: {error}", markup=False
            )
            raise typer.Exit(int(error.exit_code)) from None

    return run


def to_dict(message: Message) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def when(timestamp: Timestamp) -> str:
    """A timestamp as operators read it (UTC, seconds); empty when unset."""
    if not timestamp.seconds and not timestamp.nanos:
        return ""
    return timestamp.ToDatetime().strftime("%Y-%m-%d %H:%M:%S UTC")


def parse_time(raw: str | None, option: str) -> Timestamp | None:
    """An ISO 8601 time from an option (UTC when it names no offset)."""
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise CliError(
            f"{option} must be an ISO 8601 time, e.g. 2026-01-31T12:00:00Z", ExitCode.BAD_INPUT
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def enum_name(value: int, names: Callable[[Any], str], prefix: str) -> str:
    """A protobuf enum value as the lower-case word the CLI shows (FROZEN -> frozen)."""
    return names(value).removeprefix(prefix).lower()
