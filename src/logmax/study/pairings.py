"""The head/loss pairings the seeds argue about, as PyTorch modules and loss functions.

Each pairing puts a ``head`` after the network's last linear layer and scores its output with a
``loss``; the network body is the same for all of them. ``logits + CrossEntropyLoss`` is the
recommended way; the others are the seeds' variants:

=================================  ==========================================================
logits + CrossEntropyLoss          ``CE(z, y) = logsumexp(z) - z_y``
Softmax + CrossEntropyLoss         ``CE(softmax(z), y)``: softmax applied twice (seed 000)
LogSoftmax + NLLLoss               ``-log_softmax(z)_y``: the same value as CE (seed 003)
LogSoftmax + CrossEntropyLoss      ``CE(log_softmax(z), y) = CE(z, y)``: log_softmax is idempotent
Softmax + MSELoss                  ``mean_j (softmax(z)_j - onehot(y)_j)^2`` (seed 003)
log(Softmax) + NLLLoss             ``-log(softmax(z))_y``: CE's value, computed naively (seed 002)
logmax.torch.cross_entropy         logmax's loss on the logits, if ``logmax.torch`` imports
=================================  ==========================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

BASELINE = "logits + CrossEntropyLoss"


class LogOfSoftmax(nn.Module):
    """``torch.log(torch.softmax(x, dim))``: the naive composition seed 002 warns about."""

    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(torch.softmax(x, dim=self.dim))  # noqa: LMX103


def mse_on_onehot(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``MSELoss(output, onehot(target))``: the squared error seed 003 calls a poor loss."""
    onehot = nn.functional.one_hot(target, num_classes=output.shape[1]).to(output.dtype)
    return nn.functional.mse_loss(output, onehot)


@dataclass(frozen=True)
class Pairing:
    label: str
    head: Callable[[], nn.Module]
    loss: LossFn


def logmax_torch_loss() -> tuple[LossFn | None, str | None]:
    """``logmax.torch.cross_entropy`` if it can be imported, else ``(None, why not)``."""
    try:
        from logmax.torch import cross_entropy
    except Exception as err:  # any import failure means the pairing is unavailable
        return None, f"logmax.torch.cross_entropy unavailable ({type(err).__name__}: {err})"
    return cross_entropy, None


def pairings(include_logmax: bool = True) -> tuple[list[Pairing], list[str]]:
    """All pairings of the study, and a note for each that could not be built."""
    ce, nll = nn.CrossEntropyLoss(), nn.NLLLoss()
    found = [
        Pairing(BASELINE, nn.Identity, ce),
        Pairing("Softmax + CrossEntropyLoss", lambda: nn.Softmax(dim=1), ce),
        Pairing("LogSoftmax + NLLLoss", lambda: nn.LogSoftmax(dim=1), nll),
        Pairing("LogSoftmax + CrossEntropyLoss", lambda: nn.LogSoftmax(dim=1), ce),
        Pairing("Softmax + MSELoss", lambda: nn.Softmax(dim=1), mse_on_onehot),
        Pairing("log(Softmax) + NLLLoss", LogOfSoftmax, nll),
    ]
    missing = []
    if include_logmax:
        loss, why = logmax_torch_loss()
        if loss is None:
            missing.append(why or "logmax.torch.cross_entropy unavailable")
        else:
            found.append(Pairing("logits + logmax.torch.cross_entropy", nn.Identity, loss))
    return found, missing
