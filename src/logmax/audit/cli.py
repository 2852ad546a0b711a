"""``logmax audit``: every implementation's error in ULPs against the certified reference.

Runs the stress catalogue, prints the table (op x implementation x dtype: max ULP / 99th
percentile, ``!n`` non-finite failures), writes ``audit.json`` and ``audit.html`` (self-contained,
figures embedded) into ``--out``. Heavy imports happen in :func:`run`, so ``logmax --help`` stays
fast.

Examples::

    uv run logmax audit                                  # everything, about two minutes
    uv run logmax audit --quick --dtypes float32 --impls logmax torch
    uv run logmax audit --ops cross_entropy --out /tmp/audit
    uv run logmax audit --list                           # cases and implementations
"""

from __future__ import annotations

import argparse
import sys

DEFAULT_OUT = "logmax-out/audit"


def _names(values: list[str] | None) -> list[str] | None:
    """``--ops a,b c`` -> ``['a', 'b', 'c']`` (comma- or space-separated)."""
    if values is None:
        return None
    return [t for v in values for t in v.replace(",", " ").split() if t]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ops", nargs="+", metavar="OP", help="ops to audit (default: all five)")
    parser.add_argument(
        "--dtypes",
        nargs="+",
        metavar="DTYPE",
        help="float16, bfloat16, float32, float64 (default: all)",
    )
    parser.add_argument(
        "--impls",
        nargs="+",
        metavar="IMPL",
        help="implementations (default: every installed one; see --list)",
    )
    parser.add_argument(
        "--cases",
        nargs="+",
        metavar="CASE",
        help="case names (default: the whole catalogue; see --list)",
    )
    parser.add_argument(
        "--out",
        default=DEFAULT_OUT,
        help=f"folder for audit.json and audit.html (default: ./{DEFAULT_OUT})",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller large cases (2^14 classes, shorter sweeps)"
    )
    parser.add_argument("--no-figures", action="store_true", help="skip the plots in the page")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit with status 1 when logmax misses its bound anywhere",
    )
    parser.add_argument("--list", action="store_true", help="list cases and implementations")


def run(args: argparse.Namespace) -> int:
    from logmax.audit import catalogue, registry
    from logmax.audit.page import write_outputs
    from logmax.audit.runner import run_audit

    if args.list:
        print("implementations:")
        for name in registry.names():
            print(f"  {name}")
        print("cases:")
        for case in catalogue.CASES.values():
            print(f"  {case.name:32s} [{', '.join(case.ops)}]\n      {case.reason}")
        return 0
    try:
        result = run_audit(
            ops=_names(args.ops),
            dtypes=_names(args.dtypes),
            impls=_names(args.impls),
            cases=_names(args.cases),
            quick=args.quick,
            progress=not args.no_progress and sys.stderr.isatty(),
        )
    except (ValueError, KeyError) as exc:
        print(f"logmax audit: {exc}", file=sys.stderr)
        return 2
    print(result.table())
    print(
        "\ncells: max ULP / 99th percentile over every value of every case; !n: non-finite failures"
    )
    for name, why in result.skipped.items():
        print(f"not measured: {name}: {why}")
    paths = write_outputs(result, args.out, figures=not args.no_figures)
    misses = [
        r for impl in result.impls if impl.startswith("logmax") for r in result.failures(impl)
    ]
    if misses:
        print("\nlogmax misses its bound (<= 1 ULP, float64 <= 2) on:")
        for r in misses:
            print(
                f"  {r.impl:14s} {r.op:14s} {r.dtype:9s} {r.case:32s} max {r.max_ulp:.3g} ULP"
                f"  non-finite {r.nonfinite}  {'' if r.measured else r.status}"
            )
    else:
        print("\nlogmax is within its bound on every case measured.")
    print(f"{result.seconds:.1f} s; wrote {paths['json']} and {paths['html']}")
    return 1 if (misses and args.strict) else 0
