"""``logmax lint PATH...``: find softmax/log-softmax mistakes in Python files and notebooks.

Exit status: 0 when nothing is found, 1 when something is (after ``--fix``, when something is
left), 2 when a path does not exist. ``--exit-zero`` always exits 0 unless a path is missing.

Examples::

    logmax lint src/ notebooks/train.ipynb
    logmax lint --select LMX1 --format json train.py
    logmax lint --fix model.py            # rewrite log(softmax(x)) and friends in place
    logmax lint --diff model.py           # show what --fix would change, change nothing
    logmax lint --list-rules
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from pathlib import Path

from logmax.lint.engine import check, discover, fix
from logmax.lint.output import FORMATS, render
from logmax.lint.rules import RULES
from logmax.lint.source import read_source


def _codes(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [c.strip().upper() for value in values for c in value.split(",") if c.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    rules = "\n".join(f"  {r.code}  {r.severity:<7}  {r.summary}" for r in RULES.values())
    parser.epilog = (
        f"rules:\n{rules}\n\n"
        "exit status: 0 nothing found, 1 found (after --fix: something left), 2 missing path.\n"
        "'# noqa: LMX103' on a line silences that code there; '# noqa' silences all."
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="files, folders, notebooks")
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format")
    parser.add_argument(
        "--select", action="append", metavar="CODES", help="only these codes or prefixes (LMX1)"
    )
    parser.add_argument("--ignore", action="append", metavar="CODES", help="skip these codes")
    parser.add_argument(
        "--exclude", action="append", default=[], metavar="PATTERN", help="skip matching paths"
    )
    parser.add_argument("--fix", action="store_true", help="apply the safe rewrites in place")
    parser.add_argument(
        "--diff", action="store_true", help="print the --fix rewrites as a diff, write nothing"
    )
    parser.add_argument("--exit-zero", action="store_true", help="exit 0 even when found")
    parser.add_argument("--list-rules", action="store_true", help="print the rules and exit")


def run(args: argparse.Namespace) -> int:
    if args.list_rules:
        for rule in RULES.values():
            print(f"{rule.code}  {rule.severity:<7}  {rule.name}: {rule.summary}. Fix: {rule.fix}.")
        return 0
    paths = args.paths or ["."]
    missing = [p for p in paths if not os.path.exists(p)]
    for path in missing:
        print(f"logmax lint: {path}: no such file or folder", file=sys.stderr)
    select, ignore = _codes(args.select), _codes(args.ignore)
    findings = []
    fixed = 0
    for path in discover([p for p in paths if p not in missing], args.exclude):
        source = read_source(Path(path), path)
        if not (args.fix or args.diff):
            findings.extend(check(source, select, ignore))
            continue
        before = source.dump() if source.text is not None else None
        left, applied = fix(source, select, ignore)
        findings.extend(left)
        if not applied or before is None:
            continue
        fixed += applied
        after = source.dump()
        if args.diff:
            sys.stdout.writelines(
                difflib.unified_diff(
                    before.decode(source.encoding, "replace").splitlines(keepends=True),
                    after.decode(source.encoding, "replace").splitlines(keepends=True),
                    fromfile=path if os.path.isabs(path) else f"a/{path}",
                    tofile=path if os.path.isabs(path) else f"b/{path}",
                )
            )
        else:
            Path(path).write_bytes(after)
    if not args.diff:
        sys.stdout.write(render(findings, args.format))
    if args.format == "text" or args.diff:
        fixable = sum(f.edit is not None for f in findings)
        verb = "would fix" if args.diff else "fixed"
        summary = f"{len(findings)} found" + (f", {fixable} fixable with --fix" if fixable else "")
        if args.fix or args.diff:
            summary += f", {verb} {fixed}"
        if findings or fixed:
            print(summary, file=sys.stderr)
    if missing:
        return 2
    return 0 if args.exit_zero or not findings else 1
