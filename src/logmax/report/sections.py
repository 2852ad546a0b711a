"""The report's sections: the study, the accuracy audit, a quick benchmark and the lint demo.

Each function returns a :class:`~logmax.report.document.Section`. A tool that cannot be imported
(not installed, or not built yet) or that fails gives a section whose ``unavailable`` says why;
no number is ever shown that was not measured in this run.
"""

from __future__ import annotations

import difflib
import importlib
import time
import warnings
from collections.abc import Callable
from typing import Any

from logmax.report.document import Section
from logmax.study.progress import Progress, Silent
from logmax.study.results import Code, Finding, Part, Table, fmt_ulp


def _import(module: str, attribute: str) -> tuple[Any, str | None]:
    """``module.attribute`` or ``(None, why not)``."""
    try:
        return getattr(importlib.import_module(module), attribute), None
    except Exception as err:  # ImportError, AttributeError, or an error inside the module
        return None, f"{module}.{attribute} could not be imported ({type(err).__name__}: {err})"


def _timed(section: Section, build: Callable[[Section], None]) -> Section:
    """Run ``build(section)``; a failure becomes the section's ``unavailable`` reason."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # peers' overflow warnings are measured, not shown
        try:
            build(section)
        except ModuleNotFoundError as err:  # an optional package this section needs
            section.parts.clear()
            section.unavailable = (
                f"{err.name or err} is not installed (pip install 'logmax[report]')"
            )
        except Exception as err:  # a failing tool is reported, never papered over
            section.parts.clear()
            section.unavailable = f"it failed: {type(err).__name__}: {err}"
            section.failed = True
    section.seconds = time.perf_counter() - start
    if section.unavailable:
        section.headline = f"not included: {section.unavailable}"
    return section


# ---------------------------------------------------------------------------------------------
def examples_section(progress: Progress | None = None) -> Section:
    def build(section: Section) -> None:
        from logmax.study.worked_examples import all_examples

        (progress or Silent()).start("worked examples (seeds 000-003)", 1)
        section.parts.extend(all_examples())
        (progress or Silent()).advance()
        section.headline = _tally_line(section)

    return _timed(
        Section(
            "examples",
            "The seeds' worked examples",
            "Each seed's own numbers, recomputed: the seed's formulas, torch, logmax, and the "
            "exact value rounded to the format.",
        ),
        build,
    )


def study_section(quick: bool, progress: Progress | None = None) -> Section:
    def build(section: Section) -> None:
        from logmax.study.run import (
            QUICK_STUDY,
            StudyConfig,
            alpha_part,
            gradient_part,
            training_part,
        )

        config = QUICK_STUDY if quick else StudyConfig()
        p = progress or Silent()
        section.parts.append(training_part(config.train, config.include_logmax_torch, p))
        section.parts.append(gradient_part(config.margin_points, p))
        section.parts.append(alpha_part(config.alpha_points, p))
        section.headline = _tally_line(section)

    return _timed(
        Section(
            "study",
            "The study: the seeds' claims on real data",
            "scikit-learn's digits (shipped with scikit-learn, nothing downloaded), one small "
            "network trained with every head/loss pairing the seeds discuss; the penalty and "
            "gradient of each loss; seed 002's experiment swept against exact values.",
        ),
        build,
    )


def _tally_line(section: Section) -> str:
    findings = [f for p in section.parts for f in p.findings]
    agree = sum(f.agrees is True for f in findings)
    differ = sum(f.agrees is False for f in findings)
    return f"{len(findings)} findings: {agree} agree with the seeds, {differ} differ"


# ---------------------------------------------------------------------------------------------
def audit_section(quick: bool, progress: Progress | None = None) -> Section:
    """``logmax.audit.run_audit(quick=True)``, summarised: the largest error per op and dtype."""

    def build(section: Section) -> None:
        run_audit, why = _import("logmax.audit", "run_audit")
        if run_audit is None:
            section.unavailable = why
            return
        p = progress or Silent()
        p.start("accuracy audit (quick)", 1)
        options: dict[str, Any] = {"quick": True}
        if quick:
            options["dtypes"] = ["float32"]
        result = run_audit(**options)
        p.advance()
        section.parts.extend(_audit_parts(result))
        failures = result.failures("logmax")
        section.headline = (
            f"{len(result.records)} measurements in {result.seconds:.0f} s; logmax outside its "
            f"bound or raising in {len(failures)} case(s)"
        )

    return _timed(
        Section(
            "audit",
            "Accuracy audit",
            "Every implementation on the stress catalogue, measured in ULPs against a certified "
            "reference (quick sizes). Bounds: 1 ULP for float16, bfloat16 and float32, 2 ULP "
            "for float64.",
        ),
        build,
    )


def _cell(c: dict[str, Any] | None) -> str:
    if c is None:
        return "-"
    if c.get("status") != "ok":
        return "n/a"
    text = "-" if c.get("max_ulp") is None else fmt_ulp(c["max_ulp"])
    if c.get("nonfinite"):
        text += f" ({c['nonfinite']} non-finite)"
    if c.get("errors"):
        text += " (raised)"
    return text


def _audit_parts(result: Any) -> list[Part]:
    summary = result.summary()
    cells = {(c["op"], c["impl"], c["dtype"]): c for c in summary}
    rows = []
    for op in result.ops:
        for impl in result.impls:
            row = [op, impl] + [_cell(cells.get((op, impl, d))) for d in result.dtypes]
            if any(cells.get((op, impl, d)) for d in result.dtypes):
                rows.append(tuple(row))
    table = Table(
        "Largest error over the catalogue (ULPs of the exact value)",
        ("op", "implementation", *result.dtypes),
        tuple(rows),
        note="non-finite: NaN or inf where the exact value is finite (or the reverse)",
    )
    findings = []
    for impl in result.impls:
        mine = [c for c in summary if c["impl"] == impl and c.get("status") == "ok"]
        if not mine:
            continue
        inside = sum(bool(c.get("within_bound")) for c in mine)
        worst = max((c["max_ulp"] or 0.0 for c in mine), default=0.0)
        bad = sum(c.get("nonfinite") or 0 for c in mine)
        findings.append(
            Finding(
                f"{impl}: within the bound in {inside} of {len(mine)} op x dtype cells; largest "
                f"finite error {fmt_ulp(worst)} ULP; {bad} non-finite result(s)."
            )
        )
    for impl, why in sorted(result.skipped.items()):
        findings.append(Finding(f"{impl} not measured: {why}"))
    failures = result.failures("logmax")
    fail_rows = tuple(
        (r.case, r.op, r.dtype, fmt_ulp(r.max_ulp), str(r.nonfinite), r.status) for r in failures
    )
    parts = [
        Part(
            "audit-summary",
            "Audit summary",
            text=(
                f"{len(result.cases)} cases x {len(result.dtypes)} dtypes, "
                f"{len(result.records)} measurements in {result.seconds:.1f} s "
                f"(certified reference: {result.reference_seconds:.1f} s)."
            ),
            tables=[table],
            findings=findings,
        )
    ]
    if fail_rows:
        parts.append(
            Part(
                "audit-failures",
                "Where logmax misses its bound",
                tables=[
                    Table(
                        "logmax cases outside the bound",
                        ("case", "op", "dtype", "max ULP", "non-finite", "status"),
                        fail_rows,
                    )
                ],
            )
        )
    return parts


# ---------------------------------------------------------------------------------------------
QUICK_SMOKE_SHAPE = (256, 32000)  # rows x classes for the benchmark under ``--quick``


def bench_section(quick: bool, progress: Progress | None = None) -> Section:
    """``logmax.bench.run_bench(quick=True)``: logmax's speed relative to its peers."""

    def build(section: Section) -> None:
        run_bench, why = _import("logmax.bench", "run_bench")
        if run_bench is None:
            section.unavailable = why
            return
        p = progress or Silent()
        options: dict[str, Any] = {"quick": True}
        if quick:  # a smoke run: a smaller matrix than the benchmark's quick case
            options["shapes"] = [QUICK_SMOKE_SHAPE]
        p.start("benchmark (quick)", _bench_steps())
        result = run_bench(**options, progress=lambda _line: p.advance())
        section.parts.append(_bench_part(result))
        section.headline = section.parts[0].text

    return _timed(
        Section(
            "bench",
            "Quick benchmark",
            "logmax and its peers in one process, interleaved, median of repeats. Absolute "
            "times on a shared machine are noise; the ratios are the result.",
        ),
        build,
    )


def _bench_steps() -> int:
    """How many cases ``run_bench(quick=True)`` times (for the progress bar)."""
    try:
        from logmax.bench import OPS, QUICK_DTYPES, QUICK_SHAPES
    except ImportError:
        return 1
    return len(OPS) * len(QUICK_SHAPES) * len(QUICK_DTYPES)


def _bench_part(result: Any) -> Part:
    from logmax.bench import COLUMNS
    from logmax.report.figures import speedup_figure

    rows = list(result.rows)
    table = Table(
        f"Median of {result.repeats} interleaved repeats, {result.threads} thread(s)",
        COLUMNS,
        tuple(r.cells("1 (baseline)") for r in rows),
        note="vs torch: torch's time / this time (above 1: faster than torch); cpu: CPU time of "
        "the process, all threads (less sensitive to other users' load than wall time)",
    )
    tables = [table]
    if result.compile:
        tables.append(
            Table(
                "First call of each logmax kernel (compile, or load from Numba's cache)",
                ("op", "dtype", "seconds", "kind"),
                tuple((c.op, c.dtype, f"{c.first_call_s:.2f}", c.kind) for c in result.compile),
            )
        )
    findings = []
    for r in rows:
        if r.impl != "logmax":
            continue
        faster = r.speedup_vs_torch >= 1
        findings.append(
            Finding(
                f"{r.op} {r.shape} {r.dtype}: logmax takes {r.ms:.2f} ms against torch's "
                f"{r.ms * r.speedup_vs_torch:.2f} ms, "
                + (
                    f"{r.speedup_vs_torch:.2f}x faster."
                    if faster
                    else f"{1 / r.speedup_vs_torch:.2f}x SLOWER."
                )
            )
        )
    findings.extend(Finding(note) for note in result.notes)
    speeds = [r.speedup_vs_torch for r in rows if r.impl == "logmax"]
    text = (
        f"{len(rows)} timings; logmax against torch from {min(speeds):.2f}x to {max(speeds):.2f}x."
        if speeds
        else f"{len(rows)} timings."
    )
    figures = [speedup_figure(rows)] if any(r.impl != "torch" for r in rows) else []
    return Part(
        "bench-results",
        "Speed",
        text=text,
        tables=tables,
        figures=figures,
        findings=findings,
    )


# ---------------------------------------------------------------------------------------------
def lint_section(progress: Progress | None = None) -> Section:
    """``logmax.lint`` on a built-in example with the seeds' mistakes, and its ``--fix``."""

    def build(section: Section) -> None:
        lint_source, why = _import("logmax.lint", "lint_source")
        if lint_source is None:
            section.unavailable = why
            return
        from logmax.report.lint_demo import EXAMPLE, EXAMPLE_PATH

        p = progress or Silent()
        p.start("lint demo", 1)
        findings = lint_source(EXAMPLE, EXAMPLE_PATH)
        fixed, applied, left = _fixed(EXAMPLE, EXAMPLE_PATH)
        p.advance()
        rows = tuple(
            (
                f"{f.line}:{f.col}",
                f.code,
                f.message,
                getattr(f, "hint", ""),
                "yes" if getattr(f, "edit", None) is not None else "",
            )
            for f in findings
        )
        codes = sorted({f.code for f in findings})
        part = Part(
            "lint-demo",
            "The seeds' mistakes, found by logmax lint",
            text=(
                f"logmax lint reads the example below without running it and reports "
                f"{len(findings)} finding(s) with {len(codes)} different code(s): "
                f"{', '.join(codes)}."
            ),
            tables=[
                Table(
                    f"logmax lint {EXAMPLE_PATH}",
                    ("line:col", "code", "message", "fix", "auto-fix"),
                    rows,
                )
            ],
            code=[Code(EXAMPLE_PATH, EXAMPLE)],
        )
        if fixed is not None:
            diff = difflib.unified_diff(
                EXAMPLE.splitlines(keepends=True),
                fixed.splitlines(keepends=True),
                fromfile=f"a/{EXAMPLE_PATH}",
                tofile=f"b/{EXAMPLE_PATH}",
            )
            part.code.append(
                Code(
                    f"logmax lint --fix {EXAMPLE_PATH}: {applied} edit(s), as a diff; "
                    f"{left} finding(s) left for a person",
                    "".join(diff),
                    diff=True,
                )
            )
        section.parts.append(part)
        section.headline = f"{len(findings)} findings ({', '.join(codes)}) in the example"

    return _timed(
        Section(
            "lint",
            "Lint demo",
            "logmax lint finds softmax and log-softmax mistakes in Python files and notebooks.",
        ),
        build,
    )


def _fixed(text: str, path: str) -> tuple[str | None, int, int]:
    """The example after ``--fix`` (None if the linter has no fix API), edits applied, left."""
    fix, _ = _import("logmax.lint", "fix")
    source_cls, _ = _import("logmax.lint", "Source")
    if fix is None or source_cls is None:
        return None, 0, 0
    source = source_cls(path, text=text)
    left, applied = fix(source)
    return source.text, applied, len(left)
