"""The one table `make bench` prints, and the JSON file under var/bench/ that two runs compare.

A benchmark's `run()` returns its detail lines and any number of `Row`s; `python -m benchmarks`
prints the lines as they come and, at the end, every row in one table with the command that
reproduces it, then writes the same rows to `var/bench/<UTC timestamp>.json` and
`var/bench/latest.json`. A row the run could not measure says so in its `note` (`met` is None).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

Figure = float | int | str

QUICK: Final = os.environ.get("QUICK", "") not in ("", "0")


def command(name: str) -> str:
    """The command reproducing a benchmark's rows, in the run's mode."""
    return f"{'QUICK=1 ' if QUICK else ''}.venv/bin/python -m benchmarks {name}"


@dataclass(frozen=True)
class Row:
    """One measured line: its figures in display order, the target and whether it was met."""

    name: str
    figures: dict[str, Figure]
    command: str
    target: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.met is None:
            return "-"
        return "ok" if self.met else "MISSED"


@dataclass(frozen=True)
class Run:
    """Every row of one `python -m benchmarks`, with what it ran on."""

    rows: list[Row]
    started_at: str
    quick: bool
    load_average: tuple[float, float, float]
    cpus: int
    missing: list[str] = field(default_factory=list)


def _figure(value: Figure) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def table(run: Run) -> list[str]:
    """The rows as aligned text: name, figures, target, verdict, then the reproducing command."""
    cells = [
        (
            row.name,
            "  ".join(f"{key}={_figure(value)}" for key, value in row.figures.items())
            + (f"  ({row.note})" if row.note else ""),
            row.target,
            row.verdict,
            row.command,
        )
        for row in run.rows
    ]
    header = ("row", "figures", "target", "verdict", "command")
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header) - 1)]
    lines = [
        f"{'QUICK' if run.quick else 'full'} run started {run.started_at}, {run.cpus} CPUs, "
        f"load average {' '.join(f'{x:.2f}' for x in run.load_average)}"
    ]
    for line in [header, *cells]:
        lines.append(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False))
            + "  "
            + line[-1]
        )
    lines.extend(f"missing: {what}" for what in run.missing)
    return lines


def write(run: Run, directory: Path) -> Path:
    """Writes `run` to `<directory>/<timestamp>.json` and `<directory>/latest.json`."""
    directory.mkdir(parents=True, exist_ok=True)
    document = json.dumps(asdict(run), indent=2) + "\n"
    stamp = run.started_at.replace(":", "").replace("-", "")
    path = directory / f"{stamp}.json"
    path.write_text(document)
    (directory / "latest.json").write_text(document)
    return path


def read(path: Path) -> Run:
    """A run written by `write`."""
    data = json.loads(path.read_text())
    rows = [Row(**row) for row in data.pop("rows")]
    return Run(rows=rows, **{**data, "load_average": tuple(data["load_average"])})


def start(rows: Sequence[Row] = ()) -> Run:
    """An empty run of this machine, now."""
    load = os.getloadavg()
    return Run(
        rows=list(rows),
        started_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        quick=QUICK,
        load_average=(load[0], load[1], load[2]),
        cpus=os.cpu_count() or 1,
    )
