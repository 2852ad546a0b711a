"""How fast ``logmax lint`` reads code: files per second, CPU and wall clock.

Lints the given folders (default: the installed torch package, large and always at hand in the
dev environment) as one project, several times, and prints the best round. CPU time is the
figure to compare on a shared machine; wall clock is printed beside it. The parse alone (Python's
own ``ast.parse`` of every file) is timed too, as the floor no linter built on ``ast`` goes under.

    uv run python benchmarks/bench_lint.py                      # torch
    uv run python benchmarks/bench_lint.py path/to/project --repeats 3
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import os
import sys
import time
import warnings
from pathlib import Path

from logmax.lint import lint_paths
from logmax.lint.engine import discover
from logmax.lint.source import read_source


def default_target() -> list[str]:
    try:
        import torch
    except ImportError:  # pragma: no cover - the dev environment has torch
        return [str(Path(__file__).resolve().parents[1] / "src")]
    return [os.path.dirname(torch.__file__)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", help="folders or files (default: torch's package)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds; the best is printed")
    args = parser.parse_args(argv)
    paths = args.paths or default_target()
    files = list(discover(paths))
    parse_cpu = float("inf")
    for _ in range(args.repeats):
        start = time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for file in files:
                source = read_source(Path(file))
                if source.text and source.notebook is None:
                    with contextlib.suppress(SyntaxError, ValueError, RecursionError):
                        ast.parse(source.text)
        parse_cpu = min(parse_cpu, time.process_time() - start)
    cpu = wall = float("inf")
    findings = 0
    for _ in range(args.repeats):
        start, start_wall = time.process_time(), time.perf_counter()
        findings = len(lint_paths(paths))
        cpu = min(cpu, time.process_time() - start)
        wall = min(wall, time.perf_counter() - start_wall)
    n = len(files)
    print(f"{n} files, {findings} findings under {', '.join(paths)}")
    print(f"read + parse only : {parse_cpu:6.1f} s cpu  {n / parse_cpu:6.0f} files/s")
    print(f"logmax lint       : {cpu:6.1f} s cpu  {n / cpu:6.0f} files/s (cpu)  "
          f"{wall:6.1f} s wall  {n / wall:6.0f} files/s (wall)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
