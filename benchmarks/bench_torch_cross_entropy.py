"""Forward + backward of logmax.torch.cross_entropy against torch.nn.functional.cross_entropy.

CPU, logits [N x C] (default 2048 x 32000, float32, the mean over hard labels), the same number
of threads for both (torch's intra-op pool and Numba's). Both run in this process, interleaved
(the order flips every repeat), after a warm-up that pays Numba's compilation; the table shows the
median of the repeats and the ratio torch / logmax (> 1: logmax is faster). The two losses and
gradients are compared as a sanity check.

Run::

    uv run python benchmarks/bench_torch_cross_entropy.py
    uv run python benchmarks/bench_torch_cross_entropy.py --n 512 --c 8192 --dtype bfloat16
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2048, help="rows (tokens)")
    p.add_argument("--c", type=int, default=32000, help="classes")
    p.add_argument(
        "--dtype", default="float32", choices=["float32", "float64", "bfloat16", "float16"]
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()

    os.environ.setdefault("NUMBA_NUM_THREADS", str(args.threads))  # before Numba is imported
    import torch
    import torch.nn.functional as F

    import logmax.kernels
    import logmax.torch as lt

    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    g = torch.Generator().manual_seed(0)
    x = (4 * torch.randn(args.n, args.c, generator=g)).to(dtype)
    t = torch.randint(0, args.c, (args.n,), generator=g)
    impls = {"torch": F.cross_entropy, "logmax": lt.cross_entropy}

    def step(fn):
        leaf = x.detach().requires_grad_()
        start = time.perf_counter()
        loss = fn(leaf, t)
        loss.backward()
        return time.perf_counter() - start, loss.detach(), leaf.grad

    results = {name: step(fn) for name, fn in impls.items()}  # warm-up (Numba compiles here)
    loss_diff = abs(float(results["torch"][1]) - float(results["logmax"][1]))
    grad_diff = float((results["torch"][2].double() - results["logmax"][2].double()).abs().max())
    times: dict[str, list[float]] = {name: [] for name in impls}
    order = list(impls)
    for _ in range(args.repeats):
        for name in order:
            times[name].append(step(impls[name])[0])
        order.reverse()

    med = {name: statistics.median(ts) for name, ts in times.items()}
    print(
        f"cross_entropy forward+backward, CPU, [{args.n} x {args.c}] {args.dtype}, "
        f"{args.threads} threads, median of {args.repeats} (interleaved); "
        f"logmax kernels {'on' if logmax.kernels.enabled() else 'off (LOGMAX_KERNELS)'}"
    )
    for name in impls:
        print(f"  {name:<8} {1e3 * med[name]:9.1f} ms")
    print(f"  ratio torch / logmax: {med['torch'] / med['logmax']:.2f}x")
    print(f"  |loss difference| {loss_diff:.3g}, max |gradient difference| {grad_diff:.3g}")


if __name__ == "__main__":
    main()
