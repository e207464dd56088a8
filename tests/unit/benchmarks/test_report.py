"""The bench table and its JSON file: what one run writes, the next run (or a person) reads."""

from __future__ import annotations

from pathlib import Path

from benchmarks import report
from benchmarks.report import Row, Run


def _run() -> Run:
    return Run(
        rows=[
            Row("ceiling", {"req/s": 2245, "p99 ms": 53.07}, "python -m benchmarks hotpath"),
            Row(
                "kyc read",
                {"x ceiling": 0.11},
                "python -m benchmarks hotpath",
                target=">= 0.35 x ceiling",
                met=False,
            ),
            Row("redis", {"checks/s": 4683}, "python -m benchmarks ratelimit", note="no baseline"),
        ],
        started_at="2026-12-03T12:53:41Z",
        quick=True,
        load_average=(0.5, 0.25, 0.125),
        cpus=2,
        missing=["freeze propagation"],
    )


def test_the_json_file_reads_back_as_the_run_and_latest_is_the_same(tmp_path: Path) -> None:
    run = _run()
    path = report.write(run, tmp_path / "bench")
    assert path.name == "20261203T125341Z.json"
    assert report.read(path) == run
    assert (tmp_path / "bench" / "latest.json").read_text() == path.read_text()


def test_the_table_names_every_row_with_its_verdict_command_and_what_is_missing() -> None:
    lines = report.table(_run())
    assert lines[0] == "QUICK run started 2026-12-03T12:53:41Z, 2 CPUs, load average 0.50 0.25 0.12"
    header, ceiling, kyc, redis = lines[1:5]
    assert header.split() == ["row", "figures", "target", "verdict", "command"]
    assert "req/s=2245" in ceiling
    assert "p99 ms=53.1" in ceiling
    assert ceiling.endswith("python -m benchmarks hotpath")
    assert "MISSED" in kyc
    assert ">= 0.35 x ceiling" in kyc
    assert "(no baseline)" in redis
    # Columns line up: every command starts at the same place.
    assert len({line.index("python -m") for line in (ceiling, kyc, redis)}) == 1
    assert lines[5:] == ["missing: freeze propagation"]
