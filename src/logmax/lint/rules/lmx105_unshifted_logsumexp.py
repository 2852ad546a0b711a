"""LMX105 unshifted-logsumexp: ``log(sum(exp(x)))`` by hand, without ``x - max``; and its fix.

Same overflow as LMX104: ``exp`` overflows to ``inf`` above 88.7 in float32 (709.8 in float64)
and ``log(inf) = inf``; when every term underflows, ``log(0) = -inf``. Found in one expression,
across variables (``s = np.sum(np.exp(x)); np.log(s)``) and in accumulation loops
(``r += np.exp(v)`` then ``np.log(r)``). Fix: ``torch.logsumexp(x, dim=...)``,
``scipy.special.logsumexp(x, axis=...)`` or ``logmax.logsumexp(x, axis=...)``.

``--fix`` rewrites ``torch.log(torch.sum(torch.exp(x), dim=d))`` (and the ``.sum(d)``/``.log()``
method spellings) to ``torch.logsumexp(x, d)`` when the sum names its dim and takes no other
argument than ``keepdim``.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from logmax.lint.events import LogCall
from logmax.lint.finding import Edit
from logmax.lint.rules.base import Rule, torch_or_numpy
from logmax.lint.values import SUM_EXP, Tensor, is_kind

if TYPE_CHECKING:
    from logmax.lint.context import RuleContext


RULE = Rule(
    "LMX105",
    "unshifted-logsumexp",
    "error",
    "hand-written log(sum(exp(x))) without subtracting the max",
    "exp overflows to inf above 88.7 (float32); all-underflow gives log(0) = -inf",
    "use logsumexp (torch.logsumexp / scipy.special.logsumexp / logmax.logsumexp)",
)


def on_log(ctx: RuleContext, call: LogCall) -> None:
    value = call.value
    if not is_kind(value, SUM_EXP) or value.shifted:
        return
    assert isinstance(value, Tensor)
    hint = torch_or_numpy(
        value.origin,
        "torch.logsumexp(x, dim=...)",
        "scipy.special.logsumexp(x, axis=...) or logmax.logsumexp(x, axis=...)",
    )
    ctx.report(
        call.node,
        "hand-written log(sum(exp(x))) without subtracting the max: "
        "inf once x > 88.7 (float32), -inf when every exp underflows",
        hint,
        None if call.path else _logsumexp_edit(ctx, call),
    )


def _logsumexp_edit(ctx: RuleContext, call: LogCall) -> Edit | None:
    """``torch.log(torch.sum(torch.exp(x), dim=d))`` -> ``torch.logsumexp(x, dim=d)``."""
    node, arg = call.node, call.arg
    if call.log_name not in ("torch.log", "method") or not isinstance(arg, ast.Call):
        return None
    torch_alias = ctx.alias_of("torch")
    if isinstance(node.func, ast.Attribute) and ctx.resolve(node.func) == "torch.log":
        torch_alias = ast.unparse(node.func.value)  # the spelling of the torch.log replaced
    if torch_alias is None:
        return None
    sum_func = arg.func
    if ctx.resolve(sum_func) == "torch.sum" and arg.args:
        exp_call, rest = arg.args[0], arg.args[1:]
    elif isinstance(sum_func, ast.Attribute) and sum_func.attr == "sum":
        exp_call, rest = sum_func.value, arg.args
    else:
        return None
    keywords = {kw.arg for kw in arg.keywords}
    if not (rest or "dim" in keywords) or not keywords <= {"dim", "keepdim"}:
        return None
    if any(isinstance(a, ast.Starred) for a in rest) or len(rest) > 2:
        return None
    if not isinstance(exp_call, ast.Call) or exp_call.keywords:
        return None
    if ctx.resolve(exp_call.func) == "torch.exp" and len(exp_call.args) == 1:
        exponent = exp_call.args[0]
    elif (
        isinstance(exp_call.func, ast.Attribute)
        and exp_call.func.attr == "exp"
        and not exp_call.args
        and ctx.resolve(exp_call.func) is None
    ):
        exponent = exp_call.func.value
    else:
        return None
    pieces = [ctx.segment(exponent), *(ctx.segment(a) for a in rest)]
    pieces += [f"{kw.arg}={ctx.segment(kw.value)}" for kw in arg.keywords]
    return ctx.edit(node, f"{torch_alias}.logsumexp({', '.join(pieces)})")
