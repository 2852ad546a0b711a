"""LMX103 log-of-softmax: ``log(softmax(x))`` in any spelling, and its ``--fix``.

``softmax`` rounds small probabilities to 0 (below about 1e-38 in float32, i.e. a logit gap of
~87), and ``log(0) = -inf``; its gradient is NaN. ``log(softmax(1000 * x))`` gives ``-inf``
where ``log_softmax`` gives ``-2000``. ``log_softmax`` computes ``(x - m) - log(sum exp(x - m))``
directly. Spellings: ``torch.log``/``np.log``/``math.log``/``.log()`` of ``torch.softmax``,
``F.softmax``, ``.softmax()``, ``nn.Softmax()(x)``, ``scipy.special.softmax``,
``logmax.softmax``, of a hand-written softmax, of a variable or a model output holding one, and
``log(softmax(x) + eps)`` or of a clamped softmax (which biases the result instead of failing).
Fix: ``F.log_softmax(x, dim=...)``, ``torch.log_softmax``, ``x.log_softmax(dim)``,
``nn.LogSoftmax``, ``scipy.special.log_softmax(x, axis=...)``, ``logmax.log_softmax``.

``--fix`` rewrites ``log(M.softmax(args))`` and ``M.softmax(args).log()`` to
``M.log_softmax(args)`` (same arguments: the two functions pick the same default dim) when the
log and the softmax come from the same library (torch with torch, ``np.log`` with SciPy or NumPy
logmax, ``jnp.log`` with ``jax.nn``: ``np.log`` of a torch softmax returns a NumPy array), and
``log(nn.Softmax(d)(x))`` to ``nn.LogSoftmax(d)(x)``; never the ``+ eps`` form.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from logmax.lint.events import LogCall
from logmax.lint.finding import Edit
from logmax.lint.rules.base import Rule
from logmax.lint.values import LOG_FAMILY, PROBS, SOFTMAX_FUNCS, SOFTMAX_LAYERS, Tensor, is_kind

if TYPE_CHECKING:
    from logmax.lint.context import RuleContext


RULE = Rule(
    "LMX103",
    "log-of-softmax",
    "error",
    "log of a softmax: -inf once a probability rounds to 0",
    "softmax underflows to 0 for logit gaps above ~87 (float32); log(0) = -inf, NaN grads",
    "use log_softmax",
)


def on_log(ctx: RuleContext, call: LogCall) -> None:
    value = call.value
    if not is_kind(value, PROBS):
        return
    origin = ctx.describe(value, call.node, call.path)
    if value.eps:
        message = (
            f"log of a softmax with an epsilon or clamp ({origin}): "
            "biased where probabilities underflow"
        )
        edit = None
    else:
        message = f"log of a softmax ({origin}): -inf once a probability rounds to 0"
        edit = None if call.path else _log_softmax_edit(ctx, call, value)
    ctx.report(call.node, message, _hint(value), edit)


def _hint(value: Tensor) -> str:
    """The log_softmax spelling that replaces the softmax that made ``value``."""
    if value.sibling:
        return f"use {value.sibling} with the same arguments"
    return "use log_softmax: F.log_softmax(x, dim) / scipy.special.log_softmax / logmax.log_softmax"


def _log_softmax_edit(ctx: RuleContext, call: LogCall, value: Tensor) -> Edit | None:
    """``log(M.softmax(a))`` / ``M.softmax(a).log()`` -> ``M.log_softmax(a)``; layers too."""
    arg = call.arg
    if not isinstance(arg, ast.Call):
        return None
    family = LOG_FAMILY.get("torch.log" if call.log_name == "method" else call.log_name)
    if family is None:
        return None
    func = arg.func
    inner = ctx.segment(arg)
    head = ctx.segment(func)
    if not inner.startswith(head) or not isinstance(func, ast.Attribute | ast.Call):
        return None
    if isinstance(func, ast.Call) and isinstance(func.func, ast.Attribute):
        # nn.Softmax(dim=1)(x) -> nn.LogSoftmax(dim=1)(x)
        name = ctx.resolve(func.func)
        if name not in SOFTMAX_LAYERS or name not in family:
            return None
        layer = ctx.segment(func.func)
        return ctx.edit(call.node, layer[: -len("Softmax")] + "LogSoftmax" + inner[len(layer) :])
    if not isinstance(func, ast.Attribute) or func.attr != "softmax":
        return None
    name = ctx.resolve(func)
    if name is None:
        if value.origin != ".softmax()" or family is not LOG_FAMILY["torch.log"]:
            return None  # only x.softmax(d), the torch Tensor method
    elif name not in SOFTMAX_FUNCS or name not in family:
        return None
    return ctx.edit(call.node, head[: -len("softmax")] + "log_softmax" + inner[len(head) :])
