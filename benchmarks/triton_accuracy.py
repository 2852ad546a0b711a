"""Largest error in ULPs of the Triton kernels, run by Triton's interpreter on CPU tensors.

Forward values (softmax, log_softmax, logsumexp, cross-entropy per row) are measured against
:mod:`logmax.audit.reference` (certified); gradients and the cross-entropy's logsumexp against the
float64 contract (the torch backend on the float64 values, within 2 float64 ULPs). Inputs: rows of
random logits (scale 8, masked entries, a fully masked row, confident rows), log-probabilities
(the logsumexp that cancels to near 0), every loss option. Columns span several blocks.

Run (a few minutes: the interpreter is slow)::

    TRITON_INTERPRET=1 uv run python benchmarks/triton_accuracy.py [--rows 24 --cols 200]
"""

from __future__ import annotations

import argparse
import math
import os

os.environ["TRITON_INTERPRET"] = "1"
os.environ["LOGMAX_BACKEND"] = "triton"

import ml_dtypes  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import logmax.torch as lt  # noqa: E402
from logmax.audit import metric, reference  # noqa: E402


def to_np(t):
    t = t.detach()
    return t.float().numpy().astype(ml_dtypes.bfloat16) if t.dtype == torch.bfloat16 else t.numpy()


def certified(ours, exact) -> float:
    return float(np.max(metric.ulp_error(ours.detach().double().numpy(), exact)))


def ulps(ours, exact) -> float:
    info = torch.finfo(ours.dtype)
    e, o = exact.double(), ours.detach().double()
    fin = torch.isfinite(e)
    a = e[fin].abs()
    ulp = torch.exp2(torch.floor(torch.log2(a.clamp(min=info.tiny)))) * info.eps
    return float(((o[fin] - e[fin]).abs() / ulp).max())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=24)
    p.add_argument("--cols", type=int, default=200)
    args = p.parse_args()
    gen = torch.Generator().manual_seed(2026)
    r, c = args.rows, args.cols
    print(f"max ULP error, {r} rows x {c} columns (Triton interpreter)")
    print(f"{'dtype':<9} {'what':<34} {'ULP':>7}")
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        x = (8 * torch.randn(r, c, generator=gen, dtype=torch.float64)).to(dtype)
        x[0] = -math.inf
        x[1, ::3] = -math.inf
        x[2, 7] = 80.0
        xn = to_np(x)
        res = {}
        for name in ("softmax", "log_softmax"):
            for t in (1.0, 0.7):
                res[f"{name} T={t}"] = certified(
                    getattr(lt, name)(x, 1, temperature=t),
                    getattr(reference, name)(xn, axis=1, temperature=t),
                )
        res["logsumexp"] = certified(lt.logsumexp(x, 1), reference.logsumexp(xn, axis=1))
        lp = F.log_softmax(3 * torch.randn(r, c, generator=gen, dtype=torch.float64), 1).to(dtype)
        res["logsumexp of log-probabilities"] = certified(
            lt.logsumexp(lp, 1), reference.logsumexp(to_np(lp), axis=1)
        )
        y = torch.randint(0, c, (r,), generator=gen)
        y[3] = -100
        y[2] = 7
        w = (torch.rand(c, generator=gen, dtype=torch.float64) + 0.5).to(dtype)
        soft = torch.softmax(torch.randn(r, c, generator=gen, dtype=torch.float64), 1).to(dtype)
        xs = x[1:]
        for label, tgt, kw in [
            ("ce hard", y[1:], {}),
            ("ce weight+smoothing", y[1:], {"weight": w, "label_smoothing": 0.1}),
            ("ce softcap+T+z_loss", y[1:], {"softcap": 15.0, "temperature": 1.3, "z_loss": 1e-3}),
            ("ce soft targets+smoothing", soft[1:], {"label_smoothing": 0.1}),
        ]:
            leaf = xs.clone().requires_grad_()
            loss, lse = lt.cross_entropy(leaf, tgt, reduction="none", return_lse=True, **kw)
            loss.backward(torch.ones_like(loss))
            wn = to_np(kw["weight"]) if "weight" in kw else None
            exact = reference.cross_entropy(
                to_np(xs), to_np(tgt) if tgt.is_floating_point() else tgt.numpy(), wn,
                reduction="none", label_smoothing=kw.get("label_smoothing", 0.0),
                temperature=kw.get("temperature", 1.0), softcap=kw.get("softcap"),
                z_loss=kw.get("z_loss", 0.0),
            )  # fmt: skip
            res[f"{label}: loss"] = certified(loss, exact)
            os.environ["LOGMAX_BACKEND"] = "torch"
            ref = xs.double().requires_grad_()
            kw64 = {k: (v.double() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
            tgt64 = tgt.double() if tgt.is_floating_point() else tgt
            l64, lse64 = lt.cross_entropy(ref, tgt64, reduction="none", return_lse=True, **kw64)
            l64.backward(torch.ones_like(l64))
            os.environ["LOGMAX_BACKEND"] = "triton"
            res[f"{label}: gradient"] = ulps(leaf.grad, ref.grad)
            res[f"{label}: lse"] = ulps(lse, lse64)
        for what, v in res.items():
            print(f"{str(dtype).removeprefix('torch.'):<9} {what:<34} {v:7.3f}")


if __name__ == "__main__":
    main()
