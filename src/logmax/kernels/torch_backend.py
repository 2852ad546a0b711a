"""The ``torch`` backend: the contract in plain torch operations, on any device.

The same code as the NumPy reference (:mod:`logmax.kernels.array` on the algebra of
:mod:`logmax._core.rowstats`), run on torch tensors: its precision is that of the reference.
Float32 and float64 results are computed in double-double float64; 16-bit results in float32,
whose 24 bits leave them within 1 ULP (MPS has no float64: float32 there too, where the
double-double of float32 keeps about 44 bits). Nothing here reads a tensor's values on the host
except where a row needs the exact fallback (a float64 logsumexp that cancels to near 0).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from logmax._core import ddarith, exact, rowstats
from logmax._core.options import LossOptions, RowOptions
from logmax._core.specialise import specialise
from logmax.kernels import array

INF = math.inf
LOW = (torch.float16, torch.bfloat16)
NEED = {torch.float16: 14, torch.bfloat16: 11, torch.float32: 27, torch.float64: 56}


def _where(c: torch.Tensor, a: Any, b: Any) -> torch.Tensor:
    if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
        a = torch.tensor(a, dtype=torch.float64, device=c.device)  # 0-d: does not promote
    return torch.where(c, a, b)


def _pow2(k: torch.Tensor) -> torch.Tensor:
    return torch.ldexp(torch.ones_like(k), k)


def _plain_exp_dd(d_hi, d_lo):
    z = torch.zeros_like(d_hi)
    return torch.exp(d_hi) * (1.0 + d_lo), z, z


def _plain_log1p_dd(s_hi, s_lo):
    return torch.log1p(s_hi) + s_lo / (1.0 + s_hi), torch.zeros_like(s_hi)


def _plain_tanh_dd(u_hi, u_lo):
    return torch.tanh(u_hi), torch.zeros_like(u_hi)


def _plain_sech2_dd(u_hi, u_lo):
    return torch.cosh(u_hi).pow(-2), torch.zeros_like(u_hi)


def _two_prod(a: Any, b: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Dekker's exact product in torch operations (no ``fma``); operands above the split's
    range are scaled by a power of two first (as :func:`logmax._core.ddarith.two_prod`)."""
    if not isinstance(a, torch.Tensor):
        a = torch.as_tensor(a, dtype=b.dtype, device=b.device)
    if not isinstance(b, torch.Tensor):
        b = torch.as_tensor(b, dtype=a.dtype, device=a.device)
    if a.dtype == torch.float64:
        split, big, down = 134217729.0, 2.0**996, 2.0**-60
    else:
        split, big, down = 4097.0, 2.0**115, 2.0**-14
    sa = torch.where(a.abs() > big, down, 1.0).to(a.dtype)
    sb = torch.where(b.abs() > big, down, 1.0).to(b.dtype)
    a2, b2 = a * sa, b * sb
    p2 = a2 * b2
    ca, cb = split * a2, split * b2
    ah, bh = ca - (ca - a2), cb - (cb - b2)
    al, bl = a2 - ah, b2 - bh
    e2 = ((ah * bh - p2) + ah * bl + al * bh) + al * bl
    return a * b, e2 / (sa * sb)


class TorchOps:
    """:class:`logmax._core.blocks.ArrayOps` for torch tensors of one work dtype."""

    def __init__(self, work_dtype: torch.dtype) -> None:
        self.work_dtype = work_dtype
        self.profile_dd = work_dtype == torch.float64
        self.term_bits = 56 if self.profile_dd else 22
        self.accurate_bits = 99 if self.profile_dd else 22
        self.grid_exponent_limit = 1000.0 if self.profile_dd else 120.0  # (blocks.exact_sum)
        prims: dict[str, Any] = dict(
            where=_where, exp=torch.exp, log1p=torch.log1p, rint=torch.round, pow2=_pow2,
            two_prod=_two_prod,
        )  # fmt: skip
        if not self.profile_dd:
            prims.update(
                exp_dd=_plain_exp_dd, exp_dd_accurate=_plain_exp_dd, log1p_dd=_plain_log1p_dd,
                tanh_dd=_plain_tanh_dd, sech2_dd=_plain_sech2_dd,
            )  # fmt: skip
        self.alg = specialise([ddarith, rowstats], **prims)

    # layout --------------------------------------------------------------------------------
    def rows(self, x: torch.Tensor, axis: int) -> tuple[torch.Tensor, tuple[int, ...]]:
        moved = x.movedim(axis, -1)
        n = math.prod(moved.shape[:-1])
        return moved.reshape(n, moved.shape[-1]), tuple(x.shape)

    def unrows(self, y: torch.Tensor, shape: tuple[int, ...], axis: int) -> torch.Tensor:
        moved = shape[:axis] + shape[axis + 1 :] + (shape[axis],)
        return y.reshape(moved).movedim(-1, axis)

    def reshape(self, v: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        return v.reshape(shape)

    def reduced_shape(self, shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
        return shape[:axis] + shape[axis + 1 :]

    batch_shape = reduced_shape

    def shape2(self, x2: torch.Tensor) -> tuple[int, int]:
        return int(x2.shape[0]), int(x2.shape[1])

    def col(self, v: Any) -> Any:
        return v[:, None] if isinstance(v, torch.Tensor) and v.ndim == 1 else v

    # dtypes ----------------------------------------------------------------------------------
    def work(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.work_dtype)

    def work_rows(self, v: Any, n: int, device: Any = None) -> torch.Tensor:
        if device is None:
            device = v.device if isinstance(v, torch.Tensor) else None
        v = torch.as_tensor(v, dtype=self.work_dtype, device=device)
        return v.expand(n) if v.ndim == 0 else v.reshape(n)

    def to_output(self, y: torch.Tensor, like: torch.Tensor, *others: torch.Tensor) -> torch.Tensor:
        dtype = like.dtype
        for o in others:
            dtype = torch.promote_types(dtype, o.dtype)
        return y.to(dtype)

    def need_bits(self, x: torch.Tensor) -> int:
        return NEED[x.dtype]

    # rows --------------------------------------------------------------------------------------
    def max_rows(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.shape[1] == 0:
            n = x.shape[0]
            return (torch.full((n,), -INF, dtype=x.dtype, device=x.device),
                    torch.zeros(n, dtype=torch.long, device=x.device))  # fmt: skip
        k = torch.argmax(x, dim=1)
        return x.gather(1, k[:, None])[:, 0], k

    def take_rows(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 0:
            return x.new_zeros(x.shape[0])
        return x.gather(1, idx.long()[:, None])[:, 0]

    def put_rows(self, x: torch.Tensor, idx: torch.Tensor, value: Any) -> torch.Tensor:
        if x.shape[1] == 0:
            return x.clone()
        v = (
            value
            if isinstance(value, torch.Tensor)
            else torch.full_like(idx, 0, dtype=x.dtype) + value
        )
        return x.scatter(1, idx.long()[:, None], v.to(x.dtype)[:, None])

    put_rows_values = put_rows

    def sum_rows(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=1)

    def any_rows(self, x: torch.Tensor) -> torch.Tensor:
        return x.any(dim=1)

    def all_rows(self, x: torch.Tensor) -> torch.Tensor:
        return x.all(dim=1)

    def any(self, x: Any) -> bool:
        return bool(torch.as_tensor(x).any())

    def nonzero(self, mask: torch.Tensor) -> torch.Tensor:
        return mask.nonzero()[:, 0]

    def select_rows(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return x.index_select(0, idx)

    def assign_rows(self, v: torch.Tensor, idx: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        return v.index_copy(0, idx, values.to(v.dtype))

    def exponent(self, x: torch.Tensor) -> torch.Tensor:
        return torch.frexp(x)[1].to(x.dtype)

    def empty_like_block(self, block: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        return block.new_empty(shape)

    def zeros_like(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x, dtype=self.work_dtype)

    def isnan(self, x: torch.Tensor) -> torch.Tensor:
        return torch.isnan(x)

    def refined(self) -> TorchOps:
        return self if self.profile_dd else _ops(torch.float64)

    def exact_lse_rows(self, v, v_lo, rows, u_hi, u_lo, t: float):
        out, out_lo = v.clone(), v_lo.clone()
        hi, lo = u_hi.double().cpu().numpy(), u_lo.double().cpu().numpy()
        for r in rows.nonzero()[:, 0].tolist():
            out[r], out_lo[r], _ = exact.logsumexp_row_dd(hi[r], None, t, lo[r])
        return out, out_lo

    # losses ----------------------------------------------------------------------------------
    def class_weights(self, weight: Any, n: int, like: torch.Tensor) -> torch.Tensor:
        if weight is None:
            return torch.ones(n, dtype=self.work_dtype, device=like.device)
        return weight.to(device=like.device, dtype=self.work_dtype)

    def ones_rows(self, x2: torch.Tensor, value: Any) -> torch.Tensor:
        dtype = torch.bool if isinstance(value, bool) else self.work_dtype
        return torch.full((x2.shape[0],), value, dtype=dtype, device=x2.device)

    def zeros_rows_int(self, x2: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x2.shape[0], dtype=torch.long, device=x2.device)

    def flat_labels(self, target: torch.Tensor) -> torch.Tensor:
        return target.reshape(-1).long()

    def gather(self, w: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if w.shape[0] == 0:
            return torch.zeros(y.shape[0], dtype=w.dtype, device=w.device)
        return w[y]

    def at_label(self, v: Any, y: torch.Tensor, n_cls: int, like: torch.Tensor) -> torch.Tensor:
        out = torch.zeros((y.shape[0], n_cls), dtype=self.work_dtype, device=like.device)
        if n_cls:
            vv = torch.as_tensor(v, dtype=self.work_dtype, device=like.device).expand(y.shape[0])
            inside = (y >= 0) & (y < n_cls)  # labels of this block only
            vv = torch.where(inside, vv, 0.0)
            out = out.scatter(1, y.clamp(0, n_cls - 1)[:, None], vv[:, None])
        return out

    def is_col(self, k: torch.Tensor, n_cls: int, like: torch.Tensor) -> torch.Tensor:
        return torch.arange(n_cls, device=like.device)[None, :] == k[:, None]


_CACHE: dict[torch.dtype, TorchOps] = {}


def _ops(work_dtype: torch.dtype) -> TorchOps:
    if work_dtype not in _CACHE:
        _CACHE[work_dtype] = TorchOps(work_dtype)
    return _CACHE[work_dtype]


def ops_for(x: torch.Tensor) -> TorchOps:
    """The ops for a tensor: float32 work for 16-bit inputs (and on MPS), float64 otherwise."""
    if x.dtype in LOW or x.device.type == "mps":
        return _ops(torch.float32)
    return _ops(torch.float64)


class TorchBackend:
    """Plain torch operations on any device (see the module docstring)."""

    name = "torch"
    native = "torch"

    def available(self) -> str | None:
        import importlib.util

        return None if importlib.util.find_spec("torch") else "torch is not installed"

    def supports(self, call: Any) -> str | None:
        if call.op == "logsumexp_weighted":
            return "b and return_sign are served by the numpy backend"
        return None

    def softmax(self, x, axis: int, opts: RowOptions):
        return array.rows_in_blocks(ops_for(x), array.softmax, x, axis, opts)

    def log_softmax(self, x, axis: int, opts: RowOptions):
        return array.rows_in_blocks(ops_for(x), array.log_softmax, x, axis, opts)

    def logsumexp(self, x, axis: int, opts: RowOptions):
        return array.rows_in_blocks(ops_for(x), array.logsumexp, x, axis, opts, reduced=True)

    def cross_entropy(self, x, axis, target, soft, weight, opts: LossOptions, grad_output,
                      want_lse=True):  # fmt: skip
        return array.loss_in_blocks(ops_for(x), array.cross_entropy, x, axis, target, soft,
                                    weight, opts, grad_output, want_lse)  # fmt: skip

    def nll_loss(self, logp, axis, target, soft, weight, opts: LossOptions, grad_output):
        return array.loss_in_blocks(ops_for(logp), array.nll_loss, logp, axis, target, soft,
                                    weight, opts, grad_output)  # fmt: skip

    def softmax_vjp(self, y, g, axis: int, temperature: float):
        return array.rows_in_blocks(ops_for(y), array.softmax_vjp, y, axis, temperature,
                                    others=(g,))  # fmt: skip

    def log_softmax_vjp(self, y, g, axis: int, temperature: float):
        return array.rows_in_blocks(ops_for(y), array.log_softmax_vjp, y, axis, temperature,
                                    others=(g,))  # fmt: skip

    def logsumexp_vjp(self, x, g, axis: int, opts: RowOptions):
        return array.rows_in_blocks(ops_for(x), array.logsumexp_vjp, x, axis, opts, reduced=True,
                                    others=(g,))  # fmt: skip
