"""Figures of the report's own sections (the study's are in :mod:`logmax.study.figures`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure as MplFigure
from matplotlib.ticker import FuncFormatter

from logmax.study.figures import _color, _png
from logmax.study.results import Figure

TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)


def speedup_figure(rows: list[Any]) -> Figure:
    """Bars of each implementation's speed relative to torch, per op and case (log scale)."""
    cases = list(dict.fromkeys((r.op, r.shape, r.dtype) for r in rows))
    impls = [i for i in dict.fromkeys(r.impl for r in rows) if i != "torch"]
    fig = MplFigure(figsize=(8.5, 0.6 + 0.55 * len(cases) * max(len(impls), 1) / 1.5))
    ax = fig.subplots()
    height = 0.8 / max(len(impls), 1)
    y = np.arange(len(cases))
    for i, impl in enumerate(impls):
        values = []
        for case in cases:
            match = [r for r in rows if (r.op, r.shape, r.dtype) == case and r.impl == impl]
            values.append(match[0].speedup_vs_torch if match else np.nan)
        ax.barh(y + i * height, values, height=height, color=_color(i), label=impl)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks(y + height * (len(impls) - 1) / 2)
    ax.set_yticklabels([f"{op} {shape} {dtype}" for op, shape, dtype in cases], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    low, high = ax.get_xlim()
    ax.set_xticks([t for t in TICKS if low <= t <= high])
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.set(xlabel="speed relative to torch (torch time / time; above 1: faster)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return Figure(
        "Speed relative to torch",
        _png(fig),
        "Median of interleaved repeats in one process; the black line is torch.",
    )
