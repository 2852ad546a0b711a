"""Exact rounding into float16, bfloat16, float32, float64: boundaries and random rationals."""

import math
from fractions import Fraction

import numpy as np
import pytest
from audit_oracle import nearest
from hypothesis import given
from hypothesis import strategies as st

from logmax.audit.formats import BFLOAT16, FLOAT16, FLOAT32, FLOAT64, FORMATS, format_of

ALL = list(FORMATS.values())


@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
def test_constants_match_numpy(fmt):
    info = (
        np.finfo(fmt.dtype) if fmt.name != "bfloat16" else __import__("ml_dtypes").finfo(fmt.dtype)
    )
    assert fmt.max_finite == float(info.max)
    assert fmt.min_normal == float(info.smallest_normal)
    assert fmt.min_subnormal == float(info.smallest_subnormal)


@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
def test_subnormal_boundary(fmt):
    tiny = Fraction(fmt.min_subnormal)
    cases = [
        (tiny / 2, 0.0),  # a tie between 0 and the smallest subnormal: to even, 0
        (tiny / 2 + tiny / 2**40, fmt.min_subnormal),
        (tiny / 2 - tiny / 2**40, 0.0),
        (3 * tiny / 2, 2 * fmt.min_subnormal),  # tie between 1 and 2 subnormal ULPs: to 2
        (5 * tiny / 2, 2 * fmt.min_subnormal),  # tie between 2 and 3: to 2
    ]
    # the largest subnormal plus half an ULP ties between an odd and an even significand
    largest_sub = Fraction(fmt.min_normal) - tiny
    cases.append((largest_sub + tiny / 2, fmt.min_normal))
    for x, want in cases:
        assert fmt.round_rational(x.numerator, x.denominator) == want
        assert fmt.round_rational(-x.numerator, x.denominator) == -want


@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
def test_overflow_boundary(fmt):
    big = Fraction(fmt.max_finite)
    half = Fraction(fmt.ulp_at_exponent(fmt.emax)) / 2
    below = big + half - half / 2**30
    assert fmt.round_rational(below.numerator, below.denominator) == fmt.max_finite
    at = big + half  # ties to the even 2^(emax+1): overflow
    assert fmt.round_rational(at.numerator, at.denominator) == math.inf
    assert fmt.round_rational(-at.numerator, at.denominator) == -math.inf


def test_examples():
    assert FLOAT16.round_rational(1, 3) == float(np.float16(1 / 3))
    assert FLOAT32.round_rational(1, 10) == float(np.float32(0.1))
    assert BFLOAT16.round_rational(1, 3) == 0.333984375
    assert FLOAT64.round_rational(1, 2**1075) == 0.0
    assert FLOAT64.round_rational(3, 2**1076) == 5e-324
    assert format_of(np.float32) is FLOAT32 and format_of("bfloat16") is BFLOAT16
    with pytest.raises(TypeError, match="float16, bfloat16"):
        format_of(np.int32)


rationals = st.tuples(
    st.integers(-(2**80), 2**80),
    st.integers(1, 2**80),
    st.integers(-1100, 1030),
)


@given(rationals)
def test_float64_matches_python_division(r):
    # int / int in Python is correctly rounded, subnormals and overflow included
    num, den, shift = r
    x = Fraction(num, den) * Fraction(2) ** shift
    try:
        want = x.numerator / x.denominator
    except OverflowError:
        want = math.copysign(math.inf, num)
    assert FLOAT64.round_rational(x.numerator, x.denominator) == want


@pytest.mark.parametrize("fmt", [FLOAT16, BFLOAT16, FLOAT32], ids=lambda f: f.name)
@given(r=rationals)
def test_narrow_formats_match_the_neighbour_oracle(fmt, r):
    num, den, shift = r
    x = Fraction(num, den) * Fraction(2) ** (shift // 8)
    assert fmt.round_rational(x.numerator, x.denominator) == nearest(x, fmt)


@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
@given(man=st.integers(-(2**120), 2**120), exp=st.integers(-1300, 1100))
def test_dyadic_agrees_with_rational(fmt, man, exp):
    x = Fraction(man) * Fraction(2) ** exp
    assert fmt.round_dyadic(man, exp) == fmt.round_rational(x.numerator, x.denominator)
