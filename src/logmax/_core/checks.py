"""Argument validation and every error message logmax raises, in one place.

Every frontend (NumPy, torch) calls these, so a mistake reads the same wherever it is made:
what is wrong, where (which row, which position), and what was expected.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from logmax._core.dtypes import EXPECTED, result_dtype

NAN_POLICIES = ("propagate", "raise")
REDUCTIONS = ("none", "mean", "sum")


def as_float_array(x: object, name: str = "input") -> np.ndarray:
    """``x`` as an ndarray, with a clear ``TypeError`` for dtypes logmax does not take."""
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{name} cannot be read as an array of numbers ({exc}); expected {EXPECTED}"
        ) from exc
    result_dtype(arr.dtype, name)
    return arr


def normalize_axes(axis: int | Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    """Axes as a sorted tuple of non-negative ints; ``None`` means every axis."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if np.ndim(axis) == 0 else tuple(axis)
    out = []
    for a in axes:
        if not isinstance(a, (int, np.integer)) or isinstance(a, bool):
            raise TypeError(f"axis must be an int or a tuple of ints, got {a!r}")
        if not -ndim <= a < ndim:
            raise np.exceptions.AxisError(int(a), ndim)
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"axis {axis!r} repeats an axis")
    return tuple(sorted(out))


def class_axis(axis: int, ndim: int) -> int:
    """The single class axis of a loss, as a non-negative int."""
    if isinstance(axis, (tuple, list)):
        raise TypeError("a loss has one class axis: pass an int, not a tuple")
    if ndim == 0:
        raise ValueError("logits must have at least one dimension (the classes)")
    return normalize_axes(axis, ndim)[0]


def check_nan_policy(nan_policy: str) -> None:
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")


def check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def check_temperature(temperature: float) -> float:
    t = float(temperature)
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
    return t


def check_softcap(softcap: float | None) -> float | None:
    if softcap is None:
        return None
    c = float(softcap)
    if not (math.isfinite(c) and c > 0):
        raise ValueError(f"softcap must be None or a positive finite number, got {softcap!r}")
    return c


def check_label_smoothing(label_smoothing: float) -> float:
    e = float(label_smoothing)
    if not 0.0 <= e <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
    return e


def check_ignore_index(ignore_index: object) -> int:
    """An int label (torch's rule: a float such as 1.9 is refused, never truncated)."""
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
        raise TypeError(
            f"ignore_index must be an int (a class index to skip), got {ignore_index!r}"
        )
    return int(ignore_index)


def int64_ignore_index(ignore_index: int) -> int:
    """``ignore_index`` as an int64 (for kernels and torch's operator schemas): one outside that
    range equals no int64 label, and neither does int64's minimum, which stands for it
    (:func:`check_labels` refuses negative labels)."""
    return ignore_index if -(2**63) <= ignore_index < 2**63 else -(2**63)


def check_flag(value: object, name: str) -> bool:
    """A real bool (or NumPy bool): the string 'no' is not False."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_normalizer(normalizer: object) -> float | None:
    """None, or the positive count that divides the summed loss."""
    if normalizer is None:
        return None
    if isinstance(normalizer, bool):
        raise TypeError(f"normalizer must be None or a positive number, got {normalizer!r}")
    n = float(normalizer)  # type: ignore[arg-type]
    if not (math.isfinite(n) and n > 0):
        raise ValueError(f"normalizer must be None or a positive finite number, got {normalizer!r}")
    return n


def check_normalizer_use(normalizer: float | None, reduction: str) -> None:
    """``normalizer`` replaces the mean's denominator: it needs ``reduction='mean'``."""
    if normalizer is not None and reduction != "mean":
        raise ValueError(
            f"normalizer replaces the mean's denominator: use it with reduction='mean', "
            f"not {reduction!r}"
        )


def check_z_loss(z_loss: float) -> float:
    z = float(z_loss)
    if not (math.isfinite(z) and z >= 0):
        raise ValueError(f"z_loss must be a non-negative finite number, got {z_loss!r}")
    return z


def broadcast_mask(where: object, shape: tuple[int, ...]) -> np.ndarray | None:
    """The ``where`` mask as a boolean array of ``shape`` (True = the entry takes part)."""
    if where is None:
        return None
    mask = np.asarray(where)
    if mask.dtype != np.bool_:
        raise TypeError(f"where must be a boolean array, got dtype {mask.dtype}")
    try:
        return np.broadcast_to(mask, shape)
    except ValueError:
        raise ValueError(
            f"where has shape {mask.shape}, which does not broadcast to {shape}"
        ) from None


def check_weight(weight: object, n_classes: int) -> np.ndarray | None:
    """Per-class weights as float64 of shape (C,)."""
    if weight is None:
        return None
    w = as_float_array(weight, "weight")
    if w.shape != (n_classes,):
        raise ValueError(
            f"weight has shape {w.shape}; expected one weight per class, shape ({n_classes},)"
        )
    w = w.astype(np.float64)
    if not np.all(np.isfinite(w)):
        bad = int(np.flatnonzero(~np.isfinite(w))[0])
        raise ValueError(f"weight[{bad}] = {w[bad]} is not finite")
    return w


def target_kind(target: np.ndarray, logits_shape: tuple[int, ...], axis: int) -> str:
    """``'hard'`` (class indices) or ``'soft'`` (class probabilities), or a clear error."""
    batch_shape = logits_shape[:axis] + logits_shape[axis + 1 :]
    help_text = (
        f"hard targets are integer class indices of shape {batch_shape} "
        f"(the logits' shape {logits_shape} without the class axis {axis}); "
        f"soft targets are class probabilities, floats of the logits' shape {logits_shape}"
    )
    kind = target.dtype.kind
    if kind in "iu":
        if target.shape != batch_shape:
            raise ValueError(f"target has shape {target.shape}; {help_text}")
        return "hard"
    if kind == "f" or target.dtype.name == "bfloat16":
        if target.shape == logits_shape:
            return "soft"
        if target.shape == batch_shape:
            raise TypeError(
                f"target has dtype {target.dtype} and shape {target.shape}: class indices must be "
                f"integers (cast with target.astype(int)); {help_text}"
            )
        raise ValueError(f"target has shape {target.shape}; {help_text}")
    raise TypeError(f"target has dtype {target.dtype}; {help_text}")


def check_labels(target: np.ndarray, n_classes: int, ignore_index: int) -> np.ndarray:
    """Boolean mask of the counted (not ignored) rows; a bad label raises ``ValueError``.

    A label must lie in ``[0, C)`` or equal ``ignore_index``; it is never wrapped around.
    """
    target = np.asarray(target)
    info = np.iinfo(target.dtype) if target.dtype.kind in "iu" else None
    if info is not None and not info.min <= ignore_index <= info.max:
        ignored = np.zeros(target.shape, dtype=bool)  # no label of this dtype can equal it
    else:
        ignored = target == ignore_index
    valid = ignored | ((target >= 0) & (target < n_classes))
    if not np.all(valid):
        pos = tuple(int(i) for i in np.argwhere(~valid)[0])
        where = f"target[{', '.join(map(str, pos))}]" if pos else "target"
        raise ValueError(
            f"{where} = {int(target[pos])} is not a class index: expected 0 <= label < "
            f"{n_classes} (the number of classes) or ignore_index={ignore_index}"
        )
    return ~ignored


def raise_nonfinite_row(bad_rows: np.ndarray, batch_shape: tuple[int, ...], what: str) -> None:
    """``nan_policy='raise'``: name the first row that holds NaN or +inf."""
    if np.any(bad_rows):
        flat = int(np.flatnonzero(bad_rows.reshape(-1))[0])
        pos = np.unravel_index(flat, batch_shape) if batch_shape else ()
        row = ", ".join(str(int(i)) for i in pos)
        raise ValueError(
            f"{what} row [{row}] contains NaN or +inf (nan_policy='raise'); "
            "mask entries with -inf or where=False instead"
        )
