"""Seed 002's sweep against exact values."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("torch")

from logmax.study.alpha_sweep import alpha_sweep  # noqa: E402


def test_alpha_sweep_scores_each_method_against_the_exact_value() -> None:
    sweep = alpha_sweep((2.0, 100.0, 1000.0))
    naive = "torch.log(torch.softmax(x)) float32"
    assert sweep.first_failure(naive) == 100.0
    assert sweep.first_failure("torch.log_softmax(x) float32") is None
    assert sweep.worst("logmax.log_softmax(x) float32") <= 1.0  # logmax's promise
    assert math.isinf(sweep.errors[naive][-1])
    alpha, got, want = sweep.worst_entry("torch.log_softmax(x) float32")
    assert alpha in sweep.alphas and got != want
