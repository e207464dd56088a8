"""Run the benchmarks and print their lines: `python -m benchmarks [name ...]`.

Without names every `benchmarks/bench_*.py` runs; `python -m benchmarks ratelimit` runs only
`bench_ratelimit`. Each benchmark prints its detail lines; the `Row`s they return are printed
again at the end as one table and written to var/bench/ (benchmarks.report). The exit status
is non-zero when a benchmark fails or a name is unknown.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path

import benchmarks
from benchmarks import report

_PREFIX = "bench_"
_OUTPUT = Path(__file__).resolve().parent.parent / "var" / "bench"
# What the issue asks for that no benchmark measures yet (docs/performance.md says why).
MISSING: list[str] = []


def _available() -> list[str]:
    modules = pkgutil.iter_modules(benchmarks.__path__)
    return sorted(m.name.removeprefix(_PREFIX) for m in modules if m.name.startswith(_PREFIX))


def _run_one(name: str, rows: list[report.Row]) -> bool:
    module = importlib.import_module(f"benchmarks.{_PREFIX}{name}")
    print(f"== {name}", flush=True)
    started = time.perf_counter()
    try:
        lines: list[str | report.Row] = module.run()
    except Exception as exc:
        # One broken benchmark (say, Redis is down) must not hide the others' figures.
        print(f"   FAILED: {type(exc).__name__}: {exc}")
        rows.append(
            report.Row(name, {}, report.command(name), note=f"FAILED: {type(exc).__name__}")
        )
        return False
    for line in lines:
        if isinstance(line, report.Row):
            rows.append(line)
        else:
            print(f"   {line}")
    print(f"   ({time.perf_counter() - started:.1f} s)", flush=True)
    return True


def main(names: list[str]) -> int:
    available = _available()
    if unknown := sorted(set(names) - set(available)):
        print(f"unknown benchmarks: {', '.join(unknown)}; available: {', '.join(available)}")
        return 2
    run = report.start()
    results = [_run_one(name, run.rows) for name in names or available]
    if not names:
        run.missing.extend(MISSING)
    print("== table", flush=True)
    for line in report.table(run):
        print(f"   {line}")
    print(f"   written to {report.write(run, _OUTPUT)} and latest.json", flush=True)
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
