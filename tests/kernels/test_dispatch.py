"""The dispatch: the frontend takes the kernels by default, LOGMAX_KERNELS forces the reference,
Numba loads lazily, inputs are never written, and results match through the public API."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from kernel_compare import assert_within

import logmax
from logmax import kernels


def test_env_var_forces_the_reference(monkeypatch):
    x = np.ones((2, 3), np.float32)
    for value in ("0", "reference", "off"):
        monkeypatch.setenv("LOGMAX_KERNELS", value)
        assert kernels.run("softmax", x, 1, where=None, temperature=1.0) is NotImplemented
    monkeypatch.setenv("LOGMAX_KERNELS", "1")
    assert kernels.run("softmax", x, 1, where=None, temperature=1.0) is not NotImplemented


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_public_api_same_with_and_without_kernels(monkeypatch, dtype):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((9, 50)) * 12).astype(dtype)
    x[2, :7] = -np.inf
    y = rng.integers(0, 50, 9)
    calls = {
        "softmax": lambda: logmax.softmax(x),
        "log_softmax": lambda: logmax.log_softmax(x, axis=0),
        "logsumexp": lambda: logmax.logsumexp(x, keepdims=True),
        "cross_entropy": lambda: logmax.cross_entropy(x, y, reduction="none"),
        "grad": lambda: logmax.cross_entropy_with_grad(x, y).grad,
    }
    fast = {k: f() for k, f in calls.items()}
    monkeypatch.setenv("LOGMAX_KERNELS", "0")
    slow = {k: f() for k, f in calls.items()}
    for k in calls:
        assert_within(np.asarray(fast[k]), np.asarray(slow[k]), dtype, k)


def test_numba_is_imported_only_on_first_use():
    code = (
        "import sys, numpy as np, logmax\n"
        "before = 'numba' in sys.modules\n"
        "logmax.softmax(np.ones(3, np.float32))\n"
        "print(before, 'numba' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, LOGMAX_KERNELS="1"))  # fmt: skip
    assert out.stdout.split() == ["False", "True"]


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_inputs_are_never_written(dtype):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((6, 40)) * 5).astype(dtype)
    x[0, 0] = -np.inf
    y = rng.integers(0, 40, 6)
    w = rng.random(40)
    keep = (x.copy(), y.copy(), w.copy())
    x.flags.writeable = y.flags.writeable = w.flags.writeable = False  # a write would raise
    logmax.softmax(x)
    logmax.log_softmax(x, axis=0)
    logmax.logsumexp(x)
    logmax.cross_entropy_with_grad(x, y, weight=w)
    logmax.cross_entropy_with_grad(x[:, ::-1], y, weight=w)
    for a, b in zip((x, y, w), keep, strict=True):
        np.testing.assert_array_equal(a, b)


def test_results_do_not_alias_the_input():
    x = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    out = logmax.softmax(x)
    assert not np.shares_memory(out, x)


@pytest.mark.slow
def test_more_than_2_31_elements():
    """Index arithmetic is 64-bit: 2^31 + 2^16 float32 values (8 GiB), logsumexp by rows."""
    try:
        x = np.full((65_538, 32_768), -1.0, dtype=np.float32)
    except MemoryError:
        pytest.skip("not enough memory for an 8 GiB array")
    x[-1, -1] = 0.0
    out = kernels.run("logsumexp", x, 1, where=None, temperature=1.0)
    assert out.shape == (65_538,)
    assert out[-1] == pytest.approx(np.log1p(32_767 * np.exp(-1.0)), rel=1e-7)
    assert out[0] == pytest.approx(-1.0 + np.log(32_768.0), rel=1e-7)
