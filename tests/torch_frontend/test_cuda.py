"""CUDA tensors take the plain-torch path: same answers as the CPU (skipped without a GPU)."""

from __future__ import annotations

import math

import pytest
import torch

import logmax.torch as lt

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_cross_entropy_on_cuda_matches_cpu(dtype):
    g = torch.Generator().manual_seed(0)
    x = (4 * torch.randn(64, 33, 5, generator=g)).to(dtype)
    x[0, :, 0] = -math.inf
    t = torch.randint(0, 33, (64, 5), generator=g)
    t[::7] = -100
    w = torch.rand(33, generator=g, dtype=dtype) + 0.5
    opts = dict(weight=w, label_smoothing=0.1, z_loss=1e-3, temperature=1.3, softcap=20.0)
    results = []
    for device in ("cpu", "cuda"):
        leaf = x.to(device).requires_grad_()
        loss = lt.cross_entropy(leaf, t.to(device), **{**opts, "weight": w.to(device)})
        loss.backward()
        results.append((loss.detach().cpu(), leaf.grad.cpu()))
    (loss_cpu, grad_cpu), (loss_cuda, grad_cuda) = results
    info = torch.finfo(dtype)
    torch.testing.assert_close(loss_cuda, loss_cpu, rtol=2 * info.eps, atol=0)
    torch.testing.assert_close(grad_cuda, grad_cpu, rtol=2 * info.eps, atol=4 * info.tiny)


def test_elementwise_and_errors_on_cuda():
    x = torch.tensor([[0.0, -math.inf, 2.0], [-math.inf] * 3], device="cuda")
    torch.testing.assert_close(lt.softmax(x, 1).cpu(), lt.softmax(x.cpu(), 1))
    torch.testing.assert_close(lt.logsumexp(x, 1).cpu(), lt.logsumexp(x.cpu(), 1))
    with pytest.raises(ValueError, match=r"target\[1\] = 7"):
        lt.cross_entropy(x, torch.tensor([0, 7], device="cuda"))
    with pytest.raises(ValueError, match=r"row \[0\]"):
        lt.softmax(torch.tensor([[math.nan, 0.0]], device="cuda"), 1, nan_policy="raise")
