"""A ``-inf`` logit stays masked under ``softcap`` on both torch paths, as in the NumPy core."""

import math

import pytest
import torch

import logmax.torch as lt
from logmax.torch import _autograd


@pytest.mark.parametrize("plain", [False, True])
def test_softcap_keeps_minus_inf_masked(plain, monkeypatch):
    x = torch.tensor([[-math.inf, 0.0, 1.0]], dtype=torch.float64, requires_grad=True)
    if plain:
        monkeypatch.setattr(_autograd, "FORCE_PURE_TORCH", True)
    loss = lt.cross_entropy(x, torch.tensor([0]), softcap=2.0)
    assert loss.item() == math.inf
    loss = lt.cross_entropy(x, torch.tensor([2]), softcap=2.0)
    loss.backward()
    assert x.grad[0, 0] == 0 and torch.isfinite(x.grad).all()
