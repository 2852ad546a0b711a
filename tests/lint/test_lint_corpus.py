"""Corpora: clean code gives nothing, any Python file is parsed without a crash.

- the project's own source (``src/logmax``) must give zero findings: it is the code that does
  softmax and cross-entropy right;
- every ``.py`` file of torch's ``nn`` and ``distributions`` packages (fast) and of the whole
  installed torch package (slow) is linted without an exception; files that do not parse
  become LMX000 findings;
- every line prefix of every fixture (mostly invalid code) is linted without an exception.
"""

from __future__ import annotations

import ast
import collections
import os
import re
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logmax.lint import fix_source, lint_paths, lint_source

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"


# Code that reproduces the seeds' mistakes on purpose, to measure them (the study's naive
# formulas and pairings, the audit's "naive" and "seed001_manual" implementations) carries
# a no-quality-assurance comment naming the LMX codes on each deliberate line.
DELIBERATE = ["study", "audit/registry.py"]
NOQA = re.compile(r"\s*# no" r"qa: (LMX[0-9]+(, )?)+$", re.MULTILINE)  # split: not a directive


def test_project_source_is_clean():
    package = ROOT / "src" / "logmax"
    findings = lint_paths([str(package)])
    assert [f.text() for f in findings] == []
    assert sum(1 for _ in package.rglob("*.py")) > 20  # the corpus is not empty


def test_deliberate_mistakes_in_the_project_are_found_without_their_noqa():
    package = ROOT / "src" / "logmax"
    files = [p for name in DELIBERATE for p in sorted((package / name).glob("**/*.py"))
             if p.is_file()] + [package / "audit" / "registry.py"]  # fmt: skip
    marked = [p for p in files if p.exists() and NOQA.search(p.read_text())]
    if not marked:
        pytest.skip("no deliberate reproductions in this checkout")
    for path in marked:
        text = path.read_text()
        expected = sum(m.group().count("LMX") for m in NOQA.finditer(text))
        codes = [f.code for f in lint_source(NOQA.sub("", text), str(path))]
        assert len(codes) == expected, path
        assert all(code.startswith("LMX1") for code in codes)


def test_every_prefix_of_every_fixture_is_linted_without_an_exception():
    for path in sorted(FIXTURES.glob("LMX*.py")):
        lines = path.read_text().splitlines(keepends=True)
        for end in range(len(lines) + 1):
            lint_source("".join(lines[:end]), path.name)
            lint_source("".join(lines[:end]) + "(", path.name)  # unclosed: always LMX000


def test_deep_nesting_is_not_a_crash():
    deep = "x = " + "(" * 150 + "1" + ")" * 150 + "\n"
    long_sum = "x = " + " + ".join(["a"] * 5000) + "\n"
    chain = "y = torch.log(" + "torch.exp(" * 300 + "x" + ")" * 301 + "\n"
    for code in (deep, long_sum, chain):
        for finding in lint_source(code):
            assert finding.code == "LMX000"


def torch_root() -> Path:
    torch = pytest.importorskip("torch")
    return Path(os.path.dirname(torch.__file__))


@pytest.mark.parametrize("package", ["nn", "distributions"])
def test_torch_packages_are_linted_without_a_crash(package):
    findings = lint_paths([str(torch_root() / package)])
    assert all(f.code != "LMX000" for f in findings)  # torch's own code parses


@pytest.mark.slow
def test_all_of_torch_is_linted_without_a_crash():
    """``uv run pytest tests/lint -m slow -s`` prints the count, by code, and the time."""
    root = torch_root()
    files = sum(1 for _ in root.rglob("*.py"))
    start = time.perf_counter()
    findings = lint_paths([str(root)])
    seconds = time.perf_counter() - start
    counts = collections.Counter(f.code for f in findings)
    print(f"\ntorch: {files} files, {len(findings)} findings {dict(sorted(counts.items()))}, "
          f"{seconds:.1f} s")  # fmt: skip
    for finding in findings:
        print(finding.text())
    # files that do not parse on this Python (py312-only syntax in torch's test helpers)
    assert counts["LMX000"] <= 5
    assert len(findings) < files  # the linter is quiet on library code


FIXTURE_TEXTS = [p.read_text() for p in sorted(FIXTURES.glob("LMX*.py"))]


@given(
    text=st.sampled_from(FIXTURE_TEXTS),
    start=st.integers(0, 4000),
    length=st.integers(0, 400),
    insert=st.sampled_from(["", "(", ")", ":", "\n", "    ", "\\", '"', "#", "é", "\x00", "\r"]),
)
def test_mangled_code_is_never_a_crash(text, start, length, insert):
    """Cut a piece out of a fixture and put junk in: findings or LMX000, never an exception."""
    start = min(start, len(text))
    mangled = text[:start] + insert + text[start + length :]
    findings = lint_source(mangled, "mangled.py")
    lines = mangled.count("\n") + 1
    assert all(1 <= f.line <= lines and f.col >= 1 for f in findings)
    fixed, _ = fix_source(mangled)
    if not any(f.code == "LMX000" for f in findings):
        ast.parse(fixed)  # a rewrite never breaks code that parsed
