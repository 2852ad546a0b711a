"""Interleaved timing: every implementation runs once per round, in a rotating order, and each
one's median over the rounds is kept. On a shared machine, load that comes and goes then hits
all implementations alike, so their ratios stay meaningful when absolute times do not."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def interleaved_medians(
    funcs: dict[str, Callable[[], object]], repeats: int, warmup: int = 1, pause: float = 0.0
) -> dict[str, tuple[float, float]]:
    """``(wall, cpu)`` median seconds per call for each function, in ``repeats`` interleaved
    rounds. ``cpu`` is the process's CPU time (all threads) during the call: the work done,
    which other users' load inflates far less than the wall-clock time.

    ``pause`` seconds of sleep before each timed call let the previous call's idle threads stop.
    """
    names = list(funcs)
    for _ in range(warmup):
        for name in names:
            funcs[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:  # rotate who goes first
            if pause:
                time.sleep(pause)
            start_cpu = time.process_time()
            start = time.perf_counter()
            funcs[name]()
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return {n: (statistics.median(times[n]), statistics.median(cpu[n])) for n in names}


def time_once(func: Callable[[], object]) -> float:
    """Seconds for one call (used for the first call, which includes compiling)."""
    start = time.perf_counter()
    func()
    return time.perf_counter() - start
