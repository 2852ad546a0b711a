"""Regressions of the defects adversarial testing found: each input gives the right answer (checked
against the certified reference) or a clear error, through the NumPy and the PyTorch frontends.
The numbers in the test names are those of the hardening list."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
import torch

import logmax
import logmax.torch as lt
from logmax.audit import reference
from logmax.audit.metric import BOUNDS, ulp_error


def _within(got, exact, bound=None) -> None:
    err = ulp_error(np.asarray(got), exact)
    limit = BOUNDS[exact.fmt.name] if bound is None else bound
    assert np.all(err <= limit), f"error {np.max(err)} ULP > {limit}: {got!r} vs {exact.rounded!r}"


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


# 1. logsumexp near 0 cancels in m + log1p(s)
def test_1_logsumexp_of_log_probabilities_float32():
    x = np.random.default_rng(3).standard_normal((4, 52)).astype(np.float32)
    lp = logmax.log_softmax(x)
    exact = reference.logsumexp(lp)
    _within(logmax.logsumexp(lp, axis=-1), exact)
    _within(_np(lt.logsumexp(torch.from_numpy(lp), 1)), exact)


def test_1_logsumexp_near_zero_float64():
    x = np.full(3, -np.log(3.0))
    exact = reference.logsumexp(x)
    _within(logmax.logsumexp(x), exact)
    _within(_np(lt.logsumexp(torch.from_numpy(x), 0)), exact)


# 2. float64 with a temperature
def test_2_float64_temperature():
    x = np.array([1e6, 1e6 + 1, 1e6 - 2])
    _within(logmax.softmax(x, temperature=3.0), reference.softmax(x, temperature=3.0))
    _within(logmax.log_softmax(x, temperature=3.0), reference.log_softmax(x, temperature=3.0))
    got = lt.softmax(torch.from_numpy(x), 0, temperature=3.0)
    _within(_np(got), reference.softmax(x, temperature=3.0))


# 3. a float64 mean whose rows overflow but which does not
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"label_smoothing": 0.1}, {"weight": np.array([1.0, 0.5])}, {"reduction": "sum"}],
    ids=["mean", "smoothing", "weights", "sum"],
)
def test_3_float64_mean_of_overflowing_rows(kwargs):
    x = np.array([[1.7e308, -1.7e308], [0.0, 0.0]])
    y = np.array([1, 0])
    exact = reference.cross_entropy(x, y, **kwargs)
    _within(logmax.cross_entropy(x, y, **kwargs), exact)
    tkw = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    _within(_np(lt.cross_entropy(torch.from_numpy(x), torch.from_numpy(y), **tkw)), exact)


# 4. soft targets and smoothing on a confident class: the gradient keeps its tiny value and sign
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_4_soft_target_gradient_on_a_confident_row(dtype):
    x = np.array([[60.0, 0.0], [0.0, 60.0]], dtype=dtype)
    t = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=dtype)
    exact = reference.cross_entropy_grad(x, t)
    _within(logmax.cross_entropy_with_grad(x, t).grad, exact)
    xt = torch.from_numpy(x).requires_grad_()
    lt.cross_entropy(xt, torch.from_numpy(t)).backward()
    _within(_np(xt.grad), exact)


def test_4_smoothing_with_zero_weight_classes_gradient():
    x = np.array([[30.0, 0.0, -5.0, 2.0]], dtype=np.float32)
    w = np.array([1.0, 0.0, 0.0, 2.0], dtype=np.float32)
    y = np.array([0])
    exact = reference.cross_entropy_grad(x, y, weight=w, label_smoothing=0.1)
    got = logmax.cross_entropy_with_grad(x, y, weight=w, label_smoothing=0.1).grad
    _within(got, exact)
    assert np.array_equal(np.sign(got), np.sign(exact.rounded))


# 6. very large class weights
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_6_huge_class_weights(dtype):
    x = np.zeros((2, 3), dtype=dtype)
    y = np.array([0, 2])
    w = np.array([1e308, 1.0, 1e308]) if dtype == np.float64 else np.array([3e38, 1, 3e38])
    w = w.astype(dtype)
    exact = reference.cross_entropy(x, y, weight=w)  # log 3
    _within(logmax.cross_entropy(x, y, weight=w), exact)
    got = lt.cross_entropy(torch.from_numpy(x), torch.from_numpy(y), weight=torch.from_numpy(w))
    _within(_np(got), exact)


# 7. tiny softcap and temperature
def test_7_tiny_softcap():
    x = np.array([[1.0, 2.0]])
    exact = reference.cross_entropy(x, np.array([0]), softcap=5e-324)  # log 2
    _within(logmax.cross_entropy(x, np.array([0]), softcap=5e-324), exact)


@pytest.mark.parametrize(
    ("x", "t"),
    [(np.array([[1.0, 2.0, 0.5]], dtype=np.float32), 5e-324), (np.array([[3e38, 1.0]]), 1e-300)],
)
def test_7_tiny_temperature_is_one_hot(x, t):
    exact = reference.softmax(x, temperature=t)
    _within(logmax.softmax(x, temperature=t), exact)
    _within(logmax.log_softmax(x, temperature=t), reference.log_softmax(x, temperature=t))


# 8. an infinite weight
def test_8_logsumexp_infinite_weight():
    scipy_special = pytest.importorskip("scipy.special")
    lse, sign = logmax.logsumexp(np.array([0.0, 0.0]), b=np.array([1.0, np.inf]), return_sign=True)
    ref = scipy_special.logsumexp(np.array([0.0, 0.0]), b=np.array([1.0, np.inf]), return_sign=True)
    assert (float(lse), float(sign)) == (math.inf, 1.0) == tuple(map(float, ref))


# 9. the upstream gradient's shape; a fully masked row with b
def test_9_vjp_checks_the_upstream_shape():
    with pytest.raises(ValueError, match="shape"):
        logmax.logsumexp_vjp(np.zeros((4, 5)), np.ones((4, 5)))


def test_9_vjp_of_a_fully_masked_row_with_b_is_zero():
    x = np.array([[-np.inf, -np.inf], [0.0, 1.0]])
    g = logmax.logsumexp_vjp(x, np.ones(2), b=np.array([[1.0, 1.0], [1.0, 2.0]]))
    assert np.array_equal(g[0], [0.0, 0.0]) and np.all(np.isfinite(g))


# 10. options that were silently taken
@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: logmax.cross_entropy(np.zeros((2, 3)), np.array([1, 2]), ignore_index=1.9),
         TypeError),
        (lambda: logmax.cross_entropy(np.zeros((2, 3)), np.array([1, 2]), axis=None), TypeError),
        (lambda: logmax.cross_entropy(np.zeros((2, 3)), np.array([1, 2]), return_lse="no"),
         TypeError),
        (lambda: logmax.logsumexp(np.zeros(3), keepdims="no"), TypeError),
        (lambda: logmax.cross_entropy(np.zeros((2, 3)), np.array([1, 2]), ignore_index=None),
         TypeError),
        (lambda: lt.cross_entropy(torch.zeros(2, 3), torch.tensor([1, 2]), ignore_index=1.9),
         TypeError),
        (lambda: lt.cross_entropy(torch.zeros(2, 3), torch.tensor([1, 2]), weight=[1.0, 2, 3]),
         TypeError),
        (lambda: lt.CrossEntropyLoss(label_smoothing=2.0), ValueError),
        (lambda: lt.softmax(torch.zeros(3, dtype=torch.float8_e4m3fn), 0), TypeError),
    ],
    ids=["float ignore_index", "axis None", "string return_lse", "string keepdims",
         "ignore_index None", "torch float ignore_index", "torch list weight",
         "module options", "float8"],
)  # fmt: skip
def test_10_bad_options_raise(call, error):
    with pytest.raises(error):
        call()


def test_10_ignore_index_beyond_int64_is_no_label():
    x = np.random.default_rng(0).standard_normal((3, 4))
    y = np.array([0, 1, 3])
    expected = logmax.cross_entropy(x, y)
    assert logmax.cross_entropy(x, y, ignore_index=2**70) == expected
    got = lt.cross_entropy(torch.from_numpy(x), torch.from_numpy(y), ignore_index=2**70)
    assert float(got) == float(expected)


def test_10_unsigned_labels_are_not_ignore_index():
    x = torch.zeros(3, 4)
    y = torch.tensor([0, 1, 2**64 - 100], dtype=torch.uint64)
    with pytest.raises(ValueError, match=r"target\[2\]"):
        lt.cross_entropy(x, y)
    ok = torch.tensor([0, 1, 3], dtype=torch.uint64)
    assert float(lt.cross_entropy(x, ok)) == float(lt.cross_entropy(x, ok.long()))


# Unclear errors: big-endian input, grad_output's shape named
def test_big_endian_input_is_taken():
    x = np.array([[1.0, 2.0, 3.0]], dtype=">f8")
    _within(logmax.log_softmax(x), reference.log_softmax(x.astype(np.float64)))


def test_wrong_grad_output_shape_names_it():
    with pytest.raises(ValueError, match="grad_output"):
        logmax.cross_entropy_with_grad(
            np.zeros((3, 4)), np.array([0, 1, 2]), reduction="none", grad_output=np.ones(2)
        )


# SciPy parity
def test_scipy_parity_complex_scalars_broadcast_and_the_name_a():
    scipy_special = pytest.importorskip("scipy.special")
    a = np.array([1.0 + 2.0j, -1.0 + 0.5j])
    assert np.isclose(logmax.logsumexp(a), scipy_special.logsumexp(a), rtol=1e-15)
    out = logmax.logsumexp(a=np.array([1.0, 2.0]))
    assert isinstance(out, np.floating) and not isinstance(out, np.ndarray)
    b = np.array([1.0, 2.0])
    x = np.zeros((3, 2))
    assert np.allclose(logmax.logsumexp(x, axis=1, b=b), scipy_special.logsumexp(x, axis=1, b=b))
    assert logmax.logsumexp(np.array([np.inf])) == np.inf == scipy_special.logsumexp([np.inf])


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16])
def test_16_bit_results_are_within_the_bound(dtype):
    # the blocked 16-bit paths give the same values as whole rows
    x = (np.random.default_rng(1).standard_normal((300, 200)) * 4).astype(dtype)
    _within(logmax.softmax(x[:3]), reference.softmax(x[:3]))
    assert np.array_equal(
        logmax.softmax(x)[:3].view(np.uint16), logmax.softmax(x[:3]).view(np.uint16)
    )


# 14. memory: the extra memory of an op is at most its output's size plus a bounded workspace
_OPS = {
    "softmax": lambda x, y: logmax.softmax(x),
    "log_softmax": lambda x, y: logmax.log_softmax(x),
    "logsumexp": lambda x, y: logmax.logsumexp(x, axis=-1),
    "cross_entropy_with_grad": lambda x, y: logmax.cross_entropy_with_grad(x, y).grad,
}
WORKSPACE = 64 << 20  # bytes


@pytest.mark.parametrize("op", list(_OPS))
@pytest.mark.parametrize(
    ("backend", "dtype"),
    [("numba", np.float16), ("numba", ml_dtypes.bfloat16), ("numba", np.float32),
     ("numba", np.float64), ("numpy", np.float16), ("numpy", ml_dtypes.bfloat16)],
)  # fmt: skip
def test_14_extra_memory_is_the_output_plus_a_bounded_workspace(op, backend, dtype, monkeypatch):
    import tracemalloc

    # 16 MiB of 16-bit input: seven times that in float64 temporaries (the old 16-bit paths)
    # is 112 MiB, above the output's size plus the workspace
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2048, 4096)).astype(dtype)
    y = rng.integers(0, 4096, 2048)
    monkeypatch.setenv("LOGMAX_BACKEND", backend)
    _OPS[op](x[:4], y[:4])  # compiled or loaded before measuring
    tracemalloc.start()
    try:
        out = _OPS[op](x, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    extra = peak - np.asarray(out).nbytes
    assert extra <= np.asarray(out).nbytes + WORKSPACE, f"{extra / 2**20:.0f} MiB extra"


# Found by the property tests at 2*10^4 examples each
@pytest.mark.parametrize("frontend", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_mean_over_zero_weight_is_0_even_where_a_row_is_infinite(frontend, dtype):
    # the only row is fully masked (its smoothing term is +inf) and its label's weight is 0
    x = np.array([[-np.inf, -np.inf]], dtype=dtype)
    y = np.array([0])
    w = np.array([0.0, 0.25], dtype=dtype)
    kw = dict(reduction="mean", label_smoothing=0.1)
    exact = reference.cross_entropy(x, y, weight=w, **kw)
    if frontend == "numpy":
        got = logmax.cross_entropy(x, y, weight=w, **kw)
    else:
        t = torch.from_numpy
        got = _np(lt.cross_entropy(t(x), t(y), weight=t(w), **kw))
    assert float(exact.rounded) == 0.0
    _within(got, exact)


def test_a_16_bit_mean_whose_sum_overflows_float32_work():
    # torch's 16-bit tensors work in float32: the sum of the rows (3.8e38) is beyond its range,
    # the mean (1.9e38) is not
    x = np.array([[-8.47383e37], [-8.47383e37]], dtype=ml_dtypes.bfloat16)
    t = np.ones((2, 1), dtype=ml_dtypes.bfloat16)
    w = np.array([2.25], dtype=ml_dtypes.bfloat16)
    exact = reference.nll_loss(x, t, reduction="mean", weight=w)

    def bf16(a):
        return torch.from_numpy(a.astype(np.float32)).to(torch.bfloat16)

    got = lt.nll_loss(bf16(x), bf16(t), reduction="mean", weight=bf16(w))
    _within(got.float().numpy(), exact)
    _within(logmax.nll_loss(x, t, reduction="mean", weight=w), exact)


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16, np.float32])
def test_a_gradient_that_is_exactly_0_with_soft_targets_and_smoothing(dtype):
    # ties with uniform soft targets: p_j (sum t') = t'_j exactly; a rounded sum of the
    # coefficients left 9e-18 in every entry
    x = np.zeros((1, 6), dtype=dtype)
    t = np.full((1, 6), 0.166992, dtype=dtype)
    kw = dict(reduction="none", label_smoothing=0.1, grad_output=np.array([-1.0]))
    got = logmax.cross_entropy_with_grad(x, t, **kw).grad
    exact = reference.cross_entropy_grad(x, t, **kw)
    assert np.all(exact.rounded == 0.0)
    _within(got, exact)


def test_weighted_logsumexp_that_cancels_to_log_1_is_0():
    # sum b e^x = e^-d (0.5 + 1.5 - 1 - 1) - 1 = -1 exactly: log|.| = 0, not the sum's rounding
    d = -0.000999451
    x = np.array([[d] * 5, [d, 0.0, d, d, d]], dtype=ml_dtypes.bfloat16)
    b = np.array([[-1.0] * 5, [0.5, -1.0, 1.5, -1.0, -1.0]], dtype=ml_dtypes.bfloat16)
    lse, sign = logmax.logsumexp(x, axis=-1, b=b, return_sign=True)
    _within(lse, reference.logsumexp(x, axis=-1, b=b))
    assert float(lse[1]) == 0.0 and float(sign[1]) == -1.0


def test_float64_softcap_with_a_tiny_temperature():
    # the shift (u_0 - u_1)/T ~ -500 multiplies tanh's error by 500/T: tanh needs ~2^-100
    x = np.array([[0.5, 1.0], [0.3, -2.0]])
    kw = dict(reduction="none", softcap=20.0, temperature=0.001)
    _within(logmax.cross_entropy(x, np.array([1, 0]), **kw),
            reference.cross_entropy(x, np.array([1, 0]), **kw))  # fmt: skip


def test_float32_label_smoothing_gradient_where_an_entry_cancels():
    # p_j close to eps/C: alpha p_j - eps/C cancels; with float32's fast exponential (6e-11) one
    # entry of this row was 9 ULP off
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 2000)).astype(np.float32)[:1]
    y = rng.integers(0, 2000, 4)[:1]
    kw = dict(label_smoothing=0.1, reduction="sum")
    got = logmax.cross_entropy_with_grad(x, y, **kw).grad
    _within(got, reference.cross_entropy_grad(x, y, **kw))


# Found by a third run of the property tests at 2*10^4 examples each (float64 edges)
def test_float64_softcap_gradient_where_sech2_underflows():
    # sech^2(500) = 4e^-1000 is below the subnormals: the gradient is 0, not 3e-301
    x = np.array([[1e4, 1e4], [60.0, 0.0]])
    kw = dict(reduction="none", softcap=20.0)
    got = logmax.cross_entropy_with_grad(x, np.array([0, 0]), **kw).grad
    _within(got, reference.cross_entropy_grad(x, np.array([0, 0]), **kw))


def test_float64_weighted_logsumexp_of_a_sum_far_below_1():
    # P = 0.5 (1 - e^d), d = 1.2e-10: log1p(|P| - 1) starts from a rounded |P| - 1
    x = np.array([[1.1920929e-10, 0.0, 0.0, 0.0]])
    b = np.array([[-0.5, -1.5, 1.0, 1.0]])
    lse, _ = logmax.logsumexp(x, axis=-1, b=b, return_sign=True)
    _within(lse, reference.logsumexp(x, axis=-1, b=b))


def test_float64_soft_nll_of_subnormal_log_probabilities():
    # the products t * log p are subnormal: their errors would be rounded away
    x = -np.full((1, 7), 2.22507384e-316)
    t = np.array([[0.25] + [0.125] * 6])
    _within(logmax.nll_loss(x, t, reduction="none"), reference.nll_loss(x, t, reduction="none"))


def test_float64_logsumexp_of_a_subnormal_at_a_tiny_temperature():
    # m / T with m subnormal: the division's correction step magnified the residual's rounding
    x = np.array([[-np.inf, 8.90029543e-313]])
    got = logmax.logsumexp(x, axis=-1, temperature=0.001)
    _within(got, reference.logsumexp(x, axis=-1, temperature=0.001))


# Found by a fourth run at 2*10^4 examples each
def test_reference_places_a_split_value_from_its_parts():
    # (x0 - x1)/T of two neighbours near the top of the range: the ball of x0/T - x1/T is too
    # wide to place the exact value, its exact rational part is not (the metric said 349525 ULP)
    x = np.array([[4.49423284e307, 4.49423284e307]])
    x[0, 0] = np.nextafter(x[0, 1], 0.0)
    got = logmax.log_softmax(x, axis=-1, temperature=3.0)
    assert ulp_error(got, reference.log_softmax(x, axis=-1, temperature=3.0)).max() < 0.5


def test_soft_target_loss_whose_weighted_sum_overflows_is_inf():
    # 2.25 * (-8.99e307): the product overflows; the loss is +inf, not NaN
    x = np.array([[-4.49423284e307, 4.49423284e307, -np.inf]])
    t = np.array([[1.0, 0.0, 0.0]])
    w = np.full(3, 2.25)
    got = logmax.cross_entropy(x, t, weight=w, reduction="none")
    _within(got, reference.cross_entropy(x, t, weight=w, reduction="none"))
    assert got[0] == np.inf


# Found by a fifth property run (float64 z-loss)
def test_float64_z_loss_of_a_row_whose_logsumexp_cancels():
    # log-probabilities: lse = 1.8e-16 and the loss is zeta lse^2 alone (zero class weights); lse
    # rounded once (or m/T + L, whose error is 2^-104 of log 8) made zeta lse^2 2 ULP off
    x = np.full((1, 8), -np.log(8.0))
    t = np.eye(8)[:1]
    kw = dict(weight=np.zeros(8), z_loss=1e-3, reduction="none")
    exact = reference.cross_entropy(x, t, **kw)
    _within(logmax.cross_entropy(x, t, **kw), exact, bound=1.0)
    tkw = dict(kw, weight=torch.zeros(8, dtype=torch.float64))
    _within(_np(lt.cross_entropy(torch.from_numpy(x), torch.from_numpy(t), **tkw)), exact, 1.0)


def test_float64_z_loss_gradient_takes_zeta_w_exactly():
    # alpha = w + 2 zeta w lse with lse = 1e4/3 + log 5: the rounded product zeta * w, carried by
    # alpha p_y - w (which cancels 3-fold), was 2.03 ULP off
    x = np.full((1, 5), 1e4)
    y = np.array([0])
    kw = dict(weight=np.full(5, 2.25), z_loss=1e-3, temperature=3.0, reduction="none")
    g_out = np.array([-1.0])
    got = logmax.cross_entropy_with_grad(x, y, grad_output=g_out, **kw).grad
    _within(got, reference.cross_entropy_grad(x, y, grad_output=g_out, **kw))


# Found by the long property profile (10^5 examples per property)
def test_cpu_kernel_z_loss_gradient_of_a_single_live_class(monkeypatch):
    # one finite logit: p = 1 and the gradient is exactly 2 zeta lse = 3.2e-34; the kernel took
    # alpha - c_y as a rounding of 1 + 3.2e-34 minus 1, which is 0
    monkeypatch.setenv("LOGMAX_WARM_UP", "0")  # the kernel, not the reference serving a warm-up
    for dtype in (ml_dtypes.bfloat16, np.float32):
        x = np.array([[1.61008e-31, -np.inf]]).astype(dtype)
        y = np.array([0])
        kw = dict(reduction="none", z_loss=1e-3)
        g_out = np.array([-1.0])
        got = logmax.cross_entropy_with_grad(x, y, grad_output=g_out, **kw).grad
        _within(got, reference.cross_entropy_grad(x, y, grad_output=g_out, **kw))


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_float64_nll_sum_of_subnormal_products(reduction):
    # 0.5 * 5e-324 rounds to 0 in every row; their sum, 1.25e-323, rounds to 1e-323
    lp = np.full((5, 1), -5e-324)
    t = np.zeros(5, int)
    w = np.array([0.5])
    exact = reference.nll_loss(lp, t, weight=w, reduction=reduction)
    _within(logmax.nll_loss(lp, t, weight=w, reduction=reduction), exact)
    tw = torch.tensor(w)
    _within(_np(lt.nll_loss(torch.from_numpy(lp), torch.from_numpy(t), weight=tw,
                            reduction=reduction)), exact)  # fmt: skip


def test_float64_weighted_logsumexp_that_cancels_to_a_subnormal():
    # sum b e^x = 1 - 3.3e-316 and m = 2.2e-316: lse = -1.1e-316; the exact fallback stopped
    # when two precisions agreed, both too few to see the 1e-316 (it returned m)
    x = np.array([[2.22507384e-316, 0.0, 0.0, 0.0, 0.0]])
    b = np.array([[-0.5, -1.5, 1.0, 1.0, 1.0]])
    exact = reference.logsumexp(x, axis=-1, b=b)
    _within(logmax.logsumexp(x, axis=-1, b=b), exact)


def test_float64_softcap_of_a_logit_far_beyond_the_cap(monkeypatch):
    # tanh(500) in the kernels' compiled algebra: expm1(-1000) scaled by pow2(-1443), beyond
    # its range (garbage bits, tanh = -1: the softcapped logit +20 became -20); the loss is 20
    monkeypatch.setenv("LOGMAX_WARM_UP", "0")  # the kernel, not the reference serving a warm-up
    x = np.array([[0.0, 10000.0]])
    y = np.array([0])
    kw = dict(reduction="none", softcap=20.0)
    _within(logmax.cross_entropy(x, y, **kw), reference.cross_entropy(x, y, **kw))
    got = logmax.cross_entropy_with_grad(x, y, grad_output=np.array([1.0]), **kw).grad
    _within(got, reference.cross_entropy_grad(x, y, grad_output=np.array([1.0]), **kw))


def test_float64_softcapped_logits_that_differ_in_their_low_parts_only():
    # 20 tanh(125) and 20 tanh(500) are both 20 in float64: (u - m) is all in the low parts,
    # which a high part 0 dropped in the division by T; the exact gradient is -5.7e-216
    x = np.array([[-np.inf, 2500.0, 10000.0]])
    t = np.array([[0.5, 0.5, 0.0]])
    kw = dict(reduction="none", softcap=20.0)
    g_out = np.array([2.0])
    got = logmax.cross_entropy_with_grad(x, t, grad_output=g_out, **kw).grad
    exact = reference.cross_entropy_grad(x, t, grad_output=g_out, **kw)
    _within(got, exact)
    assert got[0, 1] < 0.0
