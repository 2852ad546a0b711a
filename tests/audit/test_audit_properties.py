"""Property tests: logmax against the certified reference on random shapes, dtypes and options.

The examples per test come from the hypothesis profile (tests/conftest.py): 40 in CI, 100 000
with ``LOGMAX_HYPOTHESIS_PROFILE=long uv run pytest tests/audit/test_audit_properties.py``.
``LOGMAX_AUDIT_EXAMPLES=N`` sets another count for these tests only.
"""

import os

import ml_dtypes
import numpy as np
from hypothesis import example, note, settings
from hypothesis import given as _given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import logmax
from logmax.audit import reference
from logmax.audit.formats import FORMATS
from logmax.audit.metric import BOUNDS, sign_mismatch, ulp_error


@st.composite
def logits(draw, max_rows: int = 3, max_cls: int = 12, masked: bool = True):
    dtype = draw(st.sampled_from(list(FORMATS)))
    fmt = FORMATS[dtype]
    shape = (draw(st.integers(1, max_rows)), draw(st.integers(1, max_cls)))
    scale = draw(st.sampled_from([1e-3, 1.0, 10.0, 100.0, 1e4, fmt.max_finite / 4]))
    unit = draw(arrays(np.float64, shape, elements=st.floats(-1, 1)))
    x = unit * min(scale, fmt.max_finite / 4)
    if masked:
        drop = draw(arrays(np.int8, shape, elements=st.integers(0, 9))) == 0
        x = np.where(drop, -np.inf, x)
    return x.astype(fmt.dtype)


def given(*args, **kwargs):
    """``hypothesis.given``, with ``LOGMAX_AUDIT_EXAMPLES`` examples when that is set."""
    count = os.environ.get("LOGMAX_AUDIT_EXAMPLES")

    def wrap(test):
        wrapped = _given(*args, **kwargs)(test)
        return settings(max_examples=int(count))(wrapped) if count else wrapped

    return wrap


temperatures = st.sampled_from([1.0, 1.0, 0.5, 3.0])


def _assert_within(out, exact, x, **context):
    err = ulp_error(out, exact)
    note(f"x={x!r} dtype={x.dtype} {context}\nerr={err}\nexact={exact.rounded}")
    bound = BOUNDS[exact.fmt.name]
    assert np.all(err <= bound), f"max error {np.max(err)} ULP > {bound}"


@given(x=logits(), t=temperatures)
def test_softmax(x, t):
    _assert_within(logmax.softmax(x, temperature=t), reference.softmax(x, temperature=t), x, t=t)


# found by the long profile: -log1p(5 e^-742.1875) = -2.37e-322, a float64 subnormal
@example(x=np.array([[742.1875, 0.0, 0.0, 0.0, 0.0, 0.0]]), t=1.0)
@given(x=logits(), t=temperatures)
def test_log_softmax(x, t):
    got = logmax.log_softmax(x, temperature=t)
    _assert_within(got, reference.log_softmax(x, temperature=t), x, t=t)


@given(x=logits(), t=temperatures, use_where=st.booleans())
def test_logsumexp(x, t, use_where):
    where = None
    if use_where:
        where = np.isfinite(x.astype(np.float64))
        x = np.where(where, x, x.dtype.type(7))
    got = logmax.logsumexp(x, temperature=t, where=where)
    _assert_within(got, reference.logsumexp(x, temperature=t, where=where), x, t=t, where=where)


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
        w = draw(arrays(np.int8, (n_cls,), elements=st.integers(1, 16))) / 4.0
        opts["weight"] = w.astype(dtype)
    return opts


@st.composite
def labels(draw, n_rows: int, n_cls: int):
    return draw(arrays(np.int64, (n_rows,), elements=st.integers(0, n_cls - 1) | st.just(-100)))


@st.composite
def probabilities(draw, shape, dtype):
    raw = draw(arrays(np.int8, shape, elements=st.integers(0, 8))).astype(np.float64)
    raw[:, 0] += 1
    return (raw / raw.sum(axis=1, keepdims=True)).astype(dtype)


@given(x=logits(), data=st.data())
def test_cross_entropy(x, data):
    n_rows, n_cls = x.shape
    soft = data.draw(st.booleans())
    target = data.draw(probabilities(x.shape, x.dtype) if soft else labels(n_rows, n_cls))
    opts = _loss_options(data.draw, n_cls, x.dtype)
    opts["label_smoothing"] = data.draw(st.sampled_from([0.0, 0.0, 0.1]))
    opts["z_loss"] = data.draw(st.sampled_from([0.0, 0.0, 1e-3]))
    opts["softcap"] = data.draw(st.sampled_from([None, None, 20.0]))
    opts["temperature"] = data.draw(temperatures)
    got = logmax.cross_entropy(x, target, **opts)
    _assert_within(got, reference.cross_entropy(x, target, **opts), x, target=target, **opts)


@given(x=logits(max_rows=6), data=st.data())
def test_nll_loss(x, data):
    n_rows, n_cls = x.shape
    soft = data.draw(st.booleans())
    target = data.draw(probabilities(x.shape, x.dtype) if soft else labels(n_rows, n_cls))
    opts = _loss_options(data.draw, n_cls, x.dtype)
    logp = np.where(np.isfinite(x.astype(np.float64)), -abs(x.astype(np.float64)), -np.inf)
    logp = logp.astype(x.dtype)
    got = logmax.nll_loss(logp, target, **opts)
    _assert_within(got, reference.nll_loss(logp, target, **opts), logp, target=target, **opts)
