r"""Error in ULPs of the target format at the exact value.

For a computed value :math:`c` and an exact value :math:`X` (certified, see
:mod:`logmax.audit.reference`), the error is :math:`|c - X| / \mathrm{ulp}(X)`, where
:math:`\mathrm{ulp}(X)` is the spacing of the format in the binade of :math:`X`
(:math:`2^{\max(E, e_{min}) - p + 1}` with :math:`2^E \le |X| < 2^{E+1}`). A correctly rounded
result is within 0.5; a faithful one is below 1.

It is computed as :math:`|(c - a)/\mathrm{ulp} - \mathrm{frac}|` with the anchor :math:`a` (the
correctly rounded value) and :math:`\mathrm{frac} = (X - a)/\mathrm{ulp}` kept by the reference,
so it stays exact in float64 for every format (including float64 subnormals).

Non-finite outcomes: a computed NaN or infinity where the exact value is finite, or a finite value
where the exact one is infinite or NaN, is a failure and counts as ``inf``. Equal infinities, and
NaN where the exact result is NaN, count as 0. A finite exact value that rounds to infinity (it
overflows the format) counts 0 when computed as that infinity, and is otherwise measured from the
largest finite value.
"""

from __future__ import annotations

import numpy as np

from logmax.audit.reference import Exact


def ulp_error(computed: object, exact: Exact) -> np.ndarray:
    """Error of ``computed`` in ULPs of ``exact.fmt`` at the exact value; ``inf`` for failures.

    Example:
        >>> import numpy as np
        >>> from logmax.audit import reference
        >>> ex = reference.log_softmax(np.array([0.0, -500.0]))
        >>> ulp_error(np.array([0.0, -500.0]), ex)  # the first entry should be -7.1e-218
        array([7.07906...e+15, 0.00000000e+00])
    """
    c = np.asarray(computed).astype(np.float64)
    if c.shape != exact.shape:
        raise ValueError(f"computed has shape {c.shape}; the reference has shape {exact.shape}")
    r = exact.rounded
    # equal infinities, and NaN for a NaN result, are right; finite values are measured
    same = ~np.isfinite(r) & ((c == r) | (np.isnan(c) & np.isnan(r)))
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs((c - exact.anchor) / exact.ulp - exact.frac)
    err = np.where(np.isfinite(c) & ~exact.special, err, np.inf)
    return np.where(same, 0.0, err)


def sign_mismatch(computed_sign: object, exact: Exact) -> np.ndarray:
    """Where the sign from ``logsumexp(..., return_sign=True)`` differs from the exact one."""
    s = np.asarray(computed_sign, dtype=np.float64)
    ref = exact.sign
    return ~((s == ref) | (np.isnan(s) & np.isnan(ref)))


def relative_error(computed: object, exact: Exact) -> np.ndarray:
    """:math:`|c - X| / |X|` (``inf`` for non-finite failures, NaN where :math:`X = 0`)."""
    err = ulp_error(computed, exact)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        rel = np.where(np.isfinite(err), err * exact.ulp / np.abs(exact.approx), err)
    return np.where(err == 0, 0.0, rel)


def within(err: np.ndarray, bound: float) -> bool:
    """Every error finite and at most ``bound`` ULPs."""
    return bool(np.all(err <= bound))


BOUNDS: dict[str, float] = {"float16": 1.0, "bfloat16": 1.0, "float32": 1.0, "float64": 2.0}
"""The promise: ULPs allowed per target format."""
