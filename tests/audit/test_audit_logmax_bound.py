"""The promise as a CI test: logmax within 1 ULP (float16, bfloat16, float32) and 2 ULP
(float64) of the certified reference, on every case of the catalogue, for every op.

The NumPy frontend, its kernels called directly and the torch frontend are all held to it.
CI runs the catalogue with ``quick=True`` (2^14 classes instead of 2^18, shorter sweeps); the full
sizes run under ``-m slow``.
"""

import pytest

from logmax.audit import registry, run_audit
from logmax.audit.catalogue import OPS
from logmax.audit.runner import DTYPES

OURS = [n for n in registry.names() if n == "logmax" or n.startswith("logmax.")]


def _audit(quick: bool):
    found, _ = registry.load(OURS)
    return run_audit(impls=list(found), quick=quick)


@pytest.fixture(scope="module")
def quick_audit():
    return _audit(quick=True)


def _check(result, op: str, dtype: str) -> None:
    measured = [r for r in result.records if (r.op, r.dtype, r.impl) == (op, dtype, "logmax")]
    assert measured and all(r.measured for r in measured), [r.status for r in measured]
    misses = [r for impl in result.impls for r in result.failures(impl)
              if (r.op, r.dtype) == (op, dtype)]  # fmt: skip
    assert not misses, "logmax misses its bound:\n" + "\n".join(
        f"  {r.impl} {r.case}: max {r.max_ulp:.3g} ULP, {r.nonfinite} non-finite ({r.status})"
        for r in misses
    )


# Known misses, each strict: the test fails as soon as one is fixed, so the mark comes off.
# (op, dtype) -> why logmax misses its bound there; empty: logmax holds it everywhere.
KNOWN_MISSES: dict[tuple[str, str], str] = {}


def _params():
    for op in OPS:
        for dtype in DTYPES:
            why = KNOWN_MISSES.get((op, dtype))
            marks = [pytest.mark.xfail(strict=True, reason=why)] if why else []
            yield pytest.param(op, dtype, marks=marks, id=f"{op}-{dtype}")


@pytest.mark.parametrize(("op", "dtype"), list(_params()))
def test_logmax_within_its_bound_on_the_catalogue(quick_audit, op, dtype):
    _check(quick_audit, op, dtype)


@pytest.mark.slow
def test_logmax_within_its_bound_on_the_full_size_catalogue():
    result = _audit(quick=False)
    for op in OPS:
        for dtype in DTYPES:
            _check(result, op, dtype)
