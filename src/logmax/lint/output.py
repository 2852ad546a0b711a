"""Writing findings: flake8-style text, JSON, or SARIF 2.1.0 (for code-scanning dashboards).

text   one line per finding, ``path:line:col: CODE message (fix: hint)``; ``[*]`` after the code
       marks findings that ``--fix`` can rewrite. Notebooks: ``nb.ipynb:cell3:2:5``.
json   a list of objects with ``path``, ``cell`` (or null), ``line``, ``column``, ``end_line``,
       ``end_column``, ``code``, ``name``, ``severity``, ``message``, ``fix`` and ``fixable``.
sarif  one run whose driver lists every rule; notebook cells appear as a logical location
       ``cell3`` beside the file, with the line inside the cell as region.
"""

from __future__ import annotations

import json

from logmax import __version__
from logmax.lint.finding import Finding
from logmax.lint.rules import RULES

FORMATS = ("text", "json", "sarif")
_SARIF_LEVEL = {"error": "error", "warning": "warning"}


def render(findings: list[Finding], fmt: str) -> str:
    if fmt == "text":
        return "".join(f.text() + "\n" for f in findings)
    if fmt == "json":
        return json.dumps([as_dict(f) for f in findings], indent=2) + "\n"
    if fmt == "sarif":
        return json.dumps(sarif(findings), indent=2) + "\n"
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


def sarif(findings: list[Finding]) -> dict:
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
    for f in findings:
        location: dict = {
            "physicalLocation": {
                "artifactLocation": {"uri": f.path.replace("\\", "/")},
                "region": {
                    "startLine": f.line,
                    "startColumn": f.col,
                    "endLine": f.end_line or f.line,
                    "endColumn": f.end_col or f.col,
                },
            }
        }
        if f.cell is not None:
            location["logicalLocations"] = [{"name": f"cell{f.cell}", "kind": "notebookCell"}]
        results.append(
            {
                "ruleId": f.code,
                "ruleIndex": codes.index(f.code),
                "level": _SARIF_LEVEL[f.rule.severity],
                "message": {"text": f"{f.message}. Fix: {f.hint}."},
                "locations": [location],
            }
        )
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
