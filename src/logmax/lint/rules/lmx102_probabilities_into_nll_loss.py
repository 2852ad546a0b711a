"""LMX102 probabilities-into-nll-loss: probabilities fed to NLLLoss or as the input of KLDivLoss.

``NLLLoss`` computes ``-input[target]``: it expects log-probabilities. Given probabilities the
loss is ``-p[target]``, a different objective with weak gradients; its values are negative, which
users notice ("the loss is always negative"). ``KLDivLoss`` also takes log-probabilities as its
input (its target is probabilities, which is not reported). The model is followed as for LMX101:
layers, ``forward``, attributes, other modules, criteria set elsewhere, both arms of an ``if``.
Fix: ``log_softmax`` instead of ``softmax`` before ``NLLLoss``/``KLDivLoss``, or
``CrossEntropyLoss`` on the logits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from logmax.lint.events import LossCall
from logmax.lint.rules.base import Rule
from logmax.lint.values import PROBS, is_kind

if TYPE_CHECKING:
    from logmax.lint.context import RuleContext


RULE = Rule(
    "LMX102",
    "probabilities-into-nll-loss",
    "error",
    "probabilities passed to NLLLoss or KLDivLoss, which expect log-probabilities",
    "nll_loss(p) computes -p[target], not -log p[target]",
    "use log_softmax instead of softmax, or cross_entropy on the logits",
)


def on_loss(ctx: RuleContext, call: LossCall) -> None:
    if call.kind == "nll" and is_kind(call.input, PROBS):
        origin = ctx.describe(call.input, call.node, call.path)
        ctx.report(
            call.node,
            f"probabilities ({origin}) passed to {call.shown}, which expects log-probabilities",
        )
