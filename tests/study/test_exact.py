"""The study's exact values: correct rounding (subnormals included) and ULP errors."""

from __future__ import annotations

import math

import ml_dtypes
import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from logmax.study import exact

DTYPES = {
    "float16": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
    "float32": np.float32,
    "float64": np.float64,
}


@pytest.mark.parametrize("fmt", sorted(DTYPES))
@given(x=st.floats(allow_nan=False, allow_infinity=False, width=64))
def test_round_to_matches_numpy_cast_of_a_double(fmt: str, x: float) -> None:
    # casting a double is a single correct rounding: both must agree, subnormals and overflow too
    with np.errstate(over="ignore"):
        expected = float(np.asarray(x).astype(DTYPES[fmt]).astype(np.float64))
    assert exact.round_to(mpmath.mpf(x), fmt) == expected


def test_round_to_breaks_ties_to_even_and_sees_bits_beyond_double() -> None:
    with mpmath.workprec(300):
        half = mpmath.mpf(1) + mpmath.ldexp(1, -24)  # halfway between 1 and 1 + 2^-23
        assert exact.round_to(half, "float32") == 1.0
        above = half + mpmath.ldexp(1, -200)  # just above halfway: a double would lose this bit
        assert exact.round_to(above, "float32") == 1.0 + 2.0**-23


def test_ulp_error_uses_the_subnormal_spacing() -> None:
    tiny = mpmath.mpf(27) * mpmath.ldexp(1, -149)  # 27 float32 subnormal steps
    assert exact.ulp_error(float(tiny), tiny, "float32") == 0.0
    assert exact.ulp_error(float(tiny) + 2.0**-149, tiny, "float32") == pytest.approx(1.0)
    assert exact.ulp_error(0.0, tiny, "float32") == pytest.approx(27.0)


def test_ulp_error_of_nonfinite_results() -> None:
    assert math.isinf(exact.ulp_error(-math.inf, mpmath.mpf(-2000), "float32"))
    assert exact.ulp_error(0.0, mpmath.mpf(0), "float32") == 0.0


def test_log_softmax_against_the_closed_form() -> None:
    # log_softmax([-a, 0, a]) = [-2a, -a, 0] - log1p(e^-a + e^-2a)
    a = 10.0
    values, rounded = exact.log_softmax([-a, 0.0, a], "float64")
    with mpmath.workprec(200):
        shift = mpmath.log1p(mpmath.exp(-a) + mpmath.exp(-2 * a))
        expected = [-2 * a - shift, -a - shift, -shift]
    for v, e, r in zip(values, expected, rounded, strict=True):
        assert abs(v - e) < mpmath.mpf(2) ** -150
        assert r == exact.round_to(e, "float64")


def test_cross_entropy_is_the_mean_of_logsumexp_minus_target_logit() -> None:
    logits = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 4.0]])
    target = [2, 0]
    value, rounded = exact.cross_entropy(logits, target, "float64")
    expected = np.mean(
        [np.log(np.exp(r).sum()) - r[t] for r, t in zip(logits, target, strict=True)]
    )
    assert rounded == pytest.approx(expected, rel=1e-15)


def test_agrees_with_the_audits_certified_reference_on_the_studys_inputs() -> None:
    # two independent exact evaluations: mpmath with rising precision here, ball arithmetic in
    # the audit; their correct roundings must be identical
    certified = pytest.importorskip("logmax.audit.reference")
    from logmax.study.worked_examples import SEED000_Z, SEED001_OUTPUT, SEED001_TARGET, alpha_row

    rows = [(alpha_row(a), "float32") for a in (1, 2, 10, 38, 60, 100, 388, 1000, 3000)]
    rows.append((np.array(SEED000_Z), "float64"))
    for x, fmt in rows:
        mine = exact.log_softmax(x, fmt)[1]
        theirs = certified.log_softmax(x).value.astype(np.float64).tolist()
        assert mine == theirs, (x, fmt)
    logits = np.array(SEED001_OUTPUT, dtype=np.float32)
    target = np.array(SEED001_TARGET)
    theirs = float(certified.cross_entropy(logits, target).value)
    assert exact.cross_entropy(logits, target, "float32")[1] == theirs
