"""Seed 000's penalty arithmetic and seed 003's vanishing gradient of a saturated softmax.

Penalty (seed 000): with ``p`` the probability given to the true class, the "likelihood" (L1)
penalty is ``1 - p`` and the log-likelihood penalty is ``-ln p``.

Gradient against the logit margin (seed 003): a row of ``C`` logits ``z = [m, 0, ..., 0]`` whose
true class is 0, so ``m = z_y - max_{j≠y} z_j`` is the margin (negative: a confident wrong
prediction). For each head/loss pairing the study computes ``||dL/dz||_2`` with autograd in
float32 (and float64) as ``m`` sweeps; a pairing whose gradient goes to zero while the prediction
is wrong cannot learn its way out (``1 - p`` and the squared error), whereas cross-entropy's
gradient ``softmax(z) - onehot(y)`` tends to ``sqrt(1 + 1/(C-1))`` there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

SEED000_CASES = ((0.9, 0.1, 0.105), (0.3, 0.7, 1.20))  # (p, L1 as printed, NLL as printed)
SEED000_RATIOS = (7.0, 11.0)  # "a factor of 7" and "a factor of ~11"


@dataclass(frozen=True)
class Penalty:
    p: float
    l1: float
    nll: float
    seed_l1: float
    seed_nll: float

    def printed_like_seed(self) -> bool:
        """Do the computed values round to the seed's printed ones (at the seed's digits)?"""

        def digits(v: float) -> int:
            text = repr(v)
            return len(text.split(".")[1]) if "." in text else 0

        return round(self.l1, digits(self.seed_l1)) == self.seed_l1 and round(
            self.nll, digits(self.seed_nll)
        ) == round(self.seed_nll, digits(self.seed_nll))


def penalties() -> list[Penalty]:
    return [Penalty(p, 1 - p, -math.log(p), l1, nll) for p, l1, nll in SEED000_CASES]


def _pairing_losses() -> dict[str, Callable]:
    """Per-row losses (no reduction over rows) of each pairing, as functions of (z, y)."""
    import torch
    from torch.nn import functional as F

    def onehot(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.one_hot(y, z.shape[1]).to(z.dtype)

    def ce(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(z, y, reduction="none")  # noqa: LMX101

    def nll(logp: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.nll_loss(logp, y, reduction="none")

    return {
        "logits + CrossEntropyLoss": ce,
        "LogSoftmax + NLLLoss": lambda z, y: nll(F.log_softmax(z, 1), y),
        "log(Softmax) + NLLLoss": lambda z, y: nll(torch.log(F.softmax(z, 1)), y),  # noqa: LMX103
        "Softmax + CrossEntropyLoss": lambda z, y: ce(F.softmax(z, 1), y),
        # nn.MSELoss averages over the C outputs of the row
        "Softmax + MSELoss": lambda z, y: (F.softmax(z, 1) - onehot(z, y)).pow(2).mean(1),
        "Softmax + L1 (1 - p)": lambda z, y: 1 - F.softmax(z, 1).gather(1, y[:, None])[:, 0],
    }


@dataclass(frozen=True)
class GradientSweep:
    margins: np.ndarray
    classes: int
    dtype: str
    norms: dict[str, np.ndarray]  # pairing -> ||dL/dz|| per margin (nan where non-finite)

    def at(self, pairing: str, margin: float) -> float:
        return float(self.norms[pairing][int(np.argmin(np.abs(self.margins - margin)))])

    def first_nonfinite(self, pairing: str) -> float | None:
        """The largest margin (closest to 0 from below) where the gradient is not finite."""
        bad = self.margins[~np.isfinite(self.norms[pairing])]
        return float(bad.max()) if bad.size else None


def gradient_sweep(
    margins: np.ndarray | None = None, classes: int = 10, dtype: str = "float32"
) -> GradientSweep:
    """``||dL/dz||_2`` for each pairing on the row ``[m, 0, ..., 0]`` with true class 0."""
    import torch

    if margins is None:
        margins = np.linspace(-120.0, 20.0, 281)
    tdtype = getattr(torch, dtype)
    z = torch.zeros(len(margins), classes, dtype=tdtype)
    z[:, 0] = torch.as_tensor(margins, dtype=tdtype)
    y = torch.zeros(len(margins), dtype=torch.long)
    norms = {}
    for label, loss_fn in _pairing_losses().items():
        rows = z.clone().requires_grad_(True)
        # one row per margin: the sum of the per-row losses gives each row its own gradient
        (grad,) = torch.autograd.grad(loss_fn(rows, y).sum(), rows)
        norm = grad.double().norm(dim=1).numpy()
        norm[~np.isfinite(norm)] = np.nan
        norms[label] = norm
    return GradientSweep(np.asarray(margins, dtype=np.float64), classes, dtype, norms)
