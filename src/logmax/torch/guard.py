"""The input guard: ``cross_entropy`` warns once when its input is not logits.

``cross_entropy`` applies ``log_softmax`` itself. Feeding it probabilities (``softmax``'s output)
or log-probabilities (``log_softmax``'s output) is a common mistake (seed 000: "feeding softmax or
log_softmax values to CrossEntropy ... would cause weird results"); the loss still decreases a
little, so nothing crashes. The guard looks for three signs:

1. the input was made by ``softmax`` or ``log_softmax`` (its ``grad_fn``, torch's or ours);
2. every sampled row is non-negative and sums to 1 (probabilities);
3. every sampled row's logsumexp is ~0 (log-probabilities), read from the loss's own sweep.

It warns once per process with :class:`InputGuardWarning`, naming the fix, then stays silent.
Switch it off with ``logmax.torch.set_input_guard(False)`` or the environment variable
``LOGMAX_INPUT_GUARD=0``.

False negatives (the guard stays silent although the input is wrong):

- sign 1 needs autograd history: tensors made under ``torch.no_grad``, detached, or passed through
  another op (``.float()``, ``* 1``, indexing) after the softmax are not recognised by it;
- signs 2 and 3 look only at the first rows (at most 8 batch entries x 64 positions), use a
  tolerance that grows with the dtype's precision, and are skipped with ``temperature`` or
  ``softcap`` (then the lse is not that of the input);
- on non-CPU devices signs 2 and 3 run only on the first calls (they need a device sync);
- nothing is checked while ``torch.compile`` traces, nor for fewer than 2 classes;
- one-hot probability rows and confident log-probability rows (largest log-probability ~0) are
  also plausible logits: when every sampled row is such a row, signs 2 and 3 stay silent;
- probabilities that were renormalised with a temperature or smoothed away from summing to 1,
  and log-probabilities shifted by a constant, look like logits and are taken for logits.
"""

from __future__ import annotations

import os
import sys
import warnings

import torch

# Frames inside these folders are skipped when a warning names the line that caused it.
_INTERNAL_DIRS = (os.path.dirname(__file__) + os.sep, os.path.dirname(torch.__file__) + os.sep)

ENV_VAR = "LOGMAX_INPUT_GUARD"

_PROBABILITY_MAKERS = {
    "SoftmaxBackward0": "probabilities: it was made by softmax",  # torch's
    "SoftmaxEagerBackward": "probabilities: it was made by softmax",  # logmax.torch's
    "SoftmaxBackward": "probabilities: it was made by softmax",
    "LogSoftmaxBackward0": "log-probabilities: it was made by log_softmax",
    "LogSoftmaxEagerBackward": "log-probabilities: it was made by log_softmax",
    "LogSoftmaxBackward": "log-probabilities: it was made by log_softmax",
}
_SAMPLE_BATCH, _SAMPLE_POSITIONS = 8, 64
_DEVICE_CALLS = 16  # value checks on non-CPU devices: the first calls only


class InputGuardWarning(UserWarning):
    """``cross_entropy`` received probabilities or log-probabilities instead of logits."""


def enabled_by_environment() -> bool:
    """False when ``LOGMAX_INPUT_GUARD`` is ``0``, ``false``, ``off`` or ``no`` (read at import)."""
    return os.environ.get(ENV_VAR, "1").strip().lower() not in ("0", "false", "off", "no")


class _State:
    enabled: bool = enabled_by_environment()
    warned: bool = False
    device_calls: int = 0


def set_input_guard(enabled: bool) -> None:
    """Switch the input guard of :func:`logmax.torch.cross_entropy` on or off.

    Switching it on again also re-arms its single warning.
    """
    _State.enabled = bool(enabled)
    if enabled:
        _State.warned = False


def input_guard_enabled() -> bool:
    """Whether :func:`logmax.torch.cross_entropy` checks its input (see :mod:`.guard`)."""
    return _State.enabled


def _active(x: torch.Tensor) -> bool:
    return (
        _State.enabled
        and not _State.warned
        and x.ndim >= 2
        and x.shape[1] >= 2
        and not torch.compiler.is_compiling()
        and _readable(x)
    )


def _readable(x: torch.Tensor) -> bool:
    """A plain tensor whose values can be read: not meta or fake, not wrapped by torch.func."""
    return (
        type(x) is torch.Tensor
        and x.device.type != "meta"
        and not torch._C._functorch.is_functorch_wrapped_tensor(x)
    )


def check_before(x: torch.Tensor) -> None:
    """Sign 1: the logits were made by softmax / log_softmax (costs nothing)."""
    if _active(x) and x.grad_fn is not None:
        what = _PROBABILITY_MAKERS.get(type(x.grad_fn).__name__)
        if what:
            _warn(what)


def check_after(x: torch.Tensor, lse: torch.Tensor, transformed: bool) -> None:
    """Signs 2 and 3 on the first rows of ``x`` (N, C, ...) and their logsumexp ``lse``."""
    if transformed or not _active(x) or x.numel() == 0:
        return
    if x.device.type != "cpu":
        if _State.device_calls >= _DEVICE_CALLS:
            return
        _State.device_calls += 1
    with torch.no_grad():
        head = x[:_SAMPLE_BATCH]
        head = head.flatten(2) if head.ndim > 2 else head.unsqueeze(2)
        sample = head[..., :_SAMPLE_POSITIONS]  # (n, C, positions)
        sample = sample.to(torch.float64 if x.dtype == torch.float64 else torch.float32)
        lse_sample = lse[:_SAMPLE_BATCH].reshape(head.shape[0], -1)[:, :_SAMPLE_POSITIONS]
        tol = 64 * torch.finfo(x.dtype).eps * max(1.0, float(x.shape[1]) ** 0.5)
        if not bool(torch.isfinite(lse_sample).all()):
            return
        # A row that is one-hot (probabilities) or confident (log-probabilities) could as well be
        # logits such as [1, 0, 0] or [0, -30]: at least one row must be undecided.
        top = sample.amax(dim=1)
        if bool((sample >= 0).all()) and bool(((sample.sum(dim=1) - 1).abs() <= tol).all()):
            if bool((top < 1 - tol).any()):
                _warn("probabilities: every row is non-negative and sums to 1")
        elif bool((lse_sample.to(sample.dtype).abs() <= tol).all()) and bool((top < -tol).any()):
            _warn("log-probabilities: every row's logsumexp is 0")


def _warn(what: str) -> None:
    _State.warned = True
    warnings.warn(
        f"logmax.torch.cross_entropy: the input looks like {what}. cross_entropy expects "
        "raw logits and applies log_softmax itself, so this loss is wrong and trains poorly. "
        "Fix: pass the logits (the tensor before softmax / log_softmax), or call "
        "logmax.torch.nll_loss on log-probabilities. If these really are logits, silence this "
        f"with logmax.torch.set_input_guard(False) or {ENV_VAR}=0. (Shown once.)",
        InputGuardWarning,
        stacklevel=caller_stacklevel(),
    )


def caller_stacklevel() -> int:
    """The ``stacklevel`` for ``warnings.warn`` that names the first frame of the user's code.

    Frames in ``logmax.torch`` and in torch itself (``nn.Module.__call__``, the wrappers of
    ``torch.compiler.disable``) are skipped, however many there are.
    """
    frame = sys._getframe(1)  # the function that calls warnings.warn: stacklevel 1
    level = 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_INTERNAL_DIRS):
        frame = frame.f_back
        level += 1
    return level
