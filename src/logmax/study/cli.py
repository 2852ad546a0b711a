"""``logmax study``: reproduce the seeds' claims on real data and print what was measured.

Heavy imports (torch, matplotlib, scikit-learn, rich) happen inside :func:`run`.
"""

from __future__ import annotations

import argparse

from logmax.cli import EXIT_OK, output_dir

REQUIRES = {
    "torch": "torch",
    "matplotlib": "matplotlib",
    "sklearn": "scikit-learn",
    "flint": "python-flint",
    "rich": "rich",
}
EXTRA = "report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: two seeds, 12 epochs, coarser sweeps: about 20 s on 2 cores "
        "(the full run: about 1 min)",
    )
    parser.add_argument(
        "--figures",
        metavar="DIR",
        type=output_dir,
        default=None,
        help="also write the study's figures as PNG files into DIR",
    )


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from logmax.study.run import QUICK_STUDY, StudyConfig, run_study
    from logmax.study.terminal import RichProgress, print_part

    console = Console()
    with RichProgress(console) as progress:
        parts = run_study(QUICK_STUDY if args.quick else StudyConfig(), progress)
    for part in parts:
        print_part(console, part)
    if args.figures:
        args.figures.mkdir(parents=True, exist_ok=True)
        for part in parts:
            for i, figure in enumerate(part.figures):
                path = args.figures / f"{part.key}-{i + 1}.png"
                path.write_bytes(figure.png)
                console.print(f"wrote {path}")
    return EXIT_OK
