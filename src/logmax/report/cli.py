"""``logmax report``: show on real data what logmax stands for, with the evidence.

Heavy imports (torch, matplotlib, rich, ...) happen inside :func:`run`.
"""

from __future__ import annotations

import argparse

SECTIONS = ("examples", "study", "audit", "bench", "lint")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        default="logmax-out",
        help="folder the HTML report is written to (default: ./logmax-out)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run in seconds: tiny training budget"
    )
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run (default: all of {','.join(SECTIONS)})",
    )


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from logmax.report.terminal import print_part
    from logmax.study.worked_examples import all_examples

    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise SystemExit(f"logmax report: unknown section(s) {unknown}; choose from {SECTIONS}")
    console = Console()
    if "examples" in sections:
        for part in all_examples():
            print_part(console, part)
    return 0
