"""GPU benchmark of the Triton backend: logmax beside torch eager, torch.compile, Liger-Kernel and
cut-cross-entropy (each when installed), in one process, in at most 8 minutes on one GPU.

Cases (bfloat16 and float32, N rows, vocabularies 32k, 128k, 256k):

- ``softmax``, ``log_softmax``, ``logsumexp``, ``ce_fwd`` (cross-entropy forward) and
  ``ce_fwd_bwd`` (forward + backward): time and effective bandwidth, GB/s, counting the
  logits read once and each ``(N, V)`` output written once (``ce_fwd_bwd``: read once, gradient
  written once -- the issue's "1.3x of reading the logits once and writing the gradient once"
  is this column over the copy bandwidth);
- ``linear_ce`` (bfloat16, N=4096, D=4096, V=128256, forward + backward): effective TFLOP/s
  (``6 N D V`` over the time) and peak memory above the inputs, MiB.

Timing: CUDA events around each call, median of ``--repeats`` after warm-up; implementations
interleaved per case. Ratios in the last column are against torch eager. A case whose
implementation fails prints its error in place of the figures; the run stops adding cases when
its time budget (``--budget`` seconds, default 420) is spent.

Run::

    uv run python benchmarks/gpu.py                 # on a CUDA machine
    uv run python benchmarks/gpu.py --smoke         # tiny sizes on the CPU, Triton's interpreter

``--smoke`` sets ``TRITON_INTERPRET=1`` and ``LOGMAX_BACKEND=triton`` and runs tiny bfloat16 shapes
(the suite checks that it starts and prints the table; its timings mean nothing).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (interpreter)")
    p.add_argument("--rows", type=int, default=4096)
    p.add_argument("--vocab", type=int, nargs="*", default=[32768, 131072, 262144])
    p.add_argument("--dtypes", nargs="*", default=["bfloat16", "float32"])
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--budget", type=float, default=420.0, help="seconds before cases are skipped")
    p.add_argument("--no-compile", action="store_true", help="leave torch.compile out")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    if args.smoke:
        os.environ["TRITON_INTERPRET"] = "1"
        os.environ["LOGMAX_BACKEND"] = "triton"
        args.rows, args.vocab, args.repeats, args.no_compile = 4, [48], 1, True
        args.dtypes = ["bfloat16"]
    import torch

    device = "cpu" if args.smoke else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("benchmarks/gpu.py needs a CUDA device (or --smoke)", file=sys.stderr)
        return 2
    start = time.perf_counter()

    def timed(fn: Callable[[], object]) -> float:
        """Median seconds of ``fn`` after warm-up (CUDA events on the GPU)."""
        for _ in range(1 if args.smoke else 3):
            fn()
        times = []
        for _ in range(args.repeats):
            if device == "cuda":
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                fn()
                b.record()
                torch.cuda.synchronize()
                times.append(a.elapsed_time(b) / 1e3)
            else:
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
        return statistics.median(times)

    peers = _peers()
    compiled: dict[str, Callable] = {}

    def maybe_compiled(name: str, fn: Callable) -> Callable | None:
        if args.no_compile:
            return None
        if name not in compiled:
            compiled[name] = torch.compile(fn, dynamic=True)
        return compiled[name]

    rows_out: list[tuple] = []
    print(f"device: {torch.cuda.get_device_name() if device == 'cuda' else 'cpu (interpreter)'}")
    print(
        f"{'case':<11} {'dtype':<9} {'V':>7} {'impl':<13} {'ms':>9} {'figure':>14} {'x eager':>8}"
    )

    def report(case, dtype, v, impl, seconds, figure, unit, eager):
        ratio = f"{eager / seconds:8.2f}" if eager and seconds else " " * 8
        fig = f"{figure:9.1f} {unit:<4}" if figure is not None else " " * 14
        print(f"{case:<11} {dtype:<9} {v:>7} {impl:<13} {seconds * 1e3:9.3f} {fig} {ratio}")
        rows_out.append((case, dtype, v, impl, seconds, figure))

    for dtype_name in args.dtypes:
        dtype = getattr(torch, dtype_name)
        for v in args.vocab:
            if time.perf_counter() - start > args.budget:
                print(f"(time budget spent: {dtype_name} V={v} and later cases skipped)")
                break
            n = args.rows
            x = torch.randn(n, v, device=device, dtype=dtype) * 4
            y = torch.randint(0, v, (n,), device=device)
            cases = _cases(x, y, peers)
            for case, (nbytes, make, impls) in cases.items():
                if time.perf_counter() - start > args.budget:
                    break
                impls = dict(impls)
                c = maybe_compiled(f"{case}", impls["eager"])
                if c is not None:
                    impls["torch.compile"] = c
                eager_s = None
                for impl, f in impls.items():
                    try:
                        s = timed(make(f))
                    except Exception as e:  # a peer that cannot take this case
                        print(f"{case:<11} {dtype_name:<9} {v:>7} {impl:<13} failed: "
                              f"{type(e).__name__}: {str(e)[:60]}")  # fmt: skip
                        continue
                    eager_s = s if impl == "eager" else eager_s
                    report(case, dtype_name, v, impl, s, nbytes / s / 1e9, "GB/s", eager_s)
            del x, y
    if "bfloat16" in args.dtypes and time.perf_counter() - start < args.budget:
        _linear_ce(args, device, timed, report, peers, maybe_compiled)
    print(f"total {time.perf_counter() - start:.1f}s")
    return 0


def _cases(x, y, peers) -> dict[str, tuple[int, Callable, dict[str, Callable]]]:
    """name -> (bytes moved, a maker of the timed call from an implementation, implementations)."""
    import torch
    import torch.nn.functional as F

    import logmax.torch as lt

    n, v = x.shape
    elt = x.element_size()
    ce = {"eager": F.cross_entropy, "logmax": lt.cross_entropy, **peers["ce"]}
    return {
        "softmax": (2 * n * v * elt, lambda f: lambda: f(x, 1),
                    {"eager": torch.softmax, "logmax": lt.softmax}),
        "log_softmax": (2 * n * v * elt, lambda f: lambda: f(x, 1),
                        {"eager": torch.log_softmax, "logmax": lt.log_softmax}),
        "logsumexp": (n * v * elt, lambda f: lambda: f(x, 1),
                      {"eager": torch.logsumexp, "logmax": lt.logsumexp}),
        "ce_fwd": (n * v * elt, lambda f: lambda: f(x, y), ce),
        "ce_fwd_bwd": (2 * n * v * elt, lambda f: _fwd_bwd(f, x, y), ce),
    }  # fmt: skip


def _fwd_bwd(f, x, y):
    leaf = x.detach().requires_grad_()

    def run():
        leaf.grad = None
        f(leaf, y).backward()

    return run


def _peers() -> dict[str, dict[str, Callable]]:
    """Liger-Kernel and cut-cross-entropy, when installed (their cross-entropy and linear CE)."""
    out: dict[str, dict[str, Callable]] = {"ce": {}, "lce": {}}
    try:
        from liger_kernel.transformers import (
            LigerCrossEntropyLoss,
            LigerFusedLinearCrossEntropyLoss,
        )

        liger_ce = LigerCrossEntropyLoss()
        liger_lce = LigerFusedLinearCrossEntropyLoss()
        out["ce"]["liger"] = lambda x, y: liger_ce(x, y)
        out["lce"]["liger"] = lambda h, w, y: liger_lce(w, h, y)
    except Exception:  # not installed, or no GPU for it
        pass
    try:
        from cut_cross_entropy import linear_cross_entropy as cce

        out["lce"]["cce"] = lambda h, w, y: cce(h, w, y)
    except Exception:
        pass
    return out


def _linear_ce(args, device, timed, report, peers, maybe_compiled) -> None:
    import torch
    import torch.nn.functional as F

    import logmax.torch as lt

    n, d, v = (4, 8, 48) if args.smoke else (4096, 4096, 128256)
    dtype = torch.bfloat16
    h = (torch.randn(n, d, device=device, dtype=dtype) / math.sqrt(d)).requires_grad_()
    w = (torch.randn(v, d, device=device, dtype=dtype) / math.sqrt(d)).requires_grad_()
    y = torch.randint(0, v, (n,), device=device)

    def eager(h, w, y):
        return F.cross_entropy(h @ w.T, y)

    impls = {"eager": eager, "logmax": lambda h, w, y: lt.linear_cross_entropy(h, w, y),
             **peers["lce"]}  # fmt: skip
    c = maybe_compiled("linear_ce", eager)
    if c is not None:
        impls["torch.compile"] = c
    flops = 6.0 * n * d * v
    eager_s = None
    for impl, f in impls.items():

        def run(f=f):
            h.grad = w.grad = None
            f(h, w, y).backward()

        try:
            if device == "cuda":
                run()
                h.grad = w.grad = None
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
                run()
                peak = (torch.cuda.max_memory_allocated() - base) / 2**20
            else:
                peak = float("nan")
            s = timed(run)
        except Exception as e:
            print(f"{'linear_ce':<11} {'bfloat16':<9} {v:>7} {impl:<13} failed: "
                  f"{type(e).__name__}: {str(e)[:60]}")  # fmt: skip
            continue
        eager_s = s if impl == "eager" else eager_s
        report("linear_ce", "bfloat16", v, impl, s, flops / s / 1e12, "TF/s", eager_s)
        print(f"{'':<11} {'':<9} {'':>7} {'':<13} {'':>9} {peak:9.0f} MiB  (peak above inputs)")


if __name__ == "__main__":
    sys.exit(main())
