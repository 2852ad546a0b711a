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

Warm-up: a backend may say its kernels for a call are not ``ready`` (Numba compiles or loads them
from its cache on first use, which takes a second or more). A small call (up to
:data:`WARM_UP_ELEMENTS` elements) is then served by the next backend while the kernels load in
the background; a larger call waits for them. So the first calls of a session return at once,
from the reference, with the same precision (results of the two backends may differ in the last
place, both within the bound). ``LOGMAX_WARM_UP=0`` turns this off.
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
    size: int = 0  # elements of the main input (0: not said)

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
        try:
            _loaded[name] = getattr(importlib.import_module(module), attr)()
        except ImportError as exc:  # its library is not installed: a backend that says so
            _loaded[name] = _Unavailable(name, f"{exc.name or exc} is not installed")
    return _loaded[name]


class _Unavailable:
    """A backend whose library is missing: never chosen, and forcing it says why."""

    native = "none"

    def __init__(self, name: str, reason: str) -> None:
        self.name, self.reason = name, reason

    def available(self) -> str:
        return self.reason

    def supports(self, call: Call) -> str:
        return self.reason


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
        if reason is None and _warming(b, call):
            reason = "its kernels are loading in the background"
        if reason is None:
            return b
        reasons.append(f"{candidate}: {reason}")
    raise BackendError(f"no backend serves {call.describe()} ({'; '.join(reasons)})")


WARM_UP_ELEMENTS = 1 << 15
ENV_WARM_UP = "LOGMAX_WARM_UP"


def warm_up_enabled() -> bool:
    """False when ``LOGMAX_WARM_UP=0``: every call waits for the kernels it will use (the
    suite sets it, so that each test runs the backend it means to)."""
    return os.environ.get(ENV_WARM_UP, "1").strip().lower() not in DISABLED_VALUES


def _warming(b: Any, call: Call) -> bool:
    """A small call while ``b``'s kernels for it are not loaded yet: start loading them in the
    background and let the next backend serve this call (the automatic choice only)."""
    ready = getattr(b, "ready", None)
    if ready is None or ready(call) or not warm_up_enabled():
        return False
    if not 0 < call.size <= WARM_UP_ELEMENTS:
        return False  # a big call waits for the kernels
    b.warm_up(call)
    return True


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
