"""What real projects write that looks like a mistake and is not: each case comes from reading
the linter's findings on public code bases, reduced and written anew. None is reported."""

from __future__ import annotations

import pytest

from logmax.lint import lint_source

LOOKALIKES = {
    "a Gaussian kernel normalised to sum to one (an ignite metric)": """\
import torch

def gaussian(kernel_size, sigma):
    kernel = torch.linspace(-1.0, 1.0, steps=kernel_size)
    gauss = torch.exp(-0.5 * (kernel / sigma).pow(2))
    return gauss / gauss.sum()
""",
    "random probabilities drawn in a test (pyro)": """\
import torch

probs = torch.randn(5).exp()
probs /= probs.sum()
weights = torch.rand(2, 3).exp()
weights = weights / weights.sum(-1, keepdim=True)
""",
    "the max subtracted in place before exp (cs231n solutions)": """\
import numpy as np

def loss(scores, y):
    scores -= np.max(scores, axis=1, keepdims=True)
    scores_exp = np.exp(scores)
    return scores_exp / np.sum(scores_exp, axis=1, keepdims=True)
""",
    "an entropy with an epsilon (fairseq's code perplexity)": """\
import numpy as np
import torch

def perplexity(avg_probs):
    return torch.exp(-torch.sum(avg_probs * torch.log(avg_probs + 1e-7), dim=-1))

def comp_entropy(p):
    return (-p * np.log(p + 1e-8)).sum()
""",
    "an entropy of a softmax through a clamping log helper (x-transformers)": """\
def log(t, eps=1e-20):
    return t.clamp(min=eps).log()

def entropy(logits, is_prob=False):
    prob = logits.softmax(dim=-1) if not is_prob else logits
    return -(prob * log(prob)).sum(dim=-1)
""",
    "a log-determinant, a weighted sum of logs that is no loss (pyro)": """\
import torch

def log_abs_det_jacobian(x, y):
    order = torch.arange(x.shape[-1] - 1, -1, -1)
    return -(order * torch.diagonal(y, dim1=-2, dim2=-1).log()).sum(-1)
""",
    "a consistency loss between two softmax outputs (mean teacher)": """\
import torch.nn.functional as F

def softmax_mse_loss(student_logits, teacher_logits):
    return F.mse_loss(F.softmax(student_logits, dim=1), F.softmax(teacher_logits, dim=1))
""",
    "a softmax for the accuracy, the loss on the logits": """\
import torch
import torch.nn.functional as F

def step(model, x, y):
    logits = model(x)
    probs = F.softmax(logits, dim=1)
    accuracy = (probs.argmax(1) == y).float().mean()
    return F.cross_entropy(logits, y), accuracy
""",
    "the softmax of a detector created and used at test time only (ssd.pytorch)": """\
from torch import nn

class SSD(nn.Module):
    def __init__(self, phase):
        super().__init__()
        self.phase = phase
        if phase == "test":
            self.softmax = nn.Softmax(dim=-1)

    def forward(self, x):
        loc, conf = self.heads(x)
        if self.phase == "test":
            return loc, self.softmax(conf)
        return loc, conf

net = SSD("train")
loc, conf = net(images)
loss = nn.CrossEntropyLoss()(conf, targets)
""",
    "attention weights, a softmax multiplied with values": """\
import torch

def attend(q, k, v):
    weights = torch.softmax(q @ k.transpose(-2, -1), dim=-1)
    return weights @ v
""",
    "torch's axis= keyword naming the dim": """\
import torch
import torch.nn.functional as F

a = torch.softmax(x, axis=1)
b = F.log_softmax(x, axis=-1)
""",
}


@pytest.mark.parametrize("code", LOOKALIKES.values(), ids=LOOKALIKES.keys())
def test_lookalike_is_not_reported(code):
    assert [f.text() for f in lint_source(code)] == []


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        # the same shapes with the mistake in them are still found
        ("import torch\ng = torch.exp(k.pow(2))\nn = g / g.sum()\n", ["LMX104"]),
        (
            "import torch\np = torch.softmax(z, 1)\nh = -(q * torch.log(p + 1e-7)).sum()\n",
            ["LMX107"],
        ),  # fmt: skip
        ("import torch\np = torch.softmax(z, 1)\nh = -(p * torch.log(p)).sum()\n", ["LMX103"]),
        ("import torch\nz = torch.softmax(x)\n", ["LMX202"]),
        ("import torch.nn.functional as F\nl = F.mse_loss(F.softmax(z, 1), onehot)\n", ["LMX106"]),
    ],
)
def test_the_mistake_next_to_its_lookalike_is_found(code, expected):
    assert [f.code for f in lint_source(code)] == expected
