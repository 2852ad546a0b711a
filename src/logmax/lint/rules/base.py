"""What every rule module has: a :class:`Rule` (code, name, severity and what to tell the user).

A rule module (``lmx101_softmax_into_cross_entropy.py``...) holds one rule whole, as torchfix's
``visitors/`` do: its :data:`RULE`, a docstring saying what it finds and why that is wrong, the
hook functions that detect it and the ``--fix`` edit where there is one. Hooks are called by the
analysis with a :class:`~logmax.lint.context.RuleContext` and one event of
:mod:`logmax.lint.events`:

``on_loss(ctx, LossCall)``          a loss (or ``log_softmax``) receives a value
``on_log(ctx, LogCall)``            ``log`` of a value
``on_division(ctx, Division)``      ``a / b`` (and ``torch.div``, ``np.divide``, ``a /= b``)
``on_softmax_call(ctx, SoftmaxCall)``  a call of a softmax function or layer
``on_reduction(ctx, Reduction)``    ``sum``/``mean`` of an expression, or its negation
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """One lint rule: its code, a short name, severity, and what to tell the user."""

    code: str
    name: str
    severity: str  # "error" | "warning"
    summary: str
    why: str
    fix: str


def torch_or_numpy(exp_origin: str, torch_form: str, numpy_form: str) -> str:
    """The hint for a hand-written formula: the torch spelling for a torch ``exp``, else NumPy's."""
    if exp_origin.startswith("torch") or exp_origin == ".exp()":
        return f"use {torch_form}"
    return f"use {numpy_form}"
