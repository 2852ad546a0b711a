"""The input guard: fires once on probabilities / log-probabilities, silent on logits."""

from __future__ import annotations

import warnings

import pytest
import torch

import logmax.torch as lt
from logmax.torch import guard


@pytest.fixture
def logits(gen):
    return torch.randn(16, 10, generator=gen, requires_grad=True)


@pytest.fixture
def target(gen):
    return torch.randint(0, 10, (16,), generator=gen)


def _warnings(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return [w for w in caught if issubclass(w.category, lt.InputGuardWarning)]


@pytest.mark.parametrize(
    "make",
    [
        lambda x: torch.softmax(x, 1),
        lambda x: torch.log_softmax(x, 1),
        lambda x: lt.softmax(x, 1),
        lambda x: lt.log_softmax(x, 1),
        lambda x: torch.nn.Softmax(dim=1)(x).detach(),  # values only (no grad_fn)
        lambda x: torch.log_softmax(x, 1).detach(),
    ],
    ids=["torch_softmax", "torch_log_softmax", "softmax", "log_softmax", "probs", "log_probs"],
)
def test_fires_once_on_softmax_outputs_with_the_fix(path, logits, target, make):
    caught = _warnings(lambda: lt.cross_entropy(make(logits), target))
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "logits" in message and "set_input_guard(False)" in message
    assert caught[0].filename == __file__  # points at the caller
    assert _warnings(lambda: lt.cross_entropy(make(logits), target)) == []  # once


def test_fires_through_the_module(logits, target):
    model_output = torch.nn.Softmax(dim=1)(logits)
    caught = _warnings(lambda: lt.CrossEntropyLoss()(model_output, target))
    assert len(caught) == 1 and caught[0].filename == __file__


@pytest.mark.parametrize(
    "make",
    [
        lambda x: x,
        lambda x: x.detach() * 5,
        lambda x: torch.tensor([[0.0, -30.0]] * 3),  # confident logits: lse ~ 0 but not log-probs
        lambda x: torch.eye(4)[:3],  # one-hot rows are plausible logits
        lambda x: torch.softmax(x, 1).detach() * 3,  # scaled: not probabilities any more
    ],
    ids=["logits", "scaled", "confident", "one_hot", "scaled_probs"],
)
def test_silent_on_logits(path, logits, make):
    x = make(logits)
    t = torch.zeros(x.shape[0], dtype=torch.long)
    assert _warnings(lambda: lt.cross_entropy(x, t)) == []


def test_spatial_inputs(gen):
    x = torch.randn(2, 5, 4, 3, generator=gen)
    t = torch.randint(0, 5, (2, 4, 3), generator=gen)
    assert _warnings(lambda: lt.cross_entropy(x, t)) == []
    assert len(_warnings(lambda: lt.cross_entropy(x.softmax(1), t))) == 1


def test_switch_off_and_on(logits, target):
    probs = torch.softmax(logits, 1)
    lt.set_input_guard(False)
    assert not lt.input_guard_enabled()
    assert _warnings(lambda: lt.cross_entropy(probs, target)) == []
    lt.set_input_guard(True)
    assert len(_warnings(lambda: lt.cross_entropy(probs, target))) == 1


@pytest.mark.parametrize("value,enabled", [("0", False), ("off", False), ("1", True), ("", True)])
def test_environment_variable(monkeypatch, value, enabled):
    monkeypatch.setenv(guard.ENV_VAR, value)
    assert guard.enabled_by_environment() is enabled
