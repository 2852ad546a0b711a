"""The certified reference against closed forms and an independent mpmath oracle."""

import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from audit_oracle import mp_fraction, nearest
from flint import arb

from logmax.audit import reference
from logmax.audit.formats import FORMATS, format_of
from logmax.audit.reference import UncertifiedError, certify

DTYPES = [f.dtype for f in FORMATS.values()]
mpmath.mp.prec = 400


def mp_nearest(value: mpmath.mpf, dtype) -> float:
    return nearest(mp_fraction(value), format_of(dtype))


def mp(x) -> mpmath.mpf:
    return mpmath.mpf(float(x))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("n", [1, 2, 3, 7, 1000])
def test_constant_rows_closed_forms(dtype, n):
    for c in (-1e4, -1.0, 0.0, 3.0, 1e4):
        x = np.full(n, c).astype(dtype)
        cv = mp(x[0])
        assert np.all(reference.softmax(x).rounded == nearest(Fraction(1, n), format_of(dtype)))
        ls = reference.log_softmax(x).rounded
        assert np.all(ls == mp_nearest(-mpmath.log(n), dtype))
        assert reference.logsumexp(x).rounded == mp_nearest(cv + mpmath.log(n), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_two_element_rows(dtype):
    for d in (1e-3, 0.5, 1.0, 10.0, 50.0, 300.0, 2000.0):
        x = np.array([0.0, -d]).astype(dtype)
        dd = -mp(x[1])
        ex = reference.log_softmax(x)
        assert ex.rounded[0] == mp_nearest(-mpmath.log1p(mpmath.exp(-dd)), dtype)
        assert ex.rounded[1] == mp_nearest(-dd - mpmath.log1p(mpmath.exp(-dd)), dtype)
        sm = reference.softmax(x).rounded
        assert sm[1] == mp_nearest(1 / (1 + mpmath.exp(dd)), dtype)


def test_the_minus_500_trap():
    ex = reference.log_softmax(np.array([0.0, -500.0]))
    assert ex.rounded[0] == -7.124576406741286e-218
    assert ex.rounded[0] == mp_nearest(-mpmath.log1p(mpmath.exp(-500)), np.float64)
    with mpmath.workprec(200):  # the plain formula at a fixed 200 bits says 0
        assert mpmath.log(1 + mpmath.exp(-500)) == 0


@pytest.mark.parametrize(
    ("dtype", "lo", "hi"),
    [
        (np.float16, 15.5, 18.5),
        ("bfloat16", 90.5, 93.5),
        (np.float32, 102.0, 105.0),
        (np.float64, 742.0, 746.0),
    ],
    ids=str,
)
def test_correct_rounding_at_the_subnormal_boundary(dtype, lo, hi):
    # softmax([0, -d])[1] = 1 / (1 + e^d) sweeps through the format's smallest subnormals
    d = np.linspace(lo, hi, 41)
    x = np.stack([np.zeros_like(d), -d], axis=1).astype(dtype)
    got = reference.softmax(x).rounded[:, 1]
    want = [mp_nearest(1 / (1 + mpmath.exp(-mp(v))), dtype) for v in x[:, 1]]
    np.testing.assert_array_equal(got, want)
    assert np.any(got == 0) and np.any((got > 0) & (got < format_of(dtype).min_normal))


def test_certify_raises_precision_until_decided_and_gives_up_on_a_midpoint():
    calls = []

    def evaluate(idx):
        bits = reference.ctx.prec
        calls.append(bits)
        # a ball around 1 + 2^-11 (a float16 midpoint) + 2^-80: decided once narrower than 2^-80
        mid = arb(1) + arb(2.0**-11) + arb(2.0**-80)
        return [mid + arb(0, 2.0 ** -(bits - 20)) for _ in idx]

    ex = certify(1, evaluate, format_of(np.float16))
    assert ex.rounded[0] == 1 + 2.0**-10 and calls == [64, 128]
    with pytest.raises(UncertifiedError):
        certify(1, lambda idx: [arb(1 + 2.0**-11, 2.0**-200)], format_of(np.float16))


def test_masks_and_nonfinite_rows():
    x = np.array([[0.0, -np.inf, 1.0], [-np.inf] * 3, [1.0, np.nan, 0.0], [1.0, np.inf, 0.0]])
    sm = reference.softmax(x).rounded
    ls = reference.log_softmax(x).rounded
    lse = reference.logsumexp(x).rounded
    assert sm[0, 1] == 0 and ls[0, 1] == -np.inf and np.all(sm[1] == 0)
    assert np.all(ls[1] == -np.inf) and lse[1] == -np.inf
    assert np.all(np.isnan(sm[2:])) and np.all(np.isnan(lse[2:]))
    where = np.array([True, False, True])
    np.testing.assert_array_equal(
        reference.log_softmax(np.array([0.0, 50.0, 1.0]), where=where).rounded,
        reference.log_softmax(np.array([0.0, -np.inf, 1.0])).rounded,
    )


def test_logsumexp_weights_and_signs():
    x = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 2.0], [0.5, 0.5, 3.0]])
    b = np.array([[1.0, -1.0, 0.0], [1.0, 1.0, -1.0], [2.0, 0.5, 0.0]])
    ex = reference.logsumexp(x, b=b, return_sign=True)
    assert ex.rounded[0] == -np.inf and ex.sign[0] == 0  # exactly zero: the b's of ties cancel
    total = 1 + mpmath.e - mpmath.e**2
    assert ex.sign[1] == -1 and ex.rounded[1] == mp_nearest(mpmath.log(-total), np.float64)
    assert ex.rounded[2] == mp_nearest(mpmath.log(2.5 * mpmath.exp(0.5)), np.float64)


def _mp_ce_row(x, y_or_t, w, eps, z, cap, temp):
    zs = [mp(v) for v in x]
    if cap is not None:
        zs = [cap * mpmath.tanh(v / cap) for v in zs]
    zs = [v / mpmath.mpf(temp) for v in zs]
    lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in zs))
    ell = [lse - v for v in zs]
    n = len(zs)
    eps_m = mpmath.mpf(eps)
    if isinstance(y_or_t, (int, np.integer)):
        y = int(y_or_t)
        loss = (1 - eps_m) * mp(w[y]) * ell[y] + eps_m / n * mpmath.fsum(
            mp(w[c]) * ell[c] for c in range(n)
        )
        return loss + mpmath.mpf(z) * mp(w[y]) * lse**2, mp(w[y])
    t = [(1 - eps_m) * mp(v) + eps_m / n for v in y_or_t]
    return mpmath.fsum(mp(w[c]) * t[c] * ell[c] for c in range(n)) + mpmath.mpf(z) * lse**2, 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64, "bfloat16"], ids=str)
@pytest.mark.parametrize(
    "opts",
    [
        dict(),
        dict(label_smoothing=0.1),
        dict(z_loss=1e-3),
        dict(softcap=5.0, temperature=0.7),
        dict(label_smoothing=0.25, z_loss=0.5, temperature=2.0),
    ],
    ids=str,
)
@pytest.mark.parametrize("soft", [False, True], ids=["hard", "soft"])
def test_cross_entropy_matches_mpmath(dtype, opts, soft):
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(5, 6)) * 4).astype(dtype)
    w = np.array([0.5, 1.0, 2.0, 1.5, 0.25, 1.0]).astype(dtype)
    target = (
        rng.dirichlet(np.ones(6), size=5).astype(dtype) if soft else np.array([0, 3, -100, 5, 1])
    )
    rows = []
    for r in range(5):
        if not soft and target[r] == -100:
            rows.append((mpmath.mpf(0), 0))
            continue
        rows.append(
            _mp_ce_row(
                x[r],
                target[r],
                w,
                opts.get("label_smoothing", 0.0),
                opts.get("z_loss", 0.0),
                opts.get("softcap"),
                opts.get("temperature", 1.0),
            )
        )
    none = reference.cross_entropy(x, target, w, reduction="none", **opts).rounded
    np.testing.assert_array_equal(none, [mp_nearest(v, dtype) for v, _ in rows])
    total = mpmath.fsum(v for v, _ in rows)
    denom = mpmath.fsum(rw for _, rw in rows)
    mean = reference.cross_entropy(x, target, w, reduction="mean", **opts).rounded
    assert mean == mp_nearest(total / denom, dtype)
    assert reference.cross_entropy(x, target, w, reduction="sum", **opts).rounded == mp_nearest(
        total, dtype
    )


def test_cross_entropy_edge_rules():
    x = np.array([[0.0, -np.inf, 1.0], [2.0, 1.0, 0.0]])
    # a label on a masked class costs +inf; so does smoothing mass on it
    assert reference.cross_entropy(x, np.array([1, 0]), reduction="none").rounded[0] == np.inf
    ls = reference.cross_entropy(x, np.array([0, 0]), reduction="none", label_smoothing=0.1)
    assert ls.rounded[0] == np.inf and np.isfinite(ls.rounded[1])
    # soft targets: 0 * log 0 = 0
    t = np.array([[0.5, 0.0, 0.5], [1.0, 0.0, 0.0]])
    assert np.all(np.isfinite(reference.cross_entropy(x, t, reduction="none").rounded))
    # a mean over zero counted rows is 0
    assert reference.cross_entropy(x, np.array([-100, -100])).rounded == 0.0
    # a confident row keeps its tiny loss
    conf = reference.cross_entropy(np.array([[60.0, 0.0]], dtype=np.float32), np.array([0]))
    assert conf.rounded == mp_nearest(mpmath.log1p(mpmath.exp(-60)), np.float32) > 0


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_nll_loss_is_exact(dtype):
    rng = np.random.default_rng(5)
    logp = (-rng.exponential(size=(9, 4)) * 3).astype(dtype)
    y = np.array([0, 1, 2, 3, -100, 1, 2, 0, 3])
    w = np.array([0.25, 1.5, 2.0, 0.75]).astype(dtype)
    f = format_of(dtype)
    vals = [
        Fraction(0) if t == -100 else -Fraction(float(w[t])) * Fraction(float(logp[i, t]))
        for i, t in enumerate(y)
    ]
    none = reference.nll_loss(logp, y, w, reduction="none").rounded
    np.testing.assert_array_equal(none, [nearest(v, f) for v in vals])
    denom = sum(Fraction(float(w[t])) for t in y if t != -100)
    assert reference.nll_loss(logp, y, w).rounded == nearest(sum(vals) / denom, f)
    assert reference.nll_loss(logp, y, w, reduction="sum").rounded == nearest(sum(vals), f)
    t = rng.dirichlet(np.ones(4), size=9).astype(dtype)
    soft = sum(
        -Fraction(float(w[c])) * Fraction(float(t[i, c])) * Fraction(float(logp[i, c]))
        for i in range(9)
        for c in range(4)
    )
    assert reference.nll_loss(logp, t, w).rounded == nearest(soft / 9, f)


def test_axis_and_shapes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4, 5))
    a = reference.log_softmax(x, axis=1)
    b = reference.log_softmax(np.moveaxis(x, 1, -1))
    assert a.shape == x.shape
    np.testing.assert_array_equal(np.moveaxis(a.rounded, 1, -1), b.rounded)
    assert reference.logsumexp(x, axis=0).shape == (4, 5)
    lg = reference.cross_entropy(
        np.moveaxis(x, 2, 1), np.zeros((3, 4), dtype=int), axis=1, reduction="none"
    )
    assert lg.shape == (3, 4)
    assert math.isfinite(float(reference.Exact.__doc__ is not None))
