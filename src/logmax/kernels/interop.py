"""NumPy arrays and CPU torch tensors as each other, without copies.

A CPU tensor and the ndarray from ``tensor.numpy()`` share memory; ``torch.from_numpy`` wraps an
array the same way. bfloat16 has no NumPy dtype of its own: its storage is viewed as int16 and then
as ``ml_dtypes.bfloat16``, bit for bit the same format. Used by the registry when a backend works
on the other kind of array than the frontend's (and by the torch frontend's tests).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ml_dtypes
import numpy as np

_BFLOAT16 = np.dtype(ml_dtypes.bfloat16)


def to_numpy(t: Any) -> np.ndarray:
    """A view of the CPU tensor ``t`` as an ndarray (no copy; strides kept)."""
    import torch

    t = t.detach()
    if t.is_neg():
        t = t.resolve_neg()
    if t.is_conj():
        t = t.resolve_conj()
    if t.device.type != "cpu":
        raise ValueError(f"a tensor on {t.device} cannot be read as a NumPy array")
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(_BFLOAT16)
    return t.numpy()


def from_numpy(a: Any) -> Any:
    """The ndarray ``a`` as a CPU tensor sharing its memory where torch allows it."""
    import torch

    a = np.asarray(a)
    if not a.flags.writeable or any(s < 0 for s in a.strides) or a.dtype.byteorder == ">":
        a = np.array(a, dtype=a.dtype.newbyteorder("=")) if a.dtype.byteorder == ">" else a.copy()
    if a.dtype == _BFLOAT16:
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def converter(src: str, dst: str) -> Callable[[Any], Any]:
    """A function converting every array of kind ``src`` in a value (tuples, lists and None
    included) to kind ``dst``; other values pass unchanged."""
    if src == "numpy" and dst == "torch":
        one, kind = from_numpy, np.ndarray
    elif src == "torch" and dst == "numpy":
        import torch

        one, kind = to_numpy, torch.Tensor
    else:
        raise ValueError(f"no conversion from {src} to {dst}")

    def convert(value: Any) -> Any:
        if isinstance(value, kind):
            return one(value)
        if isinstance(value, tuple):
            return tuple(convert(v) for v in value)
        if isinstance(value, list):
            return [convert(v) for v in value]
        return value

    return convert
