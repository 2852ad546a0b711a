"""The CPU kernels' threads: fork-safe (a forked child and a fork Pool work after the parent used
a kernel), safe from several Python threads at once, and the count is settable."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import logmax
from logmax.kernels import get_num_threads, set_num_threads

X = np.random.default_rng(0).normal(size=(256, 512)).astype(np.float32)


def _child_sum(_: int) -> float:
    return float(logmax.logsumexp(X).sum())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_after_a_kernel_works():
    code = (
        "import multiprocessing as mp, os, numpy as np, logmax\n"
        "x = np.random.default_rng(0).normal(size=(256, 512)).astype(np.float32)\n"
        "want = float(logmax.logsumexp(x).sum())\n"  # the parent uses the kernels first
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    ok = abs(float(logmax.logsumexp(x).sum()) - want) == 0\n"
        "    os._exit(0 if ok else 3)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "assert os.waitstatus_to_exitcode(status) == 0, status\n"
        "def f(i):\n"
        "    return float(logmax.logsumexp(x).sum())\n"
        "with mp.get_context('fork').Pool(2) as pool:\n"
        "    got = pool.map(f, range(4))\n"
        "assert got == [want] * 4, got\n"
        "print('ok')\n"
    )
    env = dict(os.environ, LOGMAX_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=300)  # fmt: skip
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_calls_from_several_threads_agree():
    want = logmax.log_softmax(X)
    results: list[np.ndarray] = []

    def work() -> None:
        for _ in range(3):
            results.append(logmax.log_softmax(X))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 12 and all(np.array_equal(r, want) for r in results)


def test_thread_count_is_settable_and_results_do_not_depend_on_it():
    before = get_num_threads()
    try:
        set_num_threads(1)
        one = logmax.cross_entropy_with_grad(X, np.arange(256) % 512)
        set_num_threads(3)
        three = logmax.cross_entropy_with_grad(X, np.arange(256) % 512)
        assert get_num_threads() == 3
        assert np.array_equal(one.grad, three.grad) and one.loss == three.loss
        with pytest.raises(ValueError, match="positive int"):
            set_num_threads(0)
    finally:
        set_num_threads(before)


def test_spawn_pool_works():
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        assert pool.map(_child_sum, [0])[0] == _child_sum(0)
