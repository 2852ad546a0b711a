"""Bad inputs: each gives a clear error saying what and where, or the contract's result."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import logmax

X = np.random.default_rng(0).normal(size=(4, 5))


@pytest.mark.parametrize("f", [logmax.cross_entropy, logmax.nll_loss])
@pytest.mark.parametrize("bad,pos", [(5, 2), (-1, 1), (-101, 3)])
def test_bad_label_names_position_value_and_classes(f, bad, pos):
    y = np.array([0, 1, 2, 3])
    y[pos] = bad
    with pytest.raises(ValueError) as info:
        f(X, y)
    msg = str(info.value)
    assert f"target[{pos}] = {bad}" in msg and "< 5 (the number of classes)" in msg
    assert "ignore_index=-100" in msg


def test_bad_label_position_in_a_spatial_target():
    y = np.zeros((2, 3, 4), dtype=np.int64)
    y[1, 2, 0] = 7
    with pytest.raises(ValueError, match=r"target\[1, 2, 0\] = 7 .* < 5"):
        logmax.cross_entropy(np.zeros((2, 5, 3, 4)), y, axis=1)


def test_ignore_index_label_is_accepted_anywhere():
    y = np.array([0, -100, 2, -100])
    loss = logmax.cross_entropy(X, y, reduction="none")
    assert loss[1] == 0 and loss[3] == 0 and loss[0] > 0
    y = np.array([0, 7, 2, 7])
    assert logmax.cross_entropy(X, y, ignore_index=7, reduction="none")[1] == 0


def test_float_labels_explain_hard_and_soft_targets():
    with pytest.raises(TypeError, match=r"class indices must be integers.*soft targets"):
        logmax.cross_entropy(X, np.array([0.0, 1.0, 2.0, 3.0]))


@pytest.mark.parametrize("shape", [(3,), (4, 4), (4, 5, 1), ()])
def test_wrong_target_shapes(shape):
    with pytest.raises(ValueError, match=r"hard targets .* shape \(4,\).*soft targets"):
        logmax.cross_entropy(X, np.zeros(shape, dtype=np.int64))


def test_soft_target_wrong_shape():
    with pytest.raises(ValueError, match="soft targets are class probabilities"):
        logmax.cross_entropy(X, np.full((4, 4), 0.25))


@pytest.mark.parametrize("bad", [np.array([1 + 2j]), np.array(["a", "b"]), np.array([None])])
def test_wrong_dtypes_say_which_were_expected(bad):
    fns = (logmax.softmax, logmax.log_softmax)
    if not np.iscomplexobj(bad):  # logsumexp takes complex input, as SciPy's
        fns += (logmax.logsumexp,)
    for f in fns:
        with pytest.raises(TypeError, match="expected float16, bfloat16, float32 or float64"):
            f(bad)


def test_bool_target_rejected():
    with pytest.raises(TypeError, match="target has dtype bool"):
        logmax.cross_entropy(X, np.zeros(4, dtype=bool))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(reduction="avg"), "reduction must be one of"),
        (dict(label_smoothing=1.5), "label_smoothing must be in"),
        (dict(temperature=0.0), "temperature must be a positive"),
        (dict(softcap=-1.0), "softcap must be None or a positive"),
        (dict(z_loss=-1e-4), "z_loss must be a non-negative"),
        (dict(nan_policy="omit"), "nan_policy must be one of"),
        (dict(weight=np.ones(4)), r"one weight per class, shape \(5,\)"),
        (dict(weight=np.array([1, 1, np.nan, 1, 1.0])), r"weight\[2\] = nan is not finite"),
        (dict(axis=(0, 1)), "one class axis"),
        (dict(axis=2), "out of bounds"),
        (dict(where=np.ones(3, bool)), "does not broadcast"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        logmax.cross_entropy(X, np.zeros(4, dtype=np.int64), **kwargs)


def test_zero_classes_with_a_label_is_an_error():
    with pytest.raises(ValueError, match="< 0 .the number of classes."):
        logmax.cross_entropy(np.zeros((2, 0)), np.array([0, 0]))
    # every row ignored: the contract's result, 0 for a mean
    assert logmax.cross_entropy(np.zeros((2, 0)), np.array([-100, -100])) == 0


def test_empty_batch():
    x = np.zeros((0, 5), dtype=np.float32)
    y = np.zeros(0, dtype=np.int64)
    assert logmax.cross_entropy(x, y) == 0 and logmax.cross_entropy(x, y).dtype == np.float32
    assert logmax.cross_entropy(x, y, reduction="sum") == 0
    assert logmax.cross_entropy(x, y, reduction="none").shape == (0,)
    res = logmax.cross_entropy_with_grad(x, y)
    assert res.grad.shape == (0, 5)


def test_label_on_masked_class_is_infinite_not_nan():
    x = np.array([[0.0, -np.inf, 1.0]])
    res = logmax.cross_entropy_with_grad(x, np.array([1]))
    assert res.loss == np.inf and np.all(np.isfinite(res.grad))


def test_bfloat16_inputs_and_targets():
    x = X.astype(ml_dtypes.bfloat16)
    t = logmax.softmax(X).astype(ml_dtypes.bfloat16)
    loss = logmax.cross_entropy(x, t)
    assert loss.dtype == ml_dtypes.bfloat16


def test_grad_output_must_match_reduction():
    with pytest.raises(ValueError, match="grad_output must be a scalar"):
        logmax.cross_entropy_with_grad(X, np.zeros(4, dtype=int), grad_output=np.ones(4))
