"""The chunked sweep behind :func:`logmax.torch.linear_cross_entropy`.

One sweep over the tokens computes, chunk by chunk, the logits ``x = h_c W^T + b``, the loss, the
logsumexp and the gradient with respect to ``x`` (in place, in the same buffer), and turns that
gradient at once into ``dh_c = dx W``, ``dW += dx^T h_c`` and ``db += sum(dx)``. The full
``(N, V)`` logits never exist: the workspace is one chunk, sized from a memory budget.

When even a few rows of logits exceed the budget, the vocabulary is cut into blocks too: a first
pass over the blocks merges each block's statistics into the row's (a streaming logsumexp), a
second pass recomputes each block's logits and turns them into their gradient. That costs one more
``h_c W^T`` per chunk, paid only when the rows are that long.

On the CPU the elementwise work on a chunk runs over groups of rows that fit in the cache, so that
the chunk is read from memory about once between the matrix products.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from logmax.torch import _lce_core
from logmax.torch import _lce_math as lm

MIB = 1 << 20
DEFAULT_BUDGET = {"cpu": 64 * MIB}  # bytes of chunk workspace; other devices: OTHER_BUDGET
OTHER_BUDGET = 512 * MIB
MIN_ROWS = 32  # below this many rows per chunk the matrix products lose efficiency: cut V instead
CPU_GROUP_BYTES = 4 * MIB  # elementwise passes run on row groups of about this size on the CPU

LOW_PRECISION = (torch.float16, torch.bfloat16)


def work_dtype(dtype: torch.dtype) -> torch.dtype:
    """Loss and gradient arithmetic: float32 for 16-bit inputs, the input's dtype otherwise."""
    return torch.float32 if dtype in LOW_PRECISION else dtype


@dataclass(frozen=True)
class Plan:
    """How the sweep cuts the work."""

    token_chunk: int  # rows of logits per chunk
    vocab_chunk: int  # columns per block (the vocabulary size: no cutting)
    group_rows: int  # rows per elementwise group inside a chunk
    n_classes: int
    core: bool = False  # whole-row chunks go through logmax's NumPy cross-entropy

    @property
    def streaming(self) -> bool:
        """Rows are cut into vocabulary blocks (two passes per chunk)."""
        return self.vocab_chunk < self.n_classes


def bytes_per_logit(dtype: torch.dtype, softcap: bool, grouped: bool, core: bool = False) -> int:
    """Workspace bytes per logit of a chunk."""
    wd = work_dtype(dtype)
    per = torch.finfo(wd).bits // 8
    if core:
        per *= 2  # the core returns the gradient in a new array
    if dtype in LOW_PRECISION:
        per += torch.finfo(dtype).bits // 8  # the 16-bit copy for the matrix products
    if softcap and not grouped:
        per += torch.finfo(wd).bits // 8  # x / cap, kept for the gradient
    return per


def make_plan(
    n_rows: int,
    n_classes: int,
    dtype: torch.dtype,
    device: torch.device,
    softcap: bool,
    chunk_size: int | None,
    vocab_chunk_size: int | None,
    memory_budget: int | None,
    backend: str = "torch",
) -> Plan:
    """Chunk sizes: the user's, or the largest that keep the workspace within the budget.

    The budget (default 64 MiB on the CPU, 512 MiB elsewhere) covers the chunk's logits and
    gradient; the gradients of ``W`` and ``h`` themselves come on top of it.
    """
    budget = memory_budget or DEFAULT_BUDGET.get(device.type, OTHER_BUDGET)
    core = backend == "core" and device.type == "cpu"
    grouped = device.type == "cpu" and not core
    per = bytes_per_logit(dtype, softcap, grouped, core)  # whole rows
    per_block = bytes_per_logit(dtype, softcap, False, core)  # vocabulary blocks: no groups
    n_cls = max(n_classes, 1)
    rows, cols = chunk_size, vocab_chunk_size
    if rows is None and cols is None:
        fit = budget // (n_cls * per)
        if fit >= min(MIN_ROWS, n_rows):
            rows, cols = fit, n_cls
        else:
            rows = min(MIN_ROWS, n_rows)
            cols = budget // (max(rows, 1) * per_block)
    elif rows is None:
        rows = budget // (min(cols, n_cls) * (per if cols >= n_cls else per_block))
    elif cols is None:
        cols = n_cls if memory_budget is None else budget // (rows * per)
        if cols < n_cls:
            cols = budget // (rows * per_block)
    rows = max(1, min(int(rows), max(n_rows, 1)))
    cols = max(1, min(int(cols), n_cls))
    streaming = cols < n_cls
    wbytes = torch.finfo(work_dtype(dtype)).bits // 8
    if grouped and not streaming:
        group = max(1, min(rows, CPU_GROUP_BYTES // (cols * wbytes)))
    else:
        group = rows
    return Plan(rows, cols, group, n_cls, core and not streaming)


@dataclass
class Sweep:
    """What a sweep returns."""

    loss: torch.Tensor  # (n,) per processed row, work dtype
    lse: torch.Tensor  # (n,) per processed row, work dtype
    dh: torch.Tensor | None  # (N, D), h's dtype; rows not processed are 0
    dW: torch.Tensor | None  # (V, D), float32 for 16-bit inputs, W's dtype otherwise
    db: torch.Tensor | None  # (V,), float32 for 16-bit inputs, b's dtype otherwise


class _Workspace:
    """The preallocated buffers of one chunk (reused by every chunk: no allocation per chunk)."""

    def __init__(self, plan: Plan, dtype: torch.dtype, device: torch.device, softcap: bool):
        n = plan.token_chunk * plan.vocab_chunk
        wd = work_dtype(dtype)
        self.x = torch.empty(n, dtype=wd, device=device)
        self.low = torch.empty(n, dtype=dtype, device=device) if dtype in LOW_PRECISION else None
        scaled_n = plan.group_rows * plan.vocab_chunk
        self.scaled = torch.empty(scaled_n, dtype=wd, device=device) if softcap else None

    def logits(self, r: int, c: int) -> torch.Tensor:
        return self.x[: r * c].view(r, c)

    def scaled_view(self, r: int, c: int) -> torch.Tensor | None:
        return None if self.scaled is None else self.scaled[: r * c].view(r, c)

    def low_view(self, r: int, c: int) -> torch.Tensor | None:
        return None if self.low is None else self.low[: r * c].view(r, c)


def _logits(
    ws: _Workspace, h_c: torch.Tensor, W_blk: torch.Tensor, b_blk: torch.Tensor | None
) -> torch.Tensor:
    """``h_c W_blk^T + b_blk`` into the workspace, in the work dtype."""
    r, c = h_c.shape[0], W_blk.shape[0]
    x = ws.logits(r, c)
    out = ws.low_view(r, c)
    target = x if out is None else out
    if b_blk is None:
        torch.mm(h_c, W_blk.t(), out=target)
    else:
        torch.addmm(b_blk, h_c, W_blk.t(), out=target)
    if out is not None:
        x.copy_(out)
    return x


def _for_groups(n: int, size: int):
    for g0 in range(0, n, size):
        yield g0, min(g0 + size, n)


def sweep(
    h: torch.Tensor,
    W: torch.Tensor,
    b: torch.Tensor | None,
    rows_index: torch.Tensor | None,
    rows: lm.Rows,
    spec: lm.LossSpec,
    plan: Plan,
    need: tuple[bool, bool, bool],
) -> Sweep:
    """Loss, lse and (as asked by ``need`` = (dh, dW, db)) the gradients, chunk by chunk.

    ``h`` is ``(N, D)``; ``rows_index`` lists the rows to process (``None``: all of them, in
    order) and ``rows`` describes those rows. Gradients are those of
    ``sum(loss_grad * loss) + sum(lse_grad * lse)`` over the processed rows.
    """
    need_dh, need_dW, need_db = need
    need_db = need_db and b is not None
    want_grad = (need_dh or need_dW or need_db) and (
        rows.loss_grad is not None or rows.lse_grad is not None
    )
    n = rows.target.shape[0]
    n_cls, dim = W.shape
    device, dtype = h.device, h.dtype
    wd = work_dtype(dtype)
    acc = torch.float32 if dtype in LOW_PRECISION else dtype
    loss = torch.empty(n, dtype=wd, device=device)
    lse = torch.empty(n, dtype=wd, device=device)
    dh = None
    if want_grad and need_dh:
        # every row is written when all rows are processed; skipped rows keep a zero gradient
        dh = (torch.empty if rows_index is None else torch.zeros)(
            h.shape, dtype=dtype, device=device
        )
    dW = None
    if want_grad and need_dW:
        # whole rows: the first chunk's product initialises dW (no separate zero fill)
        make = torch.zeros if plan.streaming or n == 0 else torch.empty
        dW = make(n_cls, dim, dtype=acc, device=device)
    dW_started = plan.streaming
    db = torch.zeros(n_cls, dtype=acc, device=device) if want_grad and need_db else None
    if n == 0:
        return Sweep(loss, lse, dh, dW, db)
    ws = _Workspace(plan, dtype, device, spec.softcap is not None)

    for r0, r1 in _for_groups(n, plan.token_chunk):
        idx = None if rows_index is None else rows_index[r0:r1]
        h_c = h[r0:r1] if idx is None else h.index_select(0, idx)
        rc = rows.slice(r0, r1)
        if not plan.streaming:
            g = _chunk_whole_rows(ws, h_c, W, b, rc, spec, plan, want_grad, loss[r0:r1], lse[r0:r1])
            dh_c = None
            if dh is not None:
                g_mm = g if ws.low is None else ws.low_view(*g.shape).copy_(g)
                if idx is None:
                    torch.mm(g_mm, W, out=dh[r0:r1])
                else:
                    dh.index_copy_(0, idx, torch.mm(g_mm, W))
            if dW is not None:
                h_acc = h_c if h_c.dtype == acc else h_c.to(acc)
                if dW_started:
                    dW.addmm_(g.t(), h_acc)
                else:
                    torch.mm(g.t(), h_acc, out=dW)
                    dW_started = True
            if db is not None:
                db.add_(g.sum(dim=0))
        else:
            dh_c = _chunk_streaming(
                ws, h_c, W, b, rc, spec, plan, want_grad, loss[r0:r1], lse[r0:r1], dh, dW, db
            )
            if dh_c is not None:
                if idx is None:
                    dh[r0:r1].copy_(dh_c)
                else:
                    dh.index_copy_(0, idx, dh_c.to(dh.dtype))
    return Sweep(loss, lse, dh, dW, db)


@contextlib.contextmanager
def _one_thread(enabled: bool) -> Iterator[None]:
    """Run torch's CPU operations on one thread (this thread's setting; restored after).

    The elementwise passes over a cache-sized group take a millisecond or less: splitting them
    over threads costs more in synchronisation than it gains, badly so on a busy machine.
    """
    if not enabled:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _chunk_whole_rows(ws, h_c, W, b, rc, spec, plan, want_grad, loss_out, lse_out):
    """One chunk with whole rows; returns the gradient of its logits (the logits buffer itself
    on the torch path)."""
    x = _logits(ws, h_c, W, b)
    r, c = x.shape
    if plan.core and _lce_core.applies(spec, x.dtype, x.device, rc.lse_grad is not None):
        g = _lce_core.chunk(x, rc if want_grad else _no_grad(rc), spec, loss_out, lse_out)
        return g
    grouped = plan.group_rows < r
    with _one_thread(grouped and x.device.type == "cpu"):
        for g0, g1 in _for_groups(r, plan.group_rows):
            xg = x[g0:g1]
            rg = rc.slice(g0, g1)
            scaled = ws.scaled_view(g1 - g0, c)
            z = lm.transform(xg, scaled, 0, spec)
            st = lm.block_stats(z, rg, 0, spec, keep_exp=want_grad)
            res = lm.finish_rows(st, rg, spec)
            loss_out[g0:g1] = res.loss
            lse_out[g0:g1] = res.lse
            if want_grad:
                lm.block_grad(z, scaled, res, rg, 0, spec)
    return x


def _no_grad(rows: lm.Rows) -> lm.Rows:
    return lm.Rows(rows.target, rows.row_weight, rows.counted, None, None)


def _chunk_streaming(ws, h_c, W, b, rc, spec, plan, want_grad, loss_out, lse_out, dh, dW, db):
    """One chunk whose rows are cut into vocabulary blocks; returns its ``dh`` rows (or None)."""
    n_cls = W.shape[0]
    r = h_c.shape[0]
    acc = work_dtype(h_c.dtype)  # float32 for 16-bit inputs, as the dW accumulator
    blocks = list(_for_groups(n_cls, plan.vocab_chunk))
    st = None
    for v0, v1 in blocks:  # pass 1: the rows' statistics, block by block
        x = _logits(ws, h_c, W[v0:v1], None if b is None else b[v0:v1])
        z = lm.transform(x, ws.scaled_view(r, v1 - v0), v0, spec)
        blk = lm.block_stats(z, rc, v0, spec, keep_exp=False)
        in_block = (rc.target >= v0) & (rc.target < v1)
        st = lm.merge(st, blk, in_block)
    res = lm.finish_rows(st, rc, spec)
    loss_out.copy_(res.loss)
    lse_out.copy_(res.lse)
    if not want_grad:
        return None
    shift = st.shift[:, None]
    h_acc = h_c if h_c.dtype == acc else h_c.to(acc)
    dh_c = torch.zeros(r, W.shape[1], dtype=acc, device=h_c.device) if dh is not None else None
    for v0, v1 in blocks:  # pass 2: each block's gradient, straight into dh, dW and db
        W_blk = W[v0:v1]
        x = _logits(ws, h_c, W_blk, None if b is None else b[v0:v1])
        scaled = ws.scaled_view(r, v1 - v0)
        z = lm.transform(x, scaled, v0, spec)
        z.sub_(shift).exp_()
        g = lm.block_grad(z, scaled, res, rc, v0, spec)
        if dh_c is not None:
            if ws.low is None:
                dh_c.addmm_(g, W_blk)
            else:
                dh_c.add_(torch.mm(ws.low_view(*g.shape).copy_(g), W_blk))
        if dW is not None:
            dW[v0:v1].addmm_(g.t(), h_acc)
        if db is not None:
            db[v0:v1].add_(g.sum(dim=0))
    return dh_c
