"""The ``logmax`` command: one entry point, one subcommand per tool.

Each tool lives in its own subpackage and exposes, in its ``cli`` module, ``add_arguments(parser)``
and ``run(args) -> int``, and optionally ``REQUIRES`` (import name -> distribution) with ``EXTRA``
(the extra that installs them): a subcommand whose packages are missing says which and how to
install them, instead of a traceback. The subpackage's heavy modules are imported only when its
subcommand runs, so ``logmax --help`` stays fast.

Conventions shared by every subcommand:

- a list option takes comma-separated values and may be repeated:
  ``--ops softmax,log_softmax --ops logsumexp`` (:func:`comma_list` with :class:`ListAction`);
- every value is checked by argparse before any work starts (:func:`comma_list`,
  :func:`positive_int`, :func:`output_dir`);
- exit status: 0 done, 1 findings or failures, 2 usage errors (bad arguments, a missing
  package). ``logmax`` with no subcommand prints the help and exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from logmax import __version__

T = TypeVar("T")

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

EXIT_OK, EXIT_FOUND, EXIT_USAGE = 0, 1, 2


# ---------------------------------------------------------------------------------------------
# Argument types shared by the subcommands.
def comma_list(
    choices: Iterable[str] | Callable[[], Iterable[str]] | None = None,
    item: Callable[[str], T] = str,  # type: ignore[assignment]
    *,
    what: str = "value",
) -> Callable[[str], list[T]]:
    """An argparse ``type=`` for comma-separated values: ``"a,b"`` -> ``[item("a"), item("b")]``.

    Use it with ``action=ListAction`` so that the option can be repeated. ``choices`` (or a
    function returning them, called only when the option is given, so that ``--help`` imports
    nothing heavy) lists the accepted values; ``item`` converts each value and may raise
    ``ValueError`` or ``argparse.ArgumentTypeError`` with the reason.

    Example:
        >>> parse = comma_list(("softmax", "logsumexp"), what="op")
        >>> parse("softmax, logsumexp")
        ['softmax', 'logsumexp']
        >>> parse("softmin")
        Traceback (most recent call last):
        ...
        argparse.ArgumentTypeError: invalid op 'softmin' (choose from softmax, logsumexp)
    """

    def parse(text: str) -> list[T]:
        values = [v.strip() for v in text.split(",") if v.strip()]
        if not values:
            raise argparse.ArgumentTypeError(f"expected one or more comma-separated {what}s")
        allowed = list(choices() if callable(choices) else choices) if choices else None
        out = []
        for value in values:
            if allowed is not None and value not in allowed:
                raise argparse.ArgumentTypeError(
                    f"invalid {what} {value!r} (choose from {', '.join(allowed)})"
                )
            try:
                out.append(item(value))
            except ValueError as err:
                raise argparse.ArgumentTypeError(f"invalid {what} {value!r}: {err}") from None
        return out

    return parse


class ListAction(argparse.Action):
    """Collects the values of a repeatable list option into one flat list (default: None)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        items = list(getattr(namespace, self.dest, None) or [])
        for value in values if self.nargs in ("+", "*") else [values]:
            items.extend(value if isinstance(value, list) else [value])
        setattr(namespace, self.dest, items)


def add_list_option(
    parser: argparse.ArgumentParser,
    name: str,
    help: str,
    choices: Iterable[str] | Callable[[], Iterable[str]] | None = None,
    item: Callable[[str], Any] = str,
    *,
    what: str,
    metavar: str | None = None,
    spaces: bool = False,
) -> None:
    """Add a repeatable option of comma-separated values (default ``None``: "all").

    ``spaces`` also takes space-separated values (``--ops a b``); only for commands without
    positional arguments, which those values would swallow.
    """
    parser.add_argument(
        name,
        type=comma_list(choices, item, what=what),
        action=ListAction,
        nargs="+" if spaces else None,
        metavar=metavar or f"{what.upper()}[,{what.upper()}...]",
        help=help,
    )


def positive_int(text: str) -> int:
    """An argparse ``type=``: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def output_dir(text: str) -> Path:
    """An argparse ``type=``: a folder that exists or can be created, and can be written in.

    Nothing is created here; the check writes (and removes) a temporary file in the folder, or
    in its nearest existing parent, so a read-only place is refused before any work starts.
    """
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a file, not a folder")
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise argparse.ArgumentTypeError(f"cannot create {text!r}: {str(probe)!r} is a file")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise argparse.ArgumentTypeError(f"cannot write in {str(probe)!r} ({reason})") from None
    return path


# ---------------------------------------------------------------------------------------------
def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand, or with ``only``, of that one (the others are listed but
    their modules are not imported: ``logmax lint`` starts without NumPy)."""
    parser = argparse.ArgumentParser(
        prog="logmax",
        description="softmax, log_softmax, logsumexp, nll_loss and cross_entropy done right.",
        epilog="exit status: 0 done, 1 findings or failures, 2 usage error. "
        "'logmax COMMAND --help' tells more.",
    )
    parser.add_argument("--version", action="version", version=f"logmax {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        if only is None or only == name:
            importlib.import_module(module).add_arguments(p)
    return parser


def _command_in(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names: its first argument that is not an option."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in COMMANDS else None


def missing_packages(module: Any) -> list[str]:
    """The distributions named in ``module.REQUIRES`` whose import name cannot be found."""
    requires: dict[str, str] = getattr(module, "REQUIRES", {})
    return [dist for name, dist in requires.items() if importlib.util.find_spec(name) is None]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``logmax`` with ``argv`` (default: the command line); returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(only=_command_in(argv) or "")
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help and --version (0), usage errors (2)
        return done.code if isinstance(done.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    module = importlib.import_module(args._module)
    missing = missing_packages(module)
    if missing:
        extra = getattr(module, "EXTRA", "all")
        print(
            f"logmax {args.command}: needs {', '.join(missing)}, not installed here; "
            f"install them with: pip install 'logmax[{extra}]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
