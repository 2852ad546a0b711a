"""The ``logmax`` command: one entry point, one subcommand per tool.

Each tool lives in its own subpackage and exposes two functions in its ``cli`` module:
``add_arguments(parser)`` and ``run(args) -> int``. The subpackage is imported only when its
subcommand runs, so ``logmax --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from logmax import __version__

# subcommand -> (module with add_arguments/run, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "report": ("logmax.report.cli", "the study, audit, benchmark and lint demo in one report"),
    "study": ("logmax.study.cli", "reproduce the seeds' claims on real data"),
    "bench": ("logmax.bench.cli", "time logmax against torch, scipy and jax in one run"),
    "lint": ("logmax.lint.cli", "find softmax/log-softmax mistakes in Python files and notebooks"),
    "audit": (
        "logmax.audit.cli",
        "measure every implementation's error in ULPs against the certified reference",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logmax",
        description="softmax, log_softmax, logsumexp, nll_loss and cross_entropy done right.",
    )
    parser.add_argument("--version", action="version", version=f"logmax {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return int(importlib.import_module(args._module).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
