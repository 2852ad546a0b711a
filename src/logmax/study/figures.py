"""The study's figures, drawn with matplotlib's object API (no pyplot state) into PNG bytes."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure as MplFigure

from logmax.study.alpha_sweep import AlphaSweep
from logmax.study.gradients import GradientSweep, Penalty
from logmax.study.results import Figure
from logmax.study.training import Run

DPI = 110
PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#8c564b",
    "#17becf",
    "#e377c2",
)
STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def coinciding(curves: dict[str, np.ndarray], rtol: float = 1e-6) -> list[list[str]]:
    """Groups of two or more labels whose curves are equal to ``rtol`` (NaN equals NaN).

    Such curves draw on top of each other; :func:`_styles` staggers their markers so that each
    stays visible, and :func:`coincide_note` says in the caption which they are.

    Example:
        >>> coinciding({"a": np.ones(3), "b": np.ones(3), "c": np.zeros(3)})
        [['a', 'b']]
    """
    groups: list[list[str]] = []
    for label, y in curves.items():
        for group in groups:
            ref = curves[group[0]]
            if ref.shape == y.shape and np.allclose(y, ref, rtol=rtol, atol=0, equal_nan=True):
                group.append(label)
                break
        else:
            groups.append([label])
    return [g for g in groups if len(g) > 1]


def coincide_note(groups: list[list[str]]) -> str:
    """The caption's sentence naming the curves that coincide ('' when none do)."""
    if not groups:
        return ""
    named = "; ".join(" = ".join(g) for g in groups)
    return f" Identical curves, drawn on top of each other (their markers alternate): {named}."


def _styles(labels: list[str], groups: list[list[str]], points: int) -> dict[str, dict]:
    """Colour, line style and marker per label; coinciding curves get staggered markers."""
    spacing = max(1, points // 12)
    styles = {}
    for i, label in enumerate(labels):
        group = next((g for g in groups if label in g), [label])
        k, j = len(group), group.index(label)
        styles[label] = dict(
            color=_color(i),
            linestyle=STYLES[i % len(STYLES)],
            marker=MARKERS[i % len(MARKERS)],
            markersize=5,
            markevery=(j * spacing, k * spacing),
        )
    return styles


def _png(fig: MplFigure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def training_figure(runs: list[Run], target: float) -> Figure:
    """Test accuracy and training loss per epoch: mean over seeds, band from min to max."""
    fig = MplFigure(figsize=(11, 4.8), layout="constrained")
    acc_ax, loss_ax = fig.subplots(1, 2)
    labels = list(dict.fromkeys(r.pairing for r in runs))
    curves = {}
    for label in labels:
        group = [r for r in runs if r.pairing == label]
        acc = np.array([r.test_accuracy for r in group])
        loss = np.array([r.train_loss for r in group], dtype=np.float64)
        loss[~np.isfinite(loss)] = np.nan
        curves[label] = (acc, loss)
    epochs = np.arange(1, len(runs[0].test_accuracy) + 1)
    same = coinciding(
        {k: np.concatenate([a.mean(0), np.nanmean(lo, 0)]) for k, (a, lo) in curves.items()}
    )
    styles = _styles(labels, same, len(epochs))
    for i, label in enumerate(labels):
        acc, loss = curves[label]
        acc_ax.plot(epochs, acc.mean(0), label=label, linewidth=1.6, **styles[label])
        acc_ax.fill_between(epochs, acc.min(0), acc.max(0), color=_color(i), alpha=0.12)
        loss_ax.plot(epochs, np.nanmean(loss, 0), label=label, linewidth=1.6, **styles[label])
    acc_ax.axhline(target, color="grey", linewidth=0.8, linestyle="--")
    acc_ax.set(xlabel="epoch", ylabel="test accuracy", title="Test accuracy (digits)")
    acc_ax.set_ylim(0, 1.01)
    loss_ax.set(xlabel="epoch", ylabel="training loss (each pairing's own)", title="Training loss")
    loss_ax.set_yscale("log")
    handles, names = acc_ax.get_legend_handles_labels()
    fig.legend(handles, names, fontsize=8, loc="outside lower center", ncol=4)
    seeds = len({r.seed for r in runs})
    return Figure(
        "Training the same network with each head/loss pairing",
        _png(fig),
        f"Mean over {seeds} seed(s); the band spans the seeds' minimum to maximum. The dashed "
        f"line is the {target:.0%} accuracy mark." + coincide_note(same),
    )


def penalty_figure(cases: list[Penalty]) -> Figure:
    """``1 - p``, ``(1 - p)^2`` and ``-ln p`` against the probability of the true class."""
    fig = MplFigure(figsize=(6.5, 4.2))
    ax = fig.subplots()
    p = np.linspace(0.01, 1.0, 400)
    ax.plot(p, 1 - p, label="likelihood (L1): 1 - p", color=_color(0))
    ax.plot(p, (1 - p) ** 2, label="squared error: (1 - p)^2", color=_color(4), linestyle=":")
    ax.plot(p, -np.log(p), label="log-likelihood: -ln p", color=_color(1), linestyle="--")
    for case in cases:
        ax.plot([case.p, case.p], [case.l1, case.nll], color="grey", linewidth=0.8)
        ax.scatter([case.p, case.p], [case.l1, case.nll], color="black", zorder=3, s=14)
        ax.annotate(
            f"p={case.p}: {case.l1:.3g} vs {case.nll:.3g}",
            (case.p, case.nll),
            textcoords="offset points",
            xytext=(6, 6),
            fontsize=8,
        )
    ax.set(xlabel="probability p of the true class", ylabel="penalty", title="Seed 000's penalty")
    ax.set_ylim(0, 3)
    ax.legend(fontsize=8)
    return Figure(
        "Penalty against the probability of the true class",
        _png(fig),
        "The dots are seed 000's two cases.",
    )


def gradient_figure(sweep: GradientSweep, nonfinite_from: GradientSweep | None = None) -> Figure:
    """``||dL/dz||`` against the logit margin, log scale.

    Lines come from ``sweep``; crosses mark the margins where ``nonfinite_from`` (by default
    ``sweep`` itself, typically the float32 run) gave a NaN or infinite gradient.
    """
    marks = nonfinite_from or sweep
    fig = MplFigure(figsize=(8.5, 4.4))
    ax = fig.subplots()
    finite_all = np.concatenate([v[np.isfinite(v) & (v > 0)] for v in sweep.norms.values()])
    top = float(finite_all.max()) * 10 if finite_all.size else 10.0
    shown = {
        label: np.where(np.isfinite(norms) & (norms > 0), norms, np.nan)  # gaps: 0 or NaN
        for label, norms in sweep.norms.items()
    }
    same = coinciding(shown)
    styles = _styles(list(shown), same, len(sweep.margins))
    for i, (label, norms) in enumerate(shown.items()):
        ax.plot(sweep.margins, norms, label=label, linewidth=1.5, **styles[label])
        bad = ~np.isfinite(marks.norms[label])
        if bad.any():
            ax.scatter(
                sweep.margins[bad],
                np.full(bad.sum(), top),
                marker="x",
                color=_color(i),
                s=18,
                label=f"{label}: {marks.dtype} gradient NaN/inf",
            )
    ax.set_yscale("log")
    ax.set(
        xlabel="logit margin m = z_true - max z_other",
        ylabel="||dL/dz||",
        title=f"Gradient of each loss, {sweep.classes} classes ({sweep.dtype})",
    )
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return Figure(
        "Gradient against the logit margin (seed 003's saturated softmax)",
        _png(fig),
        "Left of 0 the network is confidently wrong. A curve that falls towards 0 there is a "
        "vanishing gradient (where a curve stops, the gradient is exactly 0); crosses at the "
        f"top mark margins where the {marks.dtype} gradient is NaN or inf." + coincide_note(same),
    )


def alpha_figure(sweep: AlphaSweep) -> Figure:
    """Seed 002's sweep: the smallest log-probability and the largest ULP error against alpha."""
    fig = MplFigure(figsize=(12, 4.2))
    value_ax, err_ax = fig.subplots(1, 2)
    value_ax.plot(
        sweep.alphas, sweep.exact_smallest, color="black", linewidth=3, alpha=0.3, label="exact"
    )
    finite_errors = np.concatenate([e[np.isfinite(e)] for e in sweep.errors.values()])
    err_top = max(float(finite_errors.max()), 1.0) * 30 if finite_errors.size else 1e3
    labels = list(sweep.errors)
    same = coinciding(
        {k: np.concatenate([sweep.smallest(k), np.maximum(sweep.errors[k], 1e-3)]) for k in labels}
    )
    styles = _styles(labels, same, len(sweep.alphas))
    for i, label in enumerate(labels):
        style = dict(linewidth=1.5, **styles[label])
        values = sweep.smallest(label)
        ok = np.isfinite(values)
        value_ax.plot(sweep.alphas[ok], values[ok], label=label, **style)
        if (~ok).any():
            value_ax.scatter(
                sweep.alphas[~ok], np.full((~ok).sum(), 0.0), marker="x", color=_color(i), s=18
            )
        errors = np.maximum(sweep.errors[label], 1e-3)  # exact results drawn at the floor
        finite = np.isfinite(errors)
        err_ax.plot(sweep.alphas[finite], errors[finite], label=label, **style)
        if (~finite).any():
            err_ax.scatter(
                sweep.alphas[~finite],
                np.full((~finite).sum(), err_top),
                marker="x",
                color=_color(i),
                s=18,
            )
    value_ax.set(xlabel="alpha", ylabel="log_softmax(x)[0]", title="Smallest log-probability")
    value_ax.set_xscale("log")
    err_ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    err_ax.set(
        xlabel="alpha", ylabel="largest error (float32 ULPs)", title="Error against the exact value"
    )
    err_ax.set_xscale("log")
    err_ax.set_yscale("log")
    err_ax.axhline(1, color="grey", linewidth=0.8, linestyle="--")
    return Figure(
        "log_softmax(alpha * [-1, 0, 1]) in float32",
        _png(fig),
        "Crosses mark -inf results (left: drawn at 0; right: at the top). The dashed line is "
        "1 ULP; exact results are drawn at 0.001 ULP." + coincide_note(same),
    )
