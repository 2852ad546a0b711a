"""The seeds' own code, as the users wrote it, must be caught (and their right code must not).

Seed 000: a forward returning ``(logits, probas)`` with ``ACTIVATION`` = softmax or log_softmax,
and ``COST_FN`` = cross-entropy. Seed 001: a notebook computing Softmax, logSoftmax and
CrossEntropy by hand. Seed 002: ``log(softmax(alpha * x))``. Seed 003: ``nn.Sequential`` models
ending in Softmax/LogSoftmax, paired with MSE, NLL and cross-entropy losses.
"""

from __future__ import annotations

import pytest

from logmax.lint import fix_source, lint_source, read_source
from logmax.lint.engine import check

SEED_000 = """\
import torch.nn.functional as F
from torch import nn

ACTIVATION = {activation}
COST_FN = {cost}


class Model(nn.Module):
    def forward(self, x):
        out = self.linear_1(x)
        out = F.relu(out)
        logits = self.linear_out(out)
        probas = ACTIVATION(logits, dim=1)
        return logits, probas


model = Model()
for epoch in range(10):
    for features, targets in loader:
        logits, probas = model(features)
        cost = COST_FN({fed}, targets)
        cost.backward()
        optimizer.step()
"""


@pytest.mark.parametrize(
    ("activation", "cost", "fed", "expected"),
    [
        ("F.softmax", "F.cross_entropy", "logits", []),  # the thread's right setup
        ("F.softmax", "F.cross_entropy", "probas", ["LMX101"]),  # the mistake it warns about
        ("F.log_softmax", "F.cross_entropy", "probas", ["LMX201"]),  # the "double log_softmax"
        ("F.softmax", "nn.CrossEntropyLoss()", "probas", ["LMX101"]),
        ("F.log_softmax", "nn.NLLLoss()", "probas", []),  # right pairing
        ("F.softmax", "nn.NLLLoss()", "probas", ["LMX102"]),
    ],
)
def test_seed_000_forward_returning_logits_and_probas(activation, cost, fed, expected):
    code = SEED_000.format(activation=activation, cost=cost, fed=fed)
    findings = lint_source(code, "seed000.py")
    assert [f.code for f in findings] == expected
    assert all(f.line == 21 for f in findings)  # the COST_FN line


# seed 001, cells In [1] to In [6] as the notebook had them
SEED_001_CELLS = [
    ("markdown", "Consider the following output of a model"),
    ("code", "import torch\nimport torch.nn as nn\nimport numpy as np"),
    (
        "code",
        "output = torch.tensor([\n    [3.2, 1.3, 0.2, 0.8],\n    [1.2, 4.1, 3.8, 0.1],\n"
        "    [3.3, 2.5, 1.9, 5.9]\n])\n\ntarget = torch.tensor([0,2,3]).long()",
    ),
    (
        "code",
        "def Softmax(x):\n"
        "    return (torch.exp(x).T / torch.sum(torch.exp(x), axis=1).T).T\n"
        "\n"
        "def logSoftmax(x):\n"
        "    return torch.log(Softmax(x))\n"
        "\n"
        "def CrossEntropy(Q, P):\n"
        "    batch_size = Q.shape[0]\n"
        "    num_of_classes = Q.shape[1]\n"
        "    P = torch.eye(num_of_classes)[P]\n"
        "    loss = - torch.sum(P * torch.log(Q)) / batch_size\n"
        "    return loss.item()",
    ),
    (
        "code",
        "probs = Softmax(output)\nprint(f'Probabilities:\\n{probs}')\n\n"
        "log_probs = logSoftmax(output)\nprint(f'\\nLog probabilities:\\n{log_probs}')\n\n"
        "loss = CrossEntropy(probs, target)\nprint(f'\\nCrossEntropy loss:\\n{loss}')",
    ),
    ("markdown", "### Comparing with pytorch's functions"),
    ("code", "criterion = nn.CrossEntropyLoss()\ncriterion(output, target)"),
    ("code", "nll = nn.NLLLoss()\nnll(log_probs, target)"),
]


def test_seed_001_notebook(notebook):
    path = notebook(SEED_001_CELLS)
    findings = check(read_source(path))
    assert [(f.cell, f.line, f.code) for f in findings] == [
        (4, 2, "LMX104"),  # Softmax by hand, no max shift
        (4, 5, "LMX103"),  # logSoftmax = log(Softmax(x))
        (4, 11, "LMX107"),  # CrossEntropy by hand on probabilities
    ]
    assert findings[0].location == f"{path}:cell4:2:13"
    # the right comparisons in cells 7 and 8 (logits into CrossEntropyLoss, log-probabilities
    # into NLLLoss) give nothing, though log_probs came from the hand-written log(Softmax)


SEED_002 = """\
import torch

alpha = 1000
true_result = torch.log (torch.softmax (alpha * torch.tensor ([-1.0, 0.0, 1.0]).double(), dim = 0))
naive = torch.log (torch.softmax (alpha * torch.tensor ([-1.0, 0.0, 1.0]), dim = 0))
stable = torch.log_softmax (alpha * torch.tensor ([-1.0, 0.0, 1.0]), dim = 0)
"""


def test_seed_002_log_of_softmax_is_found_and_fixed():
    findings = lint_source(SEED_002)
    assert [(f.line, f.code) for f in findings] == [(4, "LMX103"), (5, "LMX103")]
    fixed, left = fix_source(SEED_002)
    assert left == []
    assert "naive = torch.log_softmax (alpha * torch.tensor ([-1.0, 0.0, 1.0]), dim = 0)" in fixed


SEED_003 = """\
from torch import nn

model = nn.Sequential(
nn.Linear(4072, 512),
nn.Tanh(),
nn.Linear(512, 2),
nn.{last}(dim=1))
loss = nn.{loss}()

for x, y in loader:
    output = loss(model(x), y)
"""


@pytest.mark.parametrize(
    ("last", "loss", "expected"),
    [
        ("Softmax", "MSELoss", ["LMX106"]),  # "the squared error is a poor loss function"
        ("Softmax", "CrossEntropyLoss", ["LMX101"]),
        ("LogSoftmax", "NLLLoss", []),  # the right pairing
        ("LogSoftmax", "CrossEntropyLoss", ["LMX201"]),
        ("Softmax", "NLLLoss", ["LMX102"]),
    ],
)
def test_seed_003_sequential_ending_in_softmax(last, loss, expected):
    findings = lint_source(SEED_003.format(last=last, loss=loss))
    assert [f.code for f in findings] == expected
    assert all(f.line == 11 for f in findings)


def test_seed_003_model_without_softmax_is_clean():
    code = (
        "from torch import nn\n"
        "model = nn.Sequential(nn.Linear(1024, 512), nn.Tanh(), nn.Linear(512, 128),"
        " nn.Tanh(), nn.Linear(128, 2))\n"
        "loss_fn = nn.CrossEntropyLoss()\n"
        "value = loss_fn(model(x), y)\n"
    )
    assert lint_source(code) == []
