"""``logmax report``: show on real data what logmax stands for, with the evidence.

Runs the seeds' worked examples, the study, the accuracy audit, a quick benchmark and the lint
demo (each if its tool is available; otherwise the report says why), writes one self-contained
HTML file and prints a short summary. Heavy imports happen inside :func:`run`.
"""

from __future__ import annotations

import argparse

from logmax.cli import EXIT_FOUND, EXIT_OK, add_list_option, output_dir

SECTIONS = ("examples", "study", "audit", "bench", "lint")
REQUIRES = {"rich": "rich"}  # the sections say themselves what they lack
EXTRA = "report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=output_dir,
        default="logmax-out",
        metavar="DIR",
        help="folder for report.html (default: ./logmax-out)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: two seeds, 12 epochs, a float32 audit, a smaller benchmark: "
        "about 40 s on 2 cores (the full report: about 1.5 min)",
    )
    add_list_option(
        parser,
        "--sections",
        f"sections to run (default: all of {', '.join(SECTIONS)})",
        SECTIONS,
        what="section",
    )
    parser.add_argument(
        "--tables",
        action="store_true",
        help="print every table on the terminal, not only the summary",
    )


def _settings(quick: bool, seconds: float) -> dict[str, str]:
    import datetime
    import os
    import platform

    import numpy

    import logmax

    settings = {
        "logmax": logmax.__version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
    }
    try:
        import torch

        settings["torch"] = torch.__version__
    except ImportError:
        settings["torch"] = "not installed"
    settings.update(
        {
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU core(s)",
            "run": "quick (--quick)" if quick else "default",
            "generated": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "total time": f"{seconds:.1f} s",
        }
    )
    return settings


def run(args: argparse.Namespace) -> int:
    import time

    from rich.console import Console

    from logmax.report import sections as build
    from logmax.report.document import Report
    from logmax.report.html import render
    from logmax.report.terminal import print_summary
    from logmax.study.terminal import RichProgress

    chosen = args.sections or SECTIONS
    console = Console()
    start = time.perf_counter()
    done = []
    with RichProgress(console) as progress:
        if "examples" in chosen:
            done.append(build.examples_section(progress))
        if "study" in chosen:
            done.append(build.study_section(args.quick, progress))
        if "audit" in chosen:
            done.append(build.audit_section(args.quick, progress))
        if "bench" in chosen:
            done.append(build.bench_section(args.quick, progress))
        if "lint" in chosen:
            done.append(build.lint_section(progress))
    seconds = time.perf_counter() - start
    report = Report("logmax report", done, _settings(args.quick, seconds))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "report.html"
    path.write_text(render(report), encoding="utf-8")
    print_summary(console, report, tables=args.tables)
    console.print(f"\nReport written to [bold]{path}[/bold] ({seconds:.0f} s).", highlight=False)
    failed = [s.title for s in done if s.failed]
    if failed:
        console.print(f"Failed: {', '.join(failed)} (see the report).", highlight=False)
        return EXIT_FOUND
    return EXIT_OK
