"""Shared command line for the per-op benchmark scripts: each prints logmax beside its peers.

Every script is ``logmax.bench.run_bench`` restricted to one op, so the method (one process,
interleaved rounds, median, threads fixed for torch and Numba alike) is the same as
``logmax bench``.
"""

from __future__ import annotations

import argparse
import sys

from logmax.bench import run_bench
from logmax.bench.cli import _shape


def main(op: str, description: str) -> int:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="fp32 [2048 x 32000], 3 repeats")
    parser.add_argument("--shapes", default=None, help="comma-separated ROWSxCOLS")
    parser.add_argument("--dtypes", default=None, help="comma-separated: float32,float64")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--cold", action="store_true", help="also time a cold compile")
    args = parser.parse_args()
    result = run_bench(
        quick=args.quick,
        ops=(op,),
        shapes=tuple(_shape(s) for s in args.shapes.split(",")) if args.shapes else None,
        dtypes=tuple(args.dtypes.split(",")) if args.dtypes else None,
        threads=args.threads,
        repeats=args.repeats,
        cold=args.cold,
        progress=lambda line: print(f"  timing {line}", file=sys.stderr, flush=True),
    )
    print(result.table())
    return 0
