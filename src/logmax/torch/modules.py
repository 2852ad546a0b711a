"""``nn.Module``s that replace their ``torch.nn`` namesakes by changing only the import.

Each subclasses the torch module of the same name: same constructor (deprecated ``size_average``
and ``reduce`` included), same buffers and ``state_dict``, ``isinstance`` checks still pass; only
``forward`` calls :mod:`logmax.torch.functional`. Our options are keyword-only extras.

Example:
    >>> import torch
    >>> from logmax.torch import CrossEntropyLoss   # was: from torch.nn import CrossEntropyLoss
    >>> CrossEntropyLoss()(torch.tensor([[0.0, -30.0]]), torch.tensor([0]))
    tensor(9.3576e-14)
"""

from __future__ import annotations

import torch

from logmax._core import checks
from logmax._core.options import LossOptions
from logmax.torch import functional as F

__all__ = ["CrossEntropyLoss", "LogSoftmax", "NLLLoss", "Softmax"]


def _options_repr(module: torch.nn.Module, defaults: dict[str, object]) -> str:
    """``name=value`` for each option that differs from its default (torch's extra_repr)."""
    parts = []
    for name, default in defaults.items():
        value = getattr(module, name)
        if value != default:
            parts.append(f"{name}={value!r}")
    return ", ".join(parts)


class Softmax(torch.nn.Softmax):
    """:func:`logmax.torch.softmax` along ``dim`` (torch's signature, plus ``temperature``)."""

    def __init__(self, dim: int | None = None, *, temperature: float = 1.0) -> None:
        super().__init__(dim)
        self.temperature = checks.check_temperature(temperature)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return F.softmax(input, self.dim, _stacklevel=5, temperature=self.temperature)

    def extra_repr(self) -> str:
        return _options_repr(self, {"dim": None, "temperature": 1.0})


class LogSoftmax(torch.nn.LogSoftmax):
    """:func:`logmax.torch.log_softmax` along ``dim`` (torch's signature, plus ``temperature``)."""

    def __init__(self, dim: int | None = None, *, temperature: float = 1.0) -> None:
        super().__init__(dim)
        self.temperature = checks.check_temperature(temperature)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(input, self.dim, _stacklevel=5, temperature=self.temperature)

    def extra_repr(self) -> str:
        return _options_repr(self, {"dim": None, "temperature": 1.0})


class CrossEntropyLoss(torch.nn.CrossEntropyLoss):
    """:func:`logmax.torch.cross_entropy` as a module (torch's constructor, plus our extras).

    The options are validated when the module is built, and its ``repr`` shows those that differ
    from the defaults: ``CrossEntropyLoss(label_smoothing=0.1, z_loss=0.001)``.
    """

    def __init__(
        self,
        weight: torch.Tensor | None = None,
        size_average: bool | None = None,
        ignore_index: int = -100,
        reduce: bool | None = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        *,
        temperature: float = 1.0,
        softcap: float | None = None,
        z_loss: float = 0.0,
        nan_policy: str = "propagate",
        normalizer: float | None = None,
    ) -> None:
        super().__init__(weight, size_average, ignore_index, reduce, reduction, label_smoothing)
        opts = LossOptions.make(self.ignore_index, self.reduction, label_smoothing, temperature,
                                softcap, z_loss, nan_policy, normalizer)  # fmt: skip
        self.temperature = opts.temperature
        self.softcap = opts.softcap
        self.z_loss = opts.z_loss
        self.nan_policy = opts.nan_policy
        self.normalizer = opts.normalizer

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
            temperature=self.temperature,
            softcap=self.softcap,
            z_loss=self.z_loss,
            nan_policy=self.nan_policy,
            normalizer=self.normalizer,
        )

    def extra_repr(self) -> str:
        return _options_repr(self, {
            "ignore_index": -100, "reduction": "mean", "label_smoothing": 0.0,
            "temperature": 1.0, "softcap": None, "z_loss": 0.0, "nan_policy": "propagate",
            "normalizer": None,
        })  # fmt: skip


class NLLLoss(torch.nn.NLLLoss):
    """:func:`logmax.torch.nll_loss` as a module (torch's constructor, plus ``nan_policy``)."""

    def __init__(
        self,
        weight: torch.Tensor | None = None,
        size_average: bool | None = None,
        ignore_index: int = -100,
        reduce: bool | None = None,
        reduction: str = "mean",
        *,
        nan_policy: str = "propagate",
        normalizer: float | None = None,
    ) -> None:
        super().__init__(weight, size_average, ignore_index, reduce, reduction)
        opts = LossOptions.make(self.ignore_index, self.reduction, nan_policy=nan_policy,
                                normalizer=normalizer)  # fmt: skip
        self.nan_policy = opts.nan_policy
        self.normalizer = opts.normalizer

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.nll_loss(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            nan_policy=self.nan_policy,
            normalizer=self.normalizer,
        )

    def extra_repr(self) -> str:
        return _options_repr(self, {
            "ignore_index": -100, "reduction": "mean", "nan_policy": "propagate",
            "normalizer": None,
        })  # fmt: skip
