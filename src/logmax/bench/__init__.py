"""``logmax bench``: logmax against torch, SciPy and JAX, in one process, on the same inputs.

Rules that make the ratios trustworthy on a shared machine:

- every implementation runs once per round, interleaved in a rotating order; each one keeps the
  median over the rounds (:mod:`logmax.bench._timing`);
- the thread count is the same for everyone: ``torch.set_num_threads`` and
  ``logmax.kernels.set_num_threads`` (JAX/XLA picks its own threads; its figures are for
  information);
- the first call of each logmax kernel, which compiles it (or loads it from Numba's disk cache),
  is timed on its own and reported, never folded into the medians;
- the result is the ratio ``peer time / logmax time`` (above 1: logmax is faster).

Programmatic use::

    from logmax.bench import run_bench
    result = run_bench(quick=True)
    print(result.table())
    result.rows  # list of BenchRow: op, shape, dtype, impl, ms, gb_per_s, speedup_vs_torch
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from math import nan
from typing import Any

from logmax.bench._cases import OPS, PEERS, available_peers, build_case
from logmax.bench._timing import interleaved_medians, time_once

SHAPES: tuple[tuple[int, int], ...] = ((2048, 32000), (1024, 50257), (8192, 1000), (64, 262144))
DTYPES: tuple[str, ...] = ("bfloat16", "float16", "float32", "float64")
QUICK_SHAPES: tuple[tuple[int, int], ...] = ((2048, 32000),)
QUICK_DTYPES: tuple[str, ...] = ("float32",)


@dataclass
class BenchRow:
    """One implementation on one case. ``speedup_vs_torch`` = torch's median / this median
    (wall clock); ``cpu_speedup_vs_torch`` the same for the CPU time of the process."""

    op: str
    shape: str
    dtype: str
    impl: str
    ms: float
    gb_per_s: float
    speedup_vs_torch: float
    cpu_ms: float
    cpu_speedup_vs_torch: float

    def cells(self, baseline: str = "") -> tuple[str, ...]:
        """The row as the table prints it (:data:`COLUMNS`); ``baseline`` in torch's ratios."""
        torch = self.impl == "torch"
        return (
            self.op,
            self.shape,
            self.dtype,
            self.impl,
            f"{self.ms:.2f}",
            f"{self.gb_per_s:.2f}",
            baseline if torch else f"{self.speedup_vs_torch:.2f}x",
            f"{self.cpu_ms:.2f}",
            baseline if torch else f"{self.cpu_speedup_vs_torch:.2f}x",
        )


COLUMNS = ("op", "shape", "dtype", "impl", "ms", "GB/s", "vs torch", "cpu ms", "cpu vs torch")
"""The columns of :meth:`BenchRow.cells`; from ``ms`` on they are numbers."""


@dataclass
class CompileRow:
    """The first call of a logmax op in a process: Numba compiling (or loading its cache)."""

    op: str
    dtype: str
    first_call_s: float
    kind: str  # "this process" (cache may be warm) or "cold" (empty cache, fresh process)


@dataclass
class BenchResult:
    rows: list[BenchRow] = field(default_factory=list)
    compile: list[CompileRow] = field(default_factory=list)
    threads: int = 2
    repeats: int = 0
    peers: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)

    def speedups(self) -> dict[tuple[str, str, str], float]:
        """(op, shape, dtype) -> logmax's speed-up over torch."""
        return {(r.op, r.shape, r.dtype): r.speedup_vs_torch for r in self.rows
                if r.impl == "logmax"}  # fmt: skip

    def cpu_speedups(self) -> dict[tuple[str, str, str], float]:
        """(op, shape, dtype) -> torch's CPU time / logmax's CPU time."""
        return {(r.op, r.shape, r.dtype): r.cpu_speedup_vs_torch for r in self.rows
                if r.impl == "logmax"}  # fmt: skip

    def renderables(self) -> list[Any]:
        """The results as rich renderables: the timings, the first calls, the notes."""
        from rich.table import Table
        from rich.text import Text

        timings = Table(
            title=f"median of {self.repeats} interleaved rounds, {self.threads} thread(s)",
            caption="vs torch: torch's time / this time (above 1: faster than torch); "
            "cpu: CPU time of the process, all threads (robust to other users' load)",
            caption_justify="left",
        )
        for i, name in enumerate(COLUMNS):
            timings.add_column(name, justify="right" if i >= COLUMNS.index("ms") else "left")
        for r in self.rows:
            timings.add_row(*r.cells())
        out: list[Any] = [timings]
        if self.compile:
            first = Table(
                title="first call of each kernel",
                caption="Numba compiling, or loading its cache",
                caption_justify="left",
            )
            first.add_column("op")
            first.add_column("dtype")
            first.add_column("seconds", justify="right")
            first.add_column("kind")
            for c in self.compile:
                first.add_row(c.op, c.dtype, f"{c.first_call_s:.2f}", c.kind)
            out.append(first)
        out.extend(Text(note) for note in self.notes)
        return out

    def table(self, width: int = 120) -> str:
        """The results as plain text, the tables drawn by rich (what ``logmax bench`` prints)."""
        import io

        from rich.console import Console

        buffer = io.StringIO()
        console = Console(file=buffer, width=width, color_system=None, force_terminal=False)
        console.print(*self.renderables())
        return buffer.getvalue()


def _quiet_idle_threads() -> float:
    """Keep idle OpenMP threads from spinning; returns the pause to leave between calls.

    torch and Numba both run OpenMP thread pools whose idle threads spin for a while after each
    parallel region. Interleaved in one process on few cores, one library's spinning threads
    steal the cores the next call needs (a 1 ms torch call was measured at 135 ms that way).
    ``OMP_WAIT_POLICY=PASSIVE`` makes idle threads sleep; it must be set before either runtime
    starts. When that is too late, a pause between calls lets the spinning stop instead.
    """
    if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":
        return 0.0
    if "torch" not in sys.modules and "numba" not in sys.modules:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        return 0.0
    return 0.25  # longer than the OpenMP runtimes' default spin time (200 ms for Intel's)


def _set_threads(threads: int) -> None:
    from logmax.kernels import set_num_threads

    set_num_threads(threads)  # logmax's own thread pool (imports no Numba)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass


def first_calls(ops: Sequence[str], dtypes: Sequence[str]) -> list[CompileRow]:
    """Time the first call of each op/dtype on a tiny input in this process."""
    import numpy as np

    import logmax
    from logmax._core.dtypes import numpy_dtype

    x0 = np.linspace(-3.0, 3.0, 32).reshape(4, 8)
    labels = np.array([0, 3, 5, 7])
    rows = []
    for dtype in dtypes:
        x = x0.astype(numpy_dtype(dtype))
        calls: dict[str, Callable[[], object]] = {
            "softmax": lambda x=x: logmax.softmax(x),
            "log_softmax": lambda x=x: logmax.log_softmax(x),
            "logsumexp": lambda x=x: logmax.logsumexp(x),
            "cross_entropy": lambda x=x: logmax.cross_entropy_with_grad(x, labels),
        }
        for op in ops:
            rows.append(CompileRow(op, dtype, time_once(calls[op]), "this process"))
    return rows


def cold_compile(ops: Sequence[str], dtypes: Sequence[str]) -> list[CompileRow]:
    """First calls in a fresh process with an empty Numba cache: the true compile times."""
    import json
    import tempfile

    code = (
        "import json, sys\n"
        "from logmax.bench import first_calls\n"
        "rows = first_calls(sys.argv[1].split(','), sys.argv[2].split(','))\n"
        "print(json.dumps([[r.op, r.dtype, r.first_call_s] for r in rows]))\n"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, LOGMAX_KERNELS="1")
        out = subprocess.run(
            [sys.executable, "-c", code, ",".join(ops), ",".join(dtypes)],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return [CompileRow(op, dt, float(s), "cold: empty cache, new process") for op, dt, s in data]


def run_bench(
    quick: bool = True,
    ops: Sequence[str] = OPS,
    shapes: Sequence[tuple[int, int]] | None = None,
    dtypes: Sequence[str] | None = None,
    threads: int = 2,
    repeats: int | None = None,
    peers: Sequence[str] = PEERS,
    cold: bool = False,
    progress: Callable[[str], None] | None = None,
    pause: float | None = None,
) -> BenchResult:
    """Time logmax and its peers; see the module docstring for the method.

    Args:
        quick: fp32 [2048 x 32000] only, 3 repeats (the full run: every shape of
            :data:`SHAPES` in float32 and float64, 7 repeats).
        ops: any of ``softmax``, ``log_softmax``, ``logsumexp``, ``cross_entropy`` (forward and
            backward: ``cross_entropy_with_grad`` against torch's ``cross_entropy`` then
            ``backward``).
        shapes, dtypes, repeats: override the quick/full defaults.
        threads: for torch and Numba alike.
        peers: which peers to try (missing ones are skipped and noted).
        cold: also measure compile times in a fresh process with an empty Numba cache.
        progress: called with a line of text before each case.
        pause: seconds to sleep before each timed call; by default 0 when idle OpenMP threads
            can be made to sleep (``OMP_WAIT_POLICY=PASSIVE``), else 0.25 (see
            :func:`_quiet_idle_threads`).
    """
    shapes = tuple(shapes or (QUICK_SHAPES if quick else SHAPES))
    dtypes = tuple(dtypes or (QUICK_DTYPES if quick else DTYPES))
    repeats = repeats or (3 if quick else 7)
    present = available_peers(tuple(peers))
    result = BenchResult(threads=threads, repeats=repeats, peers=present)
    missing = [p for p in peers if p not in present]
    if missing:
        result.notes.append(f"not installed, skipped: {', '.join(missing)}")
    if os.environ.get("LOGMAX_KERNELS", "1").strip().lower() in ("0", "reference", "off"):
        result.notes.append("LOGMAX_KERNELS is off: 'logmax' is the reference implementation")
    quiet = _quiet_idle_threads()
    pause = quiet if pause is None else pause
    idle = f"a {pause:.2f} s pause before each call" if pause else "OMP_WAIT_POLICY=PASSIVE"
    result.notes.append(f"idle OpenMP threads: {idle}")
    _set_threads(threads)
    result.compile = first_calls(ops, dtypes)
    if cold:
        result.compile += cold_compile(ops, dtypes)
    for dtype in dtypes:
        for shape in shapes:
            for op in ops:
                if progress:
                    progress(f"{op} {shape[0]}x{shape[1]} {dtype}")
                case = build_case(op, shape, dtype, present)
                medians = interleaved_medians(case.funcs, repeats, pause=pause)
                base, base_cpu = medians.get("torch", (None, None))
                for impl, (sec, cpu) in medians.items():
                    result.rows.append(
                        BenchRow(
                            op=op,
                            shape=f"{shape[0]}x{shape[1]}",
                            dtype=dtype,
                            impl=impl,
                            ms=sec * 1e3,
                            gb_per_s=case.bytes_moved / sec / 1e9,
                            speedup_vs_torch=(base / sec) if base else float("nan"),
                            cpu_ms=cpu * 1e3,
                            cpu_speedup_vs_torch=(base_cpu / cpu) if base_cpu and cpu else nan,
                        )
                    )
                del case
    return result


__all__ = [
    "COLUMNS",
    "BenchResult",
    "BenchRow",
    "CompileRow",
    "run_bench",
    "first_calls",
    "cold_compile",
]
