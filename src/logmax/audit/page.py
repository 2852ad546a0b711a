"""Write an audit's results: ``audit.json`` and a self-contained ``audit.html``.

The page holds the summary table (max / p99 ULPs and non-finite failures per op x implementation
x dtype, coloured against the bound), the figures as embedded PNGs, every case with its reason,
the cases where logmax misses its bound, and the implementations that were not available. Nothing
is fetched from elsewhere: no script, no stylesheet, no image link.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logmax.audit import metric

if TYPE_CHECKING:
    from logmax.audit.runner import AuditResult

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; font-size: 13px; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
td.num { text-align: right; font-family: ui-monospace, monospace; }
td.ok { background: #e8f5e9; } td.bad { background: #ffebee; } td.na { color: #999; }
tr.ours td:first-child, tr.ours td:nth-child(2) { font-weight: bold; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
code { background: #f4f4f4; padding: 0 3px; }
"""


def write_outputs(
    result: AuditResult, out_dir: str | Path, figures: bool = True
) -> dict[str, Path]:
    """Write ``audit.json`` and ``audit.html`` into ``out_dir`` (created); return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "audit.json"
    json_path.write_text(json.dumps(result.to_json(), indent=1))
    html_path = out / "audit.html"
    html_path.write_text(render_html(result, figures=figures))
    return {"json": json_path, "html": html_path}


def render_html(result: AuditResult, figures: bool = True) -> str:
    """The audit page as one HTML string."""
    e = html.escape
    quick = " — quick run" if result.quick else ""
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>logmax audit</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>logmax audit: error in ULPs against the certified reference</h1>",
        "<p>Every output of every case is compared with its exact value, certified with ball "
        "arithmetic and correctly rounded to the format. Error = |computed − exact| / ulp(exact). "
        "Promise: ≤ 1 ULP for float16, bfloat16, float32 and ≤ 2 ULP for float64. "
        "Cells: <b>max / 99th percentile</b> of the finite errors; <b>!n</b>: n non-finite "
        "failures (NaN or ±inf where the exact value is finite, or the reverse).</p>",
        f"<p>{len(result.cases)} cases, ops {e(', '.join(result.ops))}, dtypes "
        f"{e(', '.join(result.dtypes))}; {result.seconds:.0f} s "
        f"(reference {result.reference_seconds:.0f} s){quick}.</p>",
        _table(result),
        _failures(result),
    ]
    if figures:
        from logmax.audit.figures import figure_error_vs_alpha, figure_loss_vs_margin, png_base64

        parts.append("<h2>Seed 002: error versus alpha</h2>")
        for op in ("log_softmax", "softmax"):
            if op in result.ops:
                parts.append(_img(png_base64(figure_error_vs_alpha(result, op)), op))
        if "cross_entropy" in result.ops:
            parts.append("<h2>Confident predictions: loss error versus margin</h2>")
            parts.append(_img(png_base64(figure_loss_vs_margin(result)), "loss vs margin"))
    parts.append("<h2>Cases</h2><table><tr><th>case</th><th>why it is here</th></tr>")
    parts += [
        f"<tr><td><code>{e(n)}</code></td><td>{e(r)}</td></tr>" for n, r in result.cases.items()
    ]
    parts.append("</table>")
    if result.skipped:
        parts.append("<h2>Not measured</h2><ul>")
        parts += [f"<li><b>{e(k)}</b>: {e(v)}</li>" for k, v in result.skipped.items()]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _img(b64: str, alt: str) -> str:
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{b64}'>"


def _table(result: AuditResult) -> str:
    cells = {(c["op"], c["impl"], c["dtype"]): c for c in result.summary()}
    head = "".join(f"<th>{html.escape(d)} (≤ {metric.BOUNDS[d]:g})</th>" for d in result.dtypes)
    rows = [f"<table><tr><th>op</th><th>implementation</th>{head}</tr>"]
    for op in result.ops:
        for impl in result.impls:
            tds = [_td(cells.get((op, impl, d))) for d in result.dtypes]
            if all("na" in t for t in tds):
                continue
            cls = " class='ours'" if impl.startswith("logmax") else ""
            rows.append(f"<tr{cls}><td>{op}</td><td>{html.escape(impl)}</td>{''.join(tds)}</tr>")
    rows.append("</table>")
    return "\n".join(rows)


def _td(c: dict[str, Any] | None) -> str:
    if c is None or c["status"] != "ok":
        why = "" if c is None else html.escape(c["status"])
        return f"<td class='na' title='{why}'>n/a</td>"
    cls = "ok" if c["within_bound"] else "bad"
    text = f"{_fmt(c['max_ulp'])} / {_fmt(c['p99_ulp'])}"
    if c["nonfinite"]:
        text += f" !{c['nonfinite']}"
    title = f"worst case: {c['worst_case']}; {c['cases']} cases, {c['n']} values"
    return f"<td class='num {cls}' title='{html.escape(title)}'>{text}</td>"


def _fmt(v: float | None) -> str:
    if v is None:
        return "–"
    return "0" if v == 0 else (f"{v:.2f}" if v < 100 else f"{v:.1e}")


def _failures(result: AuditResult) -> str:
    ours = [r for impl in result.impls if impl.startswith("logmax") for r in result.failures(impl)]
    if not ours:
        return "<p><b>logmax is within its bound on every case measured.</b></p>"
    rows = [
        "<h2>Where logmax misses its bound</h2><table><tr><th>implementation</th><th>op</th>"
        "<th>dtype</th><th>case</th><th>max ULP</th><th>non-finite</th><th>status</th></tr>"
    ]
    for r in ours:
        rows.append(
            f"<tr><td>{html.escape(r.impl)}</td><td>{r.op}</td><td>{r.dtype}</td>"
            f"<td>{html.escape(r.case)}</td><td class='num'>{_fmt(r.max_ulp)}</td>"
            f"<td class='num'>{r.nonfinite}</td><td>{html.escape(r.status)}</td></tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)
