"""Property tests: logmax against the certified reference on random shapes, dtypes and options,
through the NumPy and the PyTorch frontends (each example draws one).

The rows are of several kinds: random at scales up to the format's range, log-probabilities
(logsumexp near 0, where ``m + log1p(s)`` cancels), confident rows (one logit ahead by 20 to
700: losses and gradients far below the ULP of 1), and ties; temperatures from 1e-3 to 1e3;
class weights with zeros; soft targets, also one-hot ones on confident rows.

The examples per test come from the hypothesis profile (tests/conftest.py): 40 in CI, 100 000
with ``LOGMAX_HYPOTHESIS_PROFILE=long uv run pytest tests/audit/test_audit_properties.py``.
``LOGMAX_AUDIT_EXAMPLES=N`` sets another count for these tests only.
"""

import os

import ml_dtypes
import numpy as np
from hypothesis import assume, example, note, settings
from hypothesis import given as _given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import logmax
from logmax.audit import reference
from logmax.audit.formats import FORMATS
from logmax.audit.metric import BOUNDS, sign_mismatch, ulp_error
from logmax.kernels import interop

ROW_KINDS = ["random", "random", "log_probabilities", "confident", "ties"]


@st.composite
def logits(draw, max_rows: int = 3, max_cls: int = 12, masked: bool = True):
    dtype = draw(st.sampled_from(list(FORMATS)))
    fmt = FORMATS[dtype]
    shape = (draw(st.integers(1, max_rows)), draw(st.integers(1, max_cls)))
    kind = draw(st.sampled_from(ROW_KINDS))
    scale = draw(st.sampled_from([1e-3, 1.0, 10.0, 100.0, 1e4, fmt.max_finite / 4]))
    unit = draw(arrays(np.float64, shape, elements=st.floats(-1, 1)))
    x = unit * min(scale, fmt.max_finite / 4)
    if kind == "log_probabilities":  # rows whose logsumexp is 0 up to their rounding
        x = np.asarray(logmax.log_softmax((unit * 8.0).astype(fmt.dtype)), dtype=np.float64)
    elif kind == "confident":  # one logit far ahead of the rest
        margins = [20.0, 60.0] + ([700.0] if fmt.name == "float64" else [])
        lead = draw(st.integers(0, shape[1] - 1))
        x = unit * 4.0
        x[:, lead] += draw(st.sampled_from(margins))
    elif kind == "ties":  # few distinct values
        x = np.round(unit * 2.0)
    if masked:
        drop = draw(arrays(np.int8, shape, elements=st.integers(0, 9))) == 0
        x = np.where(drop, -np.inf, x)
    return x.astype(fmt.dtype)


def given(*args, **kwargs):
    """``hypothesis.given``, with ``LOGMAX_AUDIT_EXAMPLES`` examples when that is set (drawn
    afresh each run: a count is for exploring, the default profile's fixed examples for CI)."""
    count = os.environ.get("LOGMAX_AUDIT_EXAMPLES")

    def wrap(test):
        wrapped = _given(*args, **kwargs)(test)
        if not count:
            return wrapped
        return settings(max_examples=int(count), derandomize=False)(wrapped)

    return wrap


temperatures = st.sampled_from([1.0, 1.0, 0.5, 3.0, 1e-3, 1e3])
frontends = st.sampled_from(["numpy", "torch"])


def _call(frontend: str, op: str, x, *args, **kwargs) -> np.ndarray:
    """``logmax.<op>`` on arrays, or ``logmax.torch.<op>`` on the same values as CPU tensors
    (class dim last, as the arrays' axis); the result as an array."""
    if frontend == "numpy":
        return getattr(logmax, op)(x, *args, **kwargs)
    import torch

    import logmax.torch as lt

    def tensor(v):
        return interop.from_numpy(v) if isinstance(v, np.ndarray) else v

    kwargs = {k: tensor(v) for k, v in kwargs.items()}
    if op in ("softmax", "log_softmax", "logsumexp"):
        args = (-1,) + args
    with torch.no_grad():
        out = getattr(lt, op)(tensor(x), *(tensor(a) for a in args), **kwargs)
    return interop.to_numpy(out)


def _assert_within(out, exact, x, **context):
    err = ulp_error(out, exact)
    note(f"x={x!r} dtype={x.dtype} {context}\nerr={err}\nexact={exact.rounded}")
    bound = BOUNDS[exact.fmt.name]
    assert np.all(err <= bound), f"max error {np.max(err)} ULP > {bound}"


@given(x=logits(), t=temperatures, frontend=frontends)
def test_softmax(x, t, frontend):
    got = _call(frontend, "softmax", x, temperature=t)
    _assert_within(got, reference.softmax(x, temperature=t), x, t=t, frontend=frontend)


# found by the long profile: -log1p(5 e^-742.1875) = -2.37e-322, a float64 subnormal
@example(x=np.array([[742.1875, 0.0, 0.0, 0.0, 0.0, 0.0]]), t=1.0, frontend="numpy")
@given(x=logits(), t=temperatures, frontend=frontends)
def test_log_softmax(x, t, frontend):
    got = _call(frontend, "log_softmax", x, temperature=t)
    _assert_within(got, reference.log_softmax(x, temperature=t), x, t=t, frontend=frontend)


@given(x=logits(), t=temperatures, use_where=st.booleans(), frontend=frontends)
def test_logsumexp(x, t, use_where, frontend):
    where = None
    if use_where:  # (the NumPy frontend's option)
        where = np.isfinite(x.astype(np.float64))
        x = np.where(where, x, x.dtype.type(7))
        got = logmax.logsumexp(x, temperature=t, where=where)
    else:
        got = _call(frontend, "logsumexp", x, temperature=t)
    exact = reference.logsumexp(x, temperature=t, where=where)
    _assert_within(got, exact, x, t=t, where=where, frontend=frontend)


@st.composite
def logits_and_weights(draw):
    x = draw(logits(masked=False))
    b = draw(arrays(np.int8, x.shape, elements=st.integers(-4, 4))).astype(x.dtype) / 2
    return x, b.astype(x.dtype)


_TINY = np.array([[1.17549435e-38, 0.0]], dtype=ml_dtypes.bfloat16)  # the smallest normal, 0


# found by hypothesis: log|0.5 e^tiny - 0.5| (nearly cancelling weights: sign 1, lse -88),
# log(0.5 e^tiny + 0.5) (a result of 5.9e-39 where log|b_k| + log1p(t) cancels), and a tie
# whose weights cancel exactly, leaving -e^(2^-16): log|sum| = 2^-16
@example(xb=(_TINY, np.array([[0.5, -0.5]], dtype=ml_dtypes.bfloat16)))
@example(xb=(_TINY, np.array([[0.5, 0.5]], dtype=ml_dtypes.bfloat16)))
@example(xb=(np.array([[2.0**-16, 1e-3, 1e-3]]), np.array([[-1.0, 0.5, -0.5]])))
@given(xb=logits_and_weights())
def test_logsumexp_with_signed_weights(xb):
    x, b = xb
    exact = reference.logsumexp(x, b=b, return_sign=True)
    lse, sign = logmax.logsumexp(x, b=b, return_sign=True)
    assert not np.any(sign_mismatch(sign, exact))
    _assert_within(lse, exact, x, b=b)


def _loss_options(draw, n_cls: int, dtype) -> dict:
    opts = {"reduction": draw(st.sampled_from(["none", "mean", "sum"]))}
    if draw(st.booleans()):
        w = draw(arrays(np.int8, (n_cls,), elements=st.integers(0, 16))) / 4.0  # zeros too
        opts["weight"] = w.astype(dtype)
    return opts


@st.composite
def labels(draw, n_rows: int, n_cls: int):
    return draw(arrays(np.int64, (n_rows,), elements=st.integers(0, n_cls - 1) | st.just(-100)))


@st.composite
def probabilities(draw, shape, dtype):
    if draw(st.integers(0, 3)) == 0:  # one-hot rows (on a confident row: p - t is tiny)
        hot = draw(arrays(np.int64, shape[:1], elements=st.integers(0, shape[1] - 1)))
        return np.eye(shape[1])[hot].astype(dtype)
    raw = draw(arrays(np.int8, shape, elements=st.integers(0, 8))).astype(np.float64)
    raw[:, 0] += 1
    return (raw / raw.sum(axis=1, keepdims=True)).astype(dtype)


def _ce_case(x, data):
    n_rows, n_cls = x.shape
    soft = data.draw(st.booleans())
    target = data.draw(probabilities(x.shape, x.dtype) if soft else labels(n_rows, n_cls))
    opts = _loss_options(data.draw, n_cls, x.dtype)
    opts["label_smoothing"] = data.draw(st.sampled_from([0.0, 0.0, 0.1]))
    opts["z_loss"] = data.draw(st.sampled_from([0.0, 0.0, 1e-3]))
    opts["softcap"] = data.draw(st.sampled_from([None, None, 20.0]))
    opts["temperature"] = data.draw(temperatures)
    return target, opts


@given(x=logits(), data=st.data(), frontend=frontends)
def test_cross_entropy(x, data, frontend):
    target, opts = _ce_case(x, data)
    got = _call(frontend, "cross_entropy", x, target, **opts)
    exact = reference.cross_entropy(x, target, **opts)
    _assert_within(got, exact, x, target=target, frontend=frontend, **opts)


# float64 entries whose two terms cancel (alpha p_j ~ c_j, with dense coefficients: label
# smoothing or soft targets) are within 2^-46 of their row's largest entry (README: precision)
DENSE_FLOAT64_ROW_BOUND = 2.0**-46


@given(x=logits(), data=st.data())
def test_cross_entropy_gradient(x, data):
    target, opts = _ce_case(x, data)
    finite = np.abs(np.where(np.isfinite(x), x, 0).astype(np.float64))
    # not covered: a z-loss on a row whose lse is below the float64 range (-|x|/T < -1.8e308),
    # whose gradient is -inf but computed as that of a fully masked row
    assume(not opts["z_loss"] or np.max(finite, initial=0.0) / opts["temperature"] < 1e308)
    n_rows = x.shape[0]
    g_out = data.draw(st.sampled_from([1.0, -0.5]))
    if opts["reduction"] == "none":
        g_out = np.linspace(-1.0, 2.0, n_rows)
    got = logmax.cross_entropy_with_grad(x, target, grad_output=g_out, **opts).grad
    exact = reference.cross_entropy_grad(x, target, grad_output=g_out, **opts)
    err = ulp_error(got, exact)
    note(f"x={x!r} target={target!r} {opts}\nerr={err}\nexact={exact.rounded}")
    bound = BOUNDS[exact.fmt.name]
    dense = target.dtype.kind == "f" or opts["label_smoothing"] != 0.0
    if exact.fmt.name == "float64" and dense:  # the documented relative-to-the-row bound
        scale = np.max(np.abs(np.nan_to_num(exact.rounded)), axis=-1, keepdims=True)
        near = np.abs(np.asarray(got, np.float64) - exact.approx) <= DENSE_FLOAT64_ROW_BOUND * scale
        err = np.where(near, 0.0, err)
    assert np.all(err <= bound), f"max error {np.max(err)} ULP > {bound}"


@given(x=logits(max_rows=6), data=st.data(), frontend=frontends)
def test_nll_loss(x, data, frontend):
    n_rows, n_cls = x.shape
    soft = data.draw(st.booleans())
    target = data.draw(probabilities(x.shape, x.dtype) if soft else labels(n_rows, n_cls))
    opts = _loss_options(data.draw, n_cls, x.dtype)
    logp = np.where(np.isfinite(x.astype(np.float64)), -abs(x.astype(np.float64)), -np.inf)
    logp = logp.astype(x.dtype)
    got = _call(frontend, "nll_loss", logp, target, **opts)
    exact = reference.nll_loss(logp, target, **opts)
    _assert_within(got, exact, logp, target=target, frontend=frontend, **opts)
