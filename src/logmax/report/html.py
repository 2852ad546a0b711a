"""Render a :class:`~logmax.report.document.Report` as one self-contained HTML page.

Self-contained: the style sheet is inline, every figure is a PNG embedded as a ``data:`` URI, and
there is no script and no reference to anything outside the file. All text is HTML-escaped.
"""

from __future__ import annotations

import base64
from html import escape

from logmax.report.document import Report, Section
from logmax.study.results import Figure, Finding, Part, Table

STYLE = """
:root { --ink: #1d2330; --muted: #5b6475; --line: #d8dde6; --bg: #ffffff; --soft: #f4f6f9;
        --agree: #1e7d3a; --differ: #b5561b; --note: #2f5f9e; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--ink); background: var(--bg); }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 64px; }
h1 { font-size: 28px; margin: 8px 0 4px; }
h2 { font-size: 22px; margin: 40px 0 8px; padding-top: 12px; border-top: 2px solid var(--line); }
h3 { font-size: 17px; margin: 28px 0 6px; }
p.lead { color: var(--muted); margin-top: 0; }
nav ol { columns: 2; padding-left: 20px; }
.claim { background: var(--soft); border-left: 4px solid var(--note); padding: 8px 12px;
         margin: 8px 0 12px; }
.claim b { color: var(--note); }
.unavailable { background: #fff4e5; border-left: 4px solid var(--differ); padding: 8px 12px; }
.scroll { overflow-x: auto; margin: 8px 0 4px; }
table { border-collapse: collapse; font-size: 13px; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: var(--soft); }
td { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
td:first-child { font-family: inherit; }
p.note { color: var(--muted); font-size: 13px; margin: 2px 0 12px; }
figure { margin: 16px 0; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 13px; }
ul.findings { list-style: none; padding-left: 0; }
ul.findings li { margin: 6px 0; padding-left: 96px; text-indent: -96px; }
.badge { display: inline-block; width: 88px; text-indent: 0; text-align: center; font-size: 12px;
         border-radius: 4px; color: #fff; margin-right: 8px; padding: 1px 0; }
.badge.agrees { background: var(--agree); }
.badge.differs { background: var(--differ); }
.badge.measured { background: var(--note); }
pre { background: var(--soft); padding: 10px 12px; overflow-x: auto; font-size: 13px; }
pre.diff span { display: block; }
pre.diff .add { background: #dcf5e3; }
pre.diff .del { background: #fbe3df; }
pre.diff .hunk { color: var(--note); }
pre.diff .file { font-weight: 600; }
dl.settings { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px;
              font-size: 13px; color: var(--muted); }
dl.settings dt { font-weight: 600; }
dl.settings dd { margin: 0; }
footer { margin-top: 48px; color: var(--muted); font-size: 12px; }
"""

BADGE = {True: ("agrees", "agrees"), False: ("differs", "differs"), None: ("measured", "measured")}


def _table(table: Table) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in table.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in table.rows
    )
    note = f'<p class="note">{escape(table.note)}</p>' if table.note else ""
    return (
        f'<div class="scroll"><table><caption>{escape(table.title)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>{note}"
    )


def _figure(figure: Figure) -> str:
    data = base64.b64encode(figure.png).decode("ascii")
    return (
        f'<figure><img alt="{escape(figure.title)}" src="data:image/png;base64,{data}">'
        f"<figcaption><b>{escape(figure.title)}.</b> {escape(figure.caption)}</figcaption>"
        "</figure>"
    )


def _finding(finding: Finding) -> str:
    cls, label = BADGE[finding.agrees]
    title = {
        True: "the measurement bears out the seed's claim",
        False: "the measurement differs from the seed's claim",
        None: "a measurement (the seed made no claim here)",
    }[finding.agrees]
    return (
        f'<li><span class="badge {cls}" title="{escape(title)}">{label}</span>'
        f"{escape(finding.text)}</li>"
    )


def _part(part: Part, level: int = 3) -> str:
    out = [f'<h{level} id="{escape(part.key)}">{escape(part.title)}</h{level}>']
    if part.claim:
        out.append(f'<p class="claim"><b>The seed\'s claim:</b> {escape(part.claim)}</p>')
    if part.text:
        out.append(f"<p>{escape(part.text)}</p>")
    if part.findings:
        out.append('<ul class="findings">' + "".join(map(_finding, part.findings)) + "</ul>")
    out.extend(_figure(f) for f in part.figures)
    out.extend(_table(t) for t in part.tables)
    for code in part.code:
        out.append(f"<h4>{escape(code.title)}</h4>" + (_diff(code.text) if code.diff else
                   f"<pre><code>{escape(code.text)}</code></pre>"))  # fmt: skip
    return "\n".join(out)


DIFF_CLASSES = (("+++", "file"), ("---", "file"), ("@@", "hunk"), ("+", "add"), ("-", "del"))


def _diff(text: str) -> str:
    """A unified diff with each line marked: added, removed, hunk header, file header."""
    lines = []
    for line in text.splitlines():
        cls = next((c for prefix, c in DIFF_CLASSES if line.startswith(prefix)), "same")
        lines.append(f'<span class="{cls}">{escape(line) or " "}</span>')
    return f'<pre class="diff"><code>{"".join(lines)}</code></pre>'


def _section(section: Section) -> str:
    out = [f'<section id="{escape(section.key)}"><h2>{escape(section.title)}</h2>']
    if section.intro:
        out.append(f'<p class="lead">{escape(section.intro)}</p>')
    if section.unavailable:
        out.append(f'<p class="unavailable">Not included: {escape(section.unavailable)}</p>')
    out.extend(_part(p) for p in section.parts)
    if section.seconds:
        out.append(f'<p class="note">Section computed in {section.seconds:.1f} s.</p>')
    out.append("</section>")
    return "\n".join(out)


def _contents(report: Report) -> str:
    items = []
    for s in report.sections:
        sub = "".join(f'<li><a href="#{escape(p.key)}">{escape(p.title)}</a></li>' for p in s.parts)
        sub = f"<ul>{sub}</ul>" if sub else ""
        items.append(f'<li><a href="#{escape(s.key)}">{escape(s.title)}</a>{sub}</li>')
    return f"<nav><h2>Contents</h2><ol>{''.join(items)}</ol></nav>"


def _tally(report: Report) -> str:
    findings = [f for s in report.sections for p in s.parts for f in p.findings]
    agree = sum(f.agrees is True for f in findings)
    differ = sum(f.agrees is False for f in findings)
    return (
        f'<p>{len(findings)} findings: <span class="badge agrees">agrees</span>{agree} bear out '
        f'a seed\'s claim, <span class="badge differs">differs</span>{differ} contradict one; '
        "the rest are measurements. Every finding is computed from the numbers below it.</p>"
    )


def _overview(report: Report) -> str:
    rows = tuple(
        (s.title, f"{s.seconds:.1f} s", s.headline or ("not included" if s.unavailable else ""))
        for s in report.sections
    )
    return _table(Table("At a glance", ("section", "time", "result"), rows))


def render(report: Report) -> str:
    """The whole report as an HTML string."""
    settings = "".join(
        f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in report.settings.items()
    )
    body = "\n".join(_section(s) for s in report.sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(report.title)}</title><style>{STYLE}</style></head>"
        f"<body><main><h1>{escape(report.title)}</h1>"
        '<p class="lead">softmax, log_softmax, logsumexp, nll_loss and cross_entropy: the '
        "seeds' claims reproduced on real data, the accuracy audit, a benchmark and the linter."
        f'</p><dl class="settings">{settings}</dl>{_overview(report)}{_tally(report)}'
        f"{_contents(report)}\n{body}"
        "<footer>Generated by <code>logmax report</code>. This file is self-contained: no "
        "script, no external style or image.</footer></main></body></html>\n"
    )
