"""Values followed along the paths of a program: functions in any order, branches, globals,
attributes set anywhere, loops, in-place operations, and the other spellings real code uses."""

from __future__ import annotations

import pytest

from logmax.lint import lint_source


def codes(code: str) -> list[tuple[int, str]]:
    return [(f.line, f.code) for f in lint_source(code)]


def messages(code: str) -> list[str]:
    return [f.message for f in lint_source(code)]


def test_a_function_may_call_one_defined_below_it():
    code = """\
import torch.nn.functional as F

def step(x, y):
    return F.cross_entropy(predict(x), y)

def predict(x):
    return F.softmax(x, dim=1)
"""
    assert codes(code) == [(4, "LMX101")]


def test_a_training_loop_reads_the_globals_set_after_it():
    code = """\
from torch import nn

def train():
    for x, y in loader:
        loss = criterion(model(x), y)

model = nn.Sequential(nn.Linear(4, 2), nn.Softmax(dim=1))
criterion = nn.CrossEntropyLoss()
train()
"""
    assert codes(code) == [(5, "LMX101")]


def test_a_global_read_by_a_function_that_is_never_called():
    code = """\
from torch import nn

class Trainer:
    def training_step(self, x, y):
        return criterion(net(x), y)

net = nn.Sequential(nn.Linear(4, 2), nn.LogSoftmax(dim=1))
criterion = nn.CrossEntropyLoss()
"""
    assert codes(code) == [(5, "LMX201")]


def test_either_model_of_an_if_else_is_followed_and_the_path_named():
    code = """\
from torch import nn

if large:
    model = nn.Sequential(nn.Linear(8, 2), nn.Softmax(dim=1))
else:
    model = nn.Sequential(nn.Linear(8, 2))
loss = nn.CrossEntropyLoss()(model(x), y)
"""
    assert codes(code) == [(7, "LMX101")]
    assert "on the path where large" in messages(code)[0]


def test_a_one_armed_if_gives_a_value_that_may_be_a_softmax():
    code = """\
import torch.nn.functional as F

def head(logits, y, probabilities):
    out = logits
    if not probabilities:
        pass
    else:
        out = F.softmax(logits, dim=-1)
    return F.nll_loss(out, y)
"""
    assert codes(code) == [(9, "LMX102")]
    assert "on the path where probabilities" in messages(code)[0]


def test_the_same_test_taken_both_ways_is_not_one_path():
    code = """\
from torch import nn

if args.loss == "nll":
    model = nn.Sequential(nn.Linear(8, 2), nn.LogSoftmax(dim=1))
else:
    model = nn.Sequential(nn.Linear(8, 2))
criterion = nn.NLLLoss() if args.loss == "nll" else nn.CrossEntropyLoss()
loss = criterion(model(x), y)
"""
    assert codes(code) == []


@pytest.mark.parametrize(
    "test",
    ["self.training", "not self.eval_mode", "self.phase == 'train'", "mode not in ('test', 'val')"],
)
def test_the_inference_arm_of_a_training_mode_test_gives_no_value(test):
    code = f"""\
import torch.nn.functional as F
from torch import nn

class Net(nn.Module):
    def forward(self, x):
        logits = self.fc(x)
        if {test}:
            return logits
        return F.softmax(logits, dim=1)

loss = F.cross_entropy(Net()(x), y)
"""
    assert codes(code) == []


def test_findings_inside_the_inference_arm_are_still_reported():
    code = """\
import torch

def predict(self, x):
    if not self.training:
        return torch.log(torch.softmax(x, dim=1))
    return x
"""
    assert codes(code) == [(5, "LMX103")]


def test_an_arm_that_returns_does_not_flow_on():
    code = """\
import torch.nn.functional as F

def loss_of(x, y, done):
    out = F.softmax(x, dim=1)
    if done:
        return None
    out = x
    return F.cross_entropy(out, y)
"""
    assert codes(code) == []


def test_an_attribute_set_in_any_method_or_from_outside():
    code = """\
from torch import nn

class Model(nn.Module):
    def forward(self, x):
        return self.head(self.body(x))

    def train_step(self, x, y):
        return self.criterion(self(x), y)

    def build(self):
        self.head = nn.Softmax(dim=1)

model = Model()
model.criterion = nn.CrossEntropyLoss()
"""
    assert codes(code) == [(8, "LMX101")]


def test_a_criterion_given_as_a_default_argument_or_to_the_constructor():
    code = """\
from torch import nn

class Trainer:
    def __init__(self, model, loss=nn.NLLLoss()):
        self.model = model
        self.loss = loss

    def step(self, x, y):
        return self.loss(self.model(x), y)

net = nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1))
Trainer(net).step(x, y)

def fit(model, x, y, criterion=nn.CrossEntropyLoss()):
    return criterion(model(x), y)

fit(net, x, y)
"""
    assert codes(code) == [(9, "LMX102"), (15, "LMX101")]


def test_explicit_forward_call_and_copies_of_the_model():
    code = """\
import copy
from torch import nn

class Net(nn.Module):
    def forward(self, x):
        return nn.functional.softmax(self.fc(x), dim=1)

    def step(self, x, y):
        return nn.CrossEntropyLoss()(self.__call__(x), y)

net = Net()
ema = copy.deepcopy(net).to("cuda")
a = nn.CrossEntropyLoss()(ema.forward(x), y)
b = nn.CrossEntropyLoss().forward(net(x), y)
"""
    assert codes(code) == [(9, "LMX101"), (13, "LMX101"), (14, "LMX101")]


def test_a_sequential_built_by_add_module_or_from_a_list():
    code = """\
import torch

model = torch.nn.Sequential()
model.add_module("fc", torch.nn.Linear(4, 3))
model.add_module("softmax", torch.nn.Softmax(dim=1))
a = torch.nn.CrossEntropyLoss()(model(x), y)

layers = [torch.nn.Linear(4, 3)]
layers.append(torch.nn.LogSoftmax(dim=1))
other = torch.nn.Sequential(*layers)
b = torch.nn.CrossEntropyLoss()(other(x), y)

plain = torch.nn.Sequential()
plain.add_module("softmax", torch.nn.Softmax(dim=1))
plain.add_module("fc", torch.nn.Linear(3, 3))
c = torch.nn.CrossEntropyLoss()(plain(x), y)
"""
    assert codes(code) == [(6, "LMX101"), (11, "LMX201")]


def test_iterating_over_a_softmax_gives_probabilities():
    code = """\
import numpy as np
import scipy.special

probs = scipy.special.softmax(scores, axis=1)
for row in probs:
    a = np.log(row)
for i, row in enumerate(probs):
    b = np.log(row)
c = [np.log(p) for p in probs]
"""
    assert codes(code) == [(6, "LMX103"), (8, "LMX103"), (9, "LMX103")]


def test_in_place_normalisation_and_accumulation():
    code = """\
import math
import numpy as np

def softmax(x):
    p = np.exp(x)
    p /= p.sum(axis=1, keepdims=True)
    return p

def stable(x):
    x -= x.max(axis=1, keepdims=True)
    e = np.exp(x)
    e /= e.sum(axis=1, keepdims=True)
    return e

def logsumexp(xs):
    total = 0.0
    for v in xs:
        total += math.exp(v)
    return math.log(total)
"""
    assert codes(code) == [(6, "LMX104"), (19, "LMX105")]


def test_numpy_and_torch_function_spellings():
    code = """\
import numpy as np
import torch

a = np.divide(np.exp(z), np.sum(np.exp(z)))
b = torch.div(torch.exp(z), torch.exp(z).sum(dim=1, keepdim=True))
c = np.negative(np.sum(np.multiply(y, np.log(p))))
d = -np.dot(y, np.log(q))
"""
    assert codes(code) == [(4, "LMX104"), (5, "LMX104"), (6, "LMX107"), (7, "LMX107")]


def test_numerator_and_denominator_under_other_names():
    code = """\
import numpy as np

def half_shifted(z):
    shifted = z - np.max(z, axis=1, keepdims=True)
    numerator = np.exp(shifted)
    denominator = np.sum(np.exp(z), axis=1, keepdims=True)
    return numerator / denominator

def by_hand(z):
    top = np.exp(z)
    bottom = top.sum(axis=1, keepdims=True)
    return top / bottom

def both_shifted(z):
    m = z.max(axis=1, keepdims=True)
    return np.exp(z - m) / np.exp(z - m).sum(axis=1, keepdims=True)
"""
    assert codes(code) == [(7, "LMX104"), (12, "LMX104")]
    assert "the denominator is not shifted" in messages(code)[0]


def test_log_softmax_of_a_softmax_before_nll_loss():
    code = """\
import torch.nn.functional as F

loss = F.nll_loss(F.log_softmax(F.softmax(z, dim=1), dim=1), y)
"""
    assert codes(code) == [(3, "LMX101")]


def test_calls_are_followed_several_levels_deep():
    code = """\
import torch.nn.functional as F

def loss_of(out, y):
    return F.cross_entropy(out, y)

def step(out, y):
    return loss_of(out, y)

def epoch(out, y):
    return step(out, y)

def fit(out, y):
    return epoch(out, y)

fit(F.softmax(z, dim=1), y)
"""
    assert codes(code) == [(4, "LMX101")]


def test_a_model_class_inheriting_its_forward():
    code = """\
from torch import nn

class Base(nn.Module):
    def forward(self, x):
        return self.act(self.fc(x))

class Child(Base):
    def __init__(self):
        super().__init__()
        self.act = nn.Softmax(dim=1)

loss = nn.CrossEntropyLoss()(Child()(x), y)
"""
    assert codes(code) == [(12, "LMX101")]


def test_a_criterion_chosen_on_a_path_is_checked_on_each():
    code = """\
from torch import nn

model = nn.Sequential(nn.Linear(3, 3), nn.Softmax(dim=1))
criterion = nn.NLLLoss() if args.nll else nn.CrossEntropyLoss()
loss = criterion(model(x), y)
"""
    found = lint_source(code)
    assert [(f.line, f.code) for f in found] == [(5, "LMX101"), (5, "LMX102")]
    assert "on the path where not args.nll" in found[0].message
    assert "on the path where args.nll" in found[1].message


def test_a_softmax_on_one_path_only_is_not_rewritten():
    code = """\
import torch

p = torch.softmax(z, dim=1) if calibrated else z
y = torch.log(p)
"""
    (finding,) = lint_source(code)
    assert finding.code == "LMX103" and finding.edit is None
