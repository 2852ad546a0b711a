"""Seed 000's penalties and seed 003's gradients against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("torch")

from logmax.study.gradients import gradient_sweep, penalties  # noqa: E402


def test_penalties_are_one_minus_p_and_minus_log_p() -> None:
    for case in penalties():
        assert case.l1 == pytest.approx(1 - case.p)
        assert case.nll == pytest.approx(-math.log(case.p))
        assert case.printed_like_seed()


def test_cross_entropy_gradient_matches_softmax_minus_onehot() -> None:
    classes = 10
    margins = np.array([-30.0, -2.0, 0.0, 3.0])
    sweep = gradient_sweep(margins, classes=classes, dtype="float64")
    for m, norm in zip(margins, sweep.norms["logits + CrossEntropyLoss"], strict=True):
        z = np.zeros(classes)
        z[0] = m
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        p[0] -= 1
        assert norm == pytest.approx(np.linalg.norm(p), rel=1e-12)


def test_squared_error_gradient_vanishes_when_confidently_wrong() -> None:
    sweep = gradient_sweep(np.array([-20.0, 0.0]), dtype="float64")
    ce = sweep.norms["logits + CrossEntropyLoss"]
    mse = sweep.norms["Softmax + MSELoss"]
    assert mse[0] < 1e-6 * ce[0]  # at margin -20
    assert mse[1] > 1e-3 * ce[1]  # at margin 0 it still learns


def test_log_of_softmax_gradient_is_nan_only_where_softmax_underflows() -> None:
    sweep = gradient_sweep(np.array([-120.0, -50.0]), dtype="float32")
    assert sweep.first_nonfinite("log(Softmax) + NLLLoss") == -120.0
    assert sweep.first_nonfinite("LogSoftmax + NLLLoss") is None


def test_coinciding_curves_are_found_and_named() -> None:
    from logmax.study.figures import coincide_note, coinciding

    curves = {
        "a": np.array([1.0, np.nan, 3.0]),
        "b": np.array([1.0, np.nan, 3.0 * (1 + 1e-9)]),
        "c": np.array([1.0, 2.0, 3.0]),
        "d": np.array([1.0, 2.0, 3.0]),
        "e": np.array([0.0, 2.0, 3.0]),
    }
    groups = coinciding(curves)
    assert groups == [["a", "b"], ["c", "d"]]
    assert coincide_note(groups).endswith(": a = b; c = d.")
    assert coincide_note([]) == ""
