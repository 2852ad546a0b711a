"""One registry of backends: which one serves a call, chosen once, at the top of every frontend.

A backend is an object with a ``name``, the array kind it works on (``native``: ``'numpy'`` or
``'torch'``), ``available()`` and ``supports(call)`` (each ``None`` when it can, else the reason
why not), and one method per op of the contract (see :mod:`logmax.kernels.numpy_backend`, the
reference, for their signatures). A frontend describes its call (:class:`Call`: the op, the array
kind, device, dtype and the options in use) and runs it with :func:`run`; arrays cross between
NumPy and torch without copies when the chosen backend works on the other kind (CPU only).

Backends, in the order they are tried:

- NumPy arrays: ``numba`` (fused CPU kernels), then ``numpy`` (the reference);
- torch tensors: ``triton`` (GPU kernels), ``numba`` (CPU tensors, zero-copy), then ``torch``
  (plain torch operations, any device).

Environment:

- ``LOGMAX_BACKEND=<name>`` forces one backend for every call, and raises
  :class:`BackendError` when it cannot serve a call or the name is unknown (no silent fallback).
  Unset (or ``auto``): the first backend in the order above that supports the call.
- ``LOGMAX_KERNELS=0`` (or ``off``, ``false``, ``no``, ``reference``) leaves out the fast kernels
  (``numba``, ``triton``) of the automatic choice: NumPy arrays take the reference, torch tensors
  plain torch.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ENV_BACKEND = "LOGMAX_BACKEND"
ENV_KERNELS = "LOGMAX_KERNELS"
DISABLED_VALUES = ("0", "reference", "off", "false", "no")

# name -> "module:attribute" of a zero-argument factory (imported on first use)
_FACTORIES: dict[str, str] = {
    "numpy": "logmax.kernels.numpy_backend:NumpyBackend",
    "numba": "logmax.kernels.numba_backend:NumbaBackend",
    "torch": "logmax.kernels.torch_backend:TorchBackend",
    "triton": "logmax.kernels.triton_backend:TritonBackend",
}
AUTO: dict[str, tuple[str, ...]] = {
    "numpy": ("numba", "numpy"),
    "torch": ("triton", "numba", "torch"),
}
FAST = ("numba", "triton")

# The options a call may use, as named in Call.options.
OPTIONS = frozenset(
    {
        "temperature", "softcap", "label_smoothing", "z_loss", "weight", "soft",
        "grad", "middle_axis", "empty", "lse",
    }
)  # fmt: skip


class BackendError(RuntimeError):
    """A forced backend cannot serve a call, or ``LOGMAX_BACKEND`` names no backend."""


@dataclass(frozen=True)
class Call:
    """What a frontend asks for: the op, the arrays' kind, device and dtype, the options in use."""

    op: str
    array: str  # 'numpy' or 'torch'
    device: str = "cpu"
    dtype: str = "float32"
    options: frozenset[str] = field(default_factory=frozenset)

    def describe(self) -> str:
        opts = f" with {', '.join(sorted(self.options))}" if self.options else ""
        return f"{self.op} on {self.dtype} {self.array} arrays on {self.device}{opts}"


_loaded: dict[str, Any] = {}


def backend(name: str) -> Any:
    """The backend called ``name`` (created on first use)."""
    if name not in _FACTORIES:
        raise BackendError(
            f"{ENV_BACKEND}={name!r} is not a backend; known: {', '.join(_FACTORIES)} (or 'auto')"
        )
    if name not in _loaded:
        module, attr = _FACTORIES[name].split(":")
        _loaded[name] = getattr(importlib.import_module(module), attr)()
    return _loaded[name]


def names() -> tuple[str, ...]:
    return tuple(_FACTORIES)


def forced() -> str | None:
    """The backend named by ``LOGMAX_BACKEND`` (read at every call), or None."""
    value = os.environ.get(ENV_BACKEND, "").strip().lower()
    return None if value in ("", "auto") else value


def kernels_enabled() -> bool:
    """False when ``LOGMAX_KERNELS`` asks to leave out the fast kernels (read at every call)."""
    return os.environ.get(ENV_KERNELS, "1").strip().lower() not in DISABLED_VALUES


def select(call: Call) -> Any:
    """The backend that serves ``call`` (see the module docstring for the rules)."""
    name = forced()
    if name is not None:
        b = backend(name)
        reason = b.available() or b.supports(call)
        if reason:
            raise BackendError(f"{ENV_BACKEND}={name} cannot serve {call.describe()}: {reason}")
        return b
    order = AUTO[call.array]
    if not kernels_enabled():
        order = tuple(n for n in order if n not in FAST)
    reasons = []
    for candidate in order:
        b = backend(candidate)
        reason = b.available() or b.supports(call)
        if reason is None:
            return b
        reasons.append(f"{candidate}: {reason}")
    raise BackendError(f"no backend serves {call.describe()} ({'; '.join(reasons)})")


def run(call: Call, *args: Any, **kwargs: Any) -> Any:
    """Run ``call.op`` on the selected backend; arrays are converted to its kind and back."""
    b = select(call)
    method: Callable[..., Any] = getattr(b, call.op)
    if b.native == call.array:
        return method(*args, **kwargs)
    from logmax.kernels import interop

    there = interop.converter(call.array, b.native)
    back = interop.converter(b.native, call.array)
    out = method(*(there(a) for a in args), **{k: there(v) for k, v in kwargs.items()})
    return back(out)
