"""``logmax bench``: time logmax against torch, SciPy and JAX in one run and print the ratios.

Examples::

    logmax bench --quick                                   # fp32 [2048 x 32000], 3 rounds
    logmax bench --ops softmax,log_softmax --ops logsumexp --shapes 8192x1000 --threads 1
"""

from __future__ import annotations

import argparse

from logmax.cli import add_list_option, positive_int

REQUIRES = {"rich": "rich"}
EXTRA = "bench"


def _shape(text: str) -> tuple[int, int]:
    """``"2048x32000"`` -> ``(2048, 32000)``: rows and classes, both positive."""
    parts = text.lower().split("x")
    try:
        rows, cols = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected ROWSxCOLS such as 2048x32000, got {text!r}"
        ) from None
    if rows < 1 or cols < 1:
        raise argparse.ArgumentTypeError(f"rows and columns must be positive, got {text!r}")
    return rows, cols


def _ops() -> tuple[str, ...]:
    from logmax.bench._cases import OPS

    return OPS


def _peers() -> tuple[str, ...]:
    from logmax.bench._cases import PEERS

    return PEERS


def _dtypes() -> tuple[str, ...]:
    from logmax.bench import DTYPES, QUICK_DTYPES

    return tuple(dict.fromkeys(DTYPES + QUICK_DTYPES))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fp32 [2048 x 32000] only, 3 rounds: about 45 s on 2 cores (the full run: "
        "about 2 min)",
    )
    add_list_option(
        parser,
        "--ops",
        "softmax, log_softmax, logsumexp, cross_entropy (= forward and backward); default: all",
        _ops,
        what="op",
    )
    add_list_option(
        parser,
        "--shapes",
        "e.g. 2048x32000,8192x1000 (default: 2048x32000, 1024x50257, 8192x1000, 64x262144)",
        item=_shape,
        what="shape",
        metavar="ROWSxCOLS[,...]",
    )
    add_list_option(
        parser, "--dtypes", "bfloat16, float16, float32, float64 (default: all; --quick: float32)",
        _dtypes,
        what="dtype",
    )  # fmt: skip
    parser.add_argument(
        "--threads", type=positive_int, default=2, help="for torch and Numba alike (default 2)"
    )
    parser.add_argument(
        "--repeats",
        type=positive_int,
        default=None,
        metavar="N",
        help="interleaved rounds, each implementation once per round (default 7; --quick: 3)",
    )
    add_list_option(
        parser,
        "--peers",
        "torch, scipy, jax: the ones installed are timed (default: all three)",
        _peers,
        what="peer",
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="also time compiling in a new process with an empty Numba cache",
    )


def run(args: argparse.Namespace) -> int:
    import sys

    from rich.console import Console

    from logmax.bench import run_bench

    options = {"ops": args.ops, "peers": args.peers}
    result = run_bench(
        quick=args.quick,
        shapes=args.shapes,
        dtypes=args.dtypes,
        threads=args.threads,
        repeats=args.repeats,
        cold=args.cold,
        progress=lambda line: print(f"  timing {line}", file=sys.stderr, flush=True),
        **{k: tuple(v) for k, v in options.items() if v is not None},
    )
    Console().print(*result.renderables())
    return 0
