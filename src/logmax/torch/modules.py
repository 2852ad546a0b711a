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

import inspect
from collections.abc import Callable
from typing import Any

import torch

from logmax._core import checks
from logmax._core.options import LossOptions
from logmax.torch import functional as F

__all__ = ["CrossEntropyLoss", "LogSoftmax", "NLLLoss", "Softmax"]


class _Options:
    """A module whose ``forward`` passes the options named in ``_options`` (its attributes) to
    ``_functional``; ``repr`` shows those that differ from the functional's defaults (torch's
    ``extra_repr``), so that each default is written once, in the functional's signature."""

    _functional: Callable[..., torch.Tensor]
    _options: tuple[str, ...]

    def _kwargs(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._options}

    def extra_repr(self) -> str:
        params = inspect.signature(self._functional).parameters
        return ", ".join(
            f"{name}={value!r}"
            for name, value in self._kwargs().items()
            if value != params[name].default
        )


class _Transform(_Options):
    _options = ("dim", "temperature")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self._functional(input, _stacklevel=5, **self._kwargs())


class Softmax(_Transform, torch.nn.Softmax):
    """:func:`logmax.torch.softmax` along ``dim`` (torch's signature, plus ``temperature``)."""

    _functional = staticmethod(F.softmax)

    def __init__(self, dim: int | None = None, *, temperature: float = 1.0) -> None:
        super().__init__(dim)
        self.temperature = checks.check_temperature(temperature)


class LogSoftmax(_Transform, torch.nn.LogSoftmax):
    """:func:`logmax.torch.log_softmax` along ``dim`` (torch's signature, plus ``temperature``)."""

    _functional = staticmethod(F.log_softmax)

    def __init__(self, dim: int | None = None, *, temperature: float = 1.0) -> None:
        super().__init__(dim)
        self.temperature = checks.check_temperature(temperature)


class _Loss(_Options):
    # torch's module keeps weight, ignore_index, reduction (and label_smoothing); the
    # validated extras are set from the LossOptions
    _extras: tuple[str, ...]

    def _keep(self, opts: LossOptions) -> None:
        for name in self._extras:
            setattr(self, name, getattr(opts, name))

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._functional(input, target, weight=self.weight, **self._kwargs())


class CrossEntropyLoss(_Loss, torch.nn.CrossEntropyLoss):
    """:func:`logmax.torch.cross_entropy` as a module (torch's constructor, plus our extras).

    The options are validated when the module is built, and its ``repr`` shows those that differ
    from the defaults: ``CrossEntropyLoss(label_smoothing=0.1, z_loss=0.001)``.
    """

    _functional = staticmethod(F.cross_entropy)
    _extras = ("temperature", "softcap", "z_loss", "nan_policy", "normalizer")
    _options = ("ignore_index", "reduction", "label_smoothing", *_extras)

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
        self._keep(opts)


class NLLLoss(_Loss, torch.nn.NLLLoss):
    """:func:`logmax.torch.nll_loss` as a module (torch's constructor, plus ``nan_policy``)."""

    _functional = staticmethod(F.nll_loss)
    _extras = ("nan_policy", "normalizer")
    _options = ("ignore_index", "reduction", *_extras)

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
        self._keep(LossOptions.make(self.ignore_index, self.reduction, nan_policy=nan_policy,
                                    normalizer=normalizer))  # fmt: skip
