"""Run the catalogue through every implementation and measure each against the reference.

For each case and dtype the reference is certified once per op (:mod:`logmax.audit.reference`),
then every implementation runs on the same cast inputs and its error is measured in ULPs
(:func:`logmax.audit.metric.ulp_error`). The result keeps, per op x implementation x dtype, the
maximum and 99th percentile of the finite errors and the count of non-finite failures, and per case
the same figures (with per-row errors for the sweeps the figures plot).

Example:
    >>> from logmax.audit import run_audit
    >>> result = run_audit(ops=["log_softmax"], dtypes=["float32"], impls=["logmax"],
    ...                    cases=["seed002_alpha_sweep"], quick=True)
    >>> row = result.summary()[0]
    >>> row["impl"], row["max_ulp"] <= 0.5
    ('logmax', True)
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from logmax.audit import catalogue, metric, reference, registry
from logmax.audit.catalogue import OPS, Case, CaseData
from logmax.audit.formats import FORMATS
from logmax.audit.reference import Exact

DTYPES: tuple[str, ...] = tuple(FORMATS)


@dataclass
class CaseResult:
    """One case, op, implementation and dtype."""

    case: str
    op: str
    impl: str
    dtype: str
    status: str  # "ok", "n/a: why", "error: message"
    n: int = 0
    max_ulp: float = float("nan")  # over the finite errors
    p99_ulp: float = float("nan")
    nonfinite: int = 0
    sweep: list[float] | None = None  # the case's x axis, one value per row
    row_ulp: list[float] | None = None  # per row: the largest error in that row
    row_rel: list[float] | None = None  # per row (losses with one value per row): relative error

    @property
    def measured(self) -> bool:
        return self.status == "ok"

    def within(self, bound: float) -> bool:
        return self.measured and self.nonfinite == 0 and not self.max_ulp > bound


@dataclass
class AuditResult:
    """Everything an audit measured; :meth:`summary` gives the table."""

    records: list[CaseResult]
    ops: list[str]
    dtypes: list[str]
    impls: list[str]
    skipped: dict[str, str]  # implementations not available, with the reason
    cases: dict[str, str]  # case name -> reason
    seconds: float = 0.0
    reference_seconds: float = 0.0
    quick: bool = False
    errors: dict[tuple[str, str, str], np.ndarray] = field(default_factory=dict, repr=False)
    # (case, op, dtype) -> relative error of the correctly rounded value, per row of a sweep:
    # the best any implementation can do in that format (the loss may underflow it)
    best_rel: dict[tuple[str, str, str], list[float]] = field(default_factory=dict, repr=False)

    def summary(self) -> list[dict[str, Any]]:
        """Per op x implementation x dtype: max and p99 ULP, non-finite failures, the worst case.

        ``status`` is ``'ok'`` when measured on at least one case, else why not (``n/a``).
        ``within_bound`` compares with :data:`logmax.audit.metric.BOUNDS`.
        """
        rows = []
        for op in self.ops:
            for impl in self.impls:
                for dtype in self.dtypes:
                    recs = [r for r in self.records if (r.op, r.impl, r.dtype) == (op, impl, dtype)]
                    if not recs:
                        continue
                    rows.append(self._cell(op, impl, dtype, recs))
        return rows

    def _cell(self, op: str, impl: str, dtype: str, recs: list[CaseResult]) -> dict[str, Any]:
        done = [r for r in recs if r.measured]
        errs = self.errors.get((op, impl, dtype))
        cell: dict[str, Any] = {
            "op": op,
            "impl": impl,
            "dtype": dtype,
            "cases": len(done),
            "cases_skipped": len(recs) - len(done),
        }
        bound = metric.BOUNDS[dtype]
        if not done or errs is None:
            reasons = sorted({r.status for r in recs})
            cell.update(
                status=reasons[0] if reasons else "n/a",
                max_ulp=None,
                p99_ulp=None,
                nonfinite=None,
                n=0,
                within_bound=None,
                worst_case=None,
            )
            return cell
        finite = errs[np.isfinite(errs)]
        worst = max(done, key=lambda r: (r.nonfinite > 0, np.nan_to_num(r.max_ulp, nan=-1)))
        cell.update(
            status="ok",
            n=int(errs.size),
            max_ulp=float(finite.max()) if finite.size else None,
            p99_ulp=float(np.percentile(finite, 99)) if finite.size else None,
            nonfinite=int(errs.size - finite.size),
            within_bound=all(r.within(bound) for r in done),
            worst_case=worst.case,
            errors=sorted({r.status for r in recs if r.status.startswith("error")}),
        )
        return cell

    def failures(self, impl: str = "logmax") -> list[CaseResult]:
        """Cases where ``impl`` exceeds the bound, has non-finite failures or raised."""
        out = []
        for r in self.records:
            if r.impl != impl:
                continue
            if r.status.startswith("error") or (
                r.measured and not r.within(metric.BOUNDS[r.dtype])
            ):
                out.append(r)
        return out

    def table(self) -> str:
        """The summary as aligned text: op, implementation, then per dtype ``max / p99 [!n]``."""
        cells = {(c["op"], c["impl"], c["dtype"]): c for c in self.summary()}
        header = ["op", "implementation", *self.dtypes]
        lines = [header]
        for op in self.ops:
            for impl in self.impls:
                row = [op, impl]
                seen = False
                for dtype in self.dtypes:
                    c = cells.get((op, impl, dtype))
                    row.append(_cell_text(c))
                    seen |= c is not None and c["status"] == "ok"
                if seen:
                    lines.append(row)
        widths = [max(len(r[i]) for r in lines) for i in range(len(header))]
        text = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in lines]
        text.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(text)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: settings, the summary, every case record, skipped implementations."""
        return {
            "ops": self.ops,
            "dtypes": self.dtypes,
            "impls": self.impls,
            "quick": self.quick,
            "seconds": round(self.seconds, 2),
            "reference_seconds": round(self.reference_seconds, 2),
            "bounds_ulp": metric.BOUNDS,
            "skipped_implementations": self.skipped,
            "cases": self.cases,
            "summary": [_jsonable(c) for c in self.summary()],
            "records": [_jsonable(vars(r)) for r in self.records],
            "best_relative_error": [
                {"case": c, "op": o, "dtype": d, "row_rel": _jsonable(v)}
                for (c, o, d), v in self.best_rel.items()
            ],
        }


def _cell_text(c: dict[str, Any] | None) -> str:
    if c is None:
        return "-"
    if c["status"] != "ok":
        return "n/a" if c["status"].startswith("n/a") else "error"
    text = f"{_num(c['max_ulp'])} / {_num(c['p99_ulp'])}"
    if c["nonfinite"]:
        text += f" !{c['nonfinite']}"
    if c["errors"]:
        text += " (err)"
    return text


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    if v == 0:
        return "0"
    if v < 100:
        return f"{v:.2f}"
    return f"{v:.1e}"


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if np.isfinite(v) else str(v)
    if isinstance(obj, (np.integer, np.bool_)):
        return obj.item()
    return obj


# ---------------------------------------------------------------------------------------------
def exact_for(
    op: str, data: CaseData, logits: dict[tuple, reference.Logits] | None = None
) -> Exact:
    """The certified reference of ``op`` on a case's inputs (``logits`` caches shared rows)."""
    o = data.options_for(op)
    if op == "nll_loss":
        return reference.nll_loss(data.x, data.target, **o)
    weighted = op == "logsumexp" and ("b" in o or bool(o.get("return_sign")))
    key = (o.get("temperature", 1.0), o.get("softcap"), weighted)
    lg = None if logits is None else logits.get(key)
    if lg is None:
        b = o.get("b")
        if b is None and weighted:
            b = np.ones(data.x.shape)
        lg = reference.Logits(
            data.x,
            where=o.get("where"),
            temperature=o.get("temperature", 1.0),
            softcap=o.get("softcap"),
            b=b,
        )
        if logits is not None:
            logits[key] = lg
    if op == "cross_entropy":
        return lg.cross_entropy(
            data.target,
            o.get("weight"),
            o.get("ignore_index", -100),
            o.get("reduction", "mean"),
            o.get("label_smoothing", 0.0),
            o.get("z_loss", 0.0),
        )
    return getattr(lg, op)()


def measure(out: Any, exact: Exact, op: str, options: dict[str, Any]) -> np.ndarray:
    """ULP errors of an implementation's output (``(lse, sign)`` with ``return_sign``)."""
    if op == "logsumexp" and options.get("return_sign"):
        lse, sign = out
        err = metric.ulp_error(np.asarray(lse), exact)
        return np.where(metric.sign_mismatch(sign, exact), np.inf, err)
    return metric.ulp_error(np.asarray(out), exact)


def _row_errors(err: np.ndarray) -> np.ndarray:
    return err.reshape(err.shape[0], -1).max(axis=1) if err.ndim >= 1 else err.reshape(1)


def run_audit(
    ops: Iterable[str] | None = None,
    dtypes: Iterable[str] | None = None,
    impls: Iterable[str] | None = None,
    cases: Iterable[str] | None = None,
    quick: bool = False,
    progress: bool = False,
) -> AuditResult:
    """Run the catalogue (or the named ``cases``) for ``ops`` x ``impls`` x ``dtypes``.

    Args:
        ops: subset of :data:`logmax.audit.catalogue.OPS` (default all).
        dtypes: subset of ``float16, bfloat16, float32, float64`` (default all).
        impls: implementation names (default every registered one that is installed).
        cases: case names (default the whole catalogue).
        quick: smaller sizes for the large cases (2^14 classes instead of 2^18, shorter sweeps).
        progress: show a progress bar (rich) on the terminal.

    Returns:
        An :class:`AuditResult`.
    """
    start = time.perf_counter()
    ops = list(ops or OPS)
    dtypes = list(dtypes or DTYPES)
    for name, allowed in (("op", OPS), ("dtype", DTYPES)):
        bad = sorted(set(ops if name == "op" else dtypes) - set(allowed))
        if bad:
            raise ValueError(f"unknown {name}(s) {bad}; expected some of {', '.join(allowed)}")
    found, skipped = registry.load(list(impls) if impls is not None else None)
    chosen = catalogue.cases(list(cases) if cases is not None else None, ops)
    result = AuditResult(
        [], ops, dtypes, list(found), skipped, {c.name: c.reason for c in chosen}, quick=quick
    )
    collected: dict[tuple[str, str, str], list[np.ndarray]] = {}
    steps = [(c, d) for c in chosen for d in dtypes]
    with _Progress(len(steps), progress) as bar:
        for case, dtype in steps:
            bar.describe(f"{case.name} [{dtype}]")
            data = case.inputs(dtype, quick)
            logits: dict[tuple, reference.Logits] = {}
            for op in [o for o in case.ops if o in ops]:
                t1 = time.perf_counter()
                exact = exact_for(op, data, logits)
                result.reference_seconds += time.perf_counter() - t1
                if data.sweep is not None and exact.shape == data.sweep.shape:
                    best = metric.relative_error(exact.rounded, exact)
                    result.best_rel[(case.name, op, dtype)] = [float(v) for v in best]
                for impl in found.values():
                    rec, err = _run_one(case, data, op, impl, dtype, exact)
                    result.records.append(rec)
                    if err is not None:
                        collected.setdefault((op, impl.name, dtype), []).append(err.ravel())
            bar.advance()
    result.errors = {k: np.concatenate(v) for k, v in collected.items()}
    result.seconds = time.perf_counter() - start
    return result


def _run_one(
    case: Case, data: CaseData, op: str, impl: registry.Implementation, dtype: str, exact: Exact
) -> tuple[CaseResult, np.ndarray | None]:
    """Run one implementation on one case; the record and the errors (None if not measured)."""
    rec = CaseResult(case.name, op, impl.name, dtype, "ok")
    fn = impl.ops.get(op)
    if fn is None:
        rec.status = "n/a: no such op"
        return rec, None
    options = data.options_for(op)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")  # peers warn about the overflows being measured
            out = fn(data.x, data.target, **options)
        err = measure(out, exact, op, options)
    except registry.Unsupported as exc:
        rec.status = f"n/a: {exc}"
        return rec, None
    except Exception as exc:  # a peer failing on an input is a result, not a crash
        rec.status = f"error: {type(exc).__name__}: {exc}"
        return rec, None
    finite = err[np.isfinite(err)]
    rec.n = int(err.size)
    rec.nonfinite = int(err.size - finite.size)
    rec.max_ulp = float(finite.max()) if finite.size else float("nan")
    rec.p99_ulp = float(np.percentile(finite, 99)) if finite.size else float("nan")
    if data.sweep is not None:
        rec.sweep = [float(v) for v in data.sweep]
        rec.row_ulp = [float(v) for v in _row_errors(err)]
        if err.ndim == 1 and err.shape[0] == len(data.sweep):
            rel = metric.relative_error(np.asarray(out), exact)
            rec.row_rel = [float(v) for v in rel]
    return rec, err


class _Progress:
    """A rich progress bar when asked for and available; otherwise nothing."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled, self.bar, self.task = total, enabled, None, None

    def __enter__(self) -> _Progress:
        if self.enabled:
            try:
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    Progress,
                    TextColumn,
                    TimeElapsedColumn,
                )
            except ImportError:
                return self
            self.bar = Progress(
                TextColumn("audit"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.description}"),
                transient=True,
            )
            self.bar.__enter__()
            self.task = self.bar.add_task("", total=self.total)
        return self

    def describe(self, description: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, description=description)

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=1)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)
