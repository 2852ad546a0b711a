"""logmax for PyTorch: drop-in for ``torch.nn.functional`` and ``torch.nn``.

Replace ``torch.nn.functional`` by ``logmax.torch`` (or ``torch.nn.CrossEntropyLoss`` by
``logmax.torch.CrossEntropyLoss``) and the results become exact, masked rows never turn into NaN,
bad labels name themselves. CPU tensors run on logmax's NumPy/Numba kernels without copies;
other devices run the same contract in plain torch operations.

Example:
    >>> import torch
    >>> import logmax.torch as F                      # was: import torch.nn.functional as F
    >>> F.cross_entropy(torch.tensor([[3.2, 1.3, 0.2, 0.8]]), torch.tensor([0]))
    tensor(0.2547)
"""

try:
    import torch as _torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "logmax.torch needs PyTorch: pip install 'logmax[torch]' (or torch itself)"
    ) from exc

from logmax.torch.functional import cross_entropy, log_softmax, logsumexp, nll_loss, softmax
from logmax.torch.guard import InputGuardWarning, input_guard_enabled, set_input_guard
from logmax.torch.linear_cross_entropy import LinearCrossEntropyLoss, linear_cross_entropy
from logmax.torch.modules import CrossEntropyLoss, LogSoftmax, NLLLoss, Softmax

__all__ = [
    "CrossEntropyLoss",
    "InputGuardWarning",
    "LinearCrossEntropyLoss",
    "LogSoftmax",
    "NLLLoss",
    "Softmax",
    "cross_entropy",
    "input_guard_enabled",
    "linear_cross_entropy",
    "log_softmax",
    "logsumexp",
    "nll_loss",
    "set_input_guard",
    "softmax",
]
