r"""The row-statistics algebra as Triton device functions: the same source, re-bound.

:func:`logmax._core.specialise.specialise` copies every function of
:mod:`logmax._core.ddarith`, :mod:`logmax._core.rowstats` (and the softcap of
the softcap in rowstats) with its primitives (``where``,
``exp``, ``log1p``, ``rint``, ``pow2``, ``two_prod``; here also ``abs`` and, when compiling,
``range``) bound to the ``@triton.jit`` functions below, and wraps each copy with
``triton.jit``. Triton's JIT reads a function's source through its code object and resolves
names through its ``__globals__``, so a copy with other globals compiles (and runs in the
interpreter) as the original source on other primitives: the kernels call :func:`shift`,
:func:`merge_max`, :func:`lse`, :func:`loss_row`, :func:`grad_entry`, ... exactly as the NumPy
reference and the torch backend do. Two adjustments make the source acceptable to Triton's code
generator, both in the namespace, none in the algebra:

- module constants (``INF``, ``LN2_HI``, the tuples of :func:`ddarith.expm1_reduced`, ...) are
  bound as ``tl.constexpr`` (Triton refuses other globals);
- compiled, ``range`` is ``tl.static_range`` (the loop over a constant tuple is unrolled); the
  interpreter runs Python's.

Two profiles, two namespaces (modules, so their functions get distinct mangled names):

- :data:`plain`: the profile of the torch backend's float32 work -- ``exp_dd``,
  ``exp_dd_accurate`` and ``log1p_dd`` are the working precision's ``exp`` and ``log1p`` with a
  first-order correction, everything else (double-word sums and products, ``tanh_dd``,
  ``sech2_dd``, the merge and the finishers) is the algebra's. Used in float32 for 16-bit inputs
  and in float64 for float32 inputs (Triton specialises each function on its argument dtypes).
- :data:`accurate`: the algebra unchanged, in float64 double-double (about :math:`2^{-100}`):
  the rows whose logsumexp cancels are computed again with it.

``two_prod`` is one ``fma`` (exact on the GPU and in Triton 3.9's interpreter, which rounds its
``fma`` once). The launches ask for FP fusion (the contraction of ``a * b + c`` into an ``fma``,
Triton's default until 3.10) explicitly: it is safe for this source -- no error-free
transformation here multiplies, so a contraction only removes roundings -- and the interpreter
does not contract (its results may differ from the GPU's in the last bits of the work dtype,
far below the outputs' ULP).
"""

from __future__ import annotations

import math
import os
import types

import triton
import triton.language as tl

from logmax._core import ddarith, rowstats, specialise


class _NaN(tl.constexpr):
    """NaN as a ``tl.constexpr`` that equals itself: Triton checks that a global keeps its value
    between compilations with ``!=``, which NaN never passes."""

    def __eq__(self, other):
        return isinstance(other, _NaN) or super().__eq__(other)

    def __ne__(self, other):
        return not isinstance(other, _NaN) and super().__ne__(other)

    __hash__ = tl.constexpr.__hash__


INF = tl.constexpr(math.inf)
NAN = _NaN(math.nan)


def interpreting() -> bool:
    """Triton's interpreter is on (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


class _Interpreted:
    """A device function under the interpreter, called without patching ``triton.language``
    again: the kernel's launch has patched it (Triton's own wrapper re-patches the whole module
    on every call, which made the algebra's many small functions ~4x slower)."""

    def __init__(self, jitted):
        self.jitted = jitted
        self.fn = jitted.fn
        self.__name__ = jitted.fn.__name__
        self.__doc__ = jitted.fn.__doc__

    def __call__(self, *args, **kwargs):
        return self.jitted.rewrite()(*args, **kwargs)


def device(fn):
    """``triton.jit`` for a device function (a lighter wrapper under the interpreter)."""
    jitted = triton.jit(fn)
    if interpreting() and hasattr(jitted, "rewrite"):
        return _Interpreted(jitted)
    return jitted


# ---------------------------------------------------------------------------------------------
# Primitives (see ddarith.PRIMITIVES). Written in `tl` only: the interpreter has no libdevice.
@device
def where(c, a, b):
    return tl.where(c, a, b)


@device
def exp(x):
    return tl.exp(x)


@device
def log1p(x):
    """:math:`\\log(1 + x)` within a few ULPs, also for tiny ``x`` (Goldberg: the rounding of
    ``1 + x`` is undone by the factor :math:`x / ((1 + x) - 1)`)."""
    u = 1.0 + x
    d = u - 1.0
    r = tl.log(u) * (x / tl.where(d == 0.0, 1.0, d))
    return tl.where(d == 0.0, x, tl.where(u == INF, u, r))


@device
def rint(x):
    """An integer nearest to ``x`` (halves round up: every caller needs only *a* nearest
    integer, and ``scale2``'s ``floor(k / 2)`` is exact either way)."""
    return tl.floor(x + 0.5)


@device
def pow2(k):
    """:math:`2^k` for integer-valued ``k`` in the normal range of ``k``'s dtype, from its bits."""
    if k.dtype == tl.float64:
        return ((k.to(tl.int64) + 1023) << 52).to(tl.float64, bitcast=True)
    else:
        return ((k.to(tl.int32) + 127) << 23).to(tl.float32, bitcast=True)


@device
def two_prod(a, b):
    """``(p, e)`` with ``p = fl(a b)`` and ``p + e = a b`` exactly (one ``fma``)."""
    p = a * b
    return p, tl.fma(a, b, -p)


@device
def fabs(x):
    return tl.abs(x)


# The plain profile's elementary functions (as the torch backend's float32 work).
@device
def plain_exp_dd(d_hi, d_lo):
    z = tl.full(d_hi.shape, 0.0, d_hi.dtype)
    return tl.exp(d_hi) * (1.0 + d_lo), z, z


@device
def plain_log1p_dd(s_hi, s_lo):
    return log1p(s_hi) + s_lo / (1.0 + s_hi), tl.full(s_hi.shape, 0.0, s_hi.dtype)


# ---------------------------------------------------------------------------------------------
def _constants() -> dict[str, object]:
    """The algebra's module constants as ``tl.constexpr`` (Triton accepts no other globals)."""
    out: dict[str, object] = {}
    for module in (ddarith, rowstats):
        for name, value in vars(module).items():
            if name.startswith("_") or isinstance(value, bool):
                continue
            if isinstance(value, float) and math.isnan(value):
                out[name] = NAN
            elif isinstance(value, (int, float, tuple)):
                out[name] = tl.constexpr(value)
    return out


def _profile(name: str, **overrides: object) -> types.ModuleType:
    module = types.ModuleType(f"{__name__}.{name}")
    module.__doc__ = f"The row-statistics algebra, {name} profile (see {__name__})."
    ns = vars(module)
    ns["tl"] = tl  # the interpreter patches the `tl` it finds in a function's globals
    prims: dict[str, object] = dict(
        where=where, exp=exp, log1p=log1p, rint=rint, pow2=pow2, two_prod=two_prod, abs=fabs
    )
    if not interpreting():  # (the interpreter runs Python, where the plain values serve)
        prims.update(_constants(), range=tl.static_range)
    specialise.specialise([ddarith, rowstats], into=ns, wrap=device, **prims, **overrides)
    return module


plain = _profile("plain", exp_dd=plain_exp_dd, exp_dd_accurate=plain_exp_dd,
                 log1p_dd=plain_log1p_dd)  # fmt: skip
accurate = _profile("accurate")

# Bits the plain profile's logsumexp carries before cancellation (see rowstats.lse_cancels):
# float32 work -- terms to ~2^-21 (exp and the division by T), block sums by a tree of at most
# 12 levels merged in double-word -- and float64 work (~2^-45), with margin.
TERM_BITS = {"float32": 19, "float64": 44}
ACCURATE_BITS = 99
# Bits a result needs (as the torch backend's NEED).
NEED_BITS = {"float16": 14, "bfloat16": 11, "float32": 27}


@device
def dd_sum(hi, lo):
    """A block's sum of double-words (a tree of :func:`ddarith.dd_add`)."""
    return tl.reduce((hi, lo), 0, accurate.dd_add)


@device
def store_rounded(ptr, v, mask):
    """Store ``v`` (the work dtype) into ``ptr``'s dtype, rounded once to nearest even.

    bfloat16 is rounded on the bits (the interpreter's cast truncates); the other casts round to
    nearest on the GPU and in the interpreter.
    """
    if ptr.dtype.element_ty == tl.bfloat16:
        f = v.to(tl.float32)
        b = f.to(tl.uint32, bitcast=True)
        r = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
        r = tl.where(f != f, 0x7FC0, r)
        tl.store(ptr, r.to(tl.uint16).to(tl.bfloat16, bitcast=True), mask=mask)
    else:
        tl.store(ptr, v.to(ptr.dtype.element_ty), mask=mask)
