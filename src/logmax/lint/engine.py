"""Lint sources: parse, analyse, honour ``# noqa``, select codes, and apply ``--fix`` edits.

``# noqa`` on the line where a finding starts silences it; ``# noqa: LMX103`` (or a prefix such as
``LMX1``, several separated by commas or spaces) silences only those codes, as in flake8.

``--fix`` applies the edits of the selected, not silenced findings that carry one, outermost
first and never two that overlap, then lints again and repeats (at most 10 rounds) so that nested
mistakes are all fixed. An edit is only offered where the rewrite keeps the meaning (see
:mod:`logmax.lint.rules`).
"""

from __future__ import annotations

import ast
import fnmatch
import os
import re
import sys
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

from logmax.lint.analysis import Analyzer
from logmax.lint.finding import Finding, non_overlapping, split_lines
from logmax.lint.rules import selected
from logmax.lint.source import Source, read_source

DEFAULT_EXCLUDES = (
    ".git",
    ".hg",
    ".svn",
    ".venv",
    "venv",
    ".tox",
    ".nox",
    "__pycache__",
    ".ipynb_checkpoints",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    "node_modules",
    "build",
    "dist",
)
SUFFIXES = (".py", ".ipynb")
MAX_FIX_ROUNDS = 10
_NOQA = re.compile(r"#\s*noqa(?::\s?(?P<codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*))?", re.I)


def analyse(source: Source) -> list[Finding]:
    """Every finding of one source, before ``# noqa`` and code selection."""
    findings = list(source.errors)
    if not source.text:
        return findings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SyntaxWarning for odd escapes is not ours to report
        try:
            tree = ast.parse(source.text, source.path)
        except SyntaxError as error:
            line, col = error.lineno or 1, error.offset or 1
            findings.append(source.finding("LMX000", line, col, f"syntax error: {error.msg}"))
            return findings
        except (ValueError, RecursionError, MemoryError) as error:
            findings.append(source.finding("LMX000", 1, 1, f"cannot be parsed: {error}"))
            return findings
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))
    try:
        raw = Analyzer(tree, source.text, source.where).run()
    except RecursionError:
        message = "too deeply nested to check"
        return [*findings, source.finding("LMX000", 1, 1, message)]
    finally:
        sys.setrecursionlimit(limit)
    for f in raw:
        cell, line = source.locate(f.line)
        _, end_line = source.locate(f.end_line)
        findings.append(
            Finding(
                source.path,
                line,
                f.col,
                f.code,
                f.message,
                end_line=end_line,
                end_col=f.end_col,
                cell=cell,
                fix_hint=f.hint,
                edit=f.edit,
            )
        )
    return findings


def _silenced(finding: Finding, lines: list[str], source: Source) -> bool:
    if finding.code == "LMX000" or not lines:
        return False
    # back to a line of the analysed text
    line = finding.line
    if finding.cell is not None:
        line += next(first for cell, first, _ in source.cells if cell == finding.cell) - 1
    if not 0 < line <= len(lines):
        return False
    match = _NOQA.search(lines[line - 1])
    if match is None:
        return False
    codes = match.group("codes")
    if not codes:
        return True
    return any(finding.code.startswith(c.upper()) for c in re.split(r"[,\s]+", codes) if c)


def check(
    source: Source, select: list[str] | None = None, ignore: list[str] | None = None
) -> list[Finding]:
    """The findings of one source that are selected and not silenced, in order."""
    lines = split_lines(source.text or "")
    return sorted(
        (
            f
            for f in analyse(source)
            if selected(f.code, select, ignore) and not _silenced(f, lines, source)
        ),
        key=lambda f: (f.cell or 0, f.line, f.col, f.code),
    )


def fix(
    source: Source, select: list[str] | None = None, ignore: list[str] | None = None
) -> tuple[list[Finding], int]:
    """Apply every safe edit; return the findings left and how many edits were applied."""
    applied = 0
    for _ in range(MAX_FIX_ROUNDS):
        findings = check(source, select, ignore)
        edits = non_overlapping([f.edit for f in findings if f.edit is not None])
        if not edits:
            return findings, applied
        source.apply(edits)
        applied += len(edits)
    return check(source, select, ignore), applied


def lint_source(
    text: str,
    path: str = "<string>",
    select: list[str] | None = None,
    ignore: list[str] | None = None,
) -> list[Finding]:
    """Lint Python source text (not a notebook)."""
    return check(Source(path, text=text), select, ignore)


def _excluded(path: str, patterns: Iterable[str]) -> bool:
    normal = Path(os.path.normpath(path)).as_posix()
    parts = normal.split("/")
    for pattern in patterns:
        pattern = Path(os.path.normpath(pattern)).as_posix() if "/" in pattern else pattern
        if "/" in pattern:
            if fnmatch.fnmatch(normal, pattern) or normal.startswith(pattern.rstrip("/") + "/"):
                return True
        elif any(fnmatch.fnmatch(part, pattern) for part in parts):
            return True
    return False


def discover(paths: Iterable[str], exclude: Iterable[str] = ()) -> Iterator[str]:
    """Files to lint: named files as given, ``.py``/``.ipynb`` files under named folders.

    Folders in :data:`DEFAULT_EXCLUDES` and hidden folders are skipped when walking; ``exclude``
    patterns (a name such as ``fixtures`` or a path such as ``tests/lint/fixtures``, globs
    allowed) apply to named files too.
    """
    exclude = list(exclude)
    for path in paths:
        if _excluded(path, exclude):
            continue
        if not os.path.isdir(path):
            yield path
            continue
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(
                d
                for d in dirs
                if d not in DEFAULT_EXCLUDES
                and not d.startswith(".")
                and not _excluded(os.path.join(root, d), exclude)
            )
            for name in sorted(files):
                full = os.path.join(root, name)
                if name.endswith(SUFFIXES) and not _excluded(full, exclude):
                    yield full


def lint_paths(
    paths: Iterable[str],
    select: list[str] | None = None,
    ignore: list[str] | None = None,
    exclude: Iterable[str] = (),
) -> list[Finding]:
    """Lint files, folders and notebooks; never raises on a bad file (LMX000 instead)."""
    findings: list[Finding] = []
    for path in discover(paths, exclude):
        findings.extend(check(read_source(Path(path), path), select, ignore))
    return findings


def fix_source(
    text: str,
    path: str = "<string>",
    select: list[str] | None = None,
    ignore: list[str] | None = None,
) -> tuple[str, list[Finding]]:
    """Python source text with the safe rewrites applied, and the findings left in it."""
    source = Source(path, text=text)
    left, _ = fix(source, select, ignore)
    return source.text or "", left
