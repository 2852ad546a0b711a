"""The study's exact values and ULP errors come from the audit's certified reference.

The study keeps no oracle of its own (``study/exact.py`` is gone); these tests check its numbers
against an independent evaluation here: mpmath at a fixed 2000 bits, which is plenty for these
small rows (their log-probabilities are at most ~1e-435 away from a float of the format).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import mpmath
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("flint")

import logmax.study  # noqa: E402
from logmax.study.alpha_sweep import alpha_sweep  # noqa: E402
from logmax.study.results import fmt  # noqa: E402
from logmax.study.worked_examples import (  # noqa: E402
    SEED001_OUTPUT,
    SEED001_TARGET,
    alpha_methods,
    alpha_row,
    seed001_batch,
)

BITS = 2000
FORMATS = {"float32": (24, -126), "float64": (53, -1022)}  # mantissa bits, smallest exponent


def mp_log_softmax(row: np.ndarray) -> list[mpmath.mpf]:
    with mpmath.workprec(BITS):
        x = [mpmath.mpf(float(v)) for v in row]
        lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in x))
        return [v - lse for v in x]


def ulp_error(computed: float, exact: mpmath.mpf, fmt_name: str) -> float:
    """|computed - exact| in ULPs of the format at the exact value (inf for -inf/NaN)."""
    if not math.isfinite(computed):
        return math.inf
    bits, emin = FORMATS[fmt_name]
    with mpmath.workprec(BITS):
        exponent = max(int(mpmath.floor(mpmath.log(abs(exact), 2))), emin)
        return float(abs(mpmath.mpf(computed) - exact) / mpmath.ldexp(1, exponent - bits + 1))


def test_the_study_has_no_oracle_of_its_own() -> None:
    assert importlib.util.find_spec("logmax.study.exact") is None
    folder = Path(logmax.study.__file__).parent
    for source in folder.glob("*.py"):
        assert "mpmath" not in source.read_text(encoding="utf-8"), source.name


def test_alpha_sweep_errors_match_an_independent_evaluation() -> None:
    alphas = (1.0, 10.0, 38.0, 60.0, 100.0, 388.0, 1000.0)
    sweep = alpha_sweep(alphas)
    assert set(sweep.errors) == {label for label, _ in alpha_methods()}
    for i, alpha in enumerate(alphas):
        exact = mp_log_softmax(alpha_row(alpha))
        assert sweep.exact[i].tolist() == [float(np.float32(float(v))) for v in exact]
        for label, computed in sweep.values.items():
            pairs = zip(computed[i], exact, strict=True)
            expected = max(ulp_error(float(c), e, "float32") for c, e in pairs)
            got = sweep.errors[label][i]
            if math.isinf(expected):
                assert math.isinf(got), (label, alpha)
            else:
                assert got == pytest.approx(expected, rel=1e-9, abs=1e-9), (label, alpha)
    # the seed's point, at alpha = 1000: naive log(softmax) is -inf, log_softmax is exact
    assert math.isinf(sweep.errors["torch.log(torch.softmax(x)) float32"][-1])
    assert sweep.errors["torch.log_softmax(x) float32"][-1] == 0.0


def test_seed001_exact_loss_and_errors() -> None:
    x = np.array(SEED001_OUTPUT, dtype=np.float32)
    with mpmath.workprec(BITS):
        losses = []
        for row, y in zip(x, SEED001_TARGET, strict=True):
            values = [mpmath.mpf(float(v)) for v in row]
            losses.append(mpmath.log(mpmath.fsum(mpmath.exp(v) for v in values)) - values[y])
        exact = mpmath.fsum(losses) / len(losses)
    part = seed001_batch()
    loss_rows = {row[0]: row for row in part.tables[0].rows}
    assert loss_rows["exact, rounded to float32"][1] == fmt(np.float32(float(exact)))
    manual = loss_rows["manual CrossEntropy(Softmax(output), target) (seed 001)"]
    assert float(manual[2]) == pytest.approx(
        ulp_error(float(manual[1]), exact, "float32"), abs=0.005
    )
