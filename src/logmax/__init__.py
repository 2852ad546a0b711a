"""logmax: softmax, log_softmax, logsumexp, nll_loss and cross_entropy done right.

The NumPy frontend lives here; the PyTorch frontend is ``logmax.torch``.
"""

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

__version__ = "0.1.0"

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
