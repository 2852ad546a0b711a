"""The fused cross-entropy and the vocabulary-block kernels on Triton (interpreter): every option
of the contract, within 1 ULP of the certified reference (loss) and of the float64 contract
(gradient, logsumexp), the edge rules, no mutation, and block splits that agree with the fused
kernel."""

from __future__ import annotations

import math

import pytest
import torch
from triton_helpers import DTYPES, certified_ulps, to_np, ulps

import logmax.torch as lt
from logmax._core import blocks
from logmax._core.options import LossOptions
from logmax.audit import reference
from logmax.kernels import array
from logmax.kernels.torch_backend import TorchBackend, ops_for
from logmax.kernels.triton import cross_entropy as tce
from logmax.kernels.triton_backend import TritonBackend

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the interpreter on inf - inf

C = 40
OPTIONS = {
    "plain": {},
    "weights": {"weight": True},
    "smoothing": {"weight": True, "label_smoothing": 0.1},
    "transformed": {"softcap": 8.0, "temperature": 1.3, "z_loss": 1e-3},
    "everything": {
        "weight": True,
        "label_smoothing": 0.05,
        "softcap": 20.0,
        "temperature": 0.8,
        "z_loss": 1e-2,
    },  # fmt: skip
    "soft": {"soft": True, "label_smoothing": 0.1},
}


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1414)


def _case(dtype, gen, soft=False, rows=6):
    x = (6 * torch.randn(rows, C, generator=gen, dtype=torch.float64)).to(dtype)
    x[1, 3] = -math.inf
    x[2, 9] = 40.0  # confident row
    if soft:
        t = torch.softmax(torch.randn(rows, C, generator=gen, dtype=torch.float64), 1).to(dtype)
        t[0, 3] = 0.0
    else:
        t = torch.randint(0, C, (rows,), generator=gen)
        t[2] = 9
        t[4] = -100
    w = (torch.rand(C, generator=gen, dtype=torch.float64) + 0.5).to(dtype)
    return x, t, w


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(OPTIONS))
def test_loss_gradient_and_lse_within_one_ulp(forced, small_blocks, gen, dtype, case,
                                               monkeypatch):  # fmt: skip
    o = dict(OPTIONS[case])
    soft = o.pop("soft", False)
    x, t, w = _case(dtype, gen, soft)
    weight = w if o.pop("weight", False) else None
    leaf = x.clone().requires_grad_()
    loss, lse = lt.cross_entropy(leaf, t, weight, reduction="none", return_lse=True, **o)
    loss.backward(torch.ones_like(loss))
    assert loss.dtype == dtype and leaf.grad.dtype == dtype
    exact = reference.cross_entropy(
        to_np(x), to_np(t) if soft else t.numpy(), None if weight is None else to_np(weight),
        reduction="none", label_smoothing=o.get("label_smoothing", 0.0),
        temperature=o.get("temperature", 1.0), softcap=o.get("softcap"),
        z_loss=o.get("z_loss", 0.0),
    )  # fmt: skip
    assert certified_ulps(loss, exact) <= 1.0
    # gradient and lse: the contract on the float64 values (torch backend, <= 2 float64 ULPs)
    monkeypatch.setenv("LOGMAX_BACKEND", "torch")
    ref = x.double().requires_grad_()
    w64 = None if weight is None else weight.double()
    loss64, lse64 = lt.cross_entropy(ref, t.double() if soft else t, w64, reduction="none",
                                     return_lse=True, **o)  # fmt: skip
    loss64.backward(torch.ones_like(loss64))
    assert ulps(leaf.grad, ref.grad) <= 1.0
    assert ulps(lse, lse64) <= 1.0
    if not soft:
        assert loss[4] == 0.0 and bool((leaf.grad[4] == 0).all())  # ignored row
    assert leaf.grad[1, 3] == 0.0  # masked entry


@pytest.mark.parametrize("reduction", ["mean", "sum", "normalizer"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_reductions_match_the_torch_backend(forced, gen, dtype, reduction, monkeypatch):
    x, t, w = _case(dtype, gen)
    kw = {"reduction": "mean", "normalizer": 7.0} if reduction == "normalizer" else {
        "reduction": reduction}  # fmt: skip
    out = {}
    for backend in ("triton", "torch"):
        monkeypatch.setenv("LOGMAX_BACKEND", backend)
        leaf = x.clone().requires_grad_()
        loss = lt.cross_entropy(leaf, t, w, label_smoothing=0.1, **kw)
        loss.backward()
        out[backend] = (loss, leaf.grad)
    assert ulps(out["triton"][0], out["torch"][0].double()) <= 0.5
    assert torch.equal(out["triton"][1], out["torch"][1])


def test_no_nan_for_masked_rows_or_a_mean_over_nothing(forced):
    x = torch.full((3, 5), -math.inf)
    x[2] = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0])
    leaf = x.clone().requires_grad_()
    t = torch.tensor([-100, -100, -100])
    loss = lt.cross_entropy(leaf, t)  # every row ignored, two of them fully masked
    loss.backward()
    assert loss == 0.0 and bool((leaf.grad == 0).all())
    leaf = x.clone().requires_grad_()
    rows = lt.cross_entropy(leaf, torch.tensor([1, -100, 2]), reduction="none")
    rows.sum().backward()
    rows = rows.detach()
    assert rows[0] == math.inf and rows[1] == 0.0 and math.isfinite(float(rows[2]))
    assert not bool(leaf.grad.isnan().any()) and bool((leaf.grad[:2] == 0).all())


def test_nan_logits_give_a_nan_row(forced):
    x = torch.tensor([[0.0, math.nan, 1.0], [0.0, 1.0, 2.0]], requires_grad=True)
    rows = lt.cross_entropy(x, torch.tensor([0, 1]), reduction="none")
    rows.sum().backward()
    assert math.isnan(float(rows[0])) and not math.isnan(float(rows[1]))
    assert bool(x.grad[0].isnan().all()) and not bool(x.grad[1].isnan().any())


def test_a_middle_class_axis(forced, gen):
    x = (4 * torch.randn(3, 21, 4, generator=gen)).to(torch.bfloat16)
    t = torch.randint(0, 21, (3, 4), generator=gen)
    leaf = x.clone().requires_grad_()
    loss = lt.cross_entropy(leaf, t, reduction="none", softcap=10.0)
    loss.sum().backward()
    exact = reference.cross_entropy(to_np(x), t.numpy(), reduction="none", softcap=10.0, axis=1)
    assert certified_ulps(loss, exact) <= 1.0
    assert leaf.grad.shape == x.shape


def test_backend_method_inputs_untouched_and_inplace_backward(forced, gen):
    x, t, w = _case(torch.bfloat16, gen)
    before = x.clone()
    opts = LossOptions.make(reduction="none", label_smoothing=0.1)
    go = torch.rand(x.shape[0], generator=gen)
    ours = TritonBackend().cross_entropy(x, 1, t, False, w.double(), opts, go)
    want = TorchBackend().cross_entropy(x, 1, t, False, w.double(), opts, go)
    assert torch.equal(x, before)
    for a, b in zip(ours, want, strict=True):
        assert a.dtype == b.dtype and torch.allclose(a.double(), b.double(), rtol=1e-6, atol=0)
    assert torch.equal(ours[2], want[2])
    buf = x.clone()
    loss, _, grad = TritonBackend().cross_entropy(buf, 1, t, False, w.double(), opts, go,
                                                  inplace_backward=True)  # fmt: skip
    assert grad is buf and torch.equal(grad, want[2])  # the gradient replaced the logits
    assert torch.equal(loss, ours[0])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("case", ["plain", "everything", "soft"])
def test_vocabulary_blocks_agree_with_the_fused_kernel(forced, gen, dtype, case):
    o = dict(OPTIONS[case])
    soft = o.pop("soft", False)
    has_w = o.pop("weight", False)
    x, t, w = _case(dtype, gen, soft)
    x[3, 25:] = -math.inf  # a block that is fully masked in one row
    weight = w.double() if has_w else None
    opts = LossOptions.make(reduction="sum", **o)
    fused_loss, fused_lse, fused_grad = tce.cross_entropy(x, 1, t, soft, weight, opts, 1.0)
    ops = ops_for(x)
    w_cls = array.mean_weights(ops, ops.class_weights(weight, C, x), soft, opts)
    lr = array.loss_rows(ops, t, soft, w_cls, opts, x, C)
    cuts = [0, 13, 25, C]
    st = None
    for a, b in zip(cuts, cuts[1:], strict=False):
        part = tce.ce_block(x[:, a:b], lr, opts, a)
        st = part if st is None else blocks.merge(ops, st, part, opts.temperature)
    fin = array.ce_finish(ops, st, lr, opts)
    loss = array.reduce_rows(ops, fin.loss, lr.den, opts)
    scale = array.row_scale(ops, 1.0, lr.den, lr.counted, opts, x.shape[0])
    grad = torch.cat([tce.ce_block_grad(x[:, a:b], st, fin, lr, scale, opts, a)
                      for a, b in zip(cuts, cuts[1:], strict=False)], 1)  # fmt: skip
    assert ulps(loss.to(dtype), fused_loss.double()) <= 1.0
    assert ulps(grad, fused_grad.double()) <= 1.0
    assert torch.allclose((fin.lse_hi + fin.lse_lo), fused_lse, rtol=1e-6, atol=1e-6)


def test_a_wrong_label_past_the_frontend_gives_nan_and_is_recorded(gen):
    # the frontend raises first (tests/torch); the kernel itself never reads out of bounds
    x, t, w = _case(torch.float32, gen)
    t[3] = C + 5
    t[5] = -7
    loss, _, grad = tce.cross_entropy(x, 1, t, False, None, LossOptions.make(reduction="none"),
                                      torch.ones(x.shape[0]))  # fmt: skip
    assert int(tce.LABEL_CHECK.first_wrong_row[0]) == 3
    assert math.isnan(float(loss[3])) and math.isnan(float(loss[5]))
    assert bool(grad[3].isnan().all()) and not bool(loss[[0, 1, 2, 4]].isnan().any())
    with pytest.raises(ValueError, match=r"target\[3\] = 45"):
        lt.cross_entropy(x, t)  # (forced or not: the host check of the frontend)
