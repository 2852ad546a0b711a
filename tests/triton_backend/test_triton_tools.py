"""The tools around the kernels: they compile for a GPU without one, and the GPU benchmark starts
and prints its table under the interpreter (``--smoke``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(args: list[str], interpret: bool, timeout: float) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "LOGMAX_BACKEND")}
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


def test_kernels_compile_for_sm90_without_a_gpu(tmp_path):
    env_cache = {"TRITON_CACHE_DIR": str(tmp_path)}
    os.environ.update(env_cache)  # (inherited by the child; pytest's tmp dir)
    out = _run([str(ROOT / "tests/triton_backend/compile_check.py")], interpret=False, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("for sm_90") == 3


@pytest.mark.slow
def test_every_kernel_variant_compiles_for_sm90(tmp_path):
    os.environ["TRITON_CACHE_DIR"] = str(tmp_path)
    out = _run(
        [str(ROOT / "tests/triton_backend/compile_check.py"), "all"], interpret=False, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("for sm_90") == 9


def test_gpu_benchmark_smoke_prints_the_table():
    out = _run([str(ROOT / "benchmarks/gpu.py"), "--smoke"], interpret=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    for case in ("softmax", "log_softmax", "logsumexp", "ce_fwd_bwd", "linear_ce"):
        assert case in out.stdout
    assert "logmax" in out.stdout and "eager" in out.stdout and "GB/s" in out.stdout
