"""One chunk of logits through logmax's NumPy cross-entropy (its fused Numba kernel on the CPU).

The ``backend='core'`` path of :func:`logmax.torch.linear_cross_entropy`: the chunk's logits are
handed to :func:`logmax.cross_entropy_with_grad` without a copy (a NumPy view of the CPU
tensor), which returns each row's loss and lse and the gradient in a new array, computed in
float64 (float32 and 16-bit logits) or double-double (float64) before one rounding.
"""

from __future__ import annotations

import numpy as np
import torch

import logmax
from logmax.torch import _lce_math as lm

NOT_A_LABEL = -1  # stands for ignored rows: outside [0, C), so the core skips them


def applies(spec: lm.LossSpec, dtype: torch.dtype, device: torch.device, lse_grad: bool) -> bool:
    """Whether the core takes this chunk: CPU, no lse gradient, and (for float64) no softcap or
    temperature, which the core's float64 kernel leaves to its slower reference."""
    if device.type != "cpu" or lse_grad:
        return False
    plain = spec.softcap is None and spec.temperature == 1.0
    return dtype != torch.float64 or plain


def chunk(
    x: torch.Tensor,
    rows: lm.Rows,
    spec: lm.LossSpec,
    loss_out: torch.Tensor,
    lse_out: torch.Tensor,
) -> torch.Tensor | None:
    """Loss and lse of the chunk ``x`` (rows, C) into the outputs; returns the gradient or None.

    The gradient is that of ``sum(loss_grad * loss)``, as a tensor sharing the core's array.
    """
    labels = torch.where(rows.counted > 0, rows.target, NOT_A_LABEL).numpy()
    weight = None if spec.weight is None else spec.weight.double().numpy()
    grad_output = None if rows.loss_grad is None else rows.loss_grad.double().numpy()
    kw = dict(
        weight=weight,
        ignore_index=NOT_A_LABEL,
        reduction="none",
        label_smoothing=spec.label_smoothing,
        temperature=spec.temperature,
        softcap=spec.softcap,
        z_loss=spec.z_loss,
    )
    xn = x.detach().numpy()
    if grad_output is None:
        loss, lse = logmax.cross_entropy(xn, labels, return_lse=True, **kw)
        grad = None
    else:
        loss, grad, lse = logmax.cross_entropy_with_grad(xn, labels, grad_output=grad_output, **kw)
    loss_out.copy_(torch.from_numpy(np.asarray(loss)))
    lse_out.copy_(torch.from_numpy(np.asarray(lse)))
    return None if grad is None else torch.from_numpy(grad)
