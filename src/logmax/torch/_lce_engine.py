r"""The chunked sweep behind :func:`logmax.torch.linear_cross_entropy`.

The tokens are cut into chunks; each chunk's logits ``x = h_c W^T + b`` go into one workspace,
are reduced to row statistics (:mod:`logmax.torch._lce_kernels`, on row groups small enough to
stay in the cache), finished by :func:`logmax.kernels.array.ce_finish` (loss, logsumexp and the
gradient's row factors), turned into their gradient and at once into ``dh_c = g W``,
``dW += g^T h_c`` and ``db += sum(g)``: three matrix products per chunk, as many as the naive
path, and the ``(N, V)`` logits never exist.

Fold: when the gradient is ``r_i e^{d_ij}`` but for two entries per row (no softcap, no label
smoothing), the stats pass leaves ``e^{d}`` in the workspace and the row factors ``r`` scale the
operands of the products instead (``dh_c = r * (E W)``, ``dW += E^T (r h_c)``), and the two
entries are added apart: the workspace is read once by the element-wise work.

When even a few rows of logits exceed the budget, the rows are cut into vocabulary blocks: a
first pass merges each block's statistics into the row's (:func:`logmax._core.blocks.merge`, left
to right), a second recomputes each block's logits and turns them into their gradient; one more
``h_c W^T`` per chunk, paid only then.

16-bit inputs: the logits are computed in float32 from the exact float32 values of ``h`` and
``W`` (a 16-bit product would round them to 8 or 11 bits before the softmax), in vocabulary
blocks converted on the fly; ``dW`` and ``db`` accumulate in float32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from logmax.kernels import array
from logmax.kernels import torch_backend as tb
from logmax.torch import _lce_kernels as kern

MIB = 1 << 20
DEFAULT_BUDGET = {"cpu": 64 * MIB}  # bytes of chunk workspace; other devices: OTHER_BUDGET
OTHER_BUDGET = 512 * MIB
MIN_ROWS = 32  # below this many rows per chunk the products lose efficiency: cut V instead
GROUP_BYTES = 2 * MIB  # the element-wise passes run on slabs of about this much temporary
CONVERT_COLS = 4096  # 16-bit inputs: classes of W converted to float32 at a time
LOW = (torch.float16, torch.bfloat16)
FAST_BITS = {torch.float64: 40, torch.float32: 20}  # the fast kernel's hot dtype -> bits of s


def logits_dtype(dtype: torch.dtype) -> torch.dtype:
    """The logits workspace: float64 for float64 inputs, float32 otherwise."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def make_kernel(dtype: torch.dtype, ops: Any, opts: Any, dense: bool, device: torch.device):
    """The kernel for inputs of ``dtype``: exact (double-double) for float64, fast otherwise."""
    if dtype == torch.float64:
        return kern.ExactKernel(ops, opts, GROUP_BYTES)
    hot = torch.float32 if dtype in LOW else torch.float64
    return kern.FastKernel(ops, opts, hot, dense, GROUP_BYTES, device)


@dataclass(frozen=True)
class Plan:
    """How the sweep cuts the work."""

    token_chunk: int  # rows of logits per chunk
    vocab_chunk: int  # columns per block (the vocabulary size: no cutting)
    n_classes: int

    @property
    def streaming(self) -> bool:
        """Rows are cut into vocabulary blocks (two passes per chunk)."""
        return self.vocab_chunk < self.n_classes


def make_plan(
    n_rows: int,
    n_classes: int,
    dtype: torch.dtype,
    device: torch.device,
    group_bytes: int,
    chunk_size: int | None,
    vocab_chunk_size: int | None,
    memory_budget: int | None,
) -> Plan:
    """Chunk sizes: the user's, or the largest whose workspace stays within the budget.

    The budget (default 64 MiB on the CPU, 512 MiB elsewhere) covers one chunk of logits; a row
    group's temporaries (``group_bytes`` per logit) must fit in half of it, which bounds the
    block width. The gradients of ``W`` and ``h`` themselves come on top.
    """
    budget = memory_budget or DEFAULT_BUDGET.get(device.type, OTHER_BUDGET)
    per = torch.finfo(logits_dtype(dtype)).bits // 8
    n_cls = max(n_classes, 1)
    widest = max(1, budget // (2 * group_bytes))  # one row's temporaries in half the budget
    rows, cols = chunk_size, vocab_chunk_size
    if rows is None and cols is None:
        fit = budget // (n_cls * per)
        if fit >= min(MIN_ROWS, n_rows) and n_cls <= widest:
            rows, cols = fit, n_cls
        else:
            rows = min(MIN_ROWS, max(n_rows, 1))
            cols = min(widest, budget // (rows * per))
    elif rows is None:
        rows = budget // (min(cols, n_cls) * per)
    elif cols is None:
        cols = n_cls if memory_budget is None else budget // (rows * per)
    rows = max(1, min(int(rows), max(n_rows, 1)))
    cols = max(1, min(int(cols), n_cls))
    return Plan(rows, cols, n_cls)


@dataclass
class Sweep:
    """What a sweep returns (rows: the processed rows, in order)."""

    loss: torch.Tensor  # (n,) per row, the ops' work dtype
    lse: torch.Tensor  # (n,) per row, work dtype
    cancels: torch.Tensor  # (n,) bool: the row's lse may cancel beyond the kernel's precision
    dh: torch.Tensor | None  # (n, D), the logits' dtype
    dW: torch.Tensor | None  # (V, D), the logits' dtype
    db: torch.Tensor | None  # (V,), the logits' dtype


class _Linear:
    """The three matrix products of a chunk, on its logits *transposed* (``xT = W_b h_c^T``,
    class-major: the layout in which the forward product runs fastest), in the logits' dtype
    (16-bit ``W`` converted to float32 a block of :data:`CONVERT_COLS` classes at a time)."""

    def __init__(self, W: torch.Tensor, b: torch.Tensor | None, dtype: torch.dtype) -> None:
        self.W, self.b, self.dtype = W, b, dtype
        self.convert = W.dtype != dtype

    def _blocks(self, v0: int, v1: int) -> Iterator[tuple[int, int, torch.Tensor]]:
        if not self.convert:
            yield v0, v1, self.W[v0:v1]
            return
        for c0 in range(v0, v1, CONVERT_COLS):
            c1 = min(c0 + CONVERT_COLS, v1)
            yield c0, c1, self.W[c0:c1].to(self.dtype)

    def logits(self, h_c: torch.Tensor, v0: int, v1: int, xT: torch.Tensor) -> None:
        """``xT = W[v0:v1] h_c^T + b[v0:v1]`` (``h_c`` already in the logits' dtype)."""
        for c0, c1, w in self._blocks(v0, v1):
            out = xT[c0 - v0 : c1 - v0]
            if self.b is None:
                torch.mm(w, h_c.t(), out=out)
            else:
                torch.addmm(self.b[c0:c1, None].to(self.dtype), w, h_c.t(), out=out)

    def input_grad(self, gT: torch.Tensor, v0: int, v1: int, out: torch.Tensor, add: bool):
        """``out (+)= g W[v0:v1]`` for the gradient ``gT`` (class-major)."""
        for c0, c1, w in self._blocks(v0, v1):
            g = gT[c0 - v0 : c1 - v0].t()
            if add:
                out.addmm_(g, w)
            else:
                torch.mm(g, w, out=out)
                add = True

    def rows(self, cols: torch.Tensor) -> torch.Tensor:
        """``W[cols]`` in the logits' dtype."""
        return self.W.index_select(0, cols).to(self.dtype)


@contextlib.contextmanager
def _one_thread(enabled: bool) -> Iterator[None]:
    """Run torch's CPU operations on one thread (restored after).

    The element-wise passes over a cache-sized group take a millisecond or less: splitting them
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


def _groups(n: int, size: int) -> Iterator[tuple[int, int]]:
    for g0 in range(0, n, size):
        yield g0, min(g0 + size, n)


def sweep(
    h: torch.Tensor,
    W: torch.Tensor,
    b: torch.Tensor | None,
    lr: array.LossRows,
    scale: torch.Tensor | None,
    lse_grad: torch.Tensor | None,
    opts: Any,
    chunking: tuple[int | None, int | None, int | None],
    need: tuple[bool, bool, bool],
) -> Sweep:
    """Loss, logsumexp and (as ``need`` = (dh, dW, db) asks) the gradients, chunk by chunk.

    ``h`` holds the rows to process (``(n, D)``), ``lr`` their loss coefficients (in the work
    dtype of ``ops_for(h)``), ``scale`` each row's d(total)/d(row loss) (None: no loss gradient)
    and ``lse_grad`` its logsumexp's upstream gradient (or None); ``chunking`` is
    ``(chunk_size, vocab_chunk_size, memory_budget)`` for :func:`make_plan`.
    """
    n, dim = h.shape
    n_cls = W.shape[0]
    xdt = logits_dtype(h.dtype)
    device = h.device
    ops = tb.ops_for(h)
    kernel = make_kernel(h.dtype, ops, opts, lr.coef is not None, device)
    plan = make_plan(n, n_cls, h.dtype, device, kernel.bytes_per_logit, *chunking)
    want = (scale is not None or lse_grad is not None) and any(need)
    need_dh, need_dW, need_db = (want and x for x in need)
    need_db = need_db and b is not None
    if want and scale is None:
        scale = torch.zeros(n, dtype=ops.work_dtype, device=device)
    new = torch.zeros if n == 0 else torch.empty  # the first chunk's products write dW whole
    out = Sweep(
        loss=torch.empty(n, dtype=ops.work_dtype, device=device),
        lse=torch.empty(n, dtype=ops.work_dtype, device=device),
        cancels=torch.zeros(n, dtype=torch.bool, device=device),
        dh=torch.empty(n, dim, dtype=xdt, device=device) if need_dh else None,
        dW=new(n_cls, dim, dtype=xdt, device=device) if need_dW else None,
        db=torch.zeros(n_cls, dtype=xdt, device=device) if need_db else None,
    )
    if n == 0:
        return out
    ws = torch.empty(plan.token_chunk * plan.vocab_chunk, dtype=xdt, device=device)
    lin = _Linear(W, b, xdt)
    bits = FAST_BITS.get(getattr(kernel, "hot", None), ops.term_bits) - tb.NEED[h.dtype]
    for r0, r1 in _groups(n, plan.token_chunk):
        chunk = _Chunk(ops, kernel, lin, opts, plan, h[r0:r1].to(xdt),
                       kern.loss_rows_slice(lr, r0, r1), ws, first=r0 == 0)  # fmt: skip
        chunk.run(
            out, r0, r1, None if scale is None else scale[r0:r1],
            None if lse_grad is None else lse_grad[r0:r1], (need_dh, need_dW, need_db), bits,
        )  # fmt: skip
    return out


class _Chunk:
    """One chunk of rows: its logits, statistics, finish and gradient products."""

    def __init__(self, ops, kernel, lin, opts, plan, h_c, lr, ws, first: bool) -> None:
        self.ops, self.kernel, self.lin, self.opts, self.plan = ops, kernel, lin, opts, plan
        self.h_c, self.lr, self.ws, self.first = h_c, lr, ws, first
        self.n_rows = h_c.shape[0]
        self.cpu = h_c.device.type == "cpu"

    def _x(self, cols: int) -> torch.Tensor:
        """The workspace as the transposed logits of ``cols`` classes: ``(cols, rows)``."""
        return self.ws[: self.n_rows * cols].view(cols, self.n_rows)

    def _stats(self, xT: torch.Tensor, v0: int):
        with _one_thread(self.cpu):
            return self.kernel.stats(xT, v0, self.lr)

    def _grad(self, xT: torch.Tensor, v0: int, st, fin, f) -> None:
        with _one_thread(self.cpu):
            self.kernel.grad(xT, v0, st, fin, self.lr, f)

    def run(self, out: Sweep, r0: int, r1: int, scale, lse_grad, need, bits: int) -> None:
        plan, lin, h_c, opts = self.plan, self.lin, self.h_c, self.opts
        blocks = list(_groups(plan.n_classes, plan.vocab_chunk))
        st = None
        for v0, v1 in blocks:  # statistics, block by block (one block: whole rows)
            x = self._x(v1 - v0)
            lin.logits(h_c, v0, v1, x)
            st = kern.merge(self.ops, st, self._stats(x, v0), opts.temperature)
        fin = array.ce_finish(self.ops, st, self.lr, opts)
        out.loss[r0:r1] = fin.loss
        out.lse[r0:r1] = fin.lse_hi + fin.lse_lo
        l_hi, _ = self.ops.alg.log1p_s(st.s_hi, st.s_lo)
        t = opts.temperature
        out.cancels[r0:r1] = array.lse_cancels_rows(self.ops, st, l_hi, fin.lse_hi, t, bits)
        if not any(need):
            return
        f = kern.row_factors(self.ops, st, fin, self.lr, scale, lse_grad, t)
        if not plan.streaming and self.kernel.fold:
            self._fold(self._x(plan.n_classes), f, out, r0, r1)
            return
        dh_c = out.dh[r0:r1] if out.dh is not None else None
        for i, (v0, v1) in enumerate(blocks):
            x = self._x(v1 - v0)
            if plan.streaming:
                lin.logits(h_c, v0, v1, x)
            self._grad(x, v0, st, fin, f)
            self._products(x, v0, v1, dh_c, i > 0, out)

    def _products(self, gT, v0: int, v1: int, dh_c, add: bool, out: Sweep) -> None:
        """``dh_c (+)= g W_b``, ``dW_b (+)= g^T h_c``, ``db_b += sum(g)`` for block ``v0:v1``
        (``gT`` class-major)."""
        if dh_c is not None:
            self.lin.input_grad(gT, v0, v1, dh_c, add)
        if out.dW is not None:
            if self.first:
                torch.mm(gT, self.h_c, out=out.dW[v0:v1])
            else:
                out.dW[v0:v1].addmm_(gT, self.h_c)
        if out.db is not None:
            out.db[v0:v1].add_(gT.sum(dim=1))

    def _fold(self, eT: torch.Tensor, f, out: Sweep, r0: int, r1: int) -> None:
        """The products of a chunk whose workspace holds ``e^{d}`` (fold mode): the entries at
        ``k`` and ``y`` become ``g / r``, so that ``r e`` is the gradient everywhere."""
        lin, h_c = self.lin, self.h_c
        r = f.r.to(eT.dtype)
        apart = kern.fold_entries(eT, f)
        if out.dh is not None:
            dh_c = out.dh[r0:r1]
            lin.input_grad(eT, 0, self.plan.n_classes, dh_c, False)
            dh_c.mul_(r[:, None])
        if out.dW is not None:
            rh = h_c * r[:, None]
            if self.first:
                torch.mm(eT, rh, out=out.dW)
            else:
                out.dW.addmm_(eT, rh)
        if out.db is not None:
            out.db.addmv_(eT, r)
        if apart is not None:  # rows whose r is 0 but not their gradient (contrived)
            cols, vals, rows = apart
            if out.dh is not None:
                out.dh[r0:r1].index_add_(0, rows, lin.rows(cols) * vals[:, None])
            if out.dW is not None:
                out.dW.index_add_(0, cols, h_c.index_select(0, rows) * vals[:, None])
            if out.db is not None:
                out.db.index_add_(0, cols, vals)


def refine_lse(h, W, b, rows: torch.Tensor, lse: torch.Tensor, opts: Any, need_bits: int,
               batch: int = 8) -> torch.Tensor:  # fmt: skip
    """``lse`` with the rows ``rows`` (indices into ``h``) recomputed by
    :func:`logmax.kernels.array.lse_rows` on their materialised logits (rows whose logsumexp
    cancels: see :class:`Sweep`)."""
    xdt = logits_dtype(h.dtype)
    ops = tb.ops_for(h).refined()
    lin = _Linear(W, b, xdt)
    out = lse.clone()
    for i0, i1 in _groups(rows.shape[0], batch):
        idx = rows[i0:i1]
        xT = torch.empty(W.shape[0], i1 - i0, dtype=xdt, device=h.device)
        lin.logits(h.index_select(0, idx).to(xdt), 0, W.shape[0], xT)
        u_hi, u_lo, _ = array.transform(ops, xT.t(), opts.softcap)
        v = array.lse_rows(ops, u_hi, u_lo, opts.temperature, need_bits)
        out[idx] = v.to(out.dtype)
    return out
