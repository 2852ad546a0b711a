"""float64 cross-entropy with options (label smoothing, soft targets), forward + backward, and
float64 softmax / log_softmax with a temperature: logmax (NumPy frontend, ``logmax.torch``)
beside torch in one process, medians of 5 calls, 2 threads.

    uv run python benchmarks/bench_float64_options.py
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

import logmax
import logmax.torch as lt
from logmax.kernels import set_num_threads

N, V = 1024, 32000


def median_ms(f, k: int = 5) -> float:
    f()
    times = []
    for _ in range(k):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def main() -> None:
    torch.set_num_threads(2)
    set_num_threads(2)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, V)) * 4
    y = rng.integers(0, V, N)
    soft = rng.random((N, V))
    soft /= soft.sum(1, keepdims=True)
    xt = torch.from_numpy(x)
    cases = {
        "label_smoothing=0.1": ({"label_smoothing": 0.1}, torch.from_numpy(y), y),
        "soft targets": ({}, torch.from_numpy(soft), soft),
    }
    for name, (kw, target_t, target_np) in cases.items():

        def step(fn, target=target_t, kw=kw):
            leaf = xt.clone().requires_grad_()
            fn(leaf, target, **kw).backward()

        t_torch = median_ms(lambda: step(F.cross_entropy))
        t_lt = median_ms(lambda: step(lt.cross_entropy))
        t_np = median_ms(lambda t=target_np, kw=kw: logmax.cross_entropy_with_grad(x, t, **kw))
        ratios = f"({t_torch / t_lt:.2f}x) | logmax {t_np:7.1f} ms ({t_torch / t_np:.2f}x)"
        print(f"cross_entropy {name:20s} torch {t_torch:7.1f} ms | logmax.torch {t_lt:7.1f} ms "
              + ratios)  # fmt: skip
    for op in ("softmax", "log_softmax"):
        t_torch = median_ms(lambda op=op: getattr(torch, op)(xt / 2.0, 1))
        t_np = median_ms(lambda op=op: getattr(logmax, op)(x, temperature=2.0))
        print(f"{op} temperature=2      torch {t_torch:7.1f} ms | logmax {t_np:7.1f} ms "
              f"({t_torch / t_np:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
