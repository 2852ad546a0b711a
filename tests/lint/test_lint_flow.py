"""How values are followed: calls with known arguments, recursion, overlapping findings."""

from __future__ import annotations

from logmax.lint import lint_source


def codes(code: str) -> list[tuple[int, str]]:
    return [(f.line, f.code) for f in lint_source(code)]


def test_a_function_is_analysed_again_with_the_arguments_of_its_call():
    code = """\
import torch.nn.functional as F

def loss_of(outputs, target):
    return F.cross_entropy(outputs, target)

loss_of(logits, y)
loss_of(F.softmax(logits, dim=1), y)
"""
    assert codes(code) == [(4, "LMX101")]


def test_calls_are_followed_two_levels_deep_and_recursion_ends():
    code = """\
import torch.nn.functional as F

def inner(p, y):
    return F.nll_loss(p, y)

def outer(p, y):
    return inner(p, y)

def recursive(p, y, n):
    return recursive(p, y, n - 1) if n else F.nll_loss(p, y)

outer(F.softmax(x, dim=1), y)
recursive(F.softmax(x, dim=1), y, 3)
"""
    assert codes(code) == [(4, "LMX102"), (10, "LMX102")]


def test_a_hand_written_cross_entropy_is_one_finding_unless_the_log_can_be_fixed():
    by_hand = "import torch\nloss = -(y * torch.log(p)).sum()\n"
    assert codes(by_hand) == [(2, "LMX107")]
    on_probabilities = (
        "import torch\np = torch.softmax(x, dim=1)\nloss = -(y * torch.log(p)).sum()\n"
    )
    assert codes(on_probabilities) == [(3, "LMX107")]
    inline = "import torch\nloss = -(y * torch.log(torch.softmax(x, dim=1))).sum()\n"
    assert codes(inline) == [(2, "LMX107"), (2, "LMX103")]  # the LMX103 is fixable
    assert [f.edit is not None for f in lint_source(inline)] == [False, True]


def test_lambdas_methods_and_wrappers():
    code = """\
import torch
from torch import nn

probs = lambda z: torch.softmax(z, dim=-1)
ce = nn.CrossEntropyLoss().to("cpu")
a = ce(probs(x), y)

class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 3), nn.Softmax(dim=1))

    def forward(self, x):
        return self.body(x).view(-1, 3)

    def predict(self, x):
        return self.forward(x)

model = nn.DataParallel(Head())
b = ce(model(x), y)
c = ce(Head().predict(x), y)
"""
    assert codes(code) == [(6, "LMX101"), (20, "LMX101"), (21, "LMX101")]


def test_shadowed_and_unknown_names_give_nothing():
    code = """\
import torch
import torch.nn.functional as F

def f(F, torch, x, y):
    return F.cross_entropy(torch.softmax(x, 1), y)  # parameters, not the modules

def g(x, y):
    cross_entropy = print
    return cross_entropy(F.softmax(x, dim=1), y)

from mylib import softmax
h = F.cross_entropy(softmax(x), y)
"""
    assert codes(code) == []
