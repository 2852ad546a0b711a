"""The worked examples compute their findings from what they measure."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from logmax.study import worked_examples as w  # noqa: E402


def test_call_logmax_reports_a_missing_function_instead_of_a_number() -> None:
    value, why = w.call_logmax("no_such_function", np.zeros(3))
    assert value is None and "unavailable" in why and "no_such_function" in why


def test_call_logmax_reports_an_exception() -> None:
    value, why = w.call_logmax("nll_loss", np.zeros((2, 3)), np.array([0, 7]))
    assert value is None and why.startswith("raised")


def test_seed002_findings_follow_the_alphas_swept() -> None:
    # without alpha=1000 the naive float32 result stays finite for small alphas: the finding
    # about -inf must then disagree with the seed instead of repeating its claim
    small = w.seed002_alpha((2, 5))
    assert small.findings[0].agrees is False
    big = w.seed002_alpha((2, 1000))
    assert big.findings[0].agrees is True
    assert "[-inf, -inf, 0.0]" in big.findings[0].text


def test_alpha_methods_compute_what_their_labels_say() -> None:
    x = w.alpha_row(1000)
    results = {label: fn(x) for label, fn in w.alpha_methods()}
    naive32 = results["torch.log(torch.softmax(x)) float32"]
    assert naive32.dtype == np.float32 and np.isneginf(naive32[:2]).all()
    assert results["torch.log_softmax(x) float32"].tolist() == [-2000.0, -1000.0, 0.0]
    assert np.isneginf(results["torch.log(torch.softmax(x)) float64 (the seed's 'true result')"][0])


def test_seed000_distinct_values_contradict_the_seed() -> None:
    part = w.seed000_tiny()
    assert part.findings[0].agrees is False  # three distinct values, not "the same value"
