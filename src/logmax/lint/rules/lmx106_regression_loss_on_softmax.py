"""LMX106 regression-loss-on-softmax: squared or absolute error between a softmax and a target.

MSE (or L1, smooth L1, Huber) on softmax outputs saturates: when the softmax is confidently
wrong its Jacobian is nearly 0, so the gradient vanishes and the model stops learning exactly
when it should learn most (Goodfellow et al., Deep Learning 6.2.2.3: "the squared error is a poor
loss function for softmax units"). Typical code: a classifier ending in ``nn.Softmax`` trained
with ``nn.MSELoss()`` on one-hot labels, or ``mse(torch.exp(log_probs), one_hot)``. A loss
between two softmax outputs (the consistency term of mean-teacher style training) compares two
distributions on purpose and is not reported. Fix: cross-entropy on the logits (soft targets are
accepted); keep MSE for reporting only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from logmax.lint.events import LossCall
from logmax.lint.rules.base import Rule
from logmax.lint.values import PROBS, is_kind

if TYPE_CHECKING:
    from logmax.lint.context import RuleContext


RULE = Rule(
    "LMX106",
    "regression-loss-on-softmax",
    "warning",
    "squared/absolute error on softmax output",
    "the softmax saturates and the gradient vanishes when the model is confidently wrong",
    "train with cross_entropy on the logits",
)


def on_loss(ctx: RuleContext, call: LossCall) -> None:
    if call.kind != "regression":
        return
    first, second = is_kind(call.input, PROBS), is_kind(call.target, PROBS)
    if first == second:
        return  # no softmax, or two distributions compared on purpose
    value = call.input if first else call.target
    ctx.report(
        call.node,
        f"{call.shown} on softmax output ({ctx.describe(value, call.node, call.path)}): "
        "the gradient vanishes when the softmax saturates",
    )
