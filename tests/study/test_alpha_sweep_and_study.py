"""Seed 002's sweep, and the whole study end to end on a tiny budget."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")

from logmax.study.alpha_sweep import alpha_sweep  # noqa: E402
from logmax.study.run import StudyConfig, run_study  # noqa: E402
from logmax.study.training import TrainConfig  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def test_alpha_sweep_scores_each_method_against_the_exact_value() -> None:
    sweep = alpha_sweep((2.0, 100.0, 1000.0))
    naive = "torch.log(torch.softmax(x)) float32"
    assert sweep.first_failure(naive) == 100.0
    assert sweep.first_failure("torch.log_softmax(x) float32") is None
    assert sweep.worst("logmax.log_softmax(x) float32") <= 1.0  # logmax's promise
    assert math.isinf(sweep.errors[naive][-1])
    alpha, got, want = sweep.worst_entry("torch.log_softmax(x) float32")
    assert alpha in sweep.alphas and got != want


def test_study_end_to_end_on_a_tiny_budget() -> None:
    config = StudyConfig(
        train=TrainConfig(epochs=1, seeds=(0,), hidden=4), alpha_points=4, margin_points=9
    )
    parts = run_study(config)
    keys = [p.key for p in parts]
    assert keys == ["seed001", "seed002", "seed000", "seed003", "training", "gradients", "alpha"]
    figures = [f for p in parts for f in p.figures]
    assert len(figures) == 4 and all(f.png.startswith(PNG) for f in figures)
    for part in parts:
        assert part.findings, part.key
        for table in part.tables:
            assert all(len(row) == len(table.columns) for row in table.rows)
