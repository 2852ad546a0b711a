"""Fixtures for the PyTorch frontend: run each test on both paths, keep the guard quiet."""

from __future__ import annotations

import pytest
import torch

import logmax.torch._autograd as autograd_mod
from logmax.torch import guard


@pytest.fixture(params=["numpy", "pure_torch"])
def path(request, monkeypatch):
    """Which implementation CPU tensors take: the NumPy API (default) or plain torch (the path
    of other devices, checked here on the CPU)."""
    monkeypatch.setattr(autograd_mod, "FORCE_PURE_TORCH", request.param == "pure_torch")
    return request.param


@pytest.fixture(autouse=True)
def _fresh_guard(monkeypatch):
    """Each test starts with the guard on and not yet fired."""
    monkeypatch.setattr(guard._State, "enabled", True)
    monkeypatch.setattr(guard._State, "warned", False)
    monkeypatch.setattr(guard._State, "device_calls", 0)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)
