"""Lint sources: analyse them as one project, honour ``# noqa``, select codes, apply ``--fix``.

``# noqa`` on the line where a finding starts silences it; ``# noqa: LMX103`` (or a prefix such as
``LMX1``, several separated by commas or spaces) silences only those codes, as in flake8.

``--fix`` applies the edits of the selected, not silenced findings that carry one, outermost
first and never two that overlap, then lints again and repeats (at most 10 rounds) so that nested
mistakes are all fixed. An edit is only offered where the rewrite keeps the meaning (see the rule
modules of :mod:`logmax.lint.rules`).
"""

from __future__ import annotations

import fnmatch
import gc
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from logmax.lint.analysis import Analysis
from logmax.lint.finding import Finding, non_overlapping, split_lines
from logmax.lint.project import Module, Project
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

# codes of one file: (select, ignore) for a path; None selects everything
Selection = Callable[[str], tuple[list[str] | None, list[str] | None]]


def analyse_modules(modules: list[Module], project: Project) -> dict[int, list[Finding]]:
    """Every finding of each module (by ``id``), before ``# noqa`` and code selection."""
    analysis = Analysis(project)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))
    out: dict[int, list[Finding]] = {}
    try:
        for module in modules:
            try:
                analysis.run_module(module)
            except RecursionError:
                message = "too deeply nested to check"
                module.errors.append(module.source.finding("LMX000", 1, 1, message))
    finally:
        sys.setrecursionlimit(limit)
    results = {id(module): analysis.findings_of(module) for module in modules}
    analysis.release()
    for module in modules:
        source = module.source
        findings = list(module.errors)
        for f in results[id(module)]:
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
        out[id(module)] = findings
    return out


@contextmanager
def _quiet_and_fast() -> Iterator[None]:
    """No SyntaxWarning from parsing other people's code; no cyclic garbage collection while
    every tree stays alive (collections would walk them all again and again)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        if enabled:
            gc.enable()


def analyse(source: Source) -> list[Finding]:
    """Every finding of one source, before ``# noqa`` and code selection."""
    project = Project()
    with _quiet_and_fast():
        module = project.add(source)
        return analyse_modules([module], project)[id(module)]


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


def keep(
    findings: Iterable[Finding],
    source: Source,
    select: list[str] | None = None,
    ignore: list[str] | None = None,
) -> list[Finding]:
    """The findings that are selected and not silenced, in order."""
    lines = split_lines(source.text or "")
    return sorted(
        (
            f
            for f in findings
            if selected(f.code, select, ignore) and not _silenced(f, lines, source)
        ),
        key=lambda f: (f.cell or 0, f.line, f.col, f.code),
    )


def check(
    source: Source, select: list[str] | None = None, ignore: list[str] | None = None
) -> list[Finding]:
    """The findings of one source that are selected and not silenced, in order."""
    return keep(analyse(source), source, select, ignore)


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


def excluded(path: str, patterns: Iterable[str]) -> bool:
    """Whether ``path`` matches a pattern: a name or glob matches any part of the path, a
    pattern with ``/`` the path itself or a folder above it (an absolute pattern, from a
    configuration file, the absolute path)."""
    normal = Path(os.path.normpath(path)).as_posix()
    parts = normal.split("/")
    absolute = None
    for pattern in patterns:
        if "/" in pattern:
            pattern = Path(os.path.normpath(pattern)).as_posix()
            target = normal
            if os.path.isabs(pattern):
                if absolute is None:
                    absolute = Path(os.path.abspath(path)).as_posix()
                target = absolute
            if fnmatch.fnmatch(target, pattern) or target.startswith(pattern.rstrip("/") + "/"):
                return True
        elif any(fnmatch.fnmatch(part, pattern) for part in parts):
            return True
    return False


def discover_roots(paths: Iterable[str], exclude: Iterable[str] = ()) -> Iterator[tuple[str, str]]:
    """(file, the path given that holds it): named files as given, ``.py``/``.ipynb`` files
    under named folders.

    Folders in :data:`DEFAULT_EXCLUDES` and hidden folders are skipped when walking; ``exclude``
    patterns (a name such as ``fixtures`` or a path such as ``tests/lint/fixtures``, globs
    allowed) apply to named files too.
    """
    exclude = list(exclude)
    for path in paths:
        if excluded(path, exclude):
            continue
        if not os.path.isdir(path):
            yield path, path
            continue
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(
                d
                for d in dirs
                if d not in DEFAULT_EXCLUDES
                and not d.startswith(".")
                and not excluded(os.path.join(root, d), exclude)
            )
            for name in sorted(files):
                full = os.path.join(root, name)
                if name.endswith(SUFFIXES) and not excluded(full, exclude):
                    yield full, path


def discover(paths: Iterable[str], exclude: Iterable[str] = ()) -> Iterator[str]:
    """Files to lint (see :func:`discover_roots`)."""
    for file, _ in discover_roots(paths, exclude):
        yield file


def lint_sources(
    sources: list[tuple[Source, Path | None]], selection: Selection | None = None
) -> list[tuple[Source, list[Finding]]]:
    """Lint sources as one project (imports between them are followed), each with its codes;
    ``(source, root)``: root is the folder that was linted, where imports stop by default."""
    project = Project()
    out = []
    with _quiet_and_fast():
        modules = [project.add(source, root) for source, root in sources]
        found = analyse_modules(modules, project)
        for module in modules:
            select, ignore = selection(module.path) if selection is not None else (None, None)
            out.append((module.source, keep(found[id(module)], module.source, select, ignore)))
        for module in project.modules.values():
            module.tree = None  # freed now, not by a collection over all of them
    return out


def lint_paths(
    paths: Iterable[str],
    select: list[str] | None = None,
    ignore: list[str] | None = None,
    exclude: Iterable[str] = (),
) -> list[Finding]:
    """Lint files, folders and notebooks as one project; never raises on a bad file (LMX000)."""
    sources = [
        (read_source(Path(file), file), _root(given))
        for file, given in discover_roots(paths, exclude)
    ]
    results = lint_sources(sources, lambda _: (select, ignore))
    return [finding for _, findings in results for finding in findings]


def _root(given: str) -> Path:
    path = Path(given)
    return path if path.is_dir() else path.parent
