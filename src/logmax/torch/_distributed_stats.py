r"""The communication side of :mod:`logmax.torch.distributed`: where each rank's vocabulary slice
lies, and the row statistics of the slices packed, gathered and merged.

Each rank reduces its slice of every row to the statistics of :mod:`logmax._core.rowstats`
(:func:`local_stats`), packs them into one float64 tensor (:func:`gather`: one ``all_gather``),
and every rank merges all the slices' statistics in rank order with
:func:`logmax._core.blocks.merge` (:func:`merge_all`): the same operations on the same numbers,
so the merged statistics -- and the loss, logsumexp and gradients finished from them -- are
bit-identical on every rank and from one run to the next.

Two refinements of the one-process path need statistics of their own (float64 results only,
or a logsumexp that cancels):

- a row whose sum :math:`s` is tiny (below ``2**-900``: a maximum ahead of the rest by more than
  about 620) carries, from the slice that holds its maximum, :math:`s` summed at ``2**1000``
  times its size (:func:`local_tiny`, as :func:`logmax.kernels.array._tiny_log1p`); the other
  slices' share is rescaled at the same size when merging (:func:`merged_tiny`), so the tiny
  loss or logsumexp keeps every bit;
- a row whose logsumexp cancels beyond what its statistics carry (:func:`lse_rows`, as
  :func:`logmax.kernels.array.lse_rows`) is computed again from accurate statistics in float64
  (one more ``all_gather``, of those rows only), and beyond that exactly from the gathered rows.
  Every rank takes these decisions on the merged statistics, hence all the same ones: no rank
  waits in a collective the others skip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

import torch
import torch.distributed as dist

from logmax._core import blocks
from logmax.kernels import array

INF = math.inf
NAN = math.nan

BASE = ("m_hi", "m_lo", "k", "s_hi", "s_lo", "bad")
TARGET = ("uy_hi", "uy_lo", "has_y")
DENSE = ("a_rest", "a_rest_lo", "a_k", "ad_hi", "ad_lo")
TINY = ("tiny_hi", "tiny_lo")
_INTS = {"k": torch.long, "bad": torch.bool, "has_y": torch.bool}
STAT_FIELDS = tuple(f.name for f in fields(blocks.Stats))


class LayoutError(ValueError):
    """The ranks' vocabulary slices do not tile the vocabulary (raised on every rank)."""


# ---------------------------------------------------------------------------------------------
# Collectives: torch.distributed only.
def _gather_into(out: torch.Tensor, t: torch.Tensor, group: Any) -> None:
    fn = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    fn(out, t, group=group)


def all_gather(t: torch.Tensor, group: Any, world: int) -> torch.Tensor:
    """``(world, *t.shape)``: every rank's ``t``, in rank order (one ``all_gather``)."""
    flat = t.reshape(-1).contiguous()
    out = flat.new_empty((world * flat.numel(),))
    _gather_into(out, flat, group)
    return out.reshape((world, *t.shape))


def group_of(group: Any) -> tuple[Any, int, int]:
    """``(group, rank, world)``; a clear error when torch.distributed is not initialised."""
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            "logmax.torch.distributed needs an initialised process group: call "
            "torch.distributed.init_process_group first (torchrun sets up the environment)"
        )
    rank = dist.get_rank(group)
    if rank < 0:
        raise ValueError("this process is not a member of the process group passed as group=")
    return group, rank, dist.get_world_size(group)


# ---------------------------------------------------------------------------------------------
# Where the slices lie.
@dataclass(frozen=True)
class Layout:
    """This rank's slice ``[start, stop)`` of a vocabulary of ``total`` classes, and every
    rank's slice in rank order (``ranges``; None until known)."""

    group: Any
    rank: int
    world: int
    start: int
    stop: int
    total: int | None
    ranges: tuple[tuple[int, int], ...] | None

    @property
    def n_local(self) -> int:
        return self.stop - self.start


def _check_range(vocab_range: Any, n_local: int) -> tuple[int, int]:
    try:
        start, stop = (int(v) for v in vocab_range)
    except (TypeError, ValueError):
        raise TypeError(
            f"vocab_range must be a pair of ints (start, stop), got {vocab_range!r}"
        ) from None
    if not 0 <= start <= stop or stop - start != n_local:
        raise ValueError(
            f"vocab_range={vocab_range!r} does not fit this rank's logits: expected "
            f"0 <= start <= stop with stop - start == {n_local} (the size of the class dim)"
        )
    return start, stop


def _tiling(ranges: list[tuple[int, int]]) -> int:
    """The vocabulary size, or :class:`LayoutError` when the slices overlap or leave a gap."""
    pos = 0
    for r, (start, stop) in sorted(enumerate(ranges), key=lambda p: (p[1][0], p[1][1], p[0])):
        if start != pos:
            raise LayoutError(
                f"the ranks' vocab_range slices {ranges} do not tile [0, V): rank {r}'s slice "
                f"starts at {start}, expected {pos}"
            )
        pos = stop
    return pos


def layout(
    group: Any,
    n_local: int,
    vocab_range: Any,
    n_rows: int,
    device: torch.device,
    total_hint: int | None,
    need_total: bool,
) -> Layout:
    """This rank's slice: ``vocab_range``, or contiguous in rank order with the sizes each rank
    holds (one ``all_gather`` of four integers per rank, also when ``need_total`` and no
    ``total_hint`` -- the full weight's length -- tells the vocabulary size)."""
    group, rank, world = group_of(group)
    start = stop = None
    if vocab_range is not None:
        start, stop = _check_range(vocab_range, n_local)
        if total_hint is not None and stop > total_hint:
            raise ValueError(
                f"vocab_range={vocab_range!r} ends beyond the vocabulary: weight has "
                f"{total_hint} classes"
            )
        if total_hint is not None or not need_total:
            return Layout(group, rank, world, start, stop, total_hint, None)
    meta = torch.tensor(
        [n_local, -1 if start is None else start, -1 if stop is None else stop, n_rows],
        dtype=torch.long,
        device=device,
    )
    got = all_gather(meta, group, world).tolist()
    rows = sorted({g[3] for g in got})
    if len(rows) != 1:
        raise LayoutError(
            f"the ranks hold different numbers of rows {[g[3] for g in got]}: every rank must "
            "hold the logits of the same tokens (rows), sliced over the vocabulary"
        )
    given = [g[1] >= 0 for g in got]
    if any(given) and not all(given):
        raise LayoutError(
            "vocab_range was given on some ranks only "
            f"({[r for r, g in enumerate(given) if g]}): give it on every rank or on none"
        )
    if all(given):
        ranges = [(g[1], g[2]) for g in got]
    else:
        ranges, pos = [], 0
        for g in got:
            ranges.append((pos, pos + g[0]))
            pos += g[0]
    total = _tiling(ranges)
    if total_hint is not None and total != total_hint:
        raise ValueError(
            f"weight has {total_hint} classes but the ranks' slices cover {total} (slices {ranges})"
        )
    start, stop = ranges[rank]
    return Layout(group, rank, world, start, stop, total, tuple(ranges))


def with_ranges(lay: Layout, headers: torch.Tensor) -> Layout:
    """``lay`` completed from the gathered ``(start, stop)`` headers (validated)."""
    if lay.ranges is not None:
        return lay
    ranges = [(int(a), int(b)) for a, b in headers.tolist()]
    total = _tiling(ranges)
    if lay.total is not None and total != lay.total:
        raise LayoutError(f"the ranks' slices {ranges} cover {total} classes, not {lay.total}")
    return replace(lay, total=total, ranges=tuple(ranges))


# ---------------------------------------------------------------------------------------------
# Statistics of this rank's slice.
def local_stats(ops: Any, u_hi: Any, u_lo: Any, t: float, start: int, *, target: Any = None,
                coef: Any = None, accurate: bool = False) -> tuple[blocks.Stats, Any]:  # fmt: skip
    """:func:`blocks.block_stats` of the slice (global columns ``start ..``; ``coef`` the
    slice's own coefficients) and, in double-double, its :func:`local_tiny` sums."""
    st, d_hi, d_lo = blocks.block_stats(
        ops, u_hi, u_lo, t, col0=start, target=target, coef=coef, accurate=accurate
    )
    return st, local_tiny(ops, st, d_hi, d_lo, start)


def local_tiny(ops: Any, st: blocks.Stats, d_hi: Any, d_lo: Any, start: int) -> Any:
    r"""``(hi, lo)``: the slice's :math:`s \cdot 2^{1000}` where its :math:`s` is tiny, 0 where it
    is 0, NaN elsewhere; None outside double-double (where no result is that small)."""
    if not ops.profile_dd:
        return None
    alg = ops.alg
    zero = st.s_hi == 0.0
    hi = alg.where(zero, 0.0, NAN)
    lo = 0.0 * st.s_hi
    got = array._tiny_log1p(ops, replace(st, k=st.k - start), d_hi, d_lo)
    if got is not None:
        hi = alg.where(got[0] == got[0], got[0], hi)
        lo = alg.where(got[0] == got[0], got[1], lo)
    return hi, lo


# ---------------------------------------------------------------------------------------------
# Packing, gathering, merging.
def field_names(target: bool, dense: bool, tiny: bool) -> tuple[str, ...]:
    return BASE + (TARGET if target else ()) + (DENSE if dense else ()) + (TINY if tiny else ())


def gather(ops: Any, lay: Layout, st: blocks.Stats, tiny: Any, names: tuple[str, ...]):
    """Every rank's statistics, in rank order: ``(layout, [(stats, tiny), ...])`` after one
    ``all_gather`` of one float64 tensor (``start, stop`` then the fields, a row each)."""
    values = {n: getattr(st, n) for n in names if n in STAT_FIELDS}
    if "a_rest_lo" in values:
        values["a_rest_lo"] = blocks.a_rest_lo(st)
    if tiny is not None:
        values["tiny_hi"], values["tiny_lo"] = tiny
    ref = st.m_hi
    rows = [torch.as_tensor(values[n], device=ref.device).to(torch.float64).expand(ref.shape)
            for n in names]  # fmt: skip
    head = torch.tensor([lay.start, lay.stop], dtype=torch.float64, device=ref.device)
    packed = torch.cat([head, torch.stack(rows).reshape(-1)]) if rows else head
    got = all_gather(packed, lay.group, lay.world)
    lay = with_ranges(lay, got[:, :2])
    n = int(ref.shape[0])
    parts = []
    for r in range(lay.world):
        body = got[r, 2:].reshape(len(names), n)
        kw = {}
        for i, name in enumerate(names):
            kw[name] = body[i].to(_INTS.get(name, ops.work_dtype))
        t_hi, t_lo = kw.pop("tiny_hi", None), kw.pop("tiny_lo", None)
        parts.append((blocks.Stats(**kw), None if t_hi is None else (t_hi, t_lo)))
    return lay, parts


def merge_all(ops: Any, parts: list[tuple[blocks.Stats, Any]], t: float) -> blocks.Stats:
    """The slices' statistics merged left to right in rank order."""
    st = parts[0][0]
    for b, _ in parts[1:]:
        st = blocks.merge(ops, st, b, t)
    return st


def merged_tiny(ops: Any, parts: list[tuple[blocks.Stats, Any]], st: blocks.Stats, t: float):
    r""":math:`s \cdot 2^{1000}` of the merged rows whose :math:`s` is tiny (NaN elsewhere), or
    None when no row's is. The slice holding the maximum gives its own scaled sum; every other
    slice :math:`(1 + s_b)\, e^{(m_b - m)/T}` with the exponential scaled before it is rounded
    (it is below ``2**-900``, so it would lose bits as a subnormal)."""
    if parts[0][1] is None:
        return None
    alg = ops.alg
    tiny = (st.s_hi < array.TINY_S) & (st.s_hi > 0.0)
    if not ops.any(tiny):
        return None
    sh, sl = alg.finite_shift(st.m_hi, st.m_lo)
    tot_hi = tot_lo = 0.0 * st.s_hi
    for b, (b_hi, b_lo) in parts:
        win = (b.k == st.k) & (b.m_hi != -INF)
        d_hi, d_lo = alg.shift(b.m_hi, b.m_lo, sh, sl, t)
        e_hi, e_lo, k = alg.exp_dd(d_hi, d_lo)
        f_hi, f_lo = alg.scale2(e_hi, k + array.RESCALE), alg.scale2(e_lo, k + array.RESCALE)
        l_hi, l_lo = alg.dd_mul(*alg.dd_add_d(b.s_hi, b.s_lo, 1.0), f_hi, f_lo)
        c_hi = alg.where(win, b_hi, alg.where(b.m_hi == -INF, 0.0, l_hi))
        c_lo = alg.where(win, b_lo, alg.where(b.m_hi == -INF, 0.0, l_lo))
        tot_hi, tot_lo = alg.dd_add(tot_hi, tot_lo, c_hi, c_lo)
    ok = tiny & (tot_hi == tot_hi)
    return alg.where(ok, tot_hi, NAN), alg.where(ok, tot_lo, 0.0)


def descale(ops: Any, v_hi: Any, v_lo: Any) -> Any:
    return array._descale(ops, v_hi, v_lo)


# ---------------------------------------------------------------------------------------------
# Finishers that need the whole row: logsumexp with its refinements.
def lse_of(ops: Any, st: blocks.Stats, tiny: Any, t: float):
    """``(lse_hi, lse_lo, L_hi, L_lo)`` of merged statistics, tiny rows from their scaled sums
    (as :func:`logmax.kernels.array._lse_stage`)."""
    alg = ops.alg
    l_hi, l_lo = alg.log1p_s(st.s_hi, st.s_lo)
    v_hi, v_lo = alg.lse(st.m_hi, st.m_lo, l_hi, l_lo, st.bad, t)
    if tiny is not None:
        q_hi, q_lo = alg.dd_div_d(st.m_hi, st.m_lo, t)
        near0 = abs(q_hi) < 2.0**-500
        big_hi, big_lo = alg.dd_add(
            alg.where(near0, q_hi, 0.0) * 2.0**array.RESCALE,
            alg.where(near0, q_lo, 0.0) * 2.0**array.RESCALE,
            *tiny,
        )
        small = descale(ops, big_hi, big_lo)
        use = near0 & (small == small)
        v_hi = alg.where(use, small, v_hi)
        v_lo = alg.where(use, 0.0, v_lo)
    return v_hi, v_lo, l_hi, l_lo


def lse_rows(ops: Any, lay: Layout, st: blocks.Stats, tiny: Any, u_of: Any, t: float, need: int,
             accurate: bool) -> Any:  # fmt: skip
    """Each row's logsumexp (work dtype) with ``need`` bits right, from the merged statistics
    ``st`` (computed ``accurate`` or not); the rows that cancel beyond that are computed again
    (see the module docstring). ``u_of(idx)`` gives this rank's slice ``(u_hi, u_lo)`` of the
    rows ``idx`` (softcapped)."""
    v_hi, v_lo, l_hi, l_lo = lse_of(ops, st, tiny, t)
    v = v_hi + v_lo
    bits = (ops.accurate_bits if accurate else ops.term_bits) - need
    cancels = array.lse_cancels_rows(ops, st, l_hi, v_hi, t, bits)
    if not ops.any(cancels):
        return v
    idx = ops.nonzero(cancels)
    fine = ops.refined()
    sel_hi, sel_lo = u_of(idx)
    sel_hi, sel_lo = fine.work(sel_hi), fine.work(sel_lo)
    if accurate and fine is ops:
        r, again = ops.select_rows(v, idx), ops.select_rows(cancels, idx)
    else:  # one more gather, of accurate statistics of these rows
        st2, tiny2 = local_stats(fine, sel_hi, sel_lo, t, lay.start, accurate=True)
        lay, parts = gather(fine, lay, st2, tiny2, field_names(False, False, tiny2 is not None))
        merged = merge_all(fine, parts, t)
        r_hi, r_lo, rl_hi, _ = lse_of(fine, merged, merged_tiny(fine, parts, merged, t), t)
        r = r_hi + r_lo
        again = array.lse_cancels_rows(fine, merged, rl_hi, r_hi, t, fine.accurate_bits - need)
    if fine.any(again):  # beyond double-double: the whole rows, exactly
        full_hi, full_lo = whole_rows(lay, sel_hi, sel_lo)
        r = fine.exact_lse_rows(r, 0.0 * r, again, full_hi, full_lo, t)[0]
    return ops.assign_rows(v, idx, r)


def whole_rows(lay: Layout, u_hi: torch.Tensor, u_lo: torch.Tensor):
    """The whole rows ``(rows, V)`` of every rank's slices ``u`` (float64; one ``all_gather``,
    each slice padded to the longest). Only for the few rows the exact fallback needs."""
    ranges = lay.ranges
    if ranges is None:  # not known yet (vocab_range given): one gather of the slices' bounds
        head = torch.tensor([lay.start, lay.stop], dtype=torch.float64, device=u_hi.device)
        lay = with_ranges(lay, all_gather(head, lay.group, lay.world))
        ranges = lay.ranges
    width = max((b - a for a, b in ranges), default=0)
    n = int(u_hi.shape[0])
    pad = torch.full((2, n, width), -INF, dtype=torch.float64, device=u_hi.device)
    pad[1] = 0.0
    pad[0, :, : lay.n_local] = u_hi
    pad[1, :, : lay.n_local] = u_lo
    got = all_gather(pad, lay.group, lay.world)
    total = max((b for _, b in ranges), default=0)
    out = torch.empty((2, n, total), dtype=torch.float64, device=u_hi.device)
    for r, (a, b) in enumerate(ranges):
        out[:, :, a:b] = got[r, :, :, : b - a]
    return out[0], out[1]
