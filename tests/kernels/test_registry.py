"""The registry: the frontend takes the kernels by default, LOGMAX_BACKEND forces one backend and
raises when it cannot serve a call, LOGMAX_KERNELS=0 leaves the kernels out, Numba loads lazily,
inputs are never written, and results match through the public API."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from kernel_compare import assert_within

import logmax
from logmax.kernels import cpu, registry


def _call(op="softmax", dtype="float32", **kw):
    return registry.Call(op, "numpy", "cpu", dtype, **kw)


def test_automatic_choice_prefers_the_kernels(monkeypatch):
    monkeypatch.delenv("LOGMAX_BACKEND", raising=False)
    monkeypatch.delenv("LOGMAX_KERNELS", raising=False)
    assert registry.select(_call()).name == "numba"
    assert registry.select(_call("softmax_vjp")).name == "numpy"  # no kernel for it
    f64_t = _call("softmax", "float64", options=frozenset({"temperature"}))
    assert registry.select(f64_t).name == "numba"
    f64_ls = _call("cross_entropy", "float64", options=frozenset({"label_smoothing"}))
    assert registry.select(f64_ls).name == "numba"


@pytest.mark.parametrize("value", ["0", "reference", "off", "false", "no"])
def test_kernels_switch_leaves_the_kernels_out(monkeypatch, value):
    monkeypatch.delenv("LOGMAX_BACKEND", raising=False)
    monkeypatch.setenv("LOGMAX_KERNELS", value)
    assert registry.select(_call()).name == "numpy"


def test_forced_backend_serves_or_raises(monkeypatch):
    monkeypatch.setenv("LOGMAX_BACKEND", "numpy")
    assert registry.select(_call()).name == "numpy"
    monkeypatch.setenv("LOGMAX_BACKEND", "numba")
    with pytest.raises(registry.BackendError, match="LOGMAX_BACKEND=numba cannot serve"):
        registry.select(_call("softmax_vjp"))
    with pytest.raises(registry.BackendError, match="LOGMAX_BACKEND=numba cannot serve"):
        logmax.softmax_vjp(np.ones(3), np.ones(3))
    monkeypatch.setenv("LOGMAX_BACKEND", "bogus")
    with pytest.raises(registry.BackendError, match=r"'bogus' is not a backend; known: numpy"):
        logmax.softmax(np.ones(3))


def test_forced_torch_backend_serves_numpy_arrays(monkeypatch):
    pytest.importorskip("torch")
    x = np.random.default_rng(3).normal(size=(5, 7))
    want = logmax.log_softmax(x)
    monkeypatch.setenv("LOGMAX_BACKEND", "torch")
    got = logmax.log_softmax(x)
    assert isinstance(got, np.ndarray)
    assert_within(got, want, "float64", "log_softmax")


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
    env = {k: v for k, v in os.environ.items() if k not in ("LOGMAX_KERNELS", "LOGMAX_BACKEND")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=env)  # fmt: skip
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
    out = cpu.run("logsumexp", x, 1, where=None, temperature=1.0)
    assert out.shape == (65_538,)
    assert out[-1] == pytest.approx(np.log1p(32_767 * np.exp(-1.0)), rel=1e-7)
    assert out[0] == pytest.approx(-1.0 + np.log(32_768.0), rel=1e-7)


def test_small_first_calls_are_served_while_the_kernels_load(tmp_path):
    """With an empty Numba cache, the first small call returns at once (the reference serves
    it) while the kernel compiles in the background; once it is ready the kernel serves."""
    code = (
        "import time, numpy as np, logmax\n"
        "from logmax.kernels import registry\n"
        "x = np.linspace(-3, 3, 32).reshape(4, 8).astype(np.float32)\n"
        "t = time.perf_counter(); y = logmax.log_softmax(x); first = time.perf_counter() - t\n"
        "call = registry.Call('log_softmax', 'numpy', 'cpu', 'float32', frozenset(), x.size)\n"
        "chosen = registry.select(call).name\n"
        "for _ in range(600):\n"
        "    if registry.backend('numba').ready(call): break\n"
        "    time.sleep(0.1)\n"
        "print(first < 1.0, chosen, registry.select(call).name,\n"
        "      np.array_equal(y, logmax.log_softmax(x)) or 'last place')\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("LOGMAX_WARM_UP", "LOGMAX_BACKEND",
                                                            "LOGMAX_KERNELS")}  # fmt: skip
    env["NUMBA_CACHE_DIR"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=300, check=True)  # fmt: skip
    first_fast, first, later, same = out.stdout.split()
    assert (first_fast, first, later) == ("True", "numpy", "numba")
    assert same in ("True", "last")
