"""Writing findings: flake8-style text, JSON, SARIF 2.1.0, or GitHub workflow annotations.

text    one line per finding, ``path:line:col: CODE message (fix: hint)``; ``[*]`` after the code
        marks findings that ``--fix`` can rewrite. Notebooks: ``nb.ipynb:cell3:2:5``.
json    a list of objects with ``path``, ``cell`` (or null), ``line``, ``column``, ``end_line``,
        ``end_column``, ``code``, ``name``, ``severity``, ``message``, ``fix`` and ``fixable``.
sarif   one run whose driver lists every rule, for code-scanning dashboards. URIs are
        percent-encoded (spaces, ``#``...). A notebook finding is placed on the line of the
        ``.ipynb`` file that holds its cell's source line, when nbformat wrote one source line
        per JSON line; its message starts with ``cell 3, line 2:``, its logical location is
        ``cell3`` and its properties hold ``cell`` and ``cellLine``. Each result has a
        fingerprint (file, cell, code and the text of the line), so two cells with the same
        finding at the same place are two results.
github  ``::error title=logmax (LMX101),file=...,line=...,col=...,endLine=...,endColumn=...::``
        workflow commands, as ``ruff --output-format github`` writes them, so that a GitHub
        Actions step shows each finding on its line.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

from logmax import __version__
from logmax.lint.finding import Finding, split_lines
from logmax.lint.rules import RULES
from logmax.lint.source import Source

FORMATS = ("text", "json", "sarif", "github")
_SARIF_LEVEL = {"error": "error", "warning": "warning"}


def render(findings: list[Finding], fmt: str, sources: Mapping[str, Source] | None = None) -> str:
    """The findings in ``fmt``; ``sources`` (by path) place notebook findings in the file."""
    sources = sources or {}
    if fmt == "text":
        return "".join(f.text() + "\n" for f in findings)
    if fmt == "json":
        return json.dumps([as_dict(f) for f in findings], indent=2) + "\n"
    if fmt == "sarif":
        return json.dumps(sarif(findings, sources), indent=2) + "\n"
    if fmt == "github":
        return "".join(github(f, sources.get(f.path)) + "\n" for f in findings)
    raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")


def as_dict(finding: Finding) -> dict:
    rule = finding.rule
    return {
        "path": finding.path,
        "cell": finding.cell,
        "line": finding.line,
        "column": finding.col,
        "end_line": finding.end_line or finding.line,
        "end_column": finding.end_col or finding.col,
        "code": finding.code,
        "name": rule.name,
        "severity": rule.severity,
        "message": finding.message,
        "fix": finding.hint,
        "fixable": finding.edit is not None,
    }


def file_uri(path: str) -> str:
    """A SARIF artifact URI: relative paths percent-encoded, absolute ones as ``file://``."""
    posix = path.replace("\\", "/")
    if os.path.isabs(path):
        return Path(path).as_uri()
    return quote(posix, safe="/-._~")


def _in_file(finding: Finding, source: Source | None) -> tuple[int, int, int, int] | None:
    """(line, col, end_line, end_col) in the file itself; None for a cell not placed."""
    end_line, end_col = finding.end_line or finding.line, finding.end_col or finding.col
    if finding.cell is None:
        return finding.line, finding.col, end_line, end_col
    if source is None:
        return None
    start = source.raw_position(finding.cell, finding.line, finding.col)
    end = source.raw_position(finding.cell, end_line, end_col)
    if start is None:
        return None
    if end is None or end[0] != start[0]:
        end = start
    return start[0], start[1], end[0], end[1]


def _cell_prefix(finding: Finding) -> str:
    return f"cell {finding.cell}, line {finding.line}: " if finding.cell is not None else ""


def _fingerprint(finding: Finding, source: Source | None, seen: dict[str, int]) -> str:
    line_text = ""
    if source is not None and source.text is not None:
        lines = split_lines(source.text)
        index = finding.line - 1
        if finding.cell is not None:
            first = next((f for c, f, _ in source.cells if c == finding.cell), 1)
            index += first - 1
        if 0 <= index < len(lines):
            line_text = lines[index].strip()
    basis = f"{finding.path}\0{finding.cell}\0{finding.code}\0{line_text}\0{finding.message}"
    digest = hashlib.sha256(basis.encode()).hexdigest()[:32]
    seen[digest] = seen.get(digest, 0) + 1
    return f"{digest}:{seen[digest]}"


def sarif(findings: list[Finding], sources: Mapping[str, Source] | None = None) -> dict:
    sources = sources or {}
    codes = sorted(RULES)
    rules = [
        {
            "id": code,
            "name": RULES[code].name,
            "shortDescription": {"text": RULES[code].summary},
            "fullDescription": {"text": f"{RULES[code].summary}: {RULES[code].why}."},
            "help": {"text": f"Fix: {RULES[code].fix}."},
            "defaultConfiguration": {"level": _SARIF_LEVEL[RULES[code].severity]},
        }
        for code in codes
    ]
    results = []
    seen: dict[str, int] = {}
    for f in findings:
        source = sources.get(f.path)
        physical: dict = {"artifactLocation": {"uri": file_uri(f.path)}}
        place = _in_file(f, source)
        if place is not None:
            line, col, end_line, end_col = place
            physical["region"] = {
                "startLine": line,
                "startColumn": col,
                "endLine": end_line,
                "endColumn": end_col,
            }
        location: dict = {"physicalLocation": physical}
        result: dict = {
            "ruleId": f.code,
            "ruleIndex": codes.index(f.code),
            "level": _SARIF_LEVEL[f.rule.severity],
            "message": {"text": f"{_cell_prefix(f)}{f.message}. Fix: {f.hint}."},
            "locations": [location],
            "partialFingerprints": {"logmaxFinding/v1": _fingerprint(f, source, seen)},
        }
        if f.cell is not None:
            location["logicalLocations"] = [
                {
                    "name": f"cell{f.cell}",
                    "fullyQualifiedName": f"{f.path}:cell{f.cell}",
                    "kind": "module",
                }  # fmt: skip
            ]
            result["properties"] = {"cell": f.cell, "cellLine": f.line, "cellColumn": f.col}
        results.append(result)
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "logmax lint",
                        "version": __version__,
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github(finding: Finding, source: Source | None = None) -> str:
    """One GitHub workflow command (``::error ...::message``) for a finding."""
    level = "error" if finding.rule.severity == "error" else "warning"
    place = _in_file(finding, source) or (1, 1, 1, 1)
    line, col, end_line, end_col = place
    properties = {
        "title": f"logmax ({finding.code})",
        "file": finding.path,
        "line": str(line),
        "col": str(col),
        "endLine": str(end_line),
        "endColumn": str(end_col),
    }
    head = ",".join(f"{key}={_escape_property(value)}" for key, value in properties.items())
    fixable = " [*]" if finding.edit is not None else ""
    message = f"{finding.location}: {finding.code}{fixable} {finding.message} (fix: {finding.hint})"
    return f"::{level} {head}::{_escape_data(message)}"
