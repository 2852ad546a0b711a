"""The ULP metric: exact at the exact value, non-finite mismatches are failures."""

import numpy as np
import pytest

from logmax.audit import reference
from logmax.audit.metric import relative_error, sign_mismatch, ulp_error


def test_correctly_rounded_is_within_half_an_ulp_and_neighbours_one_more():
    x = np.linspace(-3, 3, 50).reshape(5, 10).astype(np.float32)
    ex = reference.log_softmax(x)
    err = ulp_error(ex.value, ex)
    assert np.all(err <= 0.5) and np.any(err > 0.25)
    up = np.nextafter(ex.value, np.float32(np.inf))
    assert np.all(np.abs(ulp_error(up, ex) - (1 - np.sign(ex.frac) * err)) < 1e-9)


def test_error_is_measured_at_the_exact_value_below_a_power_of_two():
    # 1 - 2^-30 rounds to 1.0 in float32; the ULP at the exact value is the binade below's
    x = np.array([0.0, -30 * np.log(2.0)])  # softmax[0] = 1 / (1 + 2^-30)
    ex = reference.softmax(x.astype(np.float64), fmt="float32")
    assert ex.rounded[0] == 1.0 and ex.ulp[0] == 2.0**-24
    assert abs(ulp_error(np.array([1.0, ex.rounded[1]]), ex)[0] - 2.0**-30 / 2.0**-24) < 1e-6


def test_float64_subnormal_results_are_measured_exactly():
    ex = reference.softmax(np.array([0.0, -744.4]))
    assert ex.rounded[1] == 5e-324 and ex.ulp[1] == 5e-324
    err = ulp_error(np.array([1.0, 1e-323]), ex)
    assert 0.5 < err[1] < 1.5 and err[0] <= 0.5
    assert abs(err[1] - (1 - ex.frac[1])) < 1e-12


def test_nonfinite_mismatches_are_failures():
    x = np.array([[0.0, -np.inf, 1.0], [np.nan, 0.0, 0.0]])
    ex = reference.log_softmax(x)
    good = ex.rounded.copy()
    assert np.all(np.isfinite(ulp_error(good, ex)))  # -inf and NaN where exact: 0
    bad = good.copy()
    bad[0, 1] = -1e30  # finite where exact is -inf
    bad[0, 0] = np.nan  # NaN where exact is finite
    err = ulp_error(bad, ex)
    assert np.isinf(err[0, 0]) and np.isinf(err[0, 1]) and err[0, 2] <= 0.5
    bad2 = good.copy()
    bad2[1, 1] = 0.0  # a finite value where the exact row is NaN
    assert np.isinf(ulp_error(bad2, ex)[1, 1])


def test_overflowing_exact_value():
    big = np.float16(65504.0)
    ex = reference.logsumexp(np.array([big, big, big]), fmt="float16")
    assert ex.rounded == 65504.0  # 65504 + log 3 rounds back down
    x = np.full(2**20, 65504.0)  # + log 2^20 = 65517.9: still below the overflow midpoint
    assert reference.logsumexp(x, fmt="float16").rounded == 65504.0


def test_relative_error_and_signs():
    ex = reference.cross_entropy(
        np.array([[30.0, 0.0]], dtype=np.float32), np.array([0]), reduction="none"
    )
    assert relative_error(np.array([0.0], dtype=np.float32), ex)[0] == pytest.approx(1.0)
    assert relative_error(ex.value, ex)[0] < 2.0**-24
    lse = reference.logsumexp(np.array([0.0, 1.0]), b=np.array([1.0, -1.0]), return_sign=True)
    assert sign_mismatch(np.array(1.0), lse) and not sign_mismatch(np.array(-1.0), lse)


def test_shape_mismatch_raises():
    ex = reference.softmax(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="shape"):
        ulp_error(np.zeros(3), ex)
