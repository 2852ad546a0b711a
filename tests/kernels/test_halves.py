"""The 16-bit conversions of the CPU kernels: the hardware's (F16C, AArch64) and the integer
versions agree with each other and with NumPy on every float16 pattern and on float32 values
at and around the rounding boundaries."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from logmax.kernels.cpu import _halves


@njit(cache=False)
def _widen(bits, out_hw, out_fields):
    for j in range(bits.shape[0]):
        out_hw[j] = _halves.f16_to_f32(bits[j])
        out_fields[j] = _halves.f16_to_f32_fields(bits[j])


@njit(cache=False)
def _narrow(values, out_hw, out_fields):
    for j in range(values.shape[0]):
        out_hw[j] = _halves.f32_to_f16(values[j])
        out_fields[j] = _halves.f32_to_f16_fields(values[j])


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a == b) | (np.isnan(a) & np.isnan(b))


def test_every_float16_pattern_widens_exactly():
    bits = np.arange(65536, dtype=np.uint16)
    hw, fields = np.empty(65536, np.float32), np.empty(65536, np.float32)
    _widen(bits, hw, fields)
    exact = bits.view(np.float16).astype(np.float32)
    assert _same(hw, exact).all() and _same(fields, exact).all()


def test_float32_narrows_to_nearest_even():
    # every float16 value, the midpoints between neighbours (ties to even) and a float32 ULP to
    # either side of them, subnormals, overflow to infinity, NaN
    f16 = np.arange(65536, dtype=np.uint16).view(np.float16)
    f16 = f16[np.isfinite(f16)].astype(np.float32)
    f16.sort()
    mid = ((f16[:-1].astype(np.float64) + f16[1:]) / 2).astype(np.float32)
    around = np.concatenate(
        [np.nextafter(mid, np.float32(-np.inf)), np.nextafter(mid, np.float32(np.inf))]
    )
    values = np.concatenate(
        [f16, mid, around, np.float32([65520.0, 1e30, -1e30, np.inf, -np.inf, np.nan])]
    )
    hw, fields = np.empty(values.size, np.uint16), np.empty(values.size, np.uint16)
    _narrow(values, hw, fields)
    expect = values.astype(np.float16)
    assert _same(hw.view(np.float16), expect).all()
    assert _same(fields.view(np.float16), expect).all()


def test_the_host_check_names_the_hardware():
    if not _halves.HARDWARE_F16:
        pytest.skip("this CPU converts float16 by integer operations")
    asm = _widen.inspect_asm(_widen.signatures[0])
    assert "cvtph2ps" in asm or "fcvt" in asm
