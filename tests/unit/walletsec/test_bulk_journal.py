"""The bulk-freeze journal survives the ways a run ends: a half-written last line (the process
killed mid-write) is dropped and the job resumes, and a second run on the same CSV at the same
time is refused instead of racing the first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from walletsec.bulk import BatchOutcome, JobSpec, Journal, journal_path, read_account_ids
from walletsec.connection import CliError

SPEC = JobSpec(csv_sha256="0" * 64, reason="breach", ticket_ref="INC-1", batch_size=2)


def outcome(batch: int) -> BatchOutcome:
    return BatchOutcome(
        batch=batch, request_id=f"r{batch}", frozen=2, already_frozen=0, not_found=[], failed=[]
    )


def test_a_half_written_last_line_is_dropped_and_the_job_resumes(tmp_path: Path) -> None:
    path = tmp_path / "ids.csv.journal"
    with Journal.open(path, SPEC) as journal:
        run_id = journal.run_id
        journal.record(outcome(0))
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"batch": 1, "request_')

    with Journal.open(path, SPEC) as resumed:
        done_before = sorted(resumed.done)
        resumed.record(outcome(1))
    with Journal.open(path, SPEC) as again:
        done_after = sorted(again.done)

    assert resumed.run_id == run_id
    assert done_before == [0]
    assert done_after == [0, 1]
    assert [json.loads(line)["run_id"] for line in path.read_text().splitlines()[:1]] == [run_id]


def test_a_second_run_on_the_same_journal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ids.csv.journal"
    with (
        Journal.open(path, SPEC),
        pytest.raises(CliError, match="another walletsec run"),
        Journal.open(path, SPEC),
    ):
        pass


def test_a_journal_walletsec_did_not_write_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ids.csv.journal"
    path.write_text("account_id\nabc\n", encoding="utf-8")

    with pytest.raises(CliError, match="is not one walletsec wrote"), Journal.open(path, SPEC):
        pass


def test_the_csv_ids_are_deduplicated_in_file_order_beside_their_journal(tmp_path: Path) -> None:
    csv_file = tmp_path / "breach.csv"
    csv_file.write_bytes("\ufeffname,Account_ID\nx,b\ny,a\n\nz,b\n".encode())

    ids, digest = read_account_ids(csv_file)

    assert ids == ["b", "a"]
    assert len(digest) == 64
    assert journal_path(csv_file) == tmp_path / "breach.csv.journal"
