"""Timing shared by the benchmarks: the median of several rounds of sequential calls."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable, Sequence


async def median_latency(
    call: Callable[[], Awaitable[object]], *, rounds: int, calls_per_round: int, warm_up: int
) -> float:
    """Seconds per call: `warm_up` calls first (connections, caches), then the median round
    (a round disturbed by the machine does not move the figure)."""
    for _ in range(warm_up):
        await call()
    figures = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls_per_round):
            await call()
        figures.append((time.perf_counter() - started) / calls_per_round)
    return statistics.median(figures)


async def interleaved_medians(
    calls: Sequence[Callable[[], Awaitable[object]]],
    *,
    rounds: int,
    calls_per_round: int,
    warm_up: int,
) -> list[float]:
    """Seconds per call of each of `calls`, their rounds taken in turn (A, B, A, B, ...), so a
    change in the machine's load falls on every variant alike; the median round of each."""
    for call in calls:
        for _ in range(warm_up):
            await call()
    figures: list[list[float]] = [[] for _ in calls]
    for _ in range(rounds):
        for index, call in enumerate(calls):
            started = time.perf_counter()
            for _ in range(calls_per_round):
                await call()
            figures[index].append((time.perf_counter() - started) / calls_per_round)
    return [statistics.median(each) for each in figures]
