"""Bulk freeze from a CSV, resumable: a journal beside the CSV records every batch the server
answered, and each batch's request id is derived from the journal's run id and the batch's
position, so a rerun sends only the batches without an answer, and a batch that reached the
server before the interruption is replayed by the server's idempotency (the first answer,
nothing frozen twice, no second audit entry) instead of being applied again.

The batches are fixed by the CSV (ids deduplicated in file order) and the batch size, both
recorded in the journal's first line with the reason and ticket; a rerun with another CSV
content, reason, ticket or batch size is refused rather than mixing two jobs.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import io
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Annotated, Any, Final

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from wallet.auth.v1 import account_admin_service_pb2 as pb
from wallet.auth.v1 import account_admin_service_pb2_grpc as rpc
from wallet.auth.v1 import types_pb2
from walletcore.validation import ISSUED_ID
from walletsec.accounts import ReasonOption, TicketOption
from walletsec.app import State, handled, state_of
from walletsec.connection import RETRYABLE, CliError, ExitCode, RpcFailure

JOURNAL_SUFFIX: Final = ".journal"
DEFAULT_BATCH_SIZE: Final = 500
MAX_BATCH_SIZE: Final = 10_000
"""BulkFreezeAccounts takes at most 10,000 ids."""
BATCH_TIMEOUT_SECONDS: Final = 300.0
"""A batch of thousands freezes each account in one transaction: far longer than one call."""
RETRY_DELAYS_SECONDS: Final = (1.0, 2.0, 4.0)
"""Waits before each retry of a batch refused with a transient status (UNAVAILABLE, ...)."""
ACCOUNT_COLUMN: Final = "account_id"
JOURNAL_VERSION: Final = 1

Send = Callable[[pb.BulkFreezeAccountsRequest], pb.BulkFreezeAccountsResponse]


def journal_path(csv_path: Path) -> Path:
    return csv_path.with_name(csv_path.name + JOURNAL_SUFFIX)


def read_account_ids(path: Path) -> tuple[list[str], str]:
    """The account ids of the CSV's `account_id` column, deduplicated in file order, and the
    SHA-256 of the file. A malformed row fails with its line number."""
    try:
        content = path.read_bytes()
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror}", ExitCode.BAD_INPUT) from None
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CliError(f"{path} is not UTF-8 text", ExitCode.BAD_INPUT) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    ids: dict[str, None] = {}
    column: int | None = None
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if column is None:
                header = [cell.strip().lower() for cell in row]
                if ACCOUNT_COLUMN not in header:
                    raise CliError(
                        f"{path}:{line}: the header row must name an {ACCOUNT_COLUMN} column",
                        ExitCode.BAD_INPUT,
                    )
                column = header.index(ACCOUNT_COLUMN)
                continue
            account_id = row[column].strip() if column < len(row) else ""
            if not ISSUED_ID.matches(account_id):
                problem = "has no account id" if not account_id else "holds a malformed account id"
                raise CliError(f"{path}:{line}: the row {problem}", ExitCode.BAD_INPUT)
            ids.setdefault(account_id)
    except csv.Error as error:
        raise CliError(f"{path}:{reader.line_num}: {error}", ExitCode.BAD_INPUT) from None
    if not ids:
        raise CliError(f"{path} holds no account ids", ExitCode.BAD_INPUT)
    return list(ids), hashlib.sha256(content).hexdigest()


@dataclass(frozen=True)
class JobSpec:
    """What fixes a job's batches and requests; a rerun must match it."""

    csv_sha256: str
    reason: str
    ticket_ref: str
    batch_size: int


@dataclass
class BatchOutcome:
    """A batch the server answered, as the journal records it."""

    batch: int
    request_id: str
    frozen: int
    already_frozen: int
    not_found: list[str]
    failed: list[str]


@dataclass
class Report:
    """The whole job so far (this run and the runs before), plus this run's failures."""

    accounts: int
    batches: int
    resumed_batches: int
    frozen: int = 0
    already_frozen: int = 0
    not_found: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """One line per batch refused for good in this run (its accounts are in `failed`)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Journal:
    """The append-only record of a job, one JSON object a line: the spec, then every
    answered batch. Held under an exclusive lock while a run works on it."""

    def __init__(self, path: Path, handle: IO[str], run_id: str) -> None:
        self.path = path
        self._handle = handle
        self.run_id = run_id
        self.done: dict[int, BatchOutcome] = {}

    @classmethod
    @contextmanager
    def open(cls, path: Path, spec: JobSpec) -> Iterator[Journal]:
        try:
            handle = path.open("a+", encoding="utf-8")
        except OSError as error:
            raise CliError(
                f"cannot open the journal {path}: {error.strerror}", ExitCode.BAD_INPUT
            ) from None
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise CliError(
                    f"another walletsec run is working on {path}", ExitCode.FAILED
                ) from None
            handle.seek(0)
            journal = cls._load(path, handle, spec)
            yield journal

    @classmethod
    def _load(cls, path: Path, handle: IO[str], spec: JobSpec) -> Journal:
        text = handle.read()
        # A run killed while writing leaves half a line: drop it (its batch counts as not
        # answered and is replayed under the same request id).
        complete = text[: text.rfind("\n") + 1]
        if complete != text:
            handle.truncate(len(complete.encode("utf-8")))
        lines = complete.splitlines()
        if not lines:
            run_id = uuid.uuid4().hex
            journal = cls(path, handle, run_id)
            journal._append({"version": JOURNAL_VERSION, "run_id": run_id, **asdict(spec)})
            return journal
        try:
            records = [json.loads(line) for line in lines]
            head = records[0]
            journal = cls(path, handle, str(head["run_id"]))
            recorded = JobSpec(
                csv_sha256=head["csv_sha256"],
                reason=head["reason"],
                ticket_ref=head["ticket_ref"],
                batch_size=head["batch_size"],
            )
            for record in records[1:]:
                outcome = BatchOutcome(**record)
                journal.done[outcome.batch] = outcome
        except (ValueError, KeyError, TypeError):
            raise CliError(
                f"the journal {path} is not one walletsec wrote; move it away to start over",
                ExitCode.BAD_INPUT,
            ) from None
        if recorded != spec:
            differs = [
                name for name, value in asdict(spec).items() if asdict(recorded)[name] != value
            ]
            what = ", ".join("CSV content" if n == "csv_sha256" else n for n in differs)
            raise CliError(
                f"the journal {path} belongs to a job with another {what}: rerun with the same "
                "CSV and options to resume, or move the journal away to start a new job",
                ExitCode.BAD_INPUT,
            )
        return journal

    def request_id(self, batch: int) -> str:
        return f"walletsec-bulk-{self.run_id}-{batch}"

    def record(self, outcome: BatchOutcome) -> None:
        self._append(asdict(outcome))
        self.done[outcome.batch] = outcome

    def _append(self, record: dict[str, Any]) -> None:
        self._handle.write(json.dumps(record, sort_keys=True) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())


def batches(ids: list[str], size: int) -> list[list[str]]:
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def _outcome(batch: int, request_id: str, reply: pb.BulkFreezeAccountsResponse) -> BatchOutcome:
    by_outcome: dict[int, list[str]] = {}
    for result in reply.results:
        by_outcome.setdefault(result.outcome, []).append(result.account_id)
    known = (
        types_pb2.FREEZE_OUTCOME_FROZEN,
        types_pb2.FREEZE_OUTCOME_ALREADY_FROZEN,
        types_pb2.FREEZE_OUTCOME_NOT_FOUND,
    )
    return BatchOutcome(
        batch=batch,
        request_id=request_id,
        frozen=len(by_outcome.get(types_pb2.FREEZE_OUTCOME_FROZEN, [])),
        already_frozen=len(by_outcome.get(types_pb2.FREEZE_OUTCOME_ALREADY_FROZEN, [])),
        not_found=by_outcome.get(types_pb2.FREEZE_OUTCOME_NOT_FOUND, []),
        failed=[i for outcome, ids in by_outcome.items() if outcome not in known for i in ids],
    )


def _send_with_retries(
    send: Send, request: pb.BulkFreezeAccountsRequest, sleep: Callable[[float], None]
) -> pb.BulkFreezeAccountsResponse:
    """The answer to `request`, retried (same request id) while the refusal is transient."""
    for delay in (*RETRY_DELAYS_SECONDS, None):
        try:
            return send(request)
        except RpcFailure as failure:
            if failure.code not in RETRYABLE or delay is None:
                raise
            sleep(max(delay, failure.retry_after or 0.0))
    raise AssertionError("the loop returns or raises")


def run(
    ids: list[str],
    journal: Journal,
    spec: JobSpec,
    send: Send,
    on_batch: Callable[[int], None],
    sleep: Callable[[float], None] = time.sleep,
) -> Report:
    """Sends every batch the journal has no answer for, in order, recording each answer.

    A batch refused for good (INVALID_ARGUMENT, INTERNAL, ...) counts its accounts as failed
    and the run goes on; a rerun tries it again. A transient refusal that outlasts the retries,
    or a refused identity, stops the run (raises): every later batch would fail the same way.
    """
    planned = batches(ids, spec.batch_size)
    report = Report(accounts=len(ids), batches=len(planned), resumed_batches=len(journal.done))
    for index, batch in enumerate(planned):
        if index in journal.done:
            continue
        request_id = journal.request_id(index)
        request = pb.BulkFreezeAccountsRequest(
            request_id=request_id,
            account_ids=batch,
            reason=spec.reason,
            ticket_ref=spec.ticket_ref,
        )
        try:
            reply = _send_with_retries(send, request, sleep)
        except RpcFailure as failure:
            if failure.code in RETRYABLE or failure.exit_code == ExitCode.DENIED:
                raise
            report.failed.extend(batch)
            report.errors.append(f"batch {index + 1}: {failure}")
        else:
            journal.record(_outcome(index, request_id, reply))
        on_batch(len(batch))
    for outcome in journal.done.values():
        report.frozen += outcome.frozen
        report.already_frozen += outcome.already_frozen
        report.not_found.extend(outcome.not_found)
        report.failed.extend(outcome.failed)
    return report


def done_accounts(ids: list[str], journal: Journal, batch_size: int) -> int:
    """How many of the accounts earlier runs already settled (for the progress bar)."""
    return sum(
        len(batch) for index, batch in enumerate(batches(ids, batch_size)) if index in journal.done
    )


def bulk_freeze(
    ctx: typer.Context,
    csv_file: Annotated[
        Path,
        typer.Argument(
            help=f"CSV with a header row naming an {ACCOUNT_COLUMN} column (other columns "
            f"are ignored). The journal is written beside it as <file>{JOURNAL_SUFFIX}.",
            show_default=False,
        ),
    ],
    reason: ReasonOption,
    ticket: TicketOption,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size", min=1, max=MAX_BATCH_SIZE, help="Accounts per BulkFreezeAccounts call."
        ),
    ] = DEFAULT_BATCH_SIZE,
) -> None:
    """Freeze every account of a CSV in batches, with a progress bar; resumable.

    After an interruption, rerun the same command: it freezes only the rest, never an
    account twice.
    """
    state = state_of(ctx)
    ids, digest = read_account_ids(csv_file)
    spec = JobSpec(csv_sha256=digest, reason=reason, ticket_ref=ticket, batch_size=batch_size)
    connection = state.connect()
    stub = rpc.AccountAdminServiceStub(connection.channel("auth"))

    def send(request: pb.BulkFreezeAccountsRequest) -> pb.BulkFreezeAccountsResponse:
        return connection.call(
            "auth", stub.BulkFreezeAccounts, request, timeout=BATCH_TIMEOUT_SECONDS
        )

    path = journal_path(csv_file)
    with Journal.open(path, spec) as journal:
        settled = done_accounts(ids, journal, batch_size)
        progress = Progress(
            TextColumn("freezing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=state.err,
        )
        try:
            with progress:
                task = progress.add_task("freeze", total=len(ids), completed=settled)
                report = run(ids, journal, spec, send, lambda n: progress.advance(task, n))
        except (KeyboardInterrupt, CliError) as stop:
            left = len(ids) - done_accounts(ids, journal, batch_size)
            why = "interrupted" if isinstance(stop, KeyboardInterrupt) else str(stop)
            raise CliError(
                f"{why}; {left} of {len(ids)} accounts not done yet: rerun the same command "
                f"to resume from {path}",
                ExitCode.INTERRUPTED if isinstance(stop, KeyboardInterrupt) else stop.exit_code,
            ) from None
    _print_report(state, report, path)
    if report.failed:
        raise CliError(
            f"{len(report.failed)} account(s) failed: rerun the same command to retry them",
            ExitCode.FAILED,
        )


def _print_report(state: State, report: Report, path: Path) -> None:
    if state.json_output:
        state.emit({**report.as_dict(), "journal": str(path)})
        return
    table = Table("outcome", "accounts", title="bulk freeze")
    table.add_row("frozen", str(report.frozen))
    table.add_row("already frozen", str(report.already_frozen))
    table.add_row("not found", str(len(report.not_found)))
    table.add_row("failed", str(len(report.failed)))
    state.out.print(table)
    if report.resumed_batches:
        state.out.print(
            f"resumed: {report.resumed_batches} of {report.batches} batches were done by an "
            "earlier run"
        )
    for error in report.errors:
        state.out.print(error, markup=False)
    if report.not_found:
        shown = ", ".join(report.not_found[:20])
        more = f" and {len(report.not_found) - 20} more" if len(report.not_found) > 20 else ""
        state.out.print(f"not found: {shown}{more}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("bulk-freeze")(handled(bulk_freeze))
