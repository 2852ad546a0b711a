"""Every row of the contract table (README / DESIGN.md), for every dtype."""

from __future__ import annotations

import numpy as np
import pytest

import logmax
from logmax.audit import reference
from logmax.audit.metric import BOUNDS, ulp_error

ROWS = [
    [3.2, 1.3, 0.2, 0.8],
    [-1.5, 0.0, 2.5, 2.5],  # a tie at the max
    [7.0, -7.0, 0.0, 1e-3],
    [0.25, 0.25, 0.25, 0.25],
]


def _cast(values, dtype):
    return np.asarray(values, dtype=np.float64).astype(dtype)


def test_finite_rows_within_promise(dtype):
    x = _cast(ROWS, dtype)
    bound = BOUNDS[dtype.name]
    for op in ("softmax", "log_softmax", "logsumexp"):
        err = ulp_error(getattr(logmax, op)(x), getattr(reference, op)(x))
        assert err.max() <= bound, (op, err)
    for f in (logmax.softmax, logmax.log_softmax, logmax.logsumexp):
        assert f(x).dtype == dtype


def test_masked_entries(dtype):
    x = _cast([[1.0, -np.inf, 2.0, -np.inf]], dtype)
    sm, ls, lse = logmax.softmax(x), logmax.log_softmax(x), logmax.logsumexp(x)
    assert sm[0, 1] == 0 and sm[0, 3] == 0
    assert np.isneginf(ls[0, 1]) and np.isneginf(ls[0, 3])
    kept = _cast([[1.0, 2.0]], dtype)
    assert np.array_equal(sm[0, [0, 2]], logmax.softmax(kept)[0])
    assert np.array_equal(ls[0, [0, 2]], logmax.log_softmax(kept)[0])
    assert lse[0] == logmax.logsumexp(kept)[0]


def test_where_mask_equals_minus_inf(dtype):
    x = _cast([[1.0, 5.0, 2.0], [0.5, 0.5, 9.0]], dtype)
    where = np.array([[True, False, True], [True, True, False]])
    masked = np.where(where, x.astype(np.float64), -np.inf).astype(dtype)
    for f in (logmax.softmax, logmax.log_softmax, logmax.logsumexp):
        np.testing.assert_array_equal(f(x, where=where), f(masked))


def test_fully_masked_row(dtype):
    x = _cast([[-np.inf, -np.inf, -np.inf], [0.0, 1.0, 2.0]], dtype)
    sm, ls, lse = logmax.softmax(x), logmax.log_softmax(x), logmax.logsumexp(x)
    assert np.all(sm[0] == 0) and np.all(np.isneginf(ls[0])) and np.isneginf(lse[0])
    assert np.all(np.isfinite(sm[1]))
    g = np.ones(x.shape, dtype)
    assert np.all(logmax.softmax_vjp(sm, g)[0] == 0)
    assert np.all(logmax.log_softmax_vjp(ls, g)[0] == 0)
    assert np.all(logmax.logsumexp_vjp(x, np.ones(2, dtype))[0] == 0)
    _, grad, _ = logmax.cross_entropy_with_grad(x, np.array([1, 1]))
    assert np.all(grad[0] == 0) and not np.any(np.isnan(grad))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_propagates_to_its_row_only(dtype, bad):
    x = _cast([[1.0, 2.0, 3.0], [1.0, bad, 3.0]], dtype)
    for f in (logmax.softmax, logmax.log_softmax):
        y = f(x)
        assert np.all(np.isnan(y[1])) and np.all(np.isfinite(y[0]))
    lse = logmax.logsumexp(x)
    # the sum of a row holding +inf (and no NaN) is infinite: logsumexp +inf, as SciPy and torch
    assert (np.isnan(lse[1]) if np.isnan(bad) else lse[1] == np.inf) and np.isfinite(lse[0])
    assert np.isnan(logmax.logsumexp(np.array([np.inf, np.nan, 1.0])))
    loss = logmax.cross_entropy(x, np.array([0, 0]), reduction="none")
    assert np.isnan(loss[1]) and np.isfinite(loss[0])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_policy_raise_names_the_row(dtype, bad):
    x = _cast([[[1.0, 2.0], [1.0, 2.0]], [[1.0, 2.0], [bad, 2.0]]], dtype)
    for f in (logmax.softmax, logmax.log_softmax, logmax.logsumexp):
        with pytest.raises(ValueError, match=r"row \[1, 1\].*NaN or \+inf"):
            f(x, nan_policy="raise")
    with pytest.raises(ValueError, match=r"row \[1, 1\]"):
        logmax.cross_entropy(x, np.zeros((2, 2), dtype=int), nan_policy="raise")
    # a masked NaN is not in the row, so it does not raise
    where = np.ones(x.shape, bool)
    where[1, 1, 0] = False
    assert np.all(np.isfinite(logmax.softmax(x, where=where, nan_policy="raise")))


def test_minus_inf_does_not_trip_nan_policy(dtype):
    x = _cast([[1.0, -np.inf], [-np.inf, -np.inf]], dtype)
    assert logmax.softmax(x, nan_policy="raise")[0, 0] == 1


def test_empty_reduction_axis(dtype):
    x = np.zeros((3, 0), dtype=dtype)
    assert logmax.softmax(x).shape == (3, 0)
    assert logmax.log_softmax(x).shape == (3, 0)
    lse = logmax.logsumexp(x)
    assert lse.shape == (3,) and np.all(np.isneginf(lse))
    assert logmax.softmax(np.zeros((0, 4), dtype=dtype)).shape == (0, 4)


def test_integer_inputs_promote_like_scipy():
    scipy_special = pytest.importorskip("scipy.special")
    x = np.array([[1, 2, 3], [4, 4, 4]], dtype=np.int32)
    for ours, theirs in [
        (logmax.softmax, scipy_special.softmax),
        (logmax.log_softmax, scipy_special.log_softmax),
        (logmax.logsumexp, scipy_special.logsumexp),
    ]:
        got = ours(x, axis=-1)
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, theirs(x, axis=-1), rtol=1e-15)


def test_tuple_axes_like_scipy():
    scipy_special = pytest.importorskip("scipy.special")
    x = np.random.default_rng(0).normal(size=(2, 3, 4)) * 30
    for ours, theirs in [
        (logmax.softmax, scipy_special.softmax),
        (logmax.log_softmax, scipy_special.log_softmax),
        (logmax.logsumexp, scipy_special.logsumexp),
    ]:
        for axis in [(0, 2), (1, 2), None, 0]:
            # SciPy loses relative accuracy on log-probabilities near 0: compare absolutely here
            got, peer = ours(x, axis=axis), theirs(x, axis=axis)
            np.testing.assert_allclose(got, peer, rtol=1e-13, atol=1e-12)
    # ... and check those near-zero log-probabilities against the exact values
    got = logmax.log_softmax(x, axis=(1, 2)).reshape(2, 12)
    assert ulp_error(got, reference.log_softmax(x.reshape(2, 12))).max() <= 2


def test_logsumexp_b_keepdims_return_sign_like_scipy():
    scipy_special = pytest.importorskip("scipy.special")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 5)) * 10
    b = rng.normal(size=(4, 5))
    b[0, :] = 0.0
    for axis in [-1, 0, (0, 1)]:
        ours = logmax.logsumexp(x, axis=axis, b=b, keepdims=True, return_sign=True)
        theirs = scipy_special.logsumexp(x, axis=axis, b=b, keepdims=True, return_sign=True)
        np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-12)
        np.testing.assert_array_equal(ours[1], theirs[1])
    pos = np.abs(b) + 0.1
    np.testing.assert_allclose(
        logmax.logsumexp(x, b=pos), scipy_special.logsumexp(x, axis=-1, b=pos), rtol=1e-13
    )


def test_logsumexp_negative_sum_without_sign_is_an_error():
    with pytest.raises(ValueError, match="negative.*return_sign=True"):
        logmax.logsumexp(np.array([0.0, 1.0]), b=np.array([1.0, -1.0]))


def test_temperature_divides_the_logits(dtype):
    x = _cast([[1.0, 2.0, 4.0]], dtype)
    x_over_t = (x.astype(np.float64) / 2.0).astype(dtype)
    for f in (logmax.softmax, logmax.log_softmax, logmax.logsumexp):
        np.testing.assert_array_equal(f(x, temperature=2.0), f(x_over_t))


def test_output_dtype_and_shape_for_keepdims(dtype):
    x = np.zeros((2, 3, 4), dtype=dtype)
    assert logmax.logsumexp(x, axis=1, keepdims=True).shape == (2, 1, 4)
    assert logmax.logsumexp(x, axis=(0, 2), keepdims=True).shape == (1, 3, 1)
    assert logmax.logsumexp(x, axis=1).dtype == dtype


def test_bfloat16_results_are_rounded_once():
    # float64 -> bfloat16 in one rounding (ml_dtypes' cast goes through float32 and rounds twice);
    # oracle: round-to-nearest-even on float64's bit pattern, for bfloat16's normal range
    from logmax._core.dtypes import BFLOAT16, round_to

    rng = np.random.default_rng(3)
    v = rng.uniform(1, 2, 200_000) * 2.0 ** rng.integers(-120, 120, 200_000)
    v[:1000] = 1.0 + 2.0**-8 + rng.uniform(0, 2.0**-24, 1000)  # just above a tie: double rounding
    v *= rng.choice([-1.0, 1.0], v.size)
    bits = v.view(np.uint64)
    lsb = (bits >> np.uint64(45)) & np.uint64(1)
    rounded = ((bits + np.uint64((1 << 44) - 1) + lsb) >> np.uint64(45)) << np.uint64(45)
    expected = rounded.view(np.float64)
    np.testing.assert_array_equal(round_to(v, BFLOAT16).astype(np.float64), expected)
