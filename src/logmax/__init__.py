"""logmax: softmax, log_softmax, logsumexp, nll_loss and cross_entropy done right.

The NumPy frontend lives here; the PyTorch frontend is ``logmax.torch``. The frontend's names are
imported on first use (``logmax.softmax`` loads NumPy and the frontend then), so that the tools
that need none of it (``logmax lint``, ``logmax --help``) start without it.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("logmax")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "LossGrad",
    "cross_entropy",
    "cross_entropy_with_grad",
    "log_softmax",
    "log_softmax_vjp",
    "logsumexp",
    "logsumexp_vjp",
    "nll_loss",
    "nll_loss_with_grad",
    "softmax",
    "softmax_vjp",
]

if TYPE_CHECKING:
    from logmax._numpy import (
        LossGrad,
        cross_entropy,
        cross_entropy_with_grad,
        log_softmax,
        log_softmax_vjp,
        logsumexp,
        logsumexp_vjp,
        nll_loss,
        nll_loss_with_grad,
        softmax,
        softmax_vjp,
    )


def __getattr__(name: str) -> Any:
    if name in __all__:
        value = getattr(importlib.import_module("logmax._numpy"), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'logmax' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
