"""Plain result types shared by the study and the report that presents it.

A ``Finding`` is one computed conclusion: its text is produced from measured numbers, and
``agrees`` records whether the measurement agrees with what the seed claimed (``None`` where the
seed made no claim). A ``Table`` is rows of already formatted cells, so the terminal and the HTML
report print exactly the same strings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Finding:
    text: str
    agrees: bool | None = None

    @property
    def verdict(self) -> str:
        return {True: "agrees with the seed", False: "differs from the seed", None: "measured"}[
            self.agrees
        ]


@dataclass(frozen=True)
class Table:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""


@dataclass(frozen=True)
class Figure:
    title: str
    png: bytes
    caption: str = ""


@dataclass(frozen=True)
class Code:
    """A code listing; ``diff``: the text is a unified diff (shown with its lines marked)."""

    title: str
    text: str
    diff: bool = False


@dataclass
class Part:
    """One titled piece of a report: the seed's claim (if any), text, tables, figures, code
    listings and findings."""

    key: str
    title: str
    claim: str = ""
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    text: str = ""
    code: list[Code] = field(default_factory=list)


def fmt(value: float, digits: int = 17) -> str:
    """Format a float the way Python prints ``tensor.item()``: shortest repr of the double.

    A float32 value is shown as the double it converts to (``0.42298611998558044``), so two
    results print alike exactly when they are the same number.
    """
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if digits >= 17:
        return repr(value)
    return f"{value:.{digits}g}"


def fmt_row(values: np.ndarray | list[float], digits: int = 17) -> str:
    return "[" + ", ".join(fmt(v, digits) for v in np.asarray(values, dtype=np.float64)) + "]"


def fmt_ulp(ulps: float) -> str:
    if math.isinf(ulps):
        return "inf"
    if math.isnan(ulps):
        return "nan"
    return f"{ulps:.2f}" if ulps < 100 else f"{ulps:.3g}"
