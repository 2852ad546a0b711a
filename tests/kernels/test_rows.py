"""softmax, log_softmax and logsumexp kernels against the reference: dtypes, edge rows, axes,
layouts, temperature and masks, and hypothesis-generated inputs."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from kernel_compare import assert_within

from logmax._core.options import RowOptions
from logmax.kernels import cpu
from logmax.kernels.numba_backend import NumbaBackend
from logmax.kernels.numpy_backend import NumpyBackend

OPS = ("softmax", "log_softmax", "logsumexp")
DTYPES = {
    "float16": np.dtype(np.float16),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
}


def kernel(op, x, axis=-1, where=None, temperature=1.0):
    """The numba backend (its kernels and the edge rules it applies around them)."""
    assert cpu.run(op, x, axis % x.ndim, where=where, temperature=temperature) is not (
        NotImplemented
    )
    xm = x if where is None else np.where(where, x, x.dtype.type(-np.inf))
    return getattr(NumbaBackend(), op)(xm, axis % x.ndim, RowOptions(temperature))


def ref(op, x, axis=-1, where=None, temperature=1.0):
    xm = x if where is None else np.where(where, x, x.dtype.type(-np.inf))
    return getattr(NumpyBackend(), op)(xm, axis % x.ndim, RowOptions(temperature))


def check(op, x, axis=-1, where=None, temperature=1.0):
    got = kernel(op, x, axis, where, temperature)
    want = ref(op, x, axis, where, temperature)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert_within(got, want, x.dtype.name, op)


def stress_rows(dtype: np.dtype) -> np.ndarray:
    """Rows that break naive code: huge spread, ties, near-overflow, tiny, masked, non-finite."""
    fmax = float(np.finfo(np.float32 if dtype == np.float64 else np.float16).max)
    big = float(np.finfo(dtype).max) if dtype != DTYPES["bfloat16"] else 3.0e38
    rows = [
        [-1000.0, 0.0, 1000.0, 0.0],  # seed 002: alpha = 1000
        [1e-15, 2e-15, 3e-15, 0.0],  # seed 003: tiny differences
        [0.0, -20.0, -20.0, -20.0],  # a confident row: s ~ 6e-9
        [0.0, -50.0, -90.0, -700.0],  # s far below float32's epsilon
        [5.0, 5.0, 5.0, 5.0],  # ties at the maximum
        [-1.0, -1.0, -1.0, -np.inf],  # logsumexp = log 3 - 1, and a masked entry
        [big, big, -big, 0.0],  # x - m must not overflow
        [fmax / 2, 0.0, -fmax / 2, 1.0],
        [-np.inf, -np.inf, -np.inf, -np.inf],  # fully masked
        [1.0, np.nan, 2.0, 3.0],  # NaN row
        [1.0, np.inf, 2.0, -np.inf],  # +inf row
        [-np.inf, np.nan, -np.inf, -np.inf],  # NaN among -inf: still a NaN row
        [-1e4, -1e4 - 1.0, -1e4 + 0.5, -1e4],
        [3.0, -745.0, -1074.0 * 0.69, 2.5],
    ]
    with np.errstate(over="ignore"):
        return np.array(rows, dtype=np.float64).astype(dtype)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the reference's casts
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("op", OPS)
def test_stress_rows(op, dtype):
    check(op, stress_rows(DTYPES[dtype]))


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("scale", [1e-3, 1.0, 30.0, 3000.0])
def test_random_rows(op, dtype, scale):
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((16, 1031)) * scale).astype(DTYPES[dtype])  # 1031: ragged chunks
    check(op, x)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op", OPS)
def test_long_rows_cross_many_chunks(op, dtype):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((3, 70_001)) * 5).astype(dtype)
    x[1, :] = rng.uniform(-40, -39, 70_001)  # s is a sum of many equal-sized terms
    x[1, 12345] = 0.0
    check(op, x)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_any_axis(op, dtype, axis):
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((5, 6, 7)) * 10).astype(dtype)
    x[1, 2, 3] = -np.inf
    check(op, x, axis)


@pytest.mark.parametrize("op", OPS)
def test_non_contiguous_and_negative_strides(op):
    rng = np.random.default_rng(5)
    base = rng.standard_normal((12, 40)).astype(np.float32) * 8
    for x in (base[::-1, ::-2], base[::3], base.T, np.asfortranarray(base), base[:, 5:-5]):
        for axis in (0, 1):
            check(op, x, axis)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("op", OPS)
def test_temperature_and_where(op, dtype):
    rng = np.random.default_rng(9)
    x = (rng.standard_normal((8, 33)) * 6).astype(dtype)
    where = rng.random((8, 33)) > 0.3
    where[2] = False  # a fully masked row
    x[3, ~where[3]] = np.nan  # NaN under the mask takes no part
    check(op, x, temperature=0.37, where=where)
    check(op, x, temperature=4.0)


@pytest.mark.parametrize("op", OPS)
def test_float64_where(op):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((8, 33)) * 6
    where = rng.random((8, 33)) > 0.3
    where[0] = False
    check(op, x, where=where)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("t", [1e-3, 0.37, 4.0, 1e3])
@pytest.mark.parametrize("op", OPS)
def test_float64_temperature_against_the_certified_reference(op, t):
    # the kernels divide the exact x - m by T in double-double (x / T would round first)
    from logmax.audit import reference
    from logmax.audit.metric import BOUNDS, ulp_error

    rng = np.random.default_rng(13)
    x = np.concatenate([stress_rows(DTYPES["float64"]), rng.standard_normal((6, 4)) * 1e6])
    x = x[~(x == np.inf).any(axis=1)]  # +inf rows: the certified reference leaves them NaN
    got = kernel(op, x, temperature=t)
    exact = getattr(reference, op)(x, axis=-1, temperature=t) if op == "logsumexp" else (
        getattr(reference, op)(x, temperature=t))  # fmt: skip
    err = ulp_error(got, exact)
    assert np.max(err) <= BOUNDS["float64"], (op, t, np.max(err))


@pytest.mark.parametrize("op", OPS)
def test_empty_shapes(op):
    for shape, axis in (((3, 0), 1), ((0, 4), 1), ((0, 4), 0)):
        check(op, np.zeros(shape, np.float32), axis)


def test_integer_input_is_not_taken():
    assert cpu.run("softmax", np.arange(6).reshape(2, 3), 1) is NotImplemented


finite32 = st.floats(-1e4, 1e4, width=32, allow_nan=False, allow_infinity=False)
f32 = st.one_of(finite32, finite32, finite32, st.just(-np.inf), st.sampled_from([0.0, -0.0]))


@given(
    hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, max_side=40), elements=f32),
    st.sampled_from(OPS),
)
def test_hypothesis_float32(x, op):
    check(op, x)


finite64 = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
f64 = st.one_of(finite64, finite64, st.just(-np.inf), st.floats(-1.0, 1.0))


@given(
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=20), elements=f64),
    st.sampled_from(OPS),
    st.integers(0, 2),
)
def test_hypothesis_float64(x, op, axis):
    check(op, x, axis % x.ndim)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("dtype", ["float16", "float32"])
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("temperature", [1.0, 0.3])
def test_stress_columns(op, dtype, temperature):
    """The column kernels (reduction axis not last, no transpose) on the stress rows as columns,
    in a block wider than one kernel block (300 columns)."""
    cols = stress_rows(DTYPES[dtype]).T  # (4, 14): each stress row is now a column
    wide = np.concatenate([cols] * 22, axis=1)[:, :300]
    check(op, wide, 0, temperature=temperature)
    check(op, np.stack([wide, wide[:, ::-1]]), 1, temperature=temperature)
