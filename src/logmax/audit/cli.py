"""``logmax audit``: every implementation's error in ULPs against the certified reference.

Runs the stress catalogue, prints the table (op x implementation x dtype: max ULP / 99th
percentile, ``!n`` non-finite failures), writes ``audit.json`` and ``audit.html`` (self-contained,
figures embedded) into ``--out``. Exit status 1 when logmax misses its bound anywhere. Heavy
imports happen in :func:`run`, so ``logmax --help`` stays fast.

Examples::

    uv run logmax audit                                  # everything, about a minute
    uv run logmax audit --quick --dtypes float32 --impls logmax,torch
    uv run logmax audit --ops cross_entropy --out /tmp/audit
    uv run logmax audit --list                           # cases and implementations
"""

from __future__ import annotations

import argparse
import sys

from logmax.cli import EXIT_FOUND, EXIT_OK, EXIT_USAGE, add_list_option, output_dir

DEFAULT_OUT = "logmax-out/audit"
REQUIRES = {"flint": "python-flint", "rich": "rich"}
EXTRA = "audit"


def _ops() -> tuple[str, ...]:
    from logmax.audit.catalogue import OPS

    return OPS


def _dtypes() -> tuple[str, ...]:
    from logmax.audit.formats import FORMATS

    return tuple(FORMATS)


def _impls() -> list[str]:
    from logmax.audit import registry

    return registry.names()


def _cases() -> list[str]:
    from logmax.audit.catalogue import CASES

    return list(CASES)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # spaces=True: also ``--ops a b``, as this command always took
    add_list_option(
        parser, "--ops", "ops to audit (default: all five)", _ops, what="op", spaces=True
    )
    add_list_option(
        parser, "--dtypes", "float16, bfloat16, float32, float64 (default: all)", _dtypes,
        what="dtype", spaces=True,
    )  # fmt: skip
    add_list_option(
        parser, "--impls", "implementations (default: every installed one; --list)", _impls,
        what="impl", spaces=True,
    )  # fmt: skip
    add_list_option(
        parser, "--cases", "case names (default: the whole catalogue; --list)", _cases,
        what="case", spaces=True,
    )  # fmt: skip
    parser.add_argument(
        "--out",
        type=output_dir,
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"folder for audit.json and audit.html (default: ./{DEFAULT_OUT})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller large cases (2^14 classes, shorter sweeps): about 30 s on 2 cores "
        "(the full run: about 1 min)",
    )
    parser.add_argument("--no-figures", action="store_true", help="skip the plots in the page")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--list", action="store_true", help="list cases and implementations")


def run(args: argparse.Namespace) -> int:
    import importlib.util

    from rich.console import Console
    from rich.table import Table

    from logmax.audit import catalogue, registry
    from logmax.audit.page import write_outputs
    from logmax.audit.runner import _cell_text, run_audit

    console = Console(highlight=False)
    if args.list:
        console.print("implementations: " + ", ".join(registry.names()))
        cases = Table("case", "ops", "what it stresses", title="cases")
        for case in catalogue.CASES.values():
            cases.add_row(case.name, ", ".join(case.ops), case.reason)
        console.print(cases)
        return EXIT_OK
    try:
        result = run_audit(
            ops=args.ops,
            dtypes=args.dtypes,
            impls=args.impls,
            cases=args.cases,
            quick=args.quick,
            progress=not args.no_progress and sys.stderr.isatty(),
        )
    except (ValueError, KeyError) as exc:
        print(f"logmax audit: {exc}", file=sys.stderr)
        return EXIT_USAGE
    cells = {(c["op"], c["impl"], c["dtype"]): c for c in result.summary()}
    table = Table(
        "op",
        "implementation",
        *result.dtypes,
        title="error in ULPs of the exact value",
        caption="cells: max / 99th percentile over every value of every case; "
        "!n: non-finite failures",
        caption_justify="left",
    )
    for op in result.ops:
        for impl in result.impls:
            row = [cells.get((op, impl, d)) for d in result.dtypes]
            if any(c is not None and c["status"] == "ok" for c in row):
                table.add_row(op, impl, *map(_cell_text, row))
    console.print(table)
    for name, why in result.skipped.items():
        console.print(f"not measured: {name}: {why}")
    figures = not args.no_figures
    if figures and importlib.util.find_spec("matplotlib") is None:
        console.print("figures left out: matplotlib is not installed")
        figures = False
    paths = write_outputs(result, args.out, figures=figures)
    misses = [
        r for impl in result.impls if impl.startswith("logmax") for r in result.failures(impl)
    ]
    if misses:
        missed = Table(
            "implementation", "op", "dtype", "case", "max ULP", "non-finite", "status",
            title="logmax misses its bound (<= 1 ULP, float64 <= 2) on",
        )  # fmt: skip
        for r in misses:
            missed.add_row(
                r.impl, r.op, r.dtype, r.case, f"{r.max_ulp:.3g}", str(r.nonfinite),
                "" if r.measured else r.status,
            )  # fmt: skip
        console.print(missed)
    else:
        console.print("logmax is within its bound on every case measured.")
    console.print(f"{result.seconds:.1f} s; wrote {paths['json']} and {paths['html']}")
    return EXIT_FOUND if misses else EXIT_OK
