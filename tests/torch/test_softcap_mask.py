"""A ``-inf`` logit stays masked under ``softcap`` on every backend, as in the NumPy core."""

import math

import pytest
import torch

import logmax.torch as lt


@pytest.mark.parametrize("backend", ["auto", "numpy", "torch"])
def test_softcap_keeps_minus_inf_masked(backend, monkeypatch):
    x = torch.tensor([[-math.inf, 0.0, 1.0]], dtype=torch.float64, requires_grad=True)
    monkeypatch.setenv("LOGMAX_BACKEND", backend)
    loss = lt.cross_entropy(x, torch.tensor([0]), softcap=2.0)
    assert loss.item() == math.inf
    loss = lt.cross_entropy(x, torch.tensor([2]), softcap=2.0)
    loss.backward()
    assert x.grad[0, 0] == 0 and torch.isfinite(x.grad).all()
