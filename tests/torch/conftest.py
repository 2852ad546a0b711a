"""Fixtures for the PyTorch frontend: run each test on both paths, keep the guard quiet."""

from __future__ import annotations

import pytest
import torch

from logmax.torch import guard


@pytest.fixture(params=["auto", "torch"])
def path(request, monkeypatch):
    """Which backend CPU tensors take: the automatic choice (the Numba kernels, the NumPy
    reference where they do not serve) or plain torch (the backend of other devices, checked
    here on the CPU) -- chosen with ``LOGMAX_BACKEND``."""
    monkeypatch.setenv("LOGMAX_BACKEND", request.param)
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
