"""LMX101 softmax-into-cross-entropy: probabilities fed to a loss that applies log_softmax itself.

``CrossEntropyLoss`` computes ``-log_softmax(input)[target]``: it expects raw logits. Given
probabilities ``p`` it takes a softmax of numbers in [0, 1], which is nearly uniform, so the loss
barely moves and the gradient is squashed: the model stalls near chance and "the loss does not
decrease". Users add the softmax because the loss is named after probabilities, or because the
model also serves predictions. It is found through ``nn.Softmax`` layers, ``nn.Sequential``
models ending in one (also built with ``add_module``), ``forward`` methods returning a softmax
(``model(x)``, ``model.forward(x)``, ``self(x)``), ``self.layer`` attributes, local variables,
functions and classes of other modules of the project, criteria passed as arguments (or default
arguments) or set by a method, and either arm of an ``if`` (the message says which path). The
same mistake spelled ``nll_loss(log_softmax(softmax(x)))`` is reported at the ``log_softmax``.
A model that returns a softmax only when not training (``if self.training: return logits``) is
not reported. Fix: pass the logits and drop the softmax; keep ``softmax`` for reporting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from logmax.lint.events import LossCall
from logmax.lint.rules.base import Rule
from logmax.lint.values import PROBS, is_kind

if TYPE_CHECKING:
    from logmax.lint.context import RuleContext


RULE = Rule(
    "LMX101",
    "softmax-into-cross-entropy",
    "error",
    "softmax output passed to cross-entropy, which applies log_softmax itself",
    "cross_entropy(softmax(x)) takes a softmax of probabilities: the loss barely moves",
    "pass the raw logits and drop the softmax",
)


def on_loss(ctx: RuleContext, call: LossCall) -> None:
    if not is_kind(call.input, PROBS):
        return
    origin = ctx.describe(call.input, call.node, call.path)
    if call.kind == "cross_entropy":
        ctx.report(
            call.node,
            f"softmax output ({origin}) passed to {call.shown}, which applies log_softmax itself",
        )
    elif call.kind == "log_softmax":
        ctx.report(
            call.node,
            f"{call.shown} of a softmax output ({origin}): a softmax applied twice, the loss "
            "that follows is the cross-entropy of probabilities",
        )
