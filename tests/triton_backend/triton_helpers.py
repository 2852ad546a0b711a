"""Shared helpers: NumPy views of tensors for the certified reference, ULP errors."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import torch

from logmax.audit import metric, reference

DTYPES = [torch.float16, torch.bfloat16, torch.float32]


def to_np(t: torch.Tensor) -> np.ndarray:
    t = t.detach()
    if t.dtype == torch.bfloat16:
        return t.float().numpy().astype(ml_dtypes.bfloat16)
    return t.numpy()


def certified_ulps(ours: torch.Tensor, exact: reference.Exact) -> float:
    """Largest error of ``ours`` in ULPs of its dtype at the certified value."""
    err = metric.ulp_error(ours.detach().double().numpy(), exact)
    return float(np.max(err)) if err.size else 0.0


def ulps(ours: torch.Tensor, exact: torch.Tensor) -> float:
    """Largest error in ULPs of ``ours``' dtype at ``exact`` (a float64 value good to far below
    that ULP); non-finite values must be equal."""
    info = torch.finfo(ours.dtype)
    e = exact.double()
    o = ours.detach().double()
    finite = torch.isfinite(e)
    same = (o[~finite] == e[~finite]) | (o[~finite].isnan() & e[~finite].isnan())
    assert bool(same.all()), "non-finite values differ"
    if not bool(finite.any()):
        return 0.0
    a = e[finite].abs()
    ulp = torch.exp2(torch.floor(torch.log2(a.clamp(min=info.tiny)))) * info.eps
    return float(((o[finite] - e[finite]).abs() / ulp).max())


def logits(dtype, gen, shape=(6, 40), scale=8.0) -> torch.Tensor:
    """Random logits with a fully masked row, masked entries and a confident row."""
    x = (scale * torch.randn(shape, generator=gen, dtype=torch.float64)).to(dtype)
    x[0] = -math.inf
    x[1, 3] = -math.inf
    x[1, 7] = -math.inf
    x[2, 5] = 60.0  # confident: s is tiny, log_softmax of the maximum is -s
    return x
