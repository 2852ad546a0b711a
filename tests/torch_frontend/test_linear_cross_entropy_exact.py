"""linear_cross_entropy against the certified reference and against logmax's cross-entropy on the
full logits, for every way of cutting the work (token chunks, vocabulary blocks, class slabs).

The inputs are dyadic (multiples of 1/8, few features) so that every logit ``h . W_c + b_c`` is
exact in the working format: the exact loss of the materialised logits is then the exact loss of
the inputs, whatever the order of the matrix products' sums.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import logmax
from logmax.audit import metric, reference
from logmax.torch import _lce_engine as engine
from logmax.torch import cross_entropy, linear_cross_entropy

N, D, V = 13, 6, 41
FMT = {torch.float64: "float64", torch.float32: "float32", torch.bfloat16: "bfloat16",
       torch.float16: "float16"}  # fmt: skip
BOUND = metric.BOUNDS


def dyadic(gen, shape, dtype, scale=16):
    """Multiples of 1/8 in [-scale/8, scale/8]: products and short sums are exact."""
    return (torch.randint(-scale, scale + 1, shape, generator=gen) / 8.0).to(dtype)


def data(gen, dtype, bias=True, n=N, v=V):
    h = dyadic(gen, (n, D), dtype).requires_grad_()
    W = dyadic(gen, (v, D), dtype).requires_grad_()
    b = dyadic(gen, (v,), dtype, scale=24).requires_grad_() if bias else None
    y = torch.randint(0, v, (n,), generator=gen)
    y[::4] = -100
    return h, W, b, y


def logits64(h, W, b):
    x = h.detach().double() @ W.detach().double().T
    return x if b is None else x + b.detach().double()


OPTIONS = {
    "plain": {},
    "sum": {"reduction": "sum"},
    "none": {"reduction": "none"},
    "weights": {"weight": True},
    "smoothing_weights": {"label_smoothing": 0.2, "weight": True},
    "softcap": {"softcap": 2.5},
    "z_loss_none": {"z_loss": 0.05, "reduction": "none"},
    "temperature": {"temperature": 0.7},
    "everything": {
        "weight": True,
        "label_smoothing": 0.1,
        "softcap": 3.0,
        "z_loss": 1e-3,
        "temperature": 1.3,
    },  # fmt: skip
}
CUTS = {
    "whole": {},
    "chunks": {"chunk_size": 5},
    "blocks": {"chunk_size": 4, "vocab_chunk_size": 9},
    "one_column": {"chunk_size": 6, "vocab_chunk_size": 1},
    "slabs": {"chunk_size": 8, "slab_bytes": 200},  # several class slabs on several threads
}


def _options(opts, gen, dtype, v=V):
    opts = dict(opts)
    if opts.pop("weight", False):
        opts["weight"] = (torch.randint(1, 9, (v,), generator=gen) / 4.0).to(dtype)
    return opts


def _run(h, W, b, y, opts, cut, monkeypatch):
    cut = dict(cut)
    if "slab_bytes" in cut:
        monkeypatch.setattr(engine, "GROUP_BYTES", cut.pop("slab_bytes"))
    return linear_cross_entropy(h, W, y, linear_bias=b, **opts, **cut)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16],
                         ids=FMT.values())  # fmt: skip
@pytest.mark.parametrize("cut", CUTS.values(), ids=CUTS.keys())
@pytest.mark.parametrize("opts", OPTIONS.values(), ids=OPTIONS.keys())
def test_loss_within_the_bound(dtype, cut, opts, gen, monkeypatch):
    """The loss within 1 ULP of the exact value (2 in float64), however the work is cut."""
    h, W, b, y = data(gen, dtype)
    opts = _options(opts, gen, dtype)
    out = _run(h, W, b, y, opts, cut, monkeypatch)
    w = opts.get("weight")
    exact = reference.cross_entropy(
        logits64(h, W, b).numpy(), y.numpy(), None if w is None else w.double().numpy(),
        reduction=opts.get("reduction", "mean"), label_smoothing=opts.get("label_smoothing", 0.0),
        temperature=opts.get("temperature", 1.0), softcap=opts.get("softcap"),
        z_loss=opts.get("z_loss", 0.0), fmt=FMT[dtype],
    )  # fmt: skip
    err = metric.ulp_error(out.detach().double().numpy(), exact)
    assert metric.within(err, BOUND[FMT[dtype]]), err.max()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("cut", CUTS.values(), ids=CUTS.keys())
@pytest.mark.parametrize("opts", OPTIONS.values(), ids=OPTIONS.keys())
def test_gradients_match_the_full_logits(dtype, cut, opts, gen, monkeypatch):
    """dh, dW, db and the loss equal logmax's own cross-entropy of the materialised logits
    (the NumPy ``cross_entropy_with_grad`` and ``logmax.torch.cross_entropy``) and torch's."""
    h, W, b, y = data(gen, dtype)
    opts = _options(opts, gen, dtype)
    out, lse = _run(h, W, b, y, {**opts, "return_lse": True}, cut, monkeypatch)
    go = torch.linspace(0.5, 2.0, N, dtype=dtype) if out.ndim else None
    dh, dW, db = torch.autograd.grad(out, (h, W, b), go)
    x = logits64(h, W, b)
    w = opts.get("weight")
    kw = {k: v for k, v in opts.items() if k != "weight"}
    full = logmax.cross_entropy_with_grad(
        x.numpy(), y.numpy(), None if w is None else w.double().numpy(),
        grad_output=1.0 if go is None else go.double().numpy(), **kw,
    )  # fmt: skip
    gx = torch.from_numpy(np.asarray(full.grad))
    hd, Wd = h.detach().double(), W.detach().double()
    tol = {"rtol": 1e-12, "atol": 1e-13} if dtype == torch.float64 else {"rtol": 2e-5, "atol": 2e-6}
    torch.testing.assert_close(out.double(), torch.as_tensor(full.loss), **tol)
    torch.testing.assert_close(lse.double(), torch.as_tensor(full.lse), **tol)
    torch.testing.assert_close(dh.double(), gx @ Wd, **tol)
    torch.testing.assert_close(dW.double(), gx.T @ hd, **tol)
    torch.testing.assert_close(db.double(), gx.sum(0), **tol)
    xl = F.linear(h, W, b)
    lt_loss = cross_entropy(xl, y, w, **kw)
    torch.testing.assert_close(out, lt_loss, **tol)
    if not opts.get("softcap") and not opts.get("z_loss") and opts.get("temperature", 1) == 1:
        torch.testing.assert_close(out, F.cross_entropy(xl, y, w, **kw), **tol)


def test_same_result_however_cut(gen, monkeypatch):
    """Exactly the same loss and logsumexp for every cut (the statistics merge in a fixed
    order), and gradients equal to float32 rounding."""
    h, W, b, y = data(gen, torch.float32)
    results = []
    for cut in CUTS.values():
        loss, lse = _run(h, W, b, y, {"reduction": "none", "return_lse": True}, cut, monkeypatch)
        results.append((loss, lse, torch.autograd.grad(loss.sum(), (h, W, b))))
    for loss, lse, grads in results[1:]:
        assert torch.equal(loss, results[0][0]) and torch.equal(lse, results[0][1])
        for a, e in zip(grads, results[0][2], strict=True):
            torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "cut", [{}, {"chunk_size": 2, "vocab_chunk_size": 7}], ids=["rows", "blocks"]
)
def test_lse_near_zero_is_refined(cut):
    """Logits that are log-probabilities: the logsumexp is ~1e-8 and cancels; the rows whose
    lse cancels are recomputed exactly (within 1 ULP)."""
    g = torch.Generator().manual_seed(5)
    rows = torch.log_softmax(torch.randn(4, V, generator=g, dtype=torch.float64), 1).float()
    # h = one-hot rows, W = the logits transposed: h W^T is exactly the float32 logits
    h = torch.eye(4)
    W = rows.T.contiguous()
    y = torch.zeros(4, dtype=torch.long)
    _, lse = linear_cross_entropy(h, W, y, return_lse=True, **cut)
    exact = reference.logsumexp(rows.double().numpy(), fmt="float32")
    assert metric.within(metric.ulp_error(lse.double().numpy(), exact), 1.0)
    assert (lse.abs() < 1e-5).all() and (lse != 0).any()


def test_confident_row_keeps_its_tiny_loss_and_gradient():
    """Margin 30 in float32: the loss is log1p(e^-30) ~ 9.4e-14 (the naive path rounds to 0),
    and so is the gradient's (1 - p_y)."""
    h = torch.tensor([[1.0]], requires_grad=True)
    W = torch.tensor([[30.0], [0.0]], requires_grad=True)
    out = linear_cross_entropy(h, W, torch.tensor([0]))
    assert out.item() == pytest.approx(math.log1p(math.exp(-30.0)), rel=1e-6)
    (dh,) = torch.autograd.grad(out, h)
    assert dh.item() == pytest.approx(-30.0 * math.exp(-30.0) / (1 + math.exp(-30.0)), rel=1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bfloat16", "float16"])
def test_16bit_with_bias_is_exact_for_real_logits(dtype):
    """16-bit inputs with a bias: within 1 ULP of the exact loss of ``h W^T + b`` (the logits are
    computed in float32 from the exact values; a 16-bit product would round them first and lose
    up to ~20 ULP)."""
    g = torch.Generator().manual_seed(2)
    h = (torch.randn(16, 64, generator=g) * 2).to(dtype)
    W = torch.randn(50, 64, generator=g).to(dtype)
    b = (torch.randn(50, generator=g) * 3).to(dtype)
    y = torch.randint(0, 50, (16,), generator=g)
    out = linear_cross_entropy(h, W, y, linear_bias=b, reduction="none")
    exact = reference.cross_entropy(logits64(h, W, b).numpy(), y.numpy(), reduction="none",
                                    fmt=FMT[dtype])  # fmt: skip
    assert metric.within(metric.ulp_error(out.double().numpy(), exact), 1.0)
