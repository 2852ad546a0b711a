"""Seed 002's experiment, swept densely: ``log_softmax(alpha * [-1, 0, 1])`` in float32.

Methods (see :func:`logmax.study.worked_examples.alpha_methods`): the naive
``torch.log(torch.softmax(x))``, ``torch.log_softmax``, ``logmax.log_softmax``, all in float32,
and the seed's proposed reference, the naive formula in float64. Each is scored against the exact
value (the audit's certified reference, :mod:`logmax.audit.reference`) in float32 ULPs; the
float64 reference is scored after rounding it to float32, i.e. as a reference for float32
results.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from logmax.study.progress import Progress, Silent
from logmax.study.worked_examples import alpha_methods, alpha_row, max_ulp_error


def default_alphas(points: int = 48) -> tuple[float, ...]:
    """Alphas from 1 to 3000, evenly spaced in log scale, as float32 integers where possible."""
    return tuple(float(a) for a in np.unique(np.round(np.geomspace(1.0, 3000.0, points))))


@dataclass(frozen=True)
class AlphaSweep:
    alphas: np.ndarray
    errors: dict[str, np.ndarray]  # method -> largest float32 ULP error per alpha (inf: -inf/NaN)
    values: dict[str, np.ndarray]  # method -> computed log_softmax(x), shape (alphas, 3)
    exact: np.ndarray  # exact log_softmax(x) rounded to float32, shape (alphas, 3)
    unavailable: dict[str, str]  # method -> why it could not be run

    def first_failure(self, method: str) -> float | None:
        """Smallest alpha where ``method`` returned a non-finite value."""
        bad = self.alphas[np.isinf(self.errors[method])]
        return float(bad.min()) if bad.size else None

    @property
    def exact_smallest(self) -> np.ndarray:
        return self.exact[:, 0]

    def smallest(self, method: str) -> np.ndarray:
        return self.values[method][:, 0]

    def worst_entry(self, method: str) -> tuple[float, float, float]:
        """(alpha, computed, exact rounded) of the entry with the largest finite error."""
        errors = np.where(np.isfinite(self.errors[method]), self.errors[method], -1.0)
        i = int(np.argmax(errors))
        computed = self.values[method][i]
        j = int(np.argmax(np.abs(computed - self.exact[i])))
        return float(self.alphas[i]), float(computed[j]), float(self.exact[i, j])

    def worst(self, method: str) -> float:
        finite = self.errors[method][np.isfinite(self.errors[method])]
        return float(finite.max()) if finite.size else float("nan")


def alpha_sweep(
    alphas: tuple[float, ...] | None = None, progress: Progress | None = None
) -> AlphaSweep:
    from logmax.audit import reference

    alphas = alphas or default_alphas()
    progress = progress or Silent()
    progress.start("alpha sweep (seed 002)", len(alphas))
    methods = alpha_methods()
    errors = {label: [] for label, _ in methods}
    computed = {label: [] for label, _ in methods}
    exact_rows = []
    unavailable: dict[str, str] = {}
    for alpha in alphas:
        x = alpha_row(alpha)
        exact_values = reference.log_softmax(x)
        exact_rows.append(exact_values.rounded)
        for label, fn in methods:
            if label in unavailable:
                continue
            try:
                values = np.asarray(fn(x), dtype=np.float64)
            except RuntimeError as err:
                unavailable[label] = str(err)
                continue
            if "float64" in label:  # a float64 reference, judged as a reference for float32
                values = values.astype(np.float32).astype(np.float64)
            errors[label].append(max_ulp_error(values, exact_values))
            computed[label].append(values)
        progress.advance()
    keep = [label for label, _ in methods if label not in unavailable]
    return AlphaSweep(
        np.asarray(alphas),
        {k: np.asarray(errors[k]) for k in keep},
        {k: np.asarray(computed[k]) for k in keep},
        np.asarray(exact_rows),
        unavailable,
    )
