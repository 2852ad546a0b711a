"""The nn.Modules: torch's constructors, drop-in by import, and seed 003's training run."""

from __future__ import annotations

import inspect
from contextlib import nullcontext

import pytest
import torch

import logmax.torch as lt

PAIRS = [
    (lt.Softmax, torch.nn.Softmax),
    (lt.LogSoftmax, torch.nn.LogSoftmax),
    (lt.CrossEntropyLoss, torch.nn.CrossEntropyLoss),
    (lt.NLLLoss, torch.nn.NLLLoss),
]


@pytest.mark.parametrize("ours,theirs", PAIRS, ids=[p[1].__name__ for p in PAIRS])
def test_constructor_signature_is_torchs(ours, theirs):
    a = list(inspect.signature(ours).parameters.values())
    b = list(inspect.signature(theirs).parameters.values())
    assert [(p.name, p.default) for p in a[: len(b)]] == [(p.name, p.default) for p in b]
    assert all(p.kind is p.KEYWORD_ONLY for p in a[len(b) :])
    assert issubclass(ours, theirs)


def test_state_dict_and_repr_match_torch():
    w = torch.tensor([1.0, 2.0, 0.5])
    ours = lt.CrossEntropyLoss(w, ignore_index=1, label_smoothing=0.1)
    theirs = torch.nn.CrossEntropyLoss(w, ignore_index=1, label_smoothing=0.1)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    assert repr(theirs) == "CrossEntropyLoss()"  # torch shows no options; we show those set
    assert repr(ours) == "CrossEntropyLoss(ignore_index=1, label_smoothing=0.1)"
    assert repr(lt.CrossEntropyLoss(z_loss=1e-3, softcap=30.0)) == (
        "CrossEntropyLoss(softcap=30.0, z_loss=0.001)"
    )
    ours.load_state_dict(theirs.state_dict())


@pytest.mark.parametrize("kwargs", [{}, {"reduction": "sum"}, {"size_average": False}])
def test_modules_match_torch(path, gen, kwargs):
    x = torch.randn(6, 4, 3, generator=gen, dtype=torch.float64)
    t = torch.randint(0, 4, (6, 3), generator=gen)
    w = torch.rand(4, generator=gen, dtype=torch.float64)
    with pytest.warns(UserWarning) if kwargs.get("size_average") is not None else nullcontext():
        pairs = [(lt.CrossEntropyLoss(w, **kwargs), torch.nn.CrossEntropyLoss(w, **kwargs)),
                 (lt.NLLLoss(w, **kwargs), torch.nn.NLLLoss(w, **kwargs))]  # fmt: skip
    for ours, theirs in pairs:
        torch.testing.assert_close(ours(x, t), theirs(x, t), rtol=1e-12, atol=1e-14)
    for ours, theirs in PAIRS[:2]:
        torch.testing.assert_close(ours(dim=1)(x), theirs(dim=1)(x), rtol=1e-12, atol=1e-14)


def test_module_extras(gen):
    x = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    t = torch.randint(0, 4, (5,), generator=gen)
    loss = lt.CrossEntropyLoss(temperature=2.0, softcap=3.0, z_loss=0.01)(x, t)
    assert loss == lt.cross_entropy(x, t, temperature=2.0, softcap=3.0, z_loss=0.01)
    torch.testing.assert_close(lt.Softmax(1, temperature=2.0)(x), torch.softmax(x / 2.0, 1))


def _train(loss_module, final_layer=None, steps=12, seed=3):
    """Seed 003's Linear-Tanh-Linear classifier (narrower), SGD steps on fixed random data."""
    torch.manual_seed(seed)
    layers = [torch.nn.Linear(256, 64), torch.nn.Tanh(), torch.nn.Linear(64, 2)]
    if final_layer is not None:
        layers.append(final_layer)
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(128, 256, generator=g)
    y = (x[:, :10].sum(1) > 0).long()
    curve = []
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_module(model(x), y)
        loss.backward()
        opt.step()
        curve.append(loss.item())
    return torch.tensor(curve)


def test_seed_003_training_curve_is_the_same(path):
    reference = _train(torch.nn.CrossEntropyLoss())
    assert reference[-1] < 0.6 * reference[0]  # it does learn
    torch.testing.assert_close(_train(lt.CrossEntropyLoss()), reference, rtol=1e-5, atol=1e-6)
    nll_reference = _train(torch.nn.NLLLoss(), torch.nn.LogSoftmax(dim=1))
    torch.testing.assert_close(
        _train(lt.NLLLoss(), lt.LogSoftmax(dim=1)), nll_reference, rtol=1e-5, atol=1e-6
    )
