"""CPU tensors through the NumPy API of logmax, without copies at the border.

A CPU tensor and the ndarray from ``tensor.numpy()`` share memory; ``torch.from_numpy`` wraps the
result the same way. bfloat16 has no NumPy dtype of its own: its storage is viewed as int16 and
then as ``ml_dtypes.bfloat16``, which is bit-for-bit the same format. All maths happens in
:mod:`logmax` (and its Numba kernels); this module only converts. The functions have the same
signatures as :mod:`logmax.torch._pure_torch`, the path for other devices.
"""

from __future__ import annotations

from collections.abc import Sequence

import ml_dtypes
import numpy as np
import torch

import logmax

_BFLOAT16 = np.dtype(ml_dtypes.bfloat16)


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A view of the CPU tensor ``t`` as an ndarray (no copy; strides kept)."""
    t = t.detach()
    if t.is_neg():
        t = t.resolve_neg()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(_BFLOAT16)
    return t.numpy()


def from_numpy(a: np.ndarray) -> torch.Tensor:
    """The ndarray ``a`` as a CPU tensor sharing its memory where torch allows it."""
    a = np.asarray(a)
    if not a.flags.writeable or any(s < 0 for s in a.strides):
        a = a.copy()  # torch takes neither read-only nor negatively strided memory
    if a.dtype == _BFLOAT16:
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def _opt(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else to_numpy(t)


def softmax(
    x: torch.Tensor, dim: int | Sequence[int], *, temperature: float = 1.0, nan_policy: str
) -> torch.Tensor:
    y = logmax.softmax(to_numpy(x), axis=dim, temperature=temperature, nan_policy=nan_policy)
    return from_numpy(y)


def log_softmax(
    x: torch.Tensor, dim: int | Sequence[int], *, temperature: float = 1.0, nan_policy: str
) -> torch.Tensor:
    y = logmax.log_softmax(to_numpy(x), axis=dim, temperature=temperature, nan_policy=nan_policy)
    return from_numpy(y)


def logsumexp(
    x: torch.Tensor,
    dim: int | Sequence[int],
    keepdim: bool = False,
    *,
    temperature: float = 1.0,
    nan_policy: str,
) -> torch.Tensor:
    y = logmax.logsumexp(
        to_numpy(x), axis=dim, keepdims=keepdim, temperature=temperature, nan_policy=nan_policy
    )
    return from_numpy(y)


def softmax_vjp(
    y: torch.Tensor, grad: torch.Tensor, dim: int | Sequence[int], *, temperature: float = 1.0
) -> torch.Tensor:
    return from_numpy(logmax.softmax_vjp(to_numpy(y), to_numpy(grad), dim, temperature=temperature))


def log_softmax_vjp(
    y: torch.Tensor, grad: torch.Tensor, dim: int | Sequence[int], *, temperature: float = 1.0
) -> torch.Tensor:
    gx = logmax.log_softmax_vjp(to_numpy(y), to_numpy(grad), dim, temperature=temperature)
    return from_numpy(gx)


def logsumexp_vjp(
    x: torch.Tensor,
    grad: torch.Tensor,
    dim: int | Sequence[int],
    keepdim: bool = False,
    *,
    temperature: float = 1.0,
) -> torch.Tensor:
    gx = logmax.logsumexp_vjp(
        to_numpy(x), to_numpy(grad), dim, keepdims=keepdim, temperature=temperature
    )
    return from_numpy(gx)


def cross_entropy_with_grad(
    x: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
    *,
    dim: int,
    temperature: float,
    softcap: float | None,
    z_loss: float,
    nan_policy: str,
    want_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    args = (to_numpy(x), to_numpy(target), _opt(weight), ignore_index, reduction, label_smoothing)
    opts = dict(
        axis=dim, temperature=temperature, softcap=softcap, z_loss=z_loss, nan_policy=nan_policy
    )
    if want_grad:
        loss, grad, lse = logmax.cross_entropy_with_grad(*args, **opts, grad_output=1.0)
        return from_numpy(loss), from_numpy(grad), from_numpy(lse)
    loss, lse = logmax.cross_entropy(*args, **opts, return_lse=True)
    return from_numpy(loss), None, from_numpy(lse)


def nll_loss_with_grad(
    logp: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None,
    ignore_index: int,
    reduction: str,
    *,
    dim: int,
    nan_policy: str,
    want_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    args = (to_numpy(logp), to_numpy(target), _opt(weight), ignore_index, reduction)
    if want_grad:
        loss, grad, _ = logmax.nll_loss_with_grad(
            *args, axis=dim, nan_policy=nan_policy, grad_output=1.0
        )
        return from_numpy(loss), from_numpy(grad)
    return from_numpy(logmax.nll_loss(*args, axis=dim, nan_policy=nan_policy)), None
