"""Bulk freeze from a CSV after a breach: batched, reported, and resumable. An interrupted run
leaves a journal beside the CSV; the rerun freezes only the rest and nothing twice, even the
batch whose answer the interruption lost (the server replays it by its request id)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.api.auth.access_helpers import add_accounts
from tests.api.auth.harness import AuthTestApp, operator_metadata
from tests.api.walletsec.cli_helpers import Walletsec
from wallet.auth.v1 import account_admin_service_pb2 as admin_pb
from wallet.auth.v1 import types_pb2
from wallet.common.v1 import paging_pb2
from walletsec import bulk
from walletsec.connection import Connection, ExitCode, RpcFailure

OFFICER = operator_metadata()
GHOSTS = ["ghost-1", "ghost-2", "ghost-3"]
BATCH = 50


def write_csv(path: Path, account_ids: list[str]) -> Path:
    rows = ["account_id,note", *(f"{account_id},breach list" for account_id in account_ids)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def stop_after(
    monkeypatch: pytest.MonkeyPatch, answered: int, stop: BaseException, *, deliver: bool
) -> None:
    """The CLI's transport: the first `answered` BulkFreezeAccounts calls go through; the next
    one raises `stop`, after reaching the server when `deliver` (its answer lost)."""
    real_call = Connection.call
    calls = Counter[str]()

    def call(self: Connection, service: str, method: Any, request: object, **options: Any) -> Any:
        if not isinstance(request, admin_pb.BulkFreezeAccountsRequest):
            return real_call(self, service, method, request, **options)
        calls["bulk"] += 1
        if calls["bulk"] <= answered:
            return real_call(self, service, method, request, **options)
        if deliver:
            real_call(self, service, method, request, **options)
        raise stop

    monkeypatch.setattr(Connection, "call", call)


async def audit_entries(auth_app: AuthTestApp) -> list[Any]:
    entries: list[Any] = []
    token = ""
    while True:
        reply = await auth_app.admin.ExportAuditLog(
            admin_pb.ExportAuditLogRequest(
                page=paging_pb2.PageRequest(page_size=1000, page_token=token)
            ),
            metadata=OFFICER,
        )
        entries.extend(reply.entries)
        token = reply.page.next_page_token
        if not token:
            return entries


async def freeze_events(auth_app: AuthTestApp, account_id: str) -> int:
    reply = await auth_app.admin.ListSecurityEvents(
        admin_pb.AccountAdminServiceListSecurityEventsRequest(
            account_id=account_id, types=[types_pb2.SECURITY_EVENT_TYPE_ACCOUNT_FROZEN]
        ),
        metadata=OFFICER,
    )
    return len(reply.events)


async def test_an_interrupted_bulk_freeze_resumes_and_freezes_every_account_once(
    auth_app: AuthTestApp, cli: Walletsec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = await add_accounts(auth_app, 300)
    # An id twice and unknown ids: the job counts 303 distinct ids, in 7 batches of 50.
    csv_file = write_csv(
        tmp_path / "breach.csv", [*stored[:150], stored[3], *GHOSTS, *stored[150:]]
    )
    args = (
        "--json",
        "bulk-freeze",
        str(csv_file),
        "--reason",
        "credential stuffing",
        "--ticket",
        "INC-900",
        "--batch-size",
        str(BATCH),
    )

    # Ctrl-C while the fourth batch is on the wire: the server froze it, the journal has no
    # answer for it.
    stop_after(monkeypatch, 3, KeyboardInterrupt(), deliver=True)
    interrupted = await cli(*args)
    monkeypatch.undo()
    journal_lines = (tmp_path / "breach.csv.journal").read_text().splitlines()
    resumed = await cli(*args)
    entries_after_resume = await audit_entries(auth_app)
    rerun = await cli(*args)

    assert interrupted.exit_code == ExitCode.INTERRUPTED
    assert "interrupted; 153 of 303 accounts not done yet" in interrupted.stderr
    assert "rerun the same command" in interrupted.stderr
    assert len(journal_lines) == 1 + 3
    assert resumed.exit_code == 0, resumed.stderr
    report = resumed.json()
    assert report["resumed_batches"] == 3
    assert report["batches"] == 7
    assert (report["frozen"], report["already_frozen"]) == (300, 0)
    assert sorted(report["not_found"]) == GHOSTS
    assert report["failed"] == []
    bulk_calls = [e for e in entries_after_resume if e.action == "BULK_FREEZE_ACCOUNTS"]
    freezes = Counter(e.target for e in entries_after_resume if e.action == "FREEZE_ACCOUNT")
    assert len(bulk_calls) == 7
    assert len(freezes) == 300
    assert set(freezes.values()) == {1}
    lost_batch = stored[150:153] + stored[153:197]
    assert [await freeze_events(auth_app, account_id) for account_id in lost_batch] == [1] * len(
        lost_batch
    )
    assert rerun.exit_code == 0
    assert rerun.json()["resumed_batches"] == 7
    assert rerun.json()["frozen"] == 300
    assert len(await audit_entries(auth_app)) == len(entries_after_resume)


@pytest.mark.parametrize("auth_backend", ["sqlite"], indirect=True)
async def test_a_bulk_freeze_stops_when_auth_goes_away_and_the_rerun_finishes_it(
    auth_app: AuthTestApp, cli: Walletsec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = await add_accounts(auth_app, 120)
    await auth_app.admin.FreezeAccount(
        admin_pb.FreezeAccountRequest(
            request_id="pre-frozen", account_id=stored[0], reason="earlier", ticket_ref="INC-1"
        ),
        metadata=OFFICER,
    )
    csv_file = write_csv(tmp_path / "list.csv", stored)
    args = (
        "bulk-freeze",
        str(csv_file),
        "--reason",
        "breach",
        "--ticket",
        "INC-2",
        "--batch-size",
        "40",
    )
    monkeypatch.setattr(bulk, "RETRY_DELAYS_SECONDS", (0.0, 0.0))
    unavailable = RpcFailure(
        "auth admin API cannot be reached",
        ExitCode.UNREACHABLE,
        code=grpc.StatusCode.UNAVAILABLE,
    )
    stop_after(monkeypatch, 1, unavailable, deliver=False)
    stopped = await cli(*args)
    monkeypatch.undo()
    finished = await cli(*args)

    assert stopped.exit_code == ExitCode.UNREACHABLE
    assert "80 of 120 accounts not done yet" in stopped.stderr
    assert finished.exit_code == 0, finished.stderr
    assert "resumed: 1 of 3 batches were done by an earlier run" in finished.stdout
    report = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in finished.stdout.splitlines()
        if line.count("│") == 3
    }
    assert report == {
        "frozen": "119",
        "already frozen": "1",
        "not found": "0",
        "failed": "0",
    }


@pytest.mark.parametrize("auth_backend", ["sqlite"], indirect=True)
async def test_a_malformed_csv_names_its_line_and_a_changed_csv_is_not_resumed(
    cli: Walletsec, tmp_path: Path
) -> None:
    malformed = tmp_path / "bad.csv"
    malformed.write_text("account_id\nabc\n\nbad id\n", encoding="utf-8")
    no_header = tmp_path / "ids.csv"
    no_header.write_text("abc\n", encoding="utf-8")
    listed = write_csv(tmp_path / "ok.csv", ["ghost-a"])
    args = ("--reason", "r", "--ticket", "t")

    bad_row = await cli("bulk-freeze", str(malformed), *args)
    bad_header = await cli("bulk-freeze", str(no_header), *args)
    missing = await cli("bulk-freeze", str(tmp_path / "none.csv"), *args)
    first = await cli("--json", "bulk-freeze", str(listed), *args)
    write_csv(listed, ["ghost-a", "ghost-b"])
    changed = await cli("bulk-freeze", str(listed), *args)
    other_ticket = await cli("bulk-freeze", str(listed), "--reason", "r", "--ticket", "t2")

    assert bad_row.exit_code == ExitCode.BAD_INPUT
    assert (
        bad_row.stderr.strip()
        == f"walletsec: error: {malformed}:4: the row holds a malformed account id"
    )
    assert bad_header.exit_code == ExitCode.BAD_INPUT
    assert f"{no_header}:1: the header row must name an account_id column" in bad_header.stderr
    assert missing.exit_code == ExitCode.BAD_INPUT
    assert "No such file or directory" in missing.stderr
    assert first.exit_code == 0
    assert json.loads(first.stdout)["not_found"] == ["ghost-a"]
    assert changed.exit_code == ExitCode.BAD_INPUT
    assert "belongs to a job with another CSV content" in changed.stderr
    assert other_ticket.exit_code == ExitCode.BAD_INPUT
    assert "another CSV content, ticket_ref" in other_ticket.stderr
