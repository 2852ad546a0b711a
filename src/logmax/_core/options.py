"""The options of logmax's operations, validated once into frozen dataclasses.

Every frontend (NumPy, torch, linear cross-entropy, vocab-parallel) builds its options with
:meth:`RowOptions.make` / :meth:`LossOptions.make`; every backend and kernel reads the validated
fields and never checks them again. The messages live in :mod:`logmax._core.checks`.
"""

from __future__ import annotations

from dataclasses import dataclass

from logmax._core import checks


@dataclass(frozen=True)
class RowOptions:
    """Options of softmax, log_softmax and logsumexp.

    Attributes:
        temperature: ``T > 0``: the input is divided by it first.
        nan_policy: ``'propagate'`` (a row holding NaN or ``+inf`` gives a NaN row) or
            ``'raise'`` (``ValueError`` naming that row).
    """

    temperature: float = 1.0
    nan_policy: str = "propagate"

    @classmethod
    def make(cls, temperature: float = 1.0, nan_policy: str = "propagate") -> RowOptions:
        checks.check_nan_policy(nan_policy)
        return cls(checks.check_temperature(temperature), nan_policy)


@dataclass(frozen=True)
class LossOptions:
    """Options of cross_entropy, nll_loss and their linear / vocab-parallel forms.

    Attributes:
        ignore_index: hard label whose rows give loss 0 and gradient 0 (an int; ``None`` in the
            torch frontends means torch's -100).
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        label_smoothing: ``eps`` in ``[0, 1]``: targets become ``(1 - eps) t + eps / C``.
        temperature: ``T > 0``, divides the logits after the softcap.
        softcap: ``c > 0`` or None: logits become ``c tanh(x / c)`` first.
        z_loss: ``zeta >= 0``: adds ``zeta lse^2`` per counted row (times its class weight).
        nan_policy: as :class:`RowOptions`.
        normalizer: divides the summed loss instead of the counted rows' weight (the global token
            count of gradient accumulation); None: torch's mean.
    """

    ignore_index: int = -100
    reduction: str = "mean"
    label_smoothing: float = 0.0
    temperature: float = 1.0
    softcap: float | None = None
    z_loss: float = 0.0
    nan_policy: str = "propagate"
    normalizer: float | None = None

    @classmethod
    def make(
        cls,
        ignore_index: object = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        temperature: float = 1.0,
        softcap: float | None = None,
        z_loss: float = 0.0,
        nan_policy: str = "propagate",
        normalizer: float | None = None,
    ) -> LossOptions:
        checks.check_reduction(reduction)
        checks.check_nan_policy(nan_policy)
        checks.check_normalizer_use(normalizer, reduction)
        return cls(
            ignore_index=checks.check_ignore_index(ignore_index),
            reduction=reduction,
            label_smoothing=checks.check_label_smoothing(label_smoothing),
            temperature=checks.check_temperature(temperature),
            softcap=checks.check_softcap(softcap),
            z_loss=checks.check_z_loss(z_loss),
            nan_policy=nan_policy,
            normalizer=checks.check_normalizer(normalizer),
        )

    def with_(self, **changes: object) -> LossOptions:
        """A copy with some fields changed (validated again)."""
        fields = {**self.__dict__, **changes}
        return LossOptions.make(**fields)  # type: ignore[arg-type]

    @property
    def transformed(self) -> bool:
        """The logits are changed before the softmax (temperature or softcap)."""
        return self.temperature != 1.0 or self.softcap is not None


__all__ = ["LossOptions", "RowOptions"]
