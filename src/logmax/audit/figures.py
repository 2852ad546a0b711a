"""The audit's figures: error versus alpha (seed 002) and loss error versus margin.

Each function takes an :class:`~logmax.audit.runner.AuditResult` and returns a matplotlib
``Figure`` (built without pyplot, so no backend or global state is touched); :func:`png_base64`
turns one into the text of a self-contained ``<img>``.

Errors of 0 are drawn at the bottom of the axis and non-finite failures (NaN, inf where the true
value is finite) at the top, labelled, so that no point silently disappears from a log scale.
"""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from logmax.audit.runner import AuditResult

ALPHA_CASE = "seed002_alpha_sweep"
MARGIN_CASE = "confident_margins"
_STYLE = {"logmax": dict(lw=2.5, color="black", zorder=5)}


def _series(result: AuditResult, case: str, op: str, dtype: str, field: str):
    for rec in result.records:
        if (rec.case, rec.op, rec.dtype) == (case, op, dtype) and getattr(rec, field) is not None:
            yield rec.impl, np.asarray(rec.sweep), np.asarray(getattr(rec, field), dtype=float)


def _panel(ax, series, floor: float, ceiling: float, ylabel: str, xlabel: str, title: str) -> None:
    for impl, x, y in series:
        bad = ~np.isfinite(y)
        shown = np.clip(np.where(bad, ceiling, y), floor, ceiling)
        style = _STYLE.get(impl, dict(lw=1.3))
        ax.plot(x, shown, marker="o", ms=2.5, label=impl, **style)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(floor / 2, ceiling * 3)
    ax.axhline(ceiling, color="crimson", lw=0.8, ls=":")
    ax.text(0.01, 0.97, "non-finite", color="crimson", transform=ax.transAxes, va="top", fontsize=7)
    ax.text(0.01, 0.03, "0 drawn here", color="grey", transform=ax.transAxes, fontsize=7)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)


def _figure(n: int) -> tuple[Figure, list]:
    from matplotlib.figure import Figure

    cols = min(n, 2)
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(5.2 * cols, 3.6 * rows), layout="constrained")
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(n)]
    return fig, axes


def figure_error_vs_alpha(
    result: AuditResult, op: str = "log_softmax", dtypes: list[str] | None = None
) -> Figure:
    """Largest error (ULPs) in each row ``alpha * [-1, 0, 1]`` versus alpha, one panel per dtype.

    Seed 002: ``log(softmax(x))`` leaves the true values once ``exp(-2 alpha)`` underflows and
    returns ``-inf``; ``log_softmax`` should stay within 1 ULP for every alpha.
    """
    dtypes = [
        d for d in (dtypes or result.dtypes) if any(_series(result, ALPHA_CASE, op, d, "row_ulp"))
    ]
    fig, axes = _figure(max(len(dtypes), 1))
    for ax, dtype in zip(axes, dtypes, strict=False):
        _panel(
            ax,
            _series(result, ALPHA_CASE, op, dtype, "row_ulp"),
            1e-2,
            1e9,
            "error (ULPs)",
            "alpha",
            f"{op}, {dtype}",
        )
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    if dtypes:
        axes[0].legend(fontsize=7, loc="center left")
    fig.suptitle("seed 002: error versus alpha for x = alpha * [-1, 0, 1]", fontsize=11)
    return fig


def figure_loss_vs_margin(result: AuditResult, dtypes: list[str] | None = None) -> Figure:
    """Relative error of the cross-entropy of a confident correct row versus its margin.

    The true loss is about ``31 e^-margin``; an implementation computing ``lse - x_y`` returns 0
    once it falls below half an ULP of the logits (relative error 1), while logmax keeps every
    digit until the loss itself underflows the format. The dashed grey line is the error of the
    correctly rounded loss: the best any implementation can do in that format.
    """
    op = "cross_entropy"
    dtypes = [
        d for d in (dtypes or result.dtypes) if any(_series(result, MARGIN_CASE, op, d, "row_rel"))
    ]
    fig, axes = _figure(max(len(dtypes), 1))
    for ax, dtype in zip(axes, dtypes, strict=False):
        _panel(
            ax,
            _series(result, MARGIN_CASE, op, dtype, "row_rel"),
            1e-18,
            1e3,
            "relative error of the loss",
            "margin",
            f"cross-entropy, {dtype}",
        )
        best = result.best_rel.get((MARGIN_CASE, op, dtype))
        sweep = next(_series(result, MARGIN_CASE, op, dtype, "row_rel"))[1]
        if best is not None:
            floor = np.clip(np.asarray(best, dtype=float), 1e-18, 1e3)
            ax.plot(sweep, floor, color="grey", lw=1, ls="--", label="correctly rounded")
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")
        ax.text(1.05, 1.3, "loss lost entirely (0)", fontsize=7, color="grey")
    if dtypes:
        axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle("confident predictions: relative error of the loss versus margin", fontsize=11)
    return fig


def png_base64(fig: Figure, dpi: int = 110) -> str:
    """The figure as a base64 PNG (for ``<img src="data:image/png;base64,...">``)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return base64.b64encode(buf.getvalue()).decode("ascii")
