"""The checks of ``logmax.torch.distributed``, run inside spawned gloo processes (vp_harness).

Every check runs on world 2 (ranks 0 and 1) and world 3, with uneven slices of a vocabulary of
1001 classes (one rank holding a single class), and compares with one process on the whole rows:
:func:`logmax.kernels.array.cross_entropy` (the torch backend on the gathered logits), within
1 ULP (2 in float64), and asserts the results are bit-identical on every rank.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
import torch.distributed as dist

from logmax._core.options import LossOptions, RowOptions
from logmax.kernels import array
from logmax.kernels.torch_backend import ops_for
from logmax.torch import _distributed_stats as ds
from logmax.torch import distributed as vp

F16, BF16, F32, F64 = torch.float16, torch.bfloat16, torch.float32, torch.float64
DTYPES = (F16, BF16, F32, F64)
MANT = {F16: 10, BF16: 7, F32: 23, F64: 52}
EMIN = {F16: -14, BF16: -126, F32: -126, F64: -1022}
V = 1001
SIZES = {2: [400, 601], 3: [333, 1, 667]}


def bound(dtype) -> float:
    return 2.0 if dtype == F64 else 1.0


def ulps(a: torch.Tensor, b: torch.Tensor, dtype=None) -> float:
    """Largest distance of ``a`` from ``b`` in ULPs of ``dtype`` (``b``'s) at ``b``; equal
    infinities and NaN for NaN count 0, any other non-finite mismatch inf."""
    dtype = dtype or b.dtype
    a, b = a.detach().double().reshape(-1), b.detach().double().reshape(-1)
    if a.shape != b.shape:
        return float("inf")
    if a.numel() == 0:
        return 0.0
    mag = b.abs()
    e = torch.frexp(torch.where(mag > 0, mag, 1.0))[1].double() - 1.0
    e = torch.where(mag > 0, e, float(EMIN[dtype])).clamp(min=EMIN[dtype])
    ulp = torch.pow(2.0, e - MANT[dtype])
    same = (a == b) | (torch.isnan(a) & torch.isnan(b))
    err = torch.where(torch.isfinite(a) & torch.isfinite(b), (a - b).abs() / ulp, float("inf"))
    return float(torch.where(same, 0.0, err).max())


def as_numpy(x: torch.Tensor) -> np.ndarray:
    """``x`` as a NumPy array of its own dtype (bfloat16 through ml_dtypes)."""
    if x.dtype == BF16:
        import ml_dtypes

        return x.float().numpy().astype(ml_dtypes.bfloat16)
    return x.numpy()


def same_on_ranks(t: torch.Tensor, group, world: int) -> bool:
    """``t``'s bits are the same on every rank of ``group``."""
    v = t.detach().double().reshape(-1).contiguous()
    got = ds.all_gather(v, group, world).view(torch.int64)
    return bool((got == got[0]).all())


def bounds_of(world: int, rank: int, sizes=None) -> tuple[int, int]:
    sizes = sizes or SIZES[world]
    start = sum(sizes[:rank])
    return start, start + sizes[rank]


class Expect:
    """Collects failures with their context instead of raising (see vp_harness)."""

    def __init__(self, failures: list[str]):
        self.failures = failures
        self.worst: dict[str, float] = {}

    def close(self, what: str, a, b, dtype, limit: float | None = None) -> None:
        err = ulps(a, b, dtype)
        key = what.split(" ")[0]
        self.worst[key] = max(self.worst.get(key, 0.0), err)
        if err > (bound(dtype) if limit is None else limit):
            self.failures.append(f"{what}: {err} ULP")

    def grad(self, what: str, a, b, dtype) -> None:
        """Gradients: within the ULP bound, or -- float64 entries whose terms cancel
        (:math:`\alpha p_j \approx c_j` with dense coefficients, whose sum both paths carry in
        float64) -- within ``2**-46`` of their row's largest entry."""
        if dtype != F64 or b.shape[-1] == 0:
            return self.close(what, a, b, dtype)
        a, b = a.detach().double(), b.detach().double()
        floor = 2.0**-46 * b.abs().nan_to_num(0.0, 0.0, 0.0).amax(1, keepdim=True)
        near = ((a - b).abs() <= floor) | (a == b) | (a.isnan() & b.isnan())
        self.close(what, torch.where(near, b, a), b, dtype)

    def true(self, cond: bool, what: str) -> None:
        if not cond:
            self.failures.append(what)


# ---------------------------------------------------------------------------------------------
# Data.
def logits(dtype, dense: bool, soft: bool, n_cls: int = V, seed: int = 0):
    """Rows of the whole vocabulary (the same on every rank) and hard labels: random rows, masked
    entries (without dense coefficients: a masked entry with a positive one gives inf), a fully
    masked ignored row, an ignored row, a confident row, a row whose label is rank 1's single
    class in world 3, large logits, and a tie between two ranks."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(8, n_cls, generator=g, dtype=F64) * 3
    y = torch.randint(0, n_cls, (8,), generator=g)
    if not dense:
        x[1, [3, 500, 700]] = -float("inf")
    if not soft:
        x[2] = -float("inf")
        y[2] = -100
    y[3] = -100
    x[4, 250] = x[4].max() + 40
    y[4] = 250
    y[5] = 333
    x[6] = x[6] * 300
    x[7, 10] = x[7, 900] = x[7].max() + 1
    return x.to(dtype), y


def soft_targets(n_cls: int = V, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    t = torch.softmax(torch.randn(8, n_cls, generator=g, dtype=F64) * 2, 1)
    t[0, 100:200] = 0.0  # zero probabilities: 0 * log 0 = 0
    return t


def class_weight(dtype, n_cls: int = V, seed: int = 2):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n_cls, generator=g, dtype=F64) * 2 + 0.25).to(dtype)


def reference_ce(full, target, soft, weight, opts, grad_output):
    """One process on the whole rows: loss, lse (the input's dtype) and the gradient."""
    ops = ops_for(full)
    loss, lse, grad = array.cross_entropy(
        ops, full, 1, target, soft, weight, opts, grad_output, True
    )
    return ops.to_output(loss, full), ops.to_output(lse, full), grad


CE_OPTIONS = (
    {},
    {"weight": True},
    {"label_smoothing": 0.1},
    {"label_smoothing": 0.2, "weight": True, "reduction": "sum"},
    {"z_loss": 1e-3, "reduction": "none"},
    {"softcap": 5.0, "temperature": 0.7, "label_smoothing": 0.05, "z_loss": 1e-4},
    {"normalizer": 37.0, "weight": True},
    {"ignore_index": 5, "reduction": "none", "temperature": 1.5},
    {"soft": True},
    {"soft": True, "label_smoothing": 0.1, "weight": True, "z_loss": 1e-3, "reduction": "sum"},
)


def _ce_case(ex: Expect, world, group, rank, dtype, case: dict, ranges=None) -> None:
    case = dict(case)
    soft = case.pop("soft", False)
    use_w = case.pop("weight", False)
    dense = soft or case.get("label_smoothing", 0.0) > 0
    full, y = logits(dtype, dense, soft)
    if "ignore_index" in case:
        y[y == -100] = case["ignore_index"]
    start, stop = ranges[rank] if ranges else bounds_of(world, rank)
    w = class_weight(dtype) if use_w else None
    opts = LossOptions.make(**case)
    none = opts.reduction == "none"
    g_out = torch.linspace(0.5, 1.5, 8, dtype=dtype) if none else torch.tensor(0.75, dtype=dtype)
    target = soft_targets().to(dtype) if soft else y
    ref_loss, ref_lse, ref_grad = reference_ce(full, target, soft, w, opts, g_out)
    x = full[:, start:stop].clone().requires_grad_(True)
    t_local = target[:, start:stop].contiguous() if soft else y
    kw = dict(case, weight=w, group=group, return_lse=True)
    if ranges:
        kw["vocab_range"] = (start, stop)
    loss, lse = vp.vocab_parallel_cross_entropy(x, t_local, **kw)
    loss.backward(g_out)
    what = f"{dtype} world {world} {'soft ' if soft else ''}{'weight ' if use_w else ''}{case}"
    ex.close(f"loss {what}", loss, ref_loss, dtype)
    ex.close(f"lse {what}", lse, ref_lse, dtype)
    ex.grad(f"grad {what}", x.grad, ref_grad[:, start:stop], dtype)
    ex.true(loss.dtype == dtype and lse.dtype == dtype and x.grad.dtype == dtype, f"dtypes {what}")
    ex.true(tuple(loss.shape) == ((8,) if none else ()), f"loss shape {what}: {loss.shape}")
    ex.true(same_on_ranks(loss, group, world), f"loss differs across ranks {what}")
    ex.true(same_on_ranks(lse, group, world), f"lse differs across ranks {what}")


def check_cross_entropy(ctx, failures) -> None:
    """Every option and dtype, gradients included, against one process; bit-identical ranks."""
    ex = Expect(failures)
    for world, group, rank in ctx.runs():
        for dtype in DTYPES:
            for i, case in enumerate(CE_OPTIONS):
                # world 2: every option in float32, two in every dtype (CI time)
                if world == 3 or dtype == F32 or i in (0, len(CE_OPTIONS) - 1):
                    _ce_case(ex, world, group, rank, dtype, case)


def check_vocab_range(ctx, failures) -> None:
    """``vocab_range`` given (slices out of rank order: rank 0 holds the end of the
    vocabulary), with and without the full weight (which tells V: one gather fewer)."""
    ex = Expect(failures)
    for world, group, rank in ctx.runs():
        sizes = SIZES[world][::-1]
        bounds = [bounds_of(world, r, sizes) for r in range(world)][::-1]
        for case in ({}, {"weight": True, "label_smoothing": 0.1}, {"soft": True}):
            _ce_case(ex, world, group, rank, F32, case, ranges=bounds)


def check_soft_target_grad(ctx, failures) -> None:
    """Soft targets that require grad: :math:`-(1-\\varepsilon) w_c \\log p_c` times the row's
    scale, against torch's autograd of the formula in float64."""
    ex = Expect(failures)
    for world, group, rank in ctx.runs():
        start, stop = bounds_of(world, rank)
        full, _ = logits(F64, True, True)
        t = soft_targets()
        w = class_weight(F64)
        eps, zeta = 0.1, 1e-3
        t_ref = t.clone().requires_grad_(True)
        logp = torch.log_softmax(full, 1)
        tp = (1 - eps) * t_ref + eps / V
        rows = -(w * tp * logp).sum(1) + zeta * torch.logsumexp(full, 1) ** 2
        rows.mean().backward()
        t_loc = t[:, start:stop].clone().requires_grad_(True)
        loss = vp.vocab_parallel_cross_entropy(
            full[:, start:stop], t_loc, weight=w, label_smoothing=eps, z_loss=zeta, group=group
        )
        loss.backward()
        ex.close(f"loss soft-grad world {world}", loss, rows.mean().detach(), F64, 1e6)
        ref = t_ref.grad[:, start:stop]
        ex.true(
            torch.allclose(t_loc.grad, ref, rtol=1e-13, atol=1e-15 * float(ref.abs().max())),
            f"soft target grad world {world}: {float((t_loc.grad - ref).abs().max())}",
        )


def check_exact(ctx, failures) -> None:
    """Within 1 ULP (2 in float64) of the certified exact loss (logmax.audit), small rows."""
    from logmax.audit import reference
    from logmax.audit.metric import ulp_error

    ex = Expect(failures)
    n_cls = 11
    g = torch.Generator().manual_seed(5)
    base = torch.randn(5, n_cls, generator=g, dtype=F64) * 4
    base[0, 3] = base[0].max() + 25  # a confident row
    y = torch.tensor([3, 0, 10, 4, 7])
    w = torch.rand(n_cls, generator=g, dtype=F64) + 0.5
    sizes = {2: [5, 6], 3: [4, 1, 6]}
    options = (
        dict(reduction="none"),
        dict(reduction="none", label_smoothing=0.1, z_loss=1e-3, softcap=6.0, temperature=0.8),
        dict(reduction="mean", label_smoothing=0.2),
    )
    for world, group, rank in ctx.runs():
        start, stop = bounds_of(world, rank, sizes[world])
        for dtype in DTYPES:
            x = base.to(dtype)
            xn = as_numpy(x)
            for use_w in (False, True):
                wt = w.to(dtype) if use_w else None
                for kw in options:
                    exact = reference.cross_entropy(
                        xn, y.numpy(), None if wt is None else wt.double().numpy(), **kw
                    )
                    got = vp.vocab_parallel_cross_entropy(
                        x[:, start:stop], y, weight=wt, group=group, **kw
                    )
                    err = float(np.max(ulp_error(got.double().numpy(), exact)))
                    ex.true(err <= bound(dtype), f"exact {dtype} world {world} {kw}: {err} ULP")


def check_rows(ctx, failures) -> None:
    """vocab_parallel_logsumexp and vocab_parallel_log_softmax with their gradients, against one
    process; rows with masked entries, a fully masked row, a NaN row, a row of log-probabilities
    (its logsumexp cancels to about 0)."""
    ex = Expect(failures)
    for world, group, rank in ctx.runs():
        start, stop = bounds_of(world, rank)
        for dtype in DTYPES:
            full, _ = logits(F64, False, False)
            full[3] = torch.log_softmax(full[3], 0)
            full = full.to(dtype)
            full[0, 7] = float("nan")
            g = torch.Generator().manual_seed(9)
            g_rows = torch.randn(8, generator=g, dtype=F64).to(dtype)
            g_full = torch.randn(8, V, generator=g, dtype=F64).to(dtype)
            for t in (1.0, 0.6) if world == 3 else (0.6,):
                ops = ops_for(full)
                opts = RowOptions.make(t)
                what = f"{dtype} world {world} T={t}"
                x = full[:, start:stop].clone().requires_grad_(True)
                lse = vp.vocab_parallel_logsumexp(x, group=group, temperature=t)
                lse.backward(g_rows)
                ref = ops.to_output(array.logsumexp(ops, full, 1, opts), full)
                ex.close(f"logsumexp {what}", lse, ref, dtype)
                ex.true(same_on_ranks(lse, group, world), f"logsumexp differs across ranks {what}")
                ref_g = array.logsumexp_vjp(ops, full, g_rows, 1, opts)[:, start:stop]
                ex.close(f"logsumexp-grad {what}", x.grad, ref_g, dtype)
                x = full[:, start:stop].clone().requires_grad_(True)
                y = vp.vocab_parallel_log_softmax(x, group=group, temperature=t)
                y.backward(g_full[:, start:stop])
                ref_y = array.log_softmax(ops, full, 1, opts)
                ex.close(f"log_softmax {what}", y, ref_y[:, start:stop], dtype)
                ref_g = array.log_softmax_vjp(ops, ref_y, g_full, 1, t)[:, start:stop]
                scale = float(g_full.double().abs().sum(1).max()) / t
                err = (x.grad.double() - ref_g.double()).abs().nan_to_num(0.0).max()
                tol = 4 * torch.finfo(dtype).eps * scale
                ex.true(float(err) <= tol, f"log_softmax-grad {what}: {float(err)} > {tol}")


def check_edges(ctx, failures) -> None:
    """Float64 rows whose results are tiny (a maximum ahead by 700 and 745: the sum's terms are
    subnormal) and rows whose logsumexp cancels (log-probabilities): the refinements across
    slices, against one process and the exact reference."""
    from logmax.audit import reference
    from logmax.audit.metric import ulp_error

    ex = Expect(failures)
    n_cls, sizes = 101, {2: [40, 61], 3: [33, 1, 67]}
    for world, group, rank in ctx.runs():
        start, stop = bounds_of(world, rank, sizes[world])
        g = torch.Generator().manual_seed(11)
        x = torch.randn(6, n_cls, generator=g, dtype=F64)
        x[0] = -700.0 - x[0].abs()
        x[0, 25] = 0.0  # the maximum on rank 0; the rest 700 below: L = s ~ 1e-304
        x[1] = -745.0 - x[1].abs()
        x[1, 33] = 0.0  # world 3: the maximum alone on rank 1
        x[1, 90] = -740.0
        x[2] = torch.log_softmax(x[2], 0)  # lse within ULPs of 0
        x[3] = torch.log_softmax(x[3] * 5, 0)
        x[4, 60] = x[4].max() + 710.0  # tiny, maximum on the last rank
        y = torch.tensor([25, 33, 4, 5, 60, 7])
        for dtype in (F64, F32, BF16):
            xd = x.to(dtype)
            if dtype != F64:  # no tiny results: more rows of log-probabilities instead
                xd[:2] = torch.log_softmax(torch.randn(2, n_cls, generator=g) * 3, 1).to(dtype)
            what = f"{dtype} world {world}"
            ops = ops_for(xd)
            loss, lse = vp.vocab_parallel_cross_entropy(
                xd[:, start:stop], y, reduction="none", return_lse=True, group=group
            )
            opts = LossOptions.make(reduction="none")
            r_loss, r_lse, _ = reference_ce(xd, y, False, None, opts, None)
            ex.close(f"edge-loss {what}", loss, r_loss, dtype)
            ex.close(f"edge-lse {what}", lse, r_lse, dtype)
            v = vp.vocab_parallel_logsumexp(xd[:, start:stop], group=group)
            ex.close(f"edge-logsumexp {what}", v, r_lse, dtype)
            ls = vp.vocab_parallel_log_softmax(xd[:, start:stop], group=group)
            ref_ls = array.log_softmax(ops, xd, 1, RowOptions())[:, start:stop]
            ex.close(f"edge-log_softmax {what}", ls, ref_ls, dtype)
            xn = as_numpy(xd)
            e_loss = float(np.max(ulp_error(loss.double().numpy(), reference.cross_entropy(
                xn, y.numpy(), reduction="none"))))  # fmt: skip
            e_lse = float(np.max(ulp_error(v.double().numpy(), reference.logsumexp(xn, axis=1))))
            ex.true(e_loss <= bound(dtype), f"edge exact loss {what}: {e_loss} ULP")
            ex.true(e_lse <= bound(dtype), f"edge exact logsumexp {what}: {e_lse} ULP")


def check_linear(ctx, failures) -> None:
    """vocab_parallel_linear_cross_entropy against one process on the whole LM head (gradients
    of the input, of this rank's rows of the head and of its bias), in several token chunks."""
    ex = Expect(failures)
    saved = dict(vp.CHUNK_BUDGET)
    vp.CHUNK_BUDGET["cpu"] = 3 * 601 * vp.BYTES_PER_LOGIT  # chunks of 3 (or 5) tokens
    try:
        for world, group, rank in ctx.runs():
            start, stop = bounds_of(world, rank)
            g = torch.Generator().manual_seed(21)
            n, d = 10, 16
            h0 = torch.randn(n, d, generator=g, dtype=F64)
            w0 = torch.randn(V, d, generator=g, dtype=F64) / 2
            b0 = torch.randn(V, generator=g, dtype=F64)
            b0[17] = -float("inf")
            y = torch.randint(0, V, (n,), generator=g)
            y[2] = -100
            options = (
                {},
                {"label_smoothing": 0.1, "z_loss": 1e-3, "reduction": "sum"},
                {"softcap": 4.0, "temperature": 0.8, "reduction": "none"},
                {"normalizer": 25.0, "weight": True},
            )
            for dtype, tol, cases in ((F64, 1e-12, options), (F32, 2e-5, options[1:3]),
                                      (BF16, 2e-2, options[1:2])):  # fmt: skip
                for kw in cases:
                    kw = dict(kw)
                    wt = class_weight(dtype) if kw.pop("weight", False) else None
                    h = h0.to(dtype, copy=True).requires_grad_(True)
                    w = w0.to(dtype, copy=True).requires_grad_(True)
                    b = b0.to(dtype, copy=True)
                    b[17] = 0.0 if kw.get("label_smoothing") else -float("inf")
                    b.requires_grad_(True)
                    opts = LossOptions.make(**kw)
                    g_out = torch.tensor(0.5, dtype=dtype)
                    if opts.reduction == "none":
                        g_out = torch.linspace(0.5, 1.5, n, dtype=dtype)
                    full = torch.nn.functional.linear(h, w, b)
                    r_loss, r_lse, r_grad = reference_ce(full.detach(), y, False, wt, opts, g_out)
                    full.backward(r_grad)
                    hl = h.detach().clone().requires_grad_(True)
                    wl = w.detach()[start:stop].clone().requires_grad_(True)
                    bl = b.detach()[start:stop].clone().requires_grad_(True)
                    loss, lse = vp.vocab_parallel_linear_cross_entropy(
                        hl, wl, y, linear_bias=bl, weight=wt, group=group, return_lse=True, **kw
                    )
                    loss.backward(g_out)
                    what = f"linear {dtype} world {world} {kw}"

                    def near(a, b, name, what=what, tol=tol):
                        a, b = a.detach().double(), b.detach().double()
                        err = float(((a - b).abs() / (b.abs().max() + 1e-300)).max())
                        ex.true(err <= tol, f"{name} {what}: relative {err}")

                    near(loss, r_loss, "loss")
                    near(lse, r_lse, "lse")
                    near(hl.grad, h.grad, "grad input")
                    near(wl.grad, w.grad[start:stop], "grad linear_weight")
                    near(bl.grad.nan_to_num(0.0), b.grad[start:stop].nan_to_num(0.0), "grad bias")
                    ex.true(same_on_ranks(loss, group, world), f"loss differs {what}")
                    ex.true(same_on_ranks(hl.grad, group, world), f"input grad differs {what}")
    finally:
        vp.CHUNK_BUDGET.clear()
        vp.CHUNK_BUDGET.update(saved)


def check_collectives(ctx, failures) -> None:
    """Collectives per call, counted with torch's CommDebugMode: at most 2 in the forward pass,
    none in the backward pass (one all_reduce for the linear variant's input gradient)."""
    import builtins

    from torch.distributed.tensor.debug import CommDebugMode

    # Under a TorchDispatchMode (CommDebugMode, FlopCounterMode) torch reads the calling frame's
    # __builtins__, which the globals of logmax._core.specialise's copies lack (KeyError):
    # supply it until specialise does.
    for dtype in (F32, F16):
        ops_for(torch.zeros(1, dtype=dtype)).alg.scale2.__globals__.setdefault(
            "__builtins__", builtins
        )

    def counted(fn):
        with CommDebugMode() as mode:
            out = fn()
        return out, mode.get_total_counts()

    ex = Expect(failures)
    full, y = logits(F32, True, False)
    w = class_weight(F32)

    def calls(x, group, span):
        return {
            "ce": (lambda: vp.vocab_parallel_cross_entropy(x, y, group=group,
                                                           label_smoothing=0.1), 2, 0),
            "ce+range+weight": (lambda: vp.vocab_parallel_cross_entropy(
                x, y, group=group, weight=w, vocab_range=span, z_loss=1e-4), 1, 0),
            "logsumexp": (lambda: vp.vocab_parallel_logsumexp(x, group=group).sum(), 2, 0),
            "logsumexp+range": (lambda: vp.vocab_parallel_logsumexp(
                x, group=group, vocab_range=span).sum(), 1, 0),
            "log_softmax": (lambda: vp.vocab_parallel_log_softmax(x, group=group)[:, 0].sum(),
                            2, 1),
        }  # fmt: skip

    for world, group, rank in ctx.runs():
        if world != 3:  # the counts do not depend on the world size (CommDebugMode is slow)
            continue
        start, stop = bounds_of(world, rank)
        x = full[:, start:stop].clone().requires_grad_(True)
        for name, (fn, n_fwd, n_bwd) in calls(x, group, (start, stop)).items():
            loss, fwd = counted(fn)
            _, bwd = counted(loss.backward)
            ex.true(fwd == n_fwd, f"{name} world {world}: {fwd} collectives forward, not {n_fwd}")
            ex.true(bwd == n_bwd, f"{name} world {world}: {bwd} collectives backward, not {n_bwd}")
        h = torch.randn(6, 8, requires_grad=True)
        wl = torch.randn(stop - start, 8, requires_grad=True)
        loss, fwd = counted(
            partial(vp.vocab_parallel_linear_cross_entropy, h, wl, y[:6], group=group)
        )
        _, bwd = counted(loss.backward)
        ex.true((fwd, bwd) == (2, 1), f"linear world {world}: {fwd} forward, {bwd} backward")


def check_errors(ctx, failures) -> None:
    """Errors raise on every rank alike (no rank left waiting): a bad label, slices that do not
    tile the vocabulary, vocab_range on some ranks only, a normalizer without the mean."""
    import pytest

    ex = Expect(failures)
    for world, group, rank in ctx.runs():
        start, stop = bounds_of(world, rank)
        full, y = logits(F32, False, False)
        x = full[:, start:stop]
        bad = y.clone()
        bad[5] = V
        with pytest.raises(ValueError, match=rf"target\[5\] = {V} is not a class index"):
            vp.vocab_parallel_cross_entropy(x, bad, group=group)
        with pytest.raises(ValueError, match="do not tile"):
            vp.vocab_parallel_cross_entropy(x, y, group=group, vocab_range=(0, stop - start))
        with pytest.raises(ValueError, match="some ranks only"):
            vp.vocab_parallel_cross_entropy(
                x, y, group=group, vocab_range=(start, stop) if rank == 0 else None
            )
        with pytest.raises(ValueError, match="normalizer"):
            vp.vocab_parallel_cross_entropy(x, y, group=group, normalizer=4, reduction="sum")
        with pytest.raises(ValueError, match="does not fit"):
            vp.vocab_parallel_cross_entropy(x, y, group=group, vocab_range=(0, 3))
        ok = vp.vocab_parallel_cross_entropy(x, y, group=group)  # still in step afterwards
        ex.true(bool(torch.isfinite(ok)), f"world {world}: loss after the errors {ok}")


def check_empty_slice(ctx, failures) -> None:
    """A rank holding no class (V = 2 over three ranks, torch.chunk's split)."""
    ex = Expect(failures)
    for world, group, rank in ctx.runs():
        sizes = [1, 1] if world == 2 else [1, 0, 1]
        start, stop = bounds_of(world, rank, sizes)
        full = torch.tensor([[0.5, -1.0], [3.0, 3.0], [-float("inf"), 2.0]], dtype=F64)
        y = torch.tensor([1, 0, 1])
        for kw in ({}, {"label_smoothing": 0.3, "z_loss": 0.01}):
            opts = LossOptions.make(**kw)
            x = full[:, start:stop].clone().requires_grad_(True)
            loss = vp.vocab_parallel_cross_entropy(x, y, group=group, **kw)
            loss.backward()
            r_loss, _, r_grad = reference_ce(
                full, y, False, None, opts, torch.tensor(1.0, dtype=F64)
            )
            ex.close(f"empty-slice loss world {world} {kw}", loss, r_loss, F64)
            ex.grad(f"empty-slice grad world {world} {kw}", x.grad, r_grad[:, start:stop], F64)
        lse = vp.vocab_parallel_logsumexp(full[:, start:stop], group=group)
        ex.close(f"empty-slice lse world {world}", lse, torch.logsumexp(full, 1), F64)


def check_dtensor(ctx, failures) -> None:
    """The DTensor prototype: logits sharded on the class dim (torch.chunk's uneven slices)."""
    from torch.distributed.device_mesh import DeviceMesh
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    ex = Expect(failures)
    for world, group, _ in ctx.runs():
        mesh = DeviceMesh.from_group(group or dist.group.WORLD, "cpu")
        full, y = logits(F32, True, False)
        opts = LossOptions.make(label_smoothing=0.1)
        r_loss, r_lse, r_grad = reference_ce(full, y, False, None, opts, torch.tensor(1.0))
        xd = distribute_tensor(full, mesh, [Shard(1)]).detach().requires_grad_(True)
        yd = distribute_tensor(y, mesh, [Replicate()])
        loss, lse = vp.cross_entropy_dtensor(xd, yd, label_smoothing=0.1, return_lse=True)
        loss.backward()
        what = f"dtensor world {world}"
        ex.true(loss.placements == (Replicate(),), f"{what}: loss placed {loss.placements}")
        ex.close(f"dtensor-loss {what}", loss.to_local(), r_loss, F32)
        ex.close(f"dtensor-lse {what}", lse.to_local(), r_lse, F32)
        ex.true(xd.grad.placements == (Shard(1),), f"{what}: grad placed {xd.grad.placements}")
        ex.close(f"dtensor-grad {what}", xd.grad.full_tensor(), r_grad, F32)


def check_func_grad(ctx, failures) -> None:
    """torch.func.grad through the autograd.Function (setup_context) gives autograd's gradient."""
    ex = Expect(failures)
    for world, group, rank in ctx.runs():
        start, stop = bounds_of(world, rank)
        full, y = logits(F64, True, False)
        x = full[:, start:stop].clone()

        def loss(x, group=group, y=y):
            return vp.vocab_parallel_cross_entropy(x, y, group=group, label_smoothing=0.1)

        g = torch.func.grad(loss)(x)
        xr = x.clone().requires_grad_(True)
        loss(xr).backward()
        ex.true(torch.equal(g, xr.grad), f"torch.func.grad world {world} differs from autograd")


def check_shapes(ctx, failures) -> None:
    """Batch shapes: ``(B, T, V_local)`` logits with ``(B, T)`` labels, one unbatched row
    ``(V_local,)``, and the linear variant on ``(B, T, D)`` hidden states."""
    ex = Expect(failures)
    for world, group, rank in ctx.runs():
        start, stop = bounds_of(world, rank)
        full, y = logits(F32, True, False)
        x3, y3 = full.reshape(2, 4, V), y.reshape(2, 4)
        opts = LossOptions.make(reduction="none", label_smoothing=0.1)
        r_loss, r_lse, _ = reference_ce(full, y, False, None, opts, None)
        loss, lse = vp.vocab_parallel_cross_entropy(
            x3[..., start:stop], y3, group=group, reduction="none", label_smoothing=0.1,
            return_lse=True,
        )  # fmt: skip
        what = f"world {world}"
        ex.true(loss.shape == (2, 4) and lse.shape == (2, 4), f"3-D shapes {what}: {loss.shape}")
        ex.close(f"3-D loss {what}", loss.reshape(-1), r_loss, F32)
        ex.close(f"3-D lse {what}", lse.reshape(-1), r_lse, F32)
        one = vp.vocab_parallel_cross_entropy(
            full[0, start:stop], y[0], group=group, reduction="none", label_smoothing=0.1
        )
        ex.close(f"unbatched loss {what}", one, r_loss[0], F32)
        ex.true(one.shape == (), f"unbatched shape {what}: {one.shape}")
        v = vp.vocab_parallel_logsumexp(x3[..., start:stop], group=group)
        ex.true(v.shape == (2, 4), f"3-D logsumexp shape {what}: {v.shape}")
        ls = vp.vocab_parallel_log_softmax(x3[..., start:stop], group=group)
        ex.true(ls.shape == (2, 4, stop - start), f"3-D log_softmax shape {what}: {ls.shape}")
        g = torch.Generator().manual_seed(3)
        h = torch.randn(2, 5, 6, generator=g)
        w = torch.randn(V, 6, generator=g)
        yl = torch.randint(0, V, (2, 5), generator=g)
        lin = vp.vocab_parallel_linear_cross_entropy(h, w[start:stop], yl, group=group,
                                                     reduction="none")  # fmt: skip
        ref = vp.vocab_parallel_cross_entropy((h @ w.T)[..., start:stop], yl, group=group,
                                              reduction="none")  # fmt: skip
        ex.true(lin.shape == (2, 5), f"linear 3-D shape {what}: {lin.shape}")
        ex.true(torch.allclose(lin, ref, rtol=1e-5), f"linear 3-D {what}")
