"""One fixture per rule (positives and look-alike negatives) with its expected output beside it.

``fixtures/LMXnnn.py`` is linted with ``--select LMXnnn``; the text output must equal
``fixtures/LMXnnn.expected`` line for line. ``fixtures/LMXnnn.py.fixed`` is what ``--fix`` must
produce for the rules that have a rewrite.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

from logmax.lint import RULES, Source, check, fix, read_source
from logmax.lint.output import render

FIXTURES = Path(__file__).parent / "fixtures"
CODES = sorted(RULES)


def lint_fixture(code: str) -> str:
    cwd = os.getcwd()
    os.chdir(FIXTURES)  # paths in the expected output are relative to the fixtures folder
    try:
        return render(check(read_source(Path(f"{code}.py")), select=[code]), "text")
    finally:
        os.chdir(cwd)


def test_every_rule_has_a_fixture():
    assert sorted(p.stem for p in FIXTURES.glob("LMX*.py")) == CODES
    assert sorted(p.stem for p in FIXTURES.glob("LMX*.expected")) == CODES


@pytest.mark.parametrize("code", CODES)
def test_fixture_output(code):
    expected = (FIXTURES / f"{code}.expected").read_text()
    assert lint_fixture(code) == expected


@pytest.mark.parametrize("code", [c for c in CODES if c != "LMX000"])
def test_fixture_marks_match_findings(code):
    """Every line commented ``# LMXnnn`` is found, and nothing else is (the look-alikes)."""
    lines = (FIXTURES / f"{code}.py").read_text().splitlines()
    marked = {i for i, line in enumerate(lines, 1) if f"# {code}" in line}
    found = {f.line for f in check(read_source(FIXTURES / f"{code}.py"), select=[code])}
    assert found == marked


@pytest.mark.parametrize("code", [c for c in CODES if (FIXTURES / f"{c}.py.fixed").exists()])
def test_fix_output(code):
    source = read_source(FIXTURES / f"{code}.py")
    left, applied = fix(source, select=[code])
    assert source.text == (FIXTURES / f"{code}.py.fixed").read_text()
    assert applied == sum(", fixed" in line for line in source.text.splitlines())
    assert all(f.edit is None for f in left)  # everything fixable was fixed
    ast.parse(source.text)
    again = Source("again.py", text=source.text)
    assert fix(again, select=[code])[1] == 0  # idempotent
    assert again.text == source.text
