"""The messages of :func:`logmax.torch.linear_cross_entropy` that :mod:`logmax._core.checks` does
not have yet (meant to move there). Each function raises with what is wrong and what was
expected; shapes and dtypes only, so they run while ``torch.compile`` traces.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def check_tensor(t: object, name: str) -> None:
    """``TypeError`` unless ``t`` is a tensor (a NumPy array or a list is not)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")


def check_float_input(x: torch.Tensor) -> None:
    if not x.is_floating_point():
        raise TypeError(
            f"input has dtype {x.dtype}; expected a floating point tensor "
            "(float16, bfloat16, float32 or float64)"
        )


def check_same_dtype(t: torch.Tensor | None, name: str, input: torch.Tensor) -> None:
    """torch's rule for ``linear_weight``, ``linear_bias`` and the class ``weight``: the input's
    dtype (torch raises too; cast with ``.to(input.dtype)``)."""
    if t is not None and t.dtype != input.dtype:
        raise TypeError(
            f"{name} has dtype {t.dtype} but input has {input.dtype}; they must match "
            f"(as in torch.nn.functional.linear_cross_entropy): cast with .to({input.dtype})"
        )


def check_same_device(tensors: Sequence[tuple[str, torch.Tensor | None]], input: torch.Tensor):
    for name, t in tensors:
        if t is not None and t.device != input.device:
            raise TypeError(f"{name} is on {t.device} but input is on {input.device}")


def check_weight_shape(linear_weight: torch.Tensor) -> None:
    if linear_weight.ndim < 2:
        raise ValueError(
            f"linear_weight has shape {tuple(linear_weight.shape)}; expected (C, D) = (classes, "
            "input features), or (C, d1, ..., dK, D) for a K-dimensional loss"
        )


def check_input_shape(input: torch.Tensor, linear_weight: torch.Tensor) -> None:
    dim = linear_weight.shape[-1]
    k_dims = linear_weight.ndim - 2
    if input.ndim == 0 or input.shape[-1] != dim:
        raise ValueError(
            f"input has shape {tuple(input.shape)}; expected (..., {dim}) to match linear_weight "
            f"of shape {tuple(linear_weight.shape)}"
        )
    if k_dims and input.ndim != 2:
        raise ValueError(
            f"a K-dimensional loss (linear_weight of shape {tuple(linear_weight.shape)}) needs "
            f"batched input (N, {dim}); got shape {tuple(input.shape)}"
        )


def check_target(target: torch.Tensor, expected: tuple[int, ...], logits_shape) -> None:
    """Integer class indices of shape ``expected``."""
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise TypeError(
            f"target has dtype {target.dtype}: linear_cross_entropy takes integer class indices "
            f"of shape {expected}; class probabilities (of the logits' shape "
            f"{tuple(logits_shape)}) need the full logits: use torch.nn.functional.cross_entropy"
        )
    if tuple(target.shape) != expected:
        raise ValueError(
            f"target has shape {tuple(target.shape)}; expected input.shape[:-1] = {expected} "
            "(with the K dimensions of linear_weight after them)"
        )


def check_bias_shape(linear_bias: torch.Tensor | None, expected: tuple[int, ...]) -> None:
    if linear_bias is not None and tuple(linear_bias.shape) != expected:
        raise ValueError(
            f"linear_bias has shape {tuple(linear_bias.shape)}; expected {expected} "
            "(linear_weight's shape without its last dimension)"
        )


def check_class_weight_shape(weight: torch.Tensor | None, n_classes: int) -> None:
    """The shape part of :func:`logmax._core.checks.check_weight` (which also reads the values,
    at run time)."""
    if weight is not None and tuple(weight.shape) != (n_classes,):
        raise ValueError(
            f"weight has shape {tuple(weight.shape)}; expected one weight per class, shape "
            f"({n_classes},)"
        )


def check_positive_ints(**values: int | None) -> None:
    """Chunking options: None or a positive int."""
    for name, value in values.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):  # fmt: skip
            raise ValueError(f"{name} must be None or a positive int, got {value!r}")


def check_backend(backend: str | None) -> None:
    if backend not in (None, "torch", "core"):
        raise ValueError(
            f"backend must be None (the default), 'torch' or 'core' (both kept for old code; "
            f"the registry chooses), got {backend!r}"
        )
