"""``logmax bench`` and ``run_bench``: a tiny run produces every row, ratio and compile time."""

from __future__ import annotations

import math

import pytest

from logmax.bench import BenchResult, run_bench
from logmax.bench.cli import _shape


def test_run_bench_tiny():
    pytest.importorskip("torch")
    res = run_bench(quick=True, shapes=[(8, 64)], dtypes=["float32", "float64"], repeats=2,
                    peers=("torch", "scipy", "not_a_peer"), pause=0.0)  # fmt: skip
    assert isinstance(res, BenchResult)
    assert res.threads == 2 and res.repeats == 2
    impls = {(r.op, r.dtype, r.impl) for r in res.rows}
    for op in ("softmax", "log_softmax", "logsumexp", "cross_entropy"):
        for dt in ("float32", "float64"):
            assert (op, dt, "logmax") in impls and (op, dt, "torch") in impls
    assert ("cross_entropy", "float32", "scipy") not in impls  # scipy has no CE with a gradient
    for r in res.rows:
        assert r.ms > 0 and r.gb_per_s > 0 and math.isfinite(r.speedup_vs_torch)
        if r.impl == "torch":
            assert r.speedup_vs_torch == 1.0
    assert {(c.op, c.dtype) for c in res.compile} == {
        (op, dt) for op in ("softmax", "log_softmax", "logsumexp", "cross_entropy")
        for dt in ("float32", "float64")
    }  # fmt: skip
    assert all(c.first_call_s > 0 for c in res.compile)
    text = res.table()
    assert "vs torch" in text and "not installed, skipped: not_a_peer" in text


def test_shape_argument():
    assert _shape("2048x32000") == (2048, 32000)
