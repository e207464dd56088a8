"""Run the benchmarks and print their lines: `python -m benchmarks [name ...]`.

Without names every `benchmarks/bench_*.py` runs; `python -m benchmarks ratelimit` runs only
`bench_ratelimit`. The exit status is non-zero when a benchmark fails or a name is unknown.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import benchmarks

_PREFIX = "bench_"


def _available() -> list[str]:
    modules = pkgutil.iter_modules(benchmarks.__path__)
    return sorted(m.name.removeprefix(_PREFIX) for m in modules if m.name.startswith(_PREFIX))


def _run_one(name: str) -> bool:
    module = importlib.import_module(f"benchmarks.{_PREFIX}{name}")
    print(f"== {name}", flush=True)
    started = time.perf_counter()
    try:
        lines: list[str] = module.run()
    except Exception as exc:
        # One broken benchmark (say, Redis is down) must not hide the others' figures.
        print(f"   FAILED: {type(exc).__name__}: {exc}")
        return False
    for line in lines:
        print(f"   {line}")
    print(f"   ({time.perf_counter() - started:.1f} s)", flush=True)
    return True


def main(names: list[str]) -> int:
    available = _available()
    if unknown := sorted(set(names) - set(available)):
        print(f"unknown benchmarks: {', '.join(unknown)}; available: {', '.join(available)}")
        return 2
    results = [_run_one(name) for name in names or available]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
