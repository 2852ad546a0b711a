"""Fast paths behind a small dispatch.

The NumPy frontend validates and normalises every argument, then calls :func:`run`. A kernel
never validates: it receives clean arguments or is not asked at all. ``run`` returns
``NotImplemented`` when no kernel applies, and the frontend then uses the reference in
``logmax._core``.

The CPU kernels (:mod:`logmax.kernels.cpu`, Numba) are imported on the first call, not when
``import logmax`` runs. Set the environment variable ``LOGMAX_KERNELS=0`` (or ``reference``,
``off``, ``false``) to force the reference everywhere, for instance to compare the two.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

DISABLED_VALUES = ("0", "reference", "off", "false", "no")


def enabled() -> bool:
    """False when ``LOGMAX_KERNELS`` asks for the reference (read at every call)."""
    return os.environ.get("LOGMAX_KERNELS", "1").strip().lower() not in DISABLED_VALUES


def run(op: str, x: np.ndarray, axis: int, **options: Any) -> Any:
    """Run ``op`` with a kernel, or return ``NotImplemented`` if none applies."""
    if not enabled():
        return NotImplemented
    from logmax.kernels import cpu  # imports Numba: only now, on first use

    return cpu.run(op, x, axis, **options)
