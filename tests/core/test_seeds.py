"""The seeds' worked examples, computed with logmax."""

from __future__ import annotations

import numpy as np

import logmax

# seed 001: a batch of three outputs and their labels
OUTPUT = np.array([[3.2, 1.3, 0.2, 0.8], [1.2, 4.1, 3.8, 0.1], [3.3, 2.5, 1.9, 5.9]])
TARGET = np.array([0, 2, 3])


def test_seed001_cross_entropy_value():
    for dtype in (np.float32, np.float64):
        loss = logmax.cross_entropy(OUTPUT.astype(dtype), TARGET)
        assert abs(float(loss) - 0.42298611998558044) < 2e-7
    assert abs(float(logmax.cross_entropy(OUTPUT, TARGET)) - 0.4229861525145838) < 1e-15


def test_seed001_cross_entropy_is_nll_of_log_softmax():
    for dtype in (np.float32, np.float64):
        x = OUTPUT.astype(dtype)
        assert logmax.cross_entropy(x, TARGET) == logmax.nll_loss(logmax.log_softmax(x), TARGET)


def test_seed001_manual_formula_agrees():
    probs = np.exp(OUTPUT) / np.exp(OUTPUT).sum(axis=1, keepdims=True)
    manual = -np.sum(np.eye(4)[TARGET] * np.log(probs)) / 3
    assert abs(float(logmax.cross_entropy(OUTPUT, TARGET)) - manual) < 1e-14


def test_seed002_alpha_1000_float32():
    x = 1000 * np.array([-1.0, 0.0, 1.0], dtype=np.float32)
    with np.errstate(divide="ignore"):
        naive = np.log(logmax.softmax(x))
    assert np.isneginf(naive[0]) and np.isneginf(naive[1])  # the seed's failure
    got = logmax.log_softmax(x)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.array([-2000.0, -1000.0, 0.0], dtype=np.float32))


def test_seed000_tiny_differences_keep_their_order():
    z = np.array([1e-15, 2e-15, 3e-15])
    lp = logmax.log_softmax(z)
    np.testing.assert_allclose(lp, -np.log(3), rtol=1e-14)
    # log_softmax(z)_i - log_softmax(z)_j = z_i - z_j exactly in real numbers
    assert lp[0] < lp[1] < lp[2]
    np.testing.assert_allclose(np.diff(lp), np.diff(z), rtol=0.2)


def test_seed003_constant_rows_give_uniform():
    n = 5
    for c in (-1e4, 1e4, 88.0, -88.0, 700.0, -745.0):
        for dtype in (np.float32, np.float64):
            x = np.full(n, c, dtype=dtype)
            with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
                naive = np.exp(x) / np.exp(x).sum()
            got = logmax.softmax(x)
            np.testing.assert_allclose(got, 1 / n, rtol=1e-7)
            np.testing.assert_allclose(logmax.log_softmax(x), -np.log(n), rtol=1e-7)
            if abs(c) >= 1e4:
                assert not np.all(np.isfinite(naive))  # the seed's undefined result


def test_confident_prediction_loss_is_not_zero():
    # margin 20 in float32: the true loss is log1p(exp(-20)) = 2.061e-9; peers return 0
    x = np.array([[20.0, 0.0]], dtype=np.float32)
    loss = logmax.cross_entropy(x, np.array([0]))
    assert loss == np.float32(np.log1p(np.exp(-20.0)))
