r"""The certified reference: every op's exact value, correctly rounded to the target format.

The inputs are floats, so they are exact rationals. Each output is evaluated with ball arithmetic
(python-flint's ``arb``: a midpoint and a radius that provably contains the true value) in the
log1p forms of the contract. For a row :math:`z` (after softcap and temperature) with maximum
:math:`m` at index :math:`k`, :math:`d_i = z_i - m` and :math:`s = \sum_{i \ne k} e^{d_i}`:

.. math::
    \operatorname{softmax}_i = \frac{e^{d_i}}{1 + s}, \quad
    \operatorname{log\_softmax}_i = d_i - \operatorname{log1p}(s), \quad
    \operatorname{logsumexp} = m + \operatorname{log1p}(s).

A ball rounds to one value of the format when both its ends do (rounding is monotone). When they
do not, the element is evaluated again at twice the precision, until they do: a fixed precision is
not enough (``log_softmax([0, -500])[0]`` is :math:`-7.12 \cdot 10^{-218}`; a 200-bit ``log(1 + s)``
says 0). ``nll_loss`` is a rational function of its inputs and is computed exactly with ``fmpq``.

Edge rules follow the contract (DESIGN.md): ``-inf`` and ``where=False`` entries are masked
(probability 0, log-probability ``-inf``); a fully masked row gives softmax 0, log_softmax
``-inf``, logsumexp ``-inf``; a row holding NaN or ``+inf`` gives NaN; ``b == 0`` entries are
masked. Losses: torch's semantics (weights, ``ignore_index``, label smoothing, the weighted mean),
``0 * log 0 = 0``, a mean over zero counted rows (or zero total weight) is 0, ``z_loss`` adds
:math:`\zeta w_y \mathrm{lse}^2` per counted row (:math:`\zeta\,\mathrm{lse}^2` for soft targets).

Example:
    >>> import numpy as np
    >>> from logmax.audit import reference
    >>> float(reference.log_softmax(np.array([0.0, -500.0])).value[0])
    -7.124576406741286e-218
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from flint import arb, ctx, fmpq

from logmax.audit.formats import Format, format_of

EXTRA_BITS = 32  # first try: the format's precision plus this many bits
MAX_PRECISION = 1 << 16  # give up (UncertifiedError) beyond this many bits


@dataclass(frozen=True)
class Split:
    r"""A value :math:`X = A + t`: an exact rational :math:`A` and a ball :math:`t` (``parts()``),
    with the sign of :math:`t` when it is known from the maths (``log1p(s) > 0`` for ``s > 0``).

    ``ball`` is :math:`X` as one ball. When it does not round to one value because :math:`A` is
    itself a rounding boundary and :math:`|t|` is far below any precision (``log_softmax`` of
    ``[2.1e37, 6.3e37]`` in bfloat16: :math:`t = -e^{-4 \cdot 10^{37}}`), :math:`X` rounds like
    :math:`A` nudged to the side of :math:`t` (:func:`_round_split`).
    """

    ball: arb
    parts: Callable[[], tuple[Fraction, arb]]
    sign: int | None = None


Value = arb | fmpq | float | Split  # a ball, an exact rational, an exact/special float, a split


class UncertifiedError(ArithmeticError):
    """A value whose rounding could not be decided below :data:`MAX_PRECISION` bits."""


@dataclass
class Exact:
    """Certified values of an op's output in a target format.

    Attributes:
        fmt: the target format.
        rounded: the exact value correctly rounded into ``fmt`` (float64 holding it; ``±inf``
            when it overflows or is infinite; NaN when the exact result is NaN).
        frac: ``(exact - anchor) / ulp`` where ``anchor`` is ``rounded`` (``±max`` on overflow);
            within ``[-0.5, 0.5]`` except on overflow; 0 for infinite and NaN results.
        ulp: the format's ULP at the exact value.
        approx: the exact value as the nearest float64 (for relative errors).
        special: the exact value is ``±inf`` or NaN.
        sign: for ``logsumexp`` with ``b`` or ``return_sign``: the sign of the sum (1, -1, 0).
    """

    fmt: Format
    rounded: np.ndarray
    frac: np.ndarray
    ulp: np.ndarray
    approx: np.ndarray
    special: np.ndarray
    sign: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.rounded.shape

    @property
    def value(self) -> np.ndarray:
        """The correctly rounded result as an array of the target dtype."""
        return self.rounded.astype(self.fmt.dtype)

    @property
    def anchor(self) -> np.ndarray:
        over = np.isinf(self.rounded) & ~self.special
        return np.where(over, np.copysign(self.fmt.max_finite, self.rounded), self.rounded)

    def reshape(self, shape: tuple[int, ...]) -> Exact:
        sign = None if self.sign is None else self.sign.reshape(shape)
        return Exact(
            self.fmt,
            *(a.reshape(shape) for a in (self.rounded, self.frac, self.ulp, self.approx)),
            self.special.reshape(shape),
            sign,
        )


# ---------------------------------------------------------------------------------------------
# Rounding a ball, and certifying many elements with rising precision.
class _precision:
    def __init__(self, bits: int):
        self.bits = bits

    def __enter__(self):
        self.saved = ctx.prec
        ctx.prec = self.bits

    def __exit__(self, *exc):
        ctx.prec = self.saved


def _round_ball(v: arb, fmt: Format) -> float | None:
    """The format value both ends of ``v`` round to, or ``None`` if they differ."""
    if not v.is_finite():
        return None
    if v.is_exact():
        man, exp = v.man_exp()
        return fmt.round_dyadic(int(man), int(exp))
    lo_man, lo_exp = v.lower().man_exp()
    hi_man, hi_exp = v.upper().man_exp()
    lo = fmt.round_dyadic(int(lo_man), int(lo_exp))
    hi = fmt.round_dyadic(int(hi_man), int(hi_exp))
    return lo if lo == hi else None


def _place(v: arb, r: float, fmt: Format) -> tuple[float, float, float]:
    """``(frac, ulp, approx)`` of the exact value in ball ``v`` that rounds to ``r``."""
    mid = v.mid()
    if math.isinf(r):  # overflow: measured from the largest finite value, in the top binade's ULP
        anchor = math.copysign(fmt.max_finite, r)
        ulp = fmt.ulp_at_exponent(fmt.emax)
    elif r == 0:
        anchor, ulp = 0.0, fmt.min_subnormal
    else:
        anchor = r
        e = math.frexp(abs(r))[1] - 1
        if abs(r) == math.ldexp(1.0, e) and e > fmt.emin:
            below = mid < arb(r) if r > 0 else mid > arb(r)
            if below:  # rounded up to a power of two: the exact value lies in the binade below
                e -= 1
        ulp = fmt.ulp_at_exponent(e)
    frac = float((mid - arb(anchor)) / arb(ulp))
    return frac, ulp, float(mid)


def _round_fraction(x: Fraction, fmt: Format) -> float:
    return fmt.round_rational(x.numerator, x.denominator)


def _round_split(v: Split, fmt: Format) -> float | None:
    r"""Round :math:`X = A + t` when :math:`t`'s sign is known and :math:`|t|` is small.

    Every rounding boundary (format value or midpoint) is a multiple of :math:`2^{e_{min}-p}`, so
    a boundary other than :math:`A` is at least :math:`\eta = 2^{e_{min}-p} / (2\,den(A))`
    away from :math:`A`. Then all of :math:`(A, A + \sigma\eta]` rounds like
    :math:`A + \sigma\eta`, and if :math:`A + \sigma |t|_{max}` rounds to the same value, so does
    :math:`X` (rounding is monotone).
    """
    a, t = v.parts()
    sign = v.sign
    if sign is None:
        sign = 1 if t > 0 else -1 if t < 0 else 0
    if sign == 0:
        return None
    eta_bits = fmt.precision - fmt.emin + 1 + a.denominator.bit_length()  # eta >= 2^-eta_bits
    r1 = _round_fraction(a + sign * Fraction(1, 1 << eta_bits), fmt)
    man, exp = (int(v) for v in t.abs_upper().man_exp())
    if man.bit_length() + exp < -eta_bits:  # |t| < eta: within the boundary-free stretch
        return r1
    t_max = Fraction(man) * (Fraction(2) ** exp)
    r2 = _round_fraction(a + sign * t_max, fmt)
    return r1 if r1 == r2 else None


def certify(
    n: int,
    evaluate: Callable[[Sequence[int]], list[Value]],
    fmt: Format,
    shape: tuple[int, ...] | None = None,
) -> Exact:
    """Certify ``n`` elements: ``evaluate(indices)`` returns their values at ``ctx.prec`` bits.

    Each element is rounded when its ball rounds to one value; the others are evaluated again
    with twice the precision. ``fmpq`` values are rounded exactly; floats are exact (or special);
    a :class:`Split` whose ball is undecided is tried with :func:`_round_split`.
    """
    rounded = np.empty(n)
    frac = np.zeros(n)
    ulp = np.empty(n)
    approx = np.empty(n)
    special = np.zeros(n, dtype=bool)
    todo: Sequence[int] = range(n)
    bits = max(64, fmt.precision + EXTRA_BITS)
    while todo:
        if bits > MAX_PRECISION:
            raise UncertifiedError(
                f"{len(todo)} value(s) not certified at {MAX_PRECISION} bits (first: #{todo[0]})"
            )
        again = []
        with _precision(bits):
            for i, v in zip(todo, evaluate(todo), strict=True):
                if isinstance(v, float) and not math.isfinite(v):
                    rounded[i], ulp[i], approx[i], special[i] = v, fmt.min_subnormal, v, True
                    continue
                if isinstance(v, fmpq):
                    r = fmt.round_rational(int(v.p), int(v.q))
                    v = arb(v)
                elif isinstance(v, Split):
                    r = _round_ball(v.ball, fmt)
                    ball = v.ball
                    if r is None:
                        r = _round_split(v, fmt)
                        if r is not None:  # placed from its parts: v.ball is too wide for that
                            a, t = v.parts()
                            ball = arb(_fmpq_of_fraction(a)) + t
                    if r is None:
                        again.append(i)
                        continue
                    v = ball
                else:
                    if isinstance(v, float):
                        v = arb(v)
                    r = _round_ball(v, fmt)
                    if r is None:
                        again.append(i)
                        continue
                rounded[i] = r
                frac[i], ulp[i], approx[i] = _place(v, r, fmt)
        todo = again
        bits *= 2
    out = Exact(fmt, rounded, frac, ulp, approx, special)
    return out.reshape(shape) if shape is not None else out


# ---------------------------------------------------------------------------------------------
# Rows of logits and the pieces of the log1p forms, per precision.
@dataclass
class _Row:
    d: list  # arb per kept entry (index -> d_i), None where masked
    e: list  # exp(d_i)
    m: arb  # the transformed maximum
    log1p_s: arb
    inv: arb  # 1 / (1 + s)
    s: arb


class Logits:
    """Rows of logits, classes along ``axis``, with mask, softcap and temperature.

    The class answers ``softmax``, ``log_softmax``, ``logsumexp`` and ``cross_entropy`` for the
    same rows and caches the log1p pieces per row and precision, so that they are shared.

    Args:
        x: logits of a float dtype (the target format is the dtype unless ``fmt`` is given).
        axis: the class axis.
        where: mask broadcastable to ``x``; ``False`` entries are left out.
        temperature: ``T``, divides the logits (after the softcap).
        softcap: ``c``: logits become ``c * tanh(x / c)`` first.
        b: logsumexp weights broadcastable to ``x`` (``b == 0`` entries are left out).
        fmt: target format name or :class:`Format` (default: ``x``'s dtype).
    """

    def __init__(
        self,
        x: np.ndarray,
        axis: int = -1,
        *,
        where: np.ndarray | None = None,
        temperature: float = 1.0,
        softcap: float | None = None,
        b: np.ndarray | None = None,
        fmt: object = None,
    ):
        x = np.asarray(x)
        self.fmt = format_of(x.dtype if fmt is None else fmt)
        self.shape = x.shape
        self.axis = axis % x.ndim
        self.rows = _as_rows(x.astype(np.float64), self.axis)
        n_rows, n_cls = self.rows.shape
        keep = np.ones(self.rows.shape, dtype=bool)
        if where is not None:
            keep &= _as_rows(np.broadcast_to(np.asarray(where, dtype=bool), x.shape), self.axis)
        self.b = None
        if b is not None:
            self.b = _as_rows(np.broadcast_to(np.asarray(b).astype(np.float64), x.shape), self.axis)
            keep &= self.b != 0
        self.bad = np.any(keep & (np.isnan(self.rows) | (self.rows == np.inf)), axis=1)
        self.keep = keep & (self.rows != -np.inf) & ~np.isnan(self.rows)
        self.empty = ~np.any(self.keep, axis=1)
        self._n_kept = np.count_nonzero(self.keep, axis=1)
        masked = np.where(self.keep, self.rows, -np.inf)
        self.k = np.argmax(masked, axis=1) if n_cls else np.zeros(n_rows, dtype=np.intp)
        self.temperature = float(temperature)
        self.softcap = None if softcap is None else float(softcap)
        self._cache: dict[tuple[int, int], _Row] = {}

    def _z(self, value: float) -> arb:
        v = arb(value)
        if self.softcap is not None:
            c = arb(self.softcap)
            v = c * (v / c).tanh()
        if self.temperature != 1.0:
            v = v / arb(self.temperature)
        return v

    def row(self, r: int) -> _Row:
        """The log1p pieces of row ``r`` at the current precision (cached)."""
        key = (r, ctx.prec)
        got = self._cache.get(key)
        if got is not None:
            return got
        xs = self.rows[r].tolist()
        keep = self.keep[r]
        k = int(self.k[r])
        n = len(xs)
        d: list = [None] * n
        e: list = [None] * n
        m = self._z(xs[k])
        s = arb(0)
        plain = self.softcap is None and self.temperature == 1.0
        xk = xs[k]
        for i in np.flatnonzero(keep).tolist():
            xi = xs[i]
            if xi == xk:  # ties with the maximum: d = 0 exactly
                di, ei = arb(0), arb(1)
            else:
                di = (arb(xi) - arb(xk)) if plain else (self._z(xi) - m)
                ei = di.exp()
            d[i], e[i] = di, ei
            if i != k:
                s += ei
        got = _Row(d, e, m, s.log1p(), 1 / (1 + s), s)
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[key] = got
        return got

    # -- the element-wise ops ------------------------------------------------------------------
    def _elements(self, value: Callable[[int, int], Value]) -> Exact:
        n_rows, n_cls = self.rows.shape

        def evaluate(indices: Sequence[int]) -> list[Value]:
            return [value(*divmod(i, n_cls)) for i in indices]

        out = certify(n_rows * n_cls, evaluate, self.fmt, (n_rows, n_cls))
        return _from_rows(out, self.shape, self.axis)

    def softmax(self) -> Exact:
        """``e^{d_i} / (1 + s)``; 0 where masked and on fully masked rows; NaN on bad rows."""

        def value(r: int, i: int) -> Value:
            if self.bad[r]:
                return math.nan
            if not self.keep[r, i]:
                return 0.0
            row = self.row(r)
            return row.e[i] * row.inv

        return self._elements(value)

    def log_softmax(self) -> Exact:
        """``d_i - log1p(s)``; ``-inf`` where masked and on fully masked rows."""

        def value(r: int, i: int) -> Value:
            if self.bad[r]:
                return math.nan
            if not self.keep[r, i]:
                return -math.inf
            row = self.row(r)
            ball = row.d[i] - row.log1p_s
            if self.softcap is not None:  # d_i is transcendental: never on a boundary
                return ball
            sign = -1 if self._has_s(r) else None
            return Split(ball, lambda: (self._exact_d(r, i), -row.log1p_s), sign)

        return self._elements(value)

    def logsumexp(self) -> Exact:
        """``m + log1p(s)`` per row (``log|sum b_i e^{z_i}|`` with its sign when ``b`` is set)."""
        if self.b is not None:
            return self._logsumexp_weighted()
        batch = _batch_shape(self.shape, self.axis)

        def evaluate(indices: Sequence[int]) -> list[Value]:
            return [self._lse(r) for r in indices]

        return certify(self.rows.shape[0], evaluate, self.fmt, batch)

    def _lse(self, r: int) -> Value:
        if self.bad[r]:
            return math.nan
        if self.empty[r]:
            return -math.inf
        row = self.row(r)
        ball = row.m + row.log1p_s
        if self.softcap is not None:
            return ball
        sign = 1 if self._has_s(r) else None
        return Split(ball, lambda: (self._exact_d(r, None), row.log1p_s), sign)

    def _exact_d(self, r: int, i: int | None) -> Fraction | None:
        """``d_i = z_i - m`` (or ``m`` itself for ``i=None``) as an exact rational, if it is one
        (no softcap: ``z = x / T`` with ``T`` a float)."""
        if self.softcap is not None:
            return None
        xk = Fraction(float(self.rows[r, self.k[r]]))
        xi = Fraction(0) if i is None else Fraction(float(self.rows[r, i])) - xk
        if i is None:
            xi = xk
        return xi / Fraction(self.temperature)

    def _has_s(self, r: int) -> bool:
        """The row keeps more than one entry, so ``s > 0`` and ``log1p(s) > 0``."""
        return bool(self._n_kept[r] > 1)

    def _weighted_sum(self, r: int) -> tuple[arb, arb] | None:
        """``(m', sum_g B_g e^{z_g - m'})`` for row ``r``, or ``None`` when the sum is exactly 0.

        Entries with equal ``x`` are merged first (their b's summed exactly) and groups whose b's
        cancel are dropped, so ``m'`` is the largest exponent that survives: only ties can cancel
        exactly (distinct exponents give a nonzero sum, Lindemann-Weierstrass), and shifting by
        a cancelled maximum would leave a sum of astronomically small terms.
        """
        groups = _merged_weights(self.rows[r], self.b[r], self.keep[r])
        if not groups:
            return None
        x_top = max(groups)
        m = self._z(x_top)
        total = arb(0)
        for x, weight in groups.items():
            term = arb(1) if x == x_top else (self._z(x) - m).exp()
            total += _arb(weight) * term
        return m, total

    def _logsumexp_weighted(self) -> Exact:
        n_rows = self.rows.shape[0]
        batch = _batch_shape(self.shape, self.axis)

        def evaluate(indices: Sequence[int]) -> list[Value]:
            out: list[Value] = []
            for r in indices:
                if self.bad[r]:
                    out.append(math.nan)
                    continue
                found = None if self.empty[r] else self._weighted_sum(r)
                if found is None:
                    out.append(-math.inf)
                    continue
                m, total = found
                if not (total > 0 or total < 0):  # the sign is not known yet: more precision
                    out.append(arb.nan())
                else:
                    out.append(m + abs(total).log())
            return out

        out = certify(n_rows, evaluate, self.fmt)
        sign = np.zeros(n_rows)
        for r in range(n_rows):
            if self.bad[r]:
                sign[r] = math.nan
            elif not out.special[r]:  # an exactly zero (or empty) sum has sign 0
                sign[r] = self._sign(r)
        out.sign = sign
        return out.reshape(batch)

    def _sign(self, r: int) -> float:
        bits = max(64, self.fmt.precision + EXTRA_BITS)
        while bits <= MAX_PRECISION:
            with _precision(bits):
                found = self._weighted_sum(r)
                if found is None:
                    return 0.0
                total = found[1]
                if total > 0:
                    return 1.0
                if total < 0:
                    return -1.0
            bits *= 2
        raise UncertifiedError(f"sign of the weighted sum of row {r} not decided")

    # -- cross-entropy --------------------------------------------------------------------------
    def cross_entropy(
        self,
        target: np.ndarray,
        weight: np.ndarray | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        z_loss: float = 0.0,
    ) -> Exact:
        r"""Cross-entropy of the rows (see :func:`cross_entropy` for the formula)."""
        n_rows, _ = self.rows.shape
        batch = _batch_shape(self.shape, self.axis)
        counted, coefs, row_w, denominator = self._loss_coefficients(
            target, weight, ignore_index, label_smoothing
        )
        zeta = Fraction(float(z_loss))

        def row_loss(r: int) -> Value:
            if not counted[r]:
                return 0.0
            if self.bad[r]:
                return math.nan
            return self._ce_row(r, coefs[r], zeta * row_w[r])

        if reduction == "none":

            def evaluate(indices: Sequence[int]) -> list[Value]:
                return [row_loss(r) for r in indices]

            return certify(n_rows, evaluate, self.fmt, batch)
        mean = reduction == "mean"

        def evaluate_total(indices: Sequence[int]) -> list[Value]:
            if mean and denominator == 0:
                return [0.0]
            rows = [row_loss(r) for r in range(n_rows)]
            return [_sum_values(rows, denominator if mean else Fraction(1))]

        return certify(1, evaluate_total, self.fmt, ())

    def _loss_coefficients(self, target, weight, ignore_index, label_smoothing):
        """``(counted, coefs, row_w, denominator)``: which rows count, each row's coefficients
        :math:`c_c` (None for rows that do not count), its weight :math:`w_y` (1 for soft
        targets) and the mean's denominator, all exact."""
        n_rows, n_cls = self.rows.shape
        target = np.asarray(target)
        w = [Fraction(1)] * n_cls if weight is None else _fractions(weight)
        eps = Fraction(float(label_smoothing))
        if target.dtype.kind not in "iu":
            t_rows = _as_rows(np.broadcast_to(target.astype(np.float64), self.shape), self.axis)
            coefs = []
            for r in range(n_rows):
                t = [Fraction(v) for v in t_rows[r].tolist()]
                coefs.append([w[c] * ((1 - eps) * t[c] + eps / n_cls) for c in range(n_cls)])
            return np.ones(n_rows, dtype=bool), coefs, [Fraction(1)] * n_rows, Fraction(n_rows)
        labels = target.reshape(-1).astype(np.int64).tolist()
        counted = np.array([y != ignore_index for y in labels], dtype=bool)
        row_w = [w[y] if ok else Fraction(0) for y, ok in zip(labels, counted, strict=True)]
        denominator = sum(row_w) if weight is not None else Fraction(int(counted.sum()))
        coefs = []
        for r, y in enumerate(labels):
            if not counted[r]:
                coefs.append(None)
                continue
            c_r = [eps / n_cls * w[c] for c in range(n_cls)] if eps else [Fraction(0)] * n_cls
            c_r[y] += (1 - eps) * w[y]
            coefs.append(c_r)
        return counted, coefs, row_w, denominator

    def cross_entropy_grad(
        self,
        target: np.ndarray,
        weight: np.ndarray | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        z_loss: float = 0.0,
        grad_output: object = 1.0,
    ) -> Exact:
        r"""The gradient of :meth:`cross_entropy` with respect to the logits: per entry

        .. math::
            g_j = (lpha\, p_j - c_j)\, \sigma_j\, \lambda_r, \qquad
            lpha = 	extstyle\sum_c c_c + 2 \zeta w_y\, \mathrm{lse}

        with :math:`\sigma_j = \operatorname{sech}^2(x_j/\mathrm{cap}) / T` and :math:`\lambda_r`
        the upstream gradient of the row (divided by the mean's denominator; 0 when it is 0).
        Masked entries and rows that do not count get 0; a counted row with NaN or ``+inf``
        gives NaN.
        """
        n_rows, n_cls = self.rows.shape
        counted, coefs, row_w, denominator = self._loss_coefficients(
            target, weight, ignore_index, label_smoothing
        )
        zeta = Fraction(float(z_loss))
        g = np.asarray(grad_output, dtype=np.float64)
        if reduction == "none":
            g = np.broadcast_to(g, _batch_shape(self.shape, self.axis)).reshape(-1)
        else:
            g = np.full(n_rows, float(g))
        divisor = denominator if reduction == "mean" else Fraction(1)
        scale = [
            Fraction(0) if divisor == 0 or not counted[r] else Fraction(float(g[r])) / divisor
            for r in range(n_rows)
        ]

        def value(r: int, i: int) -> Value:
            if not counted[r]:
                return 0.0
            if self.bad[r]:
                return math.nan
            if scale[r] == 0 or not self.keep[r, i]:
                return 0.0
            row = self.row(r)
            alpha = _arb(sum(coefs[r], Fraction(0)))
            if zeta:
                alpha += _arb(2 * zeta * row_w[r]) * (row.m + row.log1p_s)
            # (alpha e_i - c_i (1 + s)) / (1 + s): an exact 0 where the terms are equal (ties)
            numerator = alpha * row.e[i] - _arb(coefs[r][i]) * (1 + row.s)
            sech2 = arb(1)
            if self.softcap is not None:
                sech2 = 1 / (arb(float(self.rows[r, i])) / arb(self.softcap)).cosh() ** 2
            if numerator.is_exact() and row.s.is_exact() and sech2.is_exact():
                # a rational (ties without z-loss): exactly, as it may be a rounding midpoint
                q = _fmpq_of(numerator) / _fmpq_of(1 + row.s) * _fmpq_of(sech2)
                return q * _fmpq_of_fraction(scale[r]) / _fmpq(self.temperature)
            ball = numerator * row.inv * sech2 * _arb(scale[r]) / arb(self.temperature)
            if self.softcap is not None:
                return ball
            sigma = scale[r] / Fraction(self.temperature)
            coef_sum = sum(coefs[r], Fraction(0))
            return self._grad_split(r, i, ball, coef_sum, coefs[r][i], sigma, zeta * row_w[r])

        return self._elements(value)

    def _grad_split(self, r: int, i: int, ball: arb, coef_sum: Fraction, c_i: Fraction,
                    sigma: Fraction, zw: Fraction) -> Value:  # fmt: skip
        r"""A gradient entry :math:`X = \sigma(\alpha e_i/(1+s) - c_i)` with
        :math:`\alpha = \sum_c c_c + 2 \zeta w\,(m + L)` (no softcap) as :math:`A + t`:
        :math:`A` its value from the ties with the row's maximum alone (:math:`e = 1`,
        :math:`1 + s = n_{ties}`, :math:`L = \log n_{ties}`, rational when there is no z-loss or
        one tie), and :math:`t` what the other terms add, with the sign the maths gives. For a
        tie :math:`t = \sigma \frac{s}{1+s}(2\zeta w \frac{L}{s} - \alpha_0)` (:math:`\alpha_0` is
        :math:`\alpha` at :math:`L = 0`); otherwise :math:`t = \sigma \alpha e_i/(1+s)`. So a
        value astronomically close to a rounding boundary (terms of :math:`e^{-10^{307}}`) still
        rounds."""
        row_x = self.rows[r]
        ties = self.keep[r] & (row_x == row_x[self.k[r]])
        n_ties = int(ties.sum())
        if zw and n_ties > 1:
            return ball  # A is transcendental: the ball decides
        tie = bool(ties[i])
        alpha0 = coef_sum + 2 * zw * self._exact_d(r, None)
        a = sigma * (alpha0 * (1 if tie else 0) / n_ties - c_i)
        row = self.row(r)
        if tie:
            factor = -_arb(alpha0) + 2 * _arb(zw) * (row.log1p_s / row.s)
        else:
            factor = _arb(coef_sum) + 2 * _arb(zw) * (row.m + row.log1p_s)
        side = 1 if factor > 0 else -1 if factor < 0 else 0
        side *= 1 if sigma > 0 else -1 if sigma < 0 else 0
        return Split(ball, lambda: (a, ball - _arb(a)), side or None)

    def _ce_row(self, r: int, coefs: list[Fraction], z_coef: Fraction) -> Value:
        """``sum_c coef_c * (-log p_c) + z_coef * lse^2``, with ``0 * inf = 0``."""
        infinite = False
        if self.empty[r]:
            infinite = any(c != 0 for c in coefs) or z_coef != 0
            return math.inf if infinite else 0.0
        row = self.row(r)
        total = arb(0)
        used = []
        for c, coef in enumerate(coefs):
            if coef == 0:
                continue
            if row.d[c] is None:
                infinite = True
                continue
            used.append(c)
            total += _arb(coef) * (row.log1p_s - row.d[c])
        if infinite:
            return math.inf
        if z_coef:
            lse = row.m + row.log1p_s
            total += _arb(z_coef) * lse * lse
        if self.softcap is not None:
            return total

        def parts() -> tuple[Fraction, arb]:
            # sum_c coef_c (L - d_c) + z (m + L)^2 = [-sum coef_c d_c + z m^2] + t
            m = self._exact_d(r, None)
            exact = -sum((coefs[c] * self._exact_d(r, c) for c in used), Fraction(0))
            exact += z_coef * m * m
            L = row.log1p_s
            t = _arb(sum((coefs[c] for c in used), Fraction(0))) * L
            if z_coef:
                t += _arb(z_coef) * L * (2 * _arb(m) + L)
            return exact, t

        positive = self._has_s(r) and (z_coef == 0 or self.rows[r, self.k[r]] >= 0)
        return Split(total, parts, 1 if positive else None)


# ---------------------------------------------------------------------------------------------
# Helpers: layout, exact rationals, sums of values.
def _as_rows(x: np.ndarray, axis: int) -> np.ndarray:
    moved = np.moveaxis(x, axis, -1)
    return moved.reshape(-1, moved.shape[-1]) if moved.ndim else moved.reshape(1, 1)


def _batch_shape(shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    return tuple(n for a, n in enumerate(shape) if a != axis)


def _from_rows(out: Exact, shape: tuple[int, ...], axis: int) -> Exact:
    moved = tuple(n for a, n in enumerate(shape) if a != axis) + (shape[axis],)
    fields = (out.rounded, out.frac, out.ulp, out.approx, out.special)
    parts = [np.moveaxis(a.reshape(moved), -1, axis) for a in fields]
    return Exact(out.fmt, *parts)


def _fractions(values: np.ndarray) -> list[Fraction]:
    return [Fraction(v) for v in np.asarray(values).astype(np.float64).tolist()]


def _arb(q: Fraction) -> arb:
    return arb(fmpq(q.numerator, q.denominator))


def _fmpq(v: float) -> fmpq:
    return fmpq(*v.as_integer_ratio())


def _fmpq_of(ball: arb) -> fmpq:
    """An exact ball (radius 0) as a rational."""
    man, exp = ball.man_exp()
    return fmpq(int(man)) * (fmpq(2) ** int(exp))


def _fmpq_of_fraction(q: Fraction) -> fmpq:
    return fmpq(q.numerator, q.denominator)


def _sum_values(values: list[Value], divisor: Fraction = Fraction(1)) -> Value:
    """Sum of values over ``divisor``: NaN wins, then infinities (NaN if both signs). A sum of
    splits (and exact zeros) is a split."""
    specials = [v for v in values if isinstance(v, float) and not math.isfinite(v)]
    if specials:
        return float(sum(specials))
    total = arb(0)
    for v in values:
        total += v.ball if isinstance(v, Split) else v if isinstance(v, arb) else arb(v)
    total = total / _arb(divisor)
    splits = [v for v in values if isinstance(v, Split)]
    if not splits or any(not isinstance(v, (Split, float)) for v in values):
        return total
    signs = {v.sign for v in splits}

    def parts() -> tuple[Fraction, arb]:
        pairs = [v.parts() for v in splits]
        exact = sum((a for a, _ in pairs), Fraction(0)) / divisor
        t = arb(0)
        for _, ti in pairs:
            t += ti
        return exact, t / _arb(divisor)

    return Split(total, parts, signs.pop() if len(signs) == 1 else None)


def _merged_weights(xs: np.ndarray, bs: np.ndarray, keep: np.ndarray) -> dict[float, Fraction]:
    """The kept entries' ``b`` summed exactly per distinct ``x``; groups summing to 0 dropped."""
    groups: dict[float, Fraction] = {}
    for x, b in zip(xs[keep].tolist(), bs[keep].tolist(), strict=True):
        groups[x] = groups.get(x, Fraction(0)) + Fraction(b)
    return {x: v for x, v in groups.items() if v != 0}


# ---------------------------------------------------------------------------------------------
# The public functions, one per op, with the frontend's signatures.
def softmax(x, axis: int = -1, *, where=None, temperature: float = 1.0, fmt=None) -> Exact:
    r""":math:`e^{x_i/T} / \sum_j e^{x_j/T}`, certified. Example: constant rows give ``1/n``.

    >>> float(softmax(np.full(4, 1e4, dtype=np.float32)).value[0])
    0.25
    """
    return Logits(x, axis, where=where, temperature=temperature, fmt=fmt).softmax()


def log_softmax(x, axis: int = -1, *, where=None, temperature: float = 1.0, fmt=None) -> Exact:
    r""":math:`x_i/T - \log\sum_j e^{x_j/T}`, certified.

    >>> float(log_softmax(np.array([0.0, 0.0, 0.0])).value[0])  # -log 3
    -1.0986122886681098
    """
    return Logits(x, axis, where=where, temperature=temperature, fmt=fmt).log_softmax()


def logsumexp(
    x,
    axis: int = -1,
    b=None,
    return_sign: bool = False,
    *,
    where=None,
    temperature: float = 1.0,
    fmt=None,
) -> Exact:
    r""":math:`\log|\sum_i b_i e^{x_i/T}|`, certified; ``.sign`` holds the sum's sign when ``b``
    or ``return_sign`` is given.

    >>> float(logsumexp(np.array([-1e4, -1e4])).value)  # -1e4 + log 2
    -9999.30685281944
    """
    lg = Logits(
        x,
        axis,
        where=where,
        temperature=temperature,
        fmt=fmt,
        b=np.ones(np.shape(x)) if (return_sign and b is None) else b,
    )
    return lg.logsumexp()


def cross_entropy(
    logits,
    target,
    weight=None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    *,
    axis: int = -1,
    where=None,
    temperature: float = 1.0,
    softcap: float | None = None,
    z_loss: float = 0.0,
    fmt=None,
) -> Exact:
    r"""Cross-entropy from logits, certified; torch's semantics.

    With :math:`z = \operatorname{softcap}(x)/T` and :math:`\ell_c = -\log p_c` the loss of a row
    is :math:`(1-\varepsilon) w_y \ell_y + \frac{\varepsilon}{C}\sum_c w_c \ell_c + \zeta w_y
    \mathrm{lse}(z)^2` (hard label :math:`y`), or :math:`\sum_c w_c t'_c \ell_c + \zeta
    \mathrm{lse}^2` with :math:`t' = (1-\varepsilon)t + \varepsilon/C` (soft targets). ``'mean'``
    divides by :math:`\sum w_y` over counted rows (soft: the row count); 0 when that is 0.

    >>> x = np.array([[20.0, 0.0]], dtype=np.float32)
    >>> float(cross_entropy(x, np.array([0])).value)  # log1p(e^-20) in float32, not 0
    2.06115369216775e-09
    """
    lg = Logits(logits, axis, where=where, temperature=temperature, softcap=softcap, fmt=fmt)
    return lg.cross_entropy(target, weight, ignore_index, reduction, label_smoothing, z_loss)


def cross_entropy_grad(
    logits,
    target,
    weight=None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    *,
    axis: int = -1,
    where=None,
    temperature: float = 1.0,
    softcap: float | None = None,
    z_loss: float = 0.0,
    grad_output=1.0,
    fmt=None,
) -> Exact:
    r"""The gradient of :func:`cross_entropy` with respect to the logits, certified (see
    :meth:`Logits.cross_entropy_grad` for the formula and the edge rules).

    >>> x = np.array([[60.0, 0.0]], dtype=np.float32)  # confident: p - t is e^-60, not 0
    >>> cross_entropy_grad(x, np.array([[1.0, 0.0]], dtype=np.float32)).value
    array([[-8.756511e-27,  8.756511e-27]], dtype=float32)
    """
    lg = Logits(logits, axis, where=where, temperature=temperature, softcap=softcap, fmt=fmt)
    return lg.cross_entropy_grad(target, weight, ignore_index, reduction, label_smoothing, z_loss,
                                 grad_output)  # fmt: skip


def nll_loss(
    logp,
    target,
    weight=None,
    ignore_index: int = -100,
    reduction: str = "mean",
    *,
    axis: int = -1,
    fmt=None,
) -> Exact:
    r"""Negative log-likelihood :math:`-w_y \log p_y` per row, computed exactly (rationals).

    Soft targets: :math:`-\sum_c w_c t_c \log p_c` with :math:`0 \cdot (-\infty) = 0`.
    Reductions as :func:`cross_entropy`.

    >>> float(nll_loss(np.array([[-0.5, -1.0], [-2.0, -0.25]]), np.array([0, 1])).value)
    0.375
    """
    logp = np.asarray(logp)
    f = format_of(logp.dtype if fmt is None else fmt)
    axis = axis % logp.ndim
    lp = _as_rows(logp.astype(np.float64), axis)
    n_rows, n_cls = lp.shape
    target = np.asarray(target)
    w = [Fraction(1)] * n_cls if weight is None else _fractions(weight)
    values: list[Value] = []
    if target.dtype.kind not in "iu":
        t_rows = _as_rows(np.broadcast_to(target.astype(np.float64), logp.shape), axis)
        for r in range(n_rows):
            terms: list[Value] = []
            for c, (p, t) in enumerate(zip(lp[r].tolist(), t_rows[r].tolist(), strict=True)):
                coef = w[c] * Fraction(t)
                if coef != 0:
                    terms.append(_product(-coef, p))
            values.append(_exact_sum(terms))
        denominator = Fraction(n_rows)
    else:
        labels = target.reshape(-1).astype(np.int64).tolist()
        row_w = []
        for r, y in enumerate(labels):
            if y == ignore_index:
                values.append(fmpq(0))
                row_w.append(Fraction(0))
            else:  # a zero weight times -log 0 counts 0, as for soft targets
                values.append(_product(-w[y], lp[r, y]) if w[y] != 0 else fmpq(0))
                row_w.append(w[y])
        n_counted = sum(1 for y in labels if y != ignore_index)
        denominator = sum(row_w) if weight is not None else Fraction(n_counted)
    if reduction == "none":
        return certify(
            n_rows, lambda idx: [values[i] for i in idx], f, _batch_shape(logp.shape, axis)
        )
    total = _exact_sum(values)
    if reduction == "mean":
        if denominator == 0:
            total = fmpq(0)
        elif isinstance(total, fmpq):
            total = total / fmpq(denominator.numerator, denominator.denominator)
    return certify(1, lambda idx: [total], f, ())


def _product(coef: Fraction, p: float) -> Value:
    """``coef * p`` exactly, with ``0 * inf = 0`` (coef is nonzero here)."""
    p = float(p)
    if math.isnan(p):
        return math.nan
    if math.isinf(p):
        return math.copysign(math.inf, p) * (1 if coef > 0 else -1)
    return fmpq(coef.numerator, coef.denominator) * _fmpq(p)


def _exact_sum(values: list[Value]) -> Value:
    specials = [v for v in values if isinstance(v, float)]
    if specials:
        return float(sum(specials))
    total = fmpq(0)
    for v in values:
        total += v
    return total
