"""Linear + cross-entropy for a large vocabulary: time and memory of forward + backward.

Compares, on the CPU (float32 by default, N=4096 tokens, D=1024, V=65536 classes):

- ``naive``: ``F.cross_entropy(h @ W.T, y)``, the (N, V) logits and their gradient in memory;
- ``torch_chunked``: torch's ``F.linear_cross_entropy(..., options=LinearCrossEntropyOptions())``
  (skipped if this torch lacks it);
- ``cce``: Apple's cut-cross-entropy ``linear_cross_entropy(..., impl='torch_compile')`` (skipped
  when not installed);
- ``logmax``: :func:`logmax.torch.linear_cross_entropy` (defaults: 64 MiB of chunk workspace).

Each measurement runs in a fresh process (``--measure NAME``): inputs are allocated, a small
warm-up call initialises the implementation, the peak resident memory is reset
(``/proc/self/clear_refs``), then one forward + backward is timed; memory is the peak resident
set above the resident set with the inputs in place (so the gradients of ``h`` and ``W`` count).
Processes run interleaved (naive, torch, ..., naive, torch, ...) and the table shows the median
time, its ratio to the naive one (every implementation's, from the same run), the CPU time
and the median peak. The losses of all implementations are compared as a sanity check. On a
shared machine the absolute times are noise: read the ratios, and the CPU times beside them.

Run::

    uv run python benchmarks/bench_linear_cross_entropy.py            # the issue's shape
    uv run python benchmarks/bench_linear_cross_entropy.py --n 1024 --v 16384 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

IMPLS = ("naive", "torch_chunked", "cce", "logmax")


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status")


def _make_step(name: str, dtype):
    """A function ``(h, W, y) -> loss`` for implementation ``name``, or a string: why it skips."""
    import torch
    import torch.nn.functional as F

    if name == "naive":
        return lambda h, W, y: F.cross_entropy(h @ W.T, y)
    if name == "torch_chunked":
        opts_cls = getattr(torch.nn, "LinearCrossEntropyOptions", None)
        if opts_cls is None or not hasattr(F, "linear_cross_entropy"):
            return f"torch {torch.__version__} has no LinearCrossEntropyOptions"
        opts = opts_cls()
        return lambda h, W, y: F.linear_cross_entropy(h, W, y, options=opts)
    if name == "cce":
        try:
            from cut_cross_entropy import linear_cross_entropy as cce
        except ImportError:
            return "cut-cross-entropy is not installed"
        return lambda h, W, y: cce(h, W, y, impl="torch_compile")
    if name == "logmax":
        from logmax.torch import linear_cross_entropy

        return lambda h, W, y: linear_cross_entropy(h, W, y)
    raise ValueError(f"unknown implementation {name!r}")


def measure(name: str, n: int, d: int, v: int, dtype_name: str, seed: int) -> dict:
    """One forward + backward in this process; returns seconds, peak MiB above the inputs, loss."""
    import torch

    dtype = getattr(torch, dtype_name)
    step = _make_step(name, dtype)
    if isinstance(step, str):
        return {"name": name, "skipped": step}
    # warm-up on a small problem: thread pools, lazy initialisation, compilation
    g = torch.Generator().manual_seed(seed + 1)
    hs = torch.randn(64, 32, generator=g, dtype=dtype, requires_grad=True)
    Ws = torch.randn(512, 32, generator=g, dtype=dtype, requires_grad=True)
    step(hs, Ws, torch.randint(0, 512, (64,), generator=g)).backward()
    del hs, Ws

    g = torch.Generator().manual_seed(seed)
    h = (torch.randn(n, d, generator=g, dtype=dtype) * d**-0.5).requires_grad_()
    W = torch.randn(v, d, generator=g, dtype=dtype).requires_grad_()
    y = torch.randint(0, v, (n,), generator=g)
    baseline = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak resident set to the current one
    t0, c0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    loss = step(h, W, y)
    loss.backward()
    seconds = time.perf_counter() - t0
    c1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
    peak = _status_kib("VmHWM")
    return {
        "name": name,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_extra_mib": (peak - baseline) / 1024,
        "loss": float(loss),
        "grad_w_norm": float(W.grad.double().norm()),
    }


def _run_child(name: str, args: argparse.Namespace) -> dict:
    cmd = [
        sys.executable, __file__, "--measure", name, "--n", str(args.n), "--d", str(args.d),
        "--v", str(args.v), "--dtype", args.dtype, "--seed", str(args.seed),
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return {"name": name, "skipped": f"failed: {out.stderr.strip().splitlines()[-1:]}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=4096, help="tokens")
    p.add_argument("--d", type=int, default=1024, help="hidden size")
    p.add_argument("--v", type=int, default=65536, help="vocabulary size")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=3, help="processes per implementation")
    p.add_argument("--impls", default=",".join(IMPLS), help="comma-separated subset")
    p.add_argument("--measure", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.measure:
        print(json.dumps(measure(args.measure, args.n, args.d, args.v, args.dtype, args.seed)))
        return 0

    impls = [s for s in args.impls.split(",") if s]
    runs: dict[str, list[dict]] = {name: [] for name in impls}
    skipped: dict[str, str] = {}
    for _ in range(args.repeats):
        for name in impls:
            if name in skipped:
                continue
            r = _run_child(name, args)
            if "skipped" in r:
                skipped[name] = r["skipped"]
            else:
                runs[name].append(r)
                line = (
                    f"  {name:14s} {r['seconds']:7.2f} s (cpu {r['cpu_seconds']:6.2f} s) "
                    f"{r['peak_extra_mib']:8.0f} MiB"
                )
                print(line, flush=True)

    print(
        f"\nlinear + cross-entropy, forward + backward, CPU {args.dtype}, "
        f"N={args.n} D={args.d} V={args.v}, median of {args.repeats} processes each"
    )
    base = statistics.median(r["seconds"] for r in runs["naive"]) if runs.get("naive") else None
    cpu_base = (statistics.median(r["cpu_seconds"] for r in runs["naive"])
                if runs.get("naive") else None)  # fmt: skip
    ref_loss = runs["naive"][0]["loss"] if runs.get("naive") else None
    head = ("implementation", "time s", "vs naive", "cpu s", "cpu vs", "peak MiB", "loss")
    print("{:16s} {:>8s} {:>9s} {:>8s} {:>7s} {:>9s} {:>12s}".format(*head))
    for name in impls:
        if name in skipped:
            print(f"{name:16s} skipped: {skipped[name]}")
            continue
        rs = runs[name]
        t = statistics.median(r["seconds"] for r in rs)
        cpu = statistics.median(r["cpu_seconds"] for r in rs)
        mem = statistics.median(r["peak_extra_mib"] for r in rs)
        ratio = f"{t / base:8.2f}x" if base else "       -"
        cpu_ratio = f"{cpu / cpu_base:6.2f}x" if cpu_base else "      -"
        loss = rs[0]["loss"]
        print(f"{name:16s} {t:8.2f} {ratio:>9s} {cpu:8.2f} {cpu_ratio:>7s} {mem:9.0f} {loss:12.7f}")
        if ref_loss is not None and abs(loss - ref_loss) > 1e-4 * abs(ref_loss):
            print(f"  warning: {name}'s loss differs from naive's ({ref_loss})")
    load = os.getloadavg()[0]
    note = " (a shared machine: times are noisy, ratios less so)" if load > 1.5 else ""
    print(f"load average during the run: {load:.1f} on {os.cpu_count()} CPUs{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
