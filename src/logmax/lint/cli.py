"""``logmax lint PATH...``: find softmax/log-softmax mistakes in Python files and notebooks.

The files named, and the ``.py``/``.ipynb`` files under the folders named, are linted as one
project: a model defined in one module and trained in another is followed across them. ``-``
reads standard input (``--stdin-filename`` names it; a name ending in ``.ipynb`` reads a
notebook; with ``--fix`` the fixed text is written to standard output and the findings left to
standard error). Settings come from ``[tool.logmax.lint]`` in the nearest ``pyproject.toml``
(:mod:`logmax.lint.config`), then from the options.

Exit status: 0 when nothing is found, 1 when something is (after ``--fix``, when something is
left), 2 for a usage error: a path that does not exist, an unknown rule code, a configuration
that cannot be used. ``--exit-zero`` exits 0 for findings, not for usage errors. List options
take comma-separated values and may be repeated (``--select LMX101,LMX103 --select LMX2``).

Examples::

    logmax lint src/ notebooks/train.ipynb
    logmax lint --select LMX1 --format json train.py
    logmax lint --format github .          # annotations in a GitHub Actions step
    logmax lint --fix model.py             # rewrite log(softmax(x)) and friends in place
    logmax lint --diff model.py            # show what --fix would change, change nothing
    cat model.py | logmax lint - --stdin-filename model.py
    logmax lint --list-rules
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from pathlib import Path

from logmax.cli import EXIT_FOUND, EXIT_OK, EXIT_USAGE, add_list_option
from logmax.lint.config import ConfigError, Finder, known_codes_hint
from logmax.lint.engine import discover_roots, excluded, fix, lint_sources
from logmax.lint.output import FORMATS, render
from logmax.lint.rules import RULES, unknown_codes
from logmax.lint.source import Source, read_source, read_stdin

STDIN = "-"


def rule_code(text: str) -> str:
    """A ``--select``/``--ignore`` value: a rule code or a prefix of codes (``LMX1``)."""
    code = text.strip().upper()
    if unknown_codes([code]):
        raise ValueError(f"no rule has it ({known_codes_hint()})")
    return code


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    rules = "\n".join(f"  {r.code}  {r.severity:<7}  {r.summary}" for r in RULES.values())
    parser.epilog = (
        f"rules:\n{rules}\n\n"
        "exit status: 0 nothing found, 1 found (after --fix: something left), 2 usage error.\n"
        "'# noqa: LMX103' on a line silences that code there; '# noqa' silences all.\n"
        "[tool.logmax.lint] in pyproject.toml: select, ignore, exclude, per-file-ignores."
    )
    parser.add_argument(
        "paths", nargs="*", metavar="PATH", help="files, folders, notebooks; '-' for stdin"
    )
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format")
    add_list_option(
        parser,
        "--select",
        "only these codes or prefixes (LMX1); over the configured codes",
        item=rule_code,
        what="code",
    )
    add_list_option(
        parser,
        "--ignore",
        "skip these codes or prefixes; added to the configured ones",
        item=rule_code,
        what="code",
    )
    add_list_option(parser, "--exclude", "skip matching paths (names or globs)", what="pattern")
    parser.add_argument("--fix", action="store_true", help="apply the safe rewrites in place")
    parser.add_argument(
        "--diff", action="store_true", help="print the --fix rewrites as a diff, write nothing"
    )
    parser.add_argument("--exit-zero", action="store_true", help="exit 0 even when found")
    parser.add_argument("--list-rules", action="store_true", help="print the rules and exit")
    parser.add_argument(
        "--stdin-filename", metavar="NAME", help="the name of the file read from '-'"
    )
    parser.add_argument(
        "--isolated", action="store_true", help="ignore [tool.logmax.lint] in pyproject.toml"
    )


def _error(message: str) -> int:
    print(f"logmax lint: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def run(args: argparse.Namespace) -> int:
    if args.list_rules:
        for rule in RULES.values():
            print(f"{rule.code}  {rule.severity:<7}  {rule.name}: {rule.summary}. Fix: {rule.fix}.")
        return 0
    paths = args.paths or ["."]
    if paths.count(STDIN) > 1:
        return _error("'-' (standard input) can be given once")
    missing = [p for p in paths if p != STDIN and not os.path.exists(p)]
    for path in missing:
        print(f"logmax lint: {path}: no such file or folder", file=sys.stderr)
    cli_select, cli_ignore = args.select, args.ignore or []
    excludes = args.exclude or []
    finder = Finder(isolated=args.isolated)

    def codes(path: str) -> tuple[list[str] | None, list[str]]:
        config = finder.for_path(path)
        if cli_select is not None:  # asked for on the command line: the configured codes go
            return cli_select, [*config.per_file_codes(path), *cli_ignore]
        select, ignore = config.codes_for(path)
        return select, [*ignore, *cli_ignore]

    try:
        sources = _read(paths, missing, excludes, finder, args.stdin_filename)
        for source, _ in sources:
            codes(source.path)  # every configuration is read, and checked, before linting
    except ConfigError as error:
        return _error(str(error))
    stdin_source = next((s for s, _ in sources if s.path == _stdin_name(args)), None)
    fixed = 0
    if args.fix or args.diff:
        for source, _ in sources:
            fixed += _fix_one(source, args, codes, is_stdin=source is stdin_source)
    results = lint_sources(sources, codes)
    findings = [f for _, found in results for f in found]
    by_path = {source.path: source for source, _ in sources}
    report = render(findings, args.format, by_path)
    if stdin_source is not None and (args.fix or args.diff):
        sys.stderr.write(report)  # stdout holds the fixed text or the diff
    elif not args.diff:
        sys.stdout.write(report)
    if args.format == "text" or args.diff:
        fixable = sum(f.edit is not None for f in findings)
        verb = "would fix" if args.diff else "fixed"
        summary = f"{len(findings)} found" + (f", {fixable} fixable with --fix" if fixable else "")
        if args.fix or args.diff:
            summary += f", {verb} {fixed}"
        if findings or fixed:
            print(summary, file=sys.stderr)
    if missing:
        return EXIT_USAGE
    return EXIT_OK if args.exit_zero or not findings else EXIT_FOUND


def _stdin_name(args: argparse.Namespace) -> str:
    return args.stdin_filename or STDIN


def _read(
    paths: list[str],
    missing: list[str],
    excludes: list[str],
    finder: Finder,
    stdin_filename: str | None,
) -> list[tuple[Source, Path | None]]:
    """The sources to lint, each with the folder linted that holds it."""
    sources: list[tuple[Source, Path | None]] = []
    files = [p for p in paths if p != STDIN and p not in missing]
    for file, given in discover_roots(files, excludes):
        if _excluded_by_config(file, finder):
            continue
        root = Path(given) if os.path.isdir(given) else Path(given).parent
        sources.append((read_source(Path(file), file), root))
    if STDIN in paths:
        name = stdin_filename or STDIN
        source = read_stdin(name, notebook=name.endswith(".ipynb"))
        if stdin_filename:
            source.file = Path(stdin_filename)  # its imports are looked up beside it
        sources.append((source, Path(os.getcwd())))
    return sources


def _excluded_by_config(file: str, finder: Finder) -> bool:
    patterns = finder.for_path(file).exclude_patterns()
    return bool(patterns) and excluded(file, patterns)


def _fix_one(source: Source, args: argparse.Namespace, codes, is_stdin: bool) -> int:
    """Apply (or, with --diff, show) the safe rewrites of one source; how many."""
    if source.text is None:
        return 0
    before = source.dump()
    select, ignore = codes(source.path)
    _, applied = fix(source, select, ignore)
    after = source.dump()
    if args.diff:
        if applied:
            path = source.path
            sys.stdout.writelines(
                difflib.unified_diff(
                    before.decode(source.encoding, "replace").splitlines(keepends=True),
                    after.decode(source.encoding, "replace").splitlines(keepends=True),
                    fromfile=path if os.path.isabs(path) else f"a/{path}",
                    tofile=path if os.path.isabs(path) else f"b/{path}",
                )
            )
    elif is_stdin:
        sys.stdout.write(after.decode(source.encoding, "replace"))
    elif applied:
        Path(source.path).write_bytes(after)
    return applied
