"""``python -m logmax.lint PATH...``: the linter alone, without the other ``logmax`` tools.

Same options and exit statuses as ``logmax lint`` (:mod:`logmax.lint.cli`); it loads only the
linter, so it starts fast and needs nothing but the standard library.
"""

from __future__ import annotations

import argparse
import sys

from logmax.lint.cli import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m logmax.lint",
        description="find softmax/log-softmax mistakes in Python files and notebooks",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
