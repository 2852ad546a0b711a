"""The HTML report: every section present, self-contained, figures embedded, text escaped."""

from __future__ import annotations

import base64
import struct
from html.parser import HTMLParser

import pytest

from logmax.report import sections
from logmax.report.document import Report, Section
from logmax.report.html import render
from logmax.study.results import Code, Finding, Part, Table

PNG = b"\x89PNG\r\n\x1a\n"


class Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def parse(html: str) -> list[tuple[str, dict[str, str | None]]]:
    collector = Collector()
    collector.feed(html)
    return collector.tags


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG)
    return struct.unpack(">II", data[16:24])  # IHDR width and height


def test_report_is_self_contained(tiny_report) -> None:
    tags = parse(tiny_report.html)
    names = {tag for tag, _ in tags}
    assert "script" not in names and "link" not in names and "iframe" not in names
    for _, attrs in tags:
        for key in ("src", "href", "action", "srcset"):
            value = attrs.get(key)
            if value is None:
                continue
            if key == "href":
                assert value.startswith("#"), value  # in-page links only
            else:
                assert value.startswith("data:image/png;base64,"), value[:40]
    assert "url(" not in tiny_report.html  # no style fetching anything


def test_every_figure_is_an_embedded_png(tiny_report) -> None:
    images = [attrs for tag, attrs in parse(tiny_report.html) if tag == "img"]
    bench = 'id="bench-results"' in tiny_report.html  # the benchmark adds its bar chart
    assert len(images) == 4 + bench  # training, penalty, gradient, alpha sweep
    for attrs in images:
        data = base64.b64decode(attrs["src"].split(",", 1)[1])
        width, height = png_size(data)
        assert width > 100 and height > 100
        assert attrs.get("alt")


def test_every_section_is_there_with_results_or_a_reason(tiny_report) -> None:
    tags = parse(tiny_report.html)
    ids = {attrs.get("id") for tag, attrs in tags if tag == "section"}
    assert ids == {"examples", "study", "audit", "bench", "lint"}
    for key in ids:
        start = tiny_report.html.index(f'<section id="{key}">')
        body = tiny_report.html[start : tiny_report.html.index("</section>", start)]
        assert "<h3" in body or 'class="unavailable"' in body, key


def test_findings_carry_their_verdict(tiny_report) -> None:
    html = tiny_report.html
    assert html.count('class="badge agrees"') >= 2 and 'class="badge differs"' in html
    assert "Seed 001: one batch, cross-entropy every way" in html


def test_terminal_summary_names_every_section_and_the_file(tiny_report) -> None:
    out = tiny_report.stdout
    for title in ("worked examples", "The study", "Accuracy audit", "Quick benchmark", "Lint"):
        assert title in out
    assert "Report written to" in out and str(tiny_report.html_path.name) in out


def test_text_is_escaped() -> None:
    part = Part("p", "<i>title</i>", claim="a < b & c", findings=[Finding("<script>x</script>")])
    part.tables.append(Table("t", ("<col>",), (("<cell>",),)))
    html = render(Report("r", [Section("s", "S", "<intro>", [part])], {"k": "<v>"}))
    assert "<script>" not in html and "<cell>" not in html and "<i>" not in html
    assert "&lt;script&gt;" in html and "a &lt; b &amp; c" in html


def test_a_missing_tool_is_reported_not_faked(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(module: str, attribute: str):
        return None, f"{module}.{attribute} could not be imported (ImportError: test)"

    monkeypatch.setattr(sections, "_import", missing)
    for section in (
        sections.bench_section(quick=True),
        sections.audit_section(quick=True),
        sections.lint_section(),
    ):
        assert section.parts == []
        assert "could not be imported" in section.unavailable
        assert section.headline.startswith("not included")
        html = render(Report("r", [section], {}))
        assert 'class="unavailable"' in html and "<img" not in html


def test_a_failing_tool_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(**_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(sections, "_import", lambda module, attribute: (broken, None))
    section = sections.bench_section(quick=True)
    assert section.parts == [] and section.unavailable == "it failed: RuntimeError: boom"


def test_lint_demo_shows_what_the_linter_finds() -> None:
    lint = pytest.importorskip("logmax.lint")
    from logmax.report.lint_demo import EXAMPLE, EXAMPLE_PATH

    section = sections.lint_section()
    assert section.unavailable is None
    (part,) = section.parts
    expected = {f.code for f in lint.lint_source(EXAMPLE, EXAMPLE_PATH)}
    assert {row[1] for row in part.tables[0].rows} == expected
    assert part.code[0].text == EXAMPLE
    # --fix is shown as a unified diff of the example: its lines are the example's, changed
    fix = part.code[1]
    assert fix.diff and fix.text.startswith(f"--- a/{EXAMPLE_PATH}\n+++ b/{EXAMPLE_PATH}\n")
    removed = [line[1:] for line in fix.text.splitlines() if line.startswith("-    ")]
    added = [line[1:] for line in fix.text.splitlines() if line.startswith("+    ")]
    assert removed and len(removed) == len(added)
    assert all(line in EXAMPLE.splitlines() for line in removed)
    assert "    return torch.log_softmax(logits, dim=1)" in added


def test_a_diff_is_shown_with_its_lines_marked() -> None:
    part = Part("p", "t", code=[Code("fix", "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-old <\n+new\n", True)])
    html = render(Report("r", [Section("s", "S", "", [part])], {}))
    assert '<pre class="diff">' in html
    assert '<span class="del">-old &lt;</span><span class="add">+new</span>' in html
    assert '<span class="hunk">@@ -1 +1 @@</span>' in html


def test_the_report_marks_identical_curves(tiny_report) -> None:
    # logits + CrossEntropyLoss, LogSoftmax + NLLLoss, ... compute the same function
    assert "Identical curves, drawn on top of each other" in tiny_report.html
    assert "logits + CrossEntropyLoss = LogSoftmax + NLLLoss" in tiny_report.html
