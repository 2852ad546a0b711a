"""linear_cross_entropy: loss and the gradients of input, weight and bias against the naive path
``cross_entropy(linear(h, W, b), y)`` for every option, across chunk and block boundaries."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from logmax.torch import _lce_engine as engine
from logmax.torch.linear_cross_entropy import LinearCrossEntropyLoss, linear_cross_entropy

N, D, V = 37, 8, 53
IGNORE = -100


def naive(h, W, y, *, b=None, weight=None, reduction="mean", ignore_index=IGNORE,
          label_smoothing=0.0, softcap=None, z_loss=0.0, temperature=1.0, lse=False):  # fmt: skip
    """The full-logits path, in torch operations (torch's own reductions where they apply)."""
    x = F.linear(h, W, b)
    if softcap is not None:
        x = softcap * torch.tanh(x / softcap)
    x = x / temperature
    x2, y2 = x.reshape(-1, W.shape[0]), y.reshape(-1)
    kw = dict(weight=weight, ignore_index=ignore_index, label_smoothing=label_smoothing)
    if lse:
        return torch.logsumexp(x, dim=-1)
    if not z_loss:
        return F.cross_entropy(x2, y2, reduction=reduction, **kw).reshape(
            y.shape if reduction == "none" else ()
        )
    rows = F.cross_entropy(x2, y2, reduction="none", **kw)
    counted = y2 != ignore_index
    w_y = torch.ones_like(rows) if weight is None else weight[torch.where(counted, y2, 0)]
    w_y = torch.where(counted, w_y, 0.0)
    rows = rows + z_loss * w_y * torch.logsumexp(x2, dim=-1) ** 2
    if reduction == "none":
        return rows.reshape(y.shape)
    return rows.sum() if reduction == "sum" else rows.sum() / w_y.sum()


def _data(dtype, gen, n=N, d=D, v=V, ignored=True, bias=True, ignore_index=IGNORE):
    h = torch.randn(n, d, generator=gen, dtype=dtype).requires_grad_()
    W = torch.randn(v, d, generator=gen, dtype=dtype).requires_grad_()
    b = torch.randn(v, generator=gen, dtype=dtype).requires_grad_() if bias else None
    y = torch.randint(0, v, (n,), generator=gen)
    if ignored:
        y[::5] = ignore_index
    return h, W, b, y


def _grads(loss, inputs, grad_output=None):
    inputs = [t for t in inputs if t is not None]
    if grad_output is None and loss.ndim:
        grad_output = torch.ones_like(loss)
    return torch.autograd.grad(loss, inputs, grad_output)


def _close(actual, expected, dtype):
    """Close relative to the largest entry: 1e-12 for float64, float32 rounding otherwise."""
    rtol = 1e-12 if dtype == torch.float64 else 2e-5
    scale = expected.abs().max().item() if expected.numel() else 0.0
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * max(scale, 1e-30))


def _check(dtype, gen, chunks, options, *, grad_output=None, **data_kw):
    h, W, b, y = _data(dtype, gen, ignore_index=options.get("ignore_index", IGNORE), **data_kw)
    weight = None
    if options.pop("class_weights", False):
        weight = torch.rand(W.shape[0], generator=gen, dtype=dtype) + 0.5
    ref = naive(h, W, y, b=b, weight=weight, **options)
    out = linear_cross_entropy(h, W, y, linear_bias=b, weight=weight, **options, **chunks)
    assert out.dtype == dtype and out.shape == ref.shape
    _close(out, ref, dtype)
    g_ref = _grads(ref, (h, W, b), grad_output)
    g_out = _grads(out, (h, W, b), grad_output)
    for a, e in zip(g_out, g_ref, strict=True):
        assert a.dtype == e.dtype
        _close(a, e, dtype)


OPTIONS = {
    "plain": {},
    "sum": {"reduction": "sum"},
    "none": {"reduction": "none"},
    "weights": {"class_weights": True},
    "weights_sum": {"class_weights": True, "reduction": "sum"},
    "smoothing": {"label_smoothing": 0.1},
    "smoothing_weights": {"label_smoothing": 0.3, "class_weights": True},
    "softcap": {"softcap": 2.5},
    "z_loss": {"z_loss": 1e-2},
    "z_loss_weights_none": {"z_loss": 0.05, "class_weights": True, "reduction": "none"},
    "temperature": {"temperature": 0.6},
    "ignore_index_7": {"ignore_index": 7},
    "everything": {
        "class_weights": True,
        "label_smoothing": 0.2,
        "softcap": 3.0,
        "z_loss": 1e-3,
        "temperature": 1.7,
    },  # fmt: skip
}


def rows_or_blocks(rows: int, cols: int):
    """Parametrize a test over whole rows (default chunks) and small vocabulary blocks."""
    return pytest.mark.parametrize(
        "chunks", [{}, {"chunk_size": rows, "vocab_chunk_size": cols}], ids=["rows", "blocks"]
    )


CHUNKS = {
    "auto": {},
    "ragged": {"chunk_size": 5},  # 37 = 7 * 5 + 2 counted-or-not rows
    "one_row": {"chunk_size": 1},
    "one_chunk": {"chunk_size": 1000},
    "vocab_blocks": {"chunk_size": 7, "vocab_chunk_size": 10},  # 53 = 5 * 10 + 3
    "vocab_last_block_one_column": {"chunk_size": 16, "vocab_chunk_size": 26},  # 53 = 2 * 26 + 1
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("chunks", CHUNKS.values(), ids=CHUNKS.keys())
@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
def test_matches_naive(dtype, chunks, options, gen):
    _check(dtype, gen, chunks, dict(options))


def test_one_column_blocks(gen):
    _check(
        torch.float64, gen, {"chunk_size": 16, "vocab_chunk_size": 1}, dict(OPTIONS["everything"])
    )


@rows_or_blocks(4, 9)
def test_without_bias_or_ignored_rows(chunks, gen):
    _check(torch.float64, gen, chunks, {"label_smoothing": 0.1}, ignored=False, bias=False)


@rows_or_blocks(4, 9)
def test_none_with_uneven_upstream_gradient(chunks, gen):
    """Per-row grad_output that differs between rows: backward runs a second sweep."""
    go = torch.rand(N, generator=gen, dtype=torch.float64)
    _check(torch.float64, gen, chunks, {"reduction": "none", "label_smoothing": 0.1,
                                        "z_loss": 0.01}, grad_output=go)  # fmt: skip


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_scaled_upstream_gradient(reduction, gen):
    _check(torch.float64, gen, {"chunk_size": 6}, {"reduction": reduction},
           grad_output=torch.tensor(-2.5, dtype=torch.float64))  # fmt: skip


def test_memory_budget_cuts_the_vocabulary(gen):
    """A budget too small for 32 whole rows cuts the rows into vocabulary blocks by itself."""
    plan = engine.make_plan(N, V, torch.float64, torch.device("cpu"), 400, None, None, 2000)
    assert plan.streaming and plan.token_chunk * plan.vocab_chunk * 8 <= 2000
    _check(torch.float64, gen, {"memory_budget": 2000}, {"label_smoothing": 0.1})


def test_default_plan_fits_the_budget():
    for n, v, dtype in [(4096, 65536, torch.float32), (10, 262144, torch.bfloat16),
                        (100000, 32000, torch.float64)]:  # fmt: skip
        plan = engine.make_plan(n, v, dtype, torch.device("cpu"), 9, None, None, None)
        per = engine.logits_dtype(dtype).itemsize
        assert plan.token_chunk * plan.vocab_chunk * per <= engine.DEFAULT_BUDGET["cpu"]
        assert plan.token_chunk <= n and not plan.streaming


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@rows_or_blocks(3, 7)
def test_all_tokens_ignored(reduction, chunks, gen):
    """No counted row: loss 0 (torch's mean gives NaN), gradients exactly 0."""
    h, W, b, y = _data(torch.float32, gen)
    y[:] = IGNORE
    out = linear_cross_entropy(h, W, y, linear_bias=b, reduction=reduction, label_smoothing=0.1,
                               **chunks)  # fmt: skip
    assert torch.equal(out, torch.zeros_like(out))
    for g in _grads(out, (h, W, b)):
        assert torch.equal(g, torch.zeros_like(g))


@rows_or_blocks(5, 11)
def test_return_lse(chunks, gen):
    """lse of every row (ignored rows too), differentiable, with softcap and temperature."""
    h, W, b, y = _data(torch.float64, gen)
    opts = dict(softcap=4.0, temperature=0.8, label_smoothing=0.1)
    loss, lse = linear_cross_entropy(h, W, y, linear_bias=b, return_lse=True, **opts, **chunks)
    ref_lse = naive(h, W, y, b=b, lse=True, **opts)
    _close(lse, ref_lse, torch.float64)
    _close(loss, naive(h, W, y, b=b, **opts), torch.float64)
    # a loss that uses the lse: the gradient flows through both outputs
    total = loss + (lse**2).mean()
    ref_total = naive(h, W, y, b=b, **opts) + (ref_lse**2).mean()
    for a, e in zip(_grads(total, (h, W, b)), _grads(ref_total, (h, W, b)), strict=True):
        _close(a, e, torch.float64)


def test_batch_dims_and_single_row(gen):
    h = torch.randn(3, 4, D, generator=gen, dtype=torch.float64, requires_grad=True)
    W = torch.randn(V, D, generator=gen, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, V, (3, 4), generator=gen)
    out = linear_cross_entropy(h, W, y, reduction="none", chunk_size=5)
    ref = F.cross_entropy((h @ W.T).reshape(-1, V), y.reshape(-1), reduction="none").reshape(3, 4)
    _close(out, ref, torch.float64)
    for a, e in zip(_grads(out, (h, W)), _grads(ref, (h, W)), strict=True):
        _close(a, e, torch.float64)
    one = linear_cross_entropy(h[0, 0], W, y[0, 0])
    _close(one, F.cross_entropy(h[0, 0] @ W.T, y[0, 0]), torch.float64)


def test_bfloat16_accumulates_in_float32(gen):
    """16-bit inputs: products in bfloat16, loss and dW, db in float32; grads in bfloat16."""
    h, W, b, y = (t if t.dtype == torch.long else t.detach().to(torch.bfloat16).requires_grad_()
                  for t in _data(torch.float32, gen, n=64, d=16, v=300))  # fmt: skip
    out = linear_cross_entropy(h, W, y, linear_bias=b, chunk_size=16)
    assert out.dtype == torch.bfloat16
    # reference: the same bfloat16 logits, the rest in float64
    x = F.linear(h, W, b).double()
    ref = F.cross_entropy(x, y)
    torch.testing.assert_close(out.double(), ref, rtol=1e-2, atol=0)
    g = _grads(out, (h, W, b))
    g_ref = torch.autograd.grad(ref, (h, W, b))
    for a, e in zip(g, g_ref, strict=True):
        assert a.dtype == torch.bfloat16
        err = (a.double() - e.double()).abs().max() / e.double().abs().max()
        assert err < 2e-2


def test_confident_row_keeps_its_tiny_loss():
    """Margin 30 in float32: the loss is log1p(e^-30) ~ 9.4e-14 (the naive path rounds to 0)."""
    h = torch.tensor([[1.0]], requires_grad=True)
    W = torch.tensor([[30.0], [0.0]], requires_grad=True)
    y = torch.tensor([0])
    out = linear_cross_entropy(h, W, y)
    true = math.log1p(math.exp(-30.0))
    assert out.item() == pytest.approx(true, rel=1e-6)
    (dh,) = torch.autograd.grad(out, h)
    # d/dh = sum_c (p_c - [c = y]) W_c = -(1 - p_0) * 30 + p_1 * 0
    assert dh.item() == pytest.approx(-30.0 * math.exp(-30.0) / (1 + math.exp(-30.0)), rel=1e-6)


@rows_or_blocks(3, 4)
def test_masked_class_via_bias(chunks, gen):
    """A -inf bias entry removes its class: finite loss, exactly zero gradient for its row of W."""
    h, W, b, y = _data(torch.float64, gen, ignored=False)
    b = b.detach().clone()
    b[[3, 17]] = -math.inf
    b.requires_grad_()
    y[y == 3] = 4
    y[y == 17] = 4
    out = linear_cross_entropy(h, W, y, linear_bias=b, **chunks)
    ref = F.cross_entropy(F.linear(h, W, b), y)
    _close(out, ref, torch.float64)
    dh, dW, db = _grads(out, (h, W, b))
    rh, rW, _ = _grads(ref, (h, W, b))
    _close(dh, rh, torch.float64)
    _close(dW, rW, torch.float64)
    assert torch.equal(dW[[3, 17]], torch.zeros_like(dW[[3, 17]]))
    assert torch.equal(db[[3, 17]], torch.zeros(2, dtype=torch.float64))


@rows_or_blocks(3, 4)
def test_softcap_keeps_masked_classes_masked(chunks, gen):
    """cap * tanh(-inf / cap) would be -cap: a -inf logit stays -inf under the softcap."""
    h, W, b, y = _data(torch.float64, gen, ignored=False)
    b = b.detach().clone()
    b[[3, 17]] = -math.inf
    b.requires_grad_()
    y[(y == 3) | (y == 17)] = 4
    out = linear_cross_entropy(h, W, y, linear_bias=b, softcap=2.0, **chunks)
    x = F.linear(h, W, b)
    x = torch.where(x == -math.inf, x, 2.0 * torch.tanh(x / 2.0))
    ref = F.cross_entropy(x, y)
    _close(out, ref, torch.float64)
    dh, dW, db = _grads(out, (h, W, b))
    rh, rW, _ = _grads(ref, (h, W, b))
    _close(dh, rh, torch.float64)
    _close(dW, rW, torch.float64)
    assert torch.equal(db[[3, 17]], torch.zeros(2, dtype=torch.float64))


def test_saturated_softcap_keeps_its_gradient():
    """d(cap tanh(x/cap))/dx = sech^2(x/cap) ~ 4e-18 at x/cap = 20, not 1 - tanh^2 = 0."""
    h = torch.tensor([[1.0]], requires_grad=True)
    W = torch.tensor([[20.0], [0.0]], requires_grad=True)
    out = linear_cross_entropy(h, W, torch.tensor([1]), softcap=1.0)
    (dW,) = torch.autograd.grad(out, W)
    p0 = 1.0 / (1.0 + math.exp(-math.tanh(20.0)))  # softmax of [tanh(20), 0] at class 0
    assert dW[0, 0].item() == pytest.approx(p0 / math.cosh(20.0) ** 2, rel=1e-5)


def test_target_on_masked_class_gives_inf_not_nan(gen):
    h, W, b, y = _data(torch.float64, gen, ignored=False)
    b = b.detach().clone()
    b[y[0]] = -math.inf
    out = linear_cross_entropy(h, W, y, linear_bias=b, reduction="none")
    on_masked = y == y[0]
    assert (out[on_masked] == math.inf).all() and torch.isfinite(out[~on_masked]).all()


def test_nan_row_propagates(gen):
    h, W, b, y = _data(torch.float64, gen, ignored=False)
    h = h.detach().clone()
    h[2, 0] = math.nan
    h.requires_grad_()
    out = linear_cross_entropy(h, W, y, reduction="none", chunk_size=4)
    assert torch.isnan(out[2]) and torch.isfinite(out[torch.arange(N) != 2]).all()
    (dh,) = _grads(out.sum(), (h,))
    assert torch.isnan(dh[2]).all() and torch.isfinite(dh[torch.arange(N) != 2]).all()


def test_module_matches_functional(gen):
    h, W, b, y = _data(torch.float64, gen)
    weight = torch.rand(V, generator=gen, dtype=torch.float64) + 0.5
    mod = LinearCrossEntropyLoss(D, V, bias=True, dtype=torch.float64, weight=weight,
                                 label_smoothing=0.1, z_loss=1e-3, chunk_size=8)  # fmt: skip
    assert "label_smoothing=0.1" in repr(mod) and "z_loss=0.001" in repr(mod)
    assert torch.equal(mod.weight, weight) and "weight" in dict(mod.named_buffers())
    out = mod(h, y)
    ref = linear_cross_entropy(
        h, mod.linear.weight, y, linear_bias=mod.linear.bias, weight=weight,
        label_smoothing=0.1, z_loss=1e-3, chunk_size=8,
    )  # fmt: skip
    assert torch.equal(out, ref)


def test_torch_signature_and_options(gen):
    """torch's keyword names and its options object are accepted; ignore_index=None is -100."""
    h, W, b, y = _data(torch.float64, gen)
    opts_cls = getattr(torch.nn, "LinearCrossEntropyOptions", None)
    options = opts_cls(batch_chunk_size=4) if opts_cls else None
    out = linear_cross_entropy(h, W, y, linear_bias=b, ignore_index=None, options=options)
    _close(out, naive(h, W, y, b=b), torch.float64)
    if hasattr(F, "linear_cross_entropy"):
        _close(out, F.linear_cross_entropy(h, W, y, linear_bias=b), torch.float64)


def test_no_grad_and_partial_requires_grad(gen):
    h, W, b, y = _data(torch.float64, gen)
    with torch.no_grad():
        out = linear_cross_entropy(h, W, y, linear_bias=b, chunk_size=6)
    assert not out.requires_grad
    _close(out, naive(h, W, y, b=b).detach(), torch.float64)
    W2 = W.detach()
    out = linear_cross_entropy(h, W2, y, chunk_size=6)
    (dh,) = torch.autograd.grad(out, h)
    (rh,) = torch.autograd.grad(naive(h, W2, y), h)
    _close(dh, rh, torch.float64)


def test_backward_twice_raises(gen):
    h, W, b, y = _data(torch.float64, gen)
    out = linear_cross_entropy(h, W, y)
    out.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="computes its gradients once"):
        out.backward()


def test_inputs_not_modified(gen):
    h, W, b, y = _data(torch.float32, gen)
    before = [t.detach().clone() for t in (h, W, b, y)]
    linear_cross_entropy(h, W, y, linear_bias=b, softcap=3.0, label_smoothing=0.1).backward()
    for t, t0 in zip((h, W, b, y), before, strict=True):
        assert torch.equal(t.detach(), t0)


def test_grads_accumulate_into_existing(gen):
    h, W, b, y = _data(torch.float64, gen)
    linear_cross_entropy(h, W, y, linear_bias=b).backward()
    first = W.grad.clone()
    linear_cross_entropy(h, W, y, linear_bias=b).backward()
    _close(W.grad, 2 * first, torch.float64)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"target": torch.tensor([0, 53, 1])},
            ValueError,
            r"target\[1\] = 53 is not a class index: expected 0 <= label < 53",
        ),
        ({"target": torch.tensor([0, -1, 1])}, ValueError, r"target\[1\] = -1"),
        ({"target": torch.tensor([0.0, 1.0, 1.0])}, TypeError, "class probabilities"),
        ({"target": torch.tensor([0, 1])}, ValueError, "expected input.shape"),
        ({"linear_bias": torch.zeros(52)}, ValueError, r"linear_bias has shape \(52,\)"),
        ({"weight": torch.ones(3)}, ValueError, "one weight per class"),
        ({"reduction": "avg"}, ValueError, "reduction must be one of"),
        ({"label_smoothing": 1.5}, ValueError, "label_smoothing"),
        ({"chunk_size": 0}, ValueError, "chunk_size must be None or a positive int"),
        ({"W": torch.zeros(V, D, dtype=torch.float64)}, TypeError, "must match"),
    ],  # fmt: skip
    ids=[
        "too_big",
        "negative",
        "float",
        "shape",
        "bias",
        "weight",
        "reduction",
        "eps",
        "chunk",
        "dtype",
    ],  # fmt: skip
)
def test_errors(kwargs, error, message, gen):
    h = torch.randn(3, D, generator=gen)
    W = kwargs.pop("W", torch.randn(V, D, generator=gen))
    target = kwargs.pop("target", torch.tensor([0, 1, 2]))
    with pytest.raises(error, match=message):
        linear_cross_entropy(h, W, target, **kwargs)


def test_bad_label_position_in_batch_dims(gen):
    h = torch.randn(2, 3, D, generator=gen)
    y = torch.zeros(2, 3, dtype=torch.long)
    y[1, 2] = 99
    with pytest.raises(ValueError, match=r"target\[1, 2\] = 99"):
        linear_cross_entropy(h, torch.randn(V, D, generator=gen), y)


@given(
    n=st.integers(1, 12),
    v=st.integers(1, 20),
    chunk=st.integers(1, 13),
    vchunk=st.one_of(st.none(), st.integers(1, 21)),
    seed=st.integers(0, 2**31),
    eps=st.sampled_from([0.0, 0.25]),
)
def test_random_shapes_and_chunks(n, v, chunk, vchunk, seed, eps):
    gen = torch.Generator().manual_seed(seed)
    h, W, b, y = _data(torch.float64, gen, n=n, d=3, v=v, ignored=False)
    y[torch.rand(n, generator=gen) < 0.3] = IGNORE
    out = linear_cross_entropy(h, W, y, linear_bias=b, label_smoothing=eps, chunk_size=chunk,
                               vocab_chunk_size=vchunk)  # fmt: skip
    ref = naive(h, W, y, b=b, label_smoothing=eps)
    if not (y != IGNORE).any():
        ref = ref.nan_to_num(0.0)  # torch's mean over nothing is NaN, ours is 0
    _close(out, ref, torch.float64)
    if (y != IGNORE).any():
        for a, e in zip(_grads(out, (h, W, b)), _grads(ref, (h, W, b)), strict=True):
            _close(a, e, torch.float64)
