"""LMX201 log-softmax-into-cross-entropy: log-probabilities fed to a loss that applies it again.

``CrossEntropyLoss`` applies ``log_softmax`` itself; ``log_softmax`` of log-probabilities is the
identity (their logsumexp is 0), so the loss is right, but a softmax pass is wasted and the
model's output is easy to misuse (pair it with ``NLLLoss`` instead, as the model's author
probably meant). Typical code: a ``forward`` ending in ``F.log_softmax(x, dim=1)``, trained with
``nn.CrossEntropyLoss()`` in another file. Fix: pass the logits, or keep ``log_softmax`` and use
``NLLLoss``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from logmax.lint.events import LossCall
from logmax.lint.rules.base import Rule
from logmax.lint.values import LOG_PROBS, is_kind

if TYPE_CHECKING:
    from logmax.lint.context import RuleContext


RULE = Rule(
    "LMX201",
    "log-softmax-into-cross-entropy",
    "warning",
    "log_softmax output passed to cross-entropy, which applies log_softmax itself",
    "the result is right but log_softmax runs twice",
    "pass the logits, or keep log_softmax and use NLLLoss",
)


def on_loss(ctx: RuleContext, call: LossCall) -> None:
    if call.kind == "cross_entropy" and is_kind(call.input, LOG_PROBS):
        origin = ctx.describe(call.input, call.node, call.path)
        ctx.report(
            call.node,
            f"log_softmax output ({origin}) passed to {call.shown}, "
            "which applies log_softmax again",
        )
