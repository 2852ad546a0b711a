"""``logmax bench``: time logmax against torch, SciPy and JAX in one run and print the ratios."""

from __future__ import annotations

import argparse


def _shape(text: str) -> tuple[int, int]:
    rows, cols = text.lower().split("x")
    return int(rows), int(cols)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fp32 [2048 x 32000] only, 3 repeats (seconds, not minutes)",
    )
    parser.add_argument(
        "--ops",
        default="softmax,log_softmax,logsumexp,cross_entropy",
        help="comma-separated ops (cross_entropy = forward and backward)",
    )
    parser.add_argument(
        "--shapes", default=None, help="comma-separated ROWSxCOLS, e.g. 2048x32000,8192x1000"
    )
    parser.add_argument("--dtypes", default=None, help="comma-separated: float32,float64")
    parser.add_argument("--threads", type=int, default=2, help="for torch and Numba (default 2)")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved rounds")
    parser.add_argument("--peers", default="torch,scipy,jax", help="peers to try if installed")
    parser.add_argument(
        "--cold",
        action="store_true",
        help="also time compiling in a new process with an empty Numba cache",
    )


def run(args: argparse.Namespace) -> int:
    import sys

    from logmax.bench import run_bench

    result = run_bench(
        quick=args.quick,
        ops=tuple(args.ops.split(",")),
        shapes=tuple(_shape(s) for s in args.shapes.split(",")) if args.shapes else None,
        dtypes=tuple(args.dtypes.split(",")) if args.dtypes else None,
        threads=args.threads,
        repeats=args.repeats,
        peers=tuple(p for p in args.peers.split(",") if p),
        cold=args.cold,
        progress=lambda line: print(f"  timing {line}", file=sys.stderr, flush=True),
    )
    print(result.table())
    return 0
