"""The lint demo: a small training script with the seeds' mistakes, linted and fixed.

The example is text only: the linter parses it and never runs it.
"""

from __future__ import annotations

EXAMPLE_PATH = "seed_mistakes.py"

# Each mistake is one the seeds made or warned about; the comment names the seed.
EXAMPLE = """\
import torch
import torch.nn.functional as F
from torch import nn

model = nn.Sequential(
    nn.Linear(64, 64),
    nn.ReLU(),
    nn.Linear(64, 10),
    nn.Softmax(dim=1),  # seed 000: probabilities out of the model ...
)
criterion = nn.CrossEntropyLoss()


def train_step(x, target):
    probs = model(x)
    return criterion(probs, target)  # ... into a loss that applies log_softmax again


def log_probabilities(logits):
    # seed 002: log of a softmax that underflowed to 0 is -inf
    return torch.log(torch.softmax(logits, dim=1))


def Softmax(x):  # seed 001's notebook, seed 003's overflow
    return torch.exp(x) / torch.sum(torch.exp(x), dim=1, keepdim=True)


def CrossEntropy(Q, P):  # seed 001: cross-entropy by hand on probabilities
    onehot = torch.eye(Q.shape[1])[P]
    return -torch.sum(onehot * torch.log(Q)) / Q.shape[0]


def squared_error(logits, onehot):
    return nn.MSELoss()(F.softmax(logits, dim=1), onehot)  # seed 003: "a poor loss"


def lse(x):
    # exp overflows for x > 88 in float32
    return torch.log(torch.sum(torch.exp(x), dim=1))
"""
