"""LMX107 manual-cross-entropy: ``-(y * log(p)).sum()`` written by hand on probabilities.

``log`` of a probability that rounded to 0 is ``-inf`` and ``0 * -inf`` is NaN, so one confident
row makes the whole batch loss NaN; it also computes the softmax and the log separately (a
notebook's ``CrossEntropy(Q, P) = -sum(P * log(Q)) / batch``). Spellings: ``-(y * log(p)).sum()``,
``-np.mean(y * np.log(p))``, ``torch.sum(-y * p.log())``, ``np.negative(np.sum(...))``,
``np.multiply``, ``-np.dot(y, np.log(p))``, and loops accumulating ``loss -= y[i] * log(p[i])``.
Without a minus sign (a weighted log-likelihood ``sum(w * log(x))``) it is reported only when
``p`` is known to be a softmax output. ``p * log(p)`` (an entropy), ``log(p / q)`` (a
divergence) and log-probabilities (``-(y * log_p).sum()``) are not reported. Fix:
``F.cross_entropy(logits, target)`` (class indices or probabilities as target) or
``logmax.cross_entropy(logits, target)``.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from logmax.lint.events import Reduction
from logmax.lint.rules.base import Rule
from logmax.lint.values import (
    DOT_FUNCS,
    LOG_FUNCS,
    LOG_PROBS,
    MEAN_FUNCS,
    MUL_FUNCS,
    NEG_FUNCS,
    PROBS,
    SUM_FUNCS,
    is_kind,
)

if TYPE_CHECKING:
    from logmax.lint.context import RuleContext


RULE = Rule(
    "LMX107",
    "manual-cross-entropy",
    "warning",
    "hand-written cross-entropy -(y * log(p)).sum() on probabilities",
    "log(0) = -inf and 0 * -inf = NaN: one confident row makes the loss NaN",
    "use F.cross_entropy(logits, target) or logmax.cross_entropy(logits, target)",
)

_MESSAGE = (
    "hand-written cross-entropy sum(y * log(p)) on probabilities: log(0) = -inf and 0 * -inf = NaN"
)


def on_reduction(ctx: RuleContext, reduction: Reduction) -> None:
    if reduction.negated and not reduction.summed:
        _negated(ctx, reduction.node, reduction.arg)
    else:
        _product(ctx, reduction.arg, reduction.node, negated=reduction.negated)


def _negated(ctx: RuleContext, node: ast.AST, arg: ast.expr) -> None:
    """``-torch.sum(y * log(p))``, ``-(y * log(p)).sum(1).mean()``: find the inner product."""
    reduced: list[ast.AST] = []  # the sums passed; a negated product alone is no cross-entropy
    while True:
        if isinstance(arg, ast.BinOp | ast.UnaryOp):
            if reduced:  # reported at the innermost sum, as it is found without the minus
                _product(ctx, arg, reduced[-1], negated=True, sums=reduced[:-1])
            return
        if not isinstance(arg, ast.Call):
            return
        func = arg.func
        name = ctx.qualified(func)
        if name in DOT_FUNCS and len(arg.args) == 2:
            _pair(ctx, arg.args[0], arg.args[1], arg, negated=True, sums=reduced)
            return
        if name in MUL_FUNCS:
            if reduced:
                _product(ctx, arg, reduced[-1], negated=True, sums=reduced[:-1])
            return
        if (
            name in SUM_FUNCS
            or name in MEAN_FUNCS
            or (isinstance(func, ast.Name) and func.id == "sum" and ctx.is_builtin("sum"))
        ):
            inner = arg.args[0] if arg.args else None
        elif name is None and isinstance(func, ast.Attribute) and func.attr in ("sum", "mean"):
            inner = func.value
        else:
            return
        if isinstance(inner, ast.GeneratorExp | ast.ListComp):
            inner = inner.elt
        if inner is None:
            return
        reduced.append(arg)
        arg = inner


def _product(
    ctx: RuleContext, arg: ast.expr, node: ast.AST, negated: bool, sums: list | None = None
) -> None:
    while True:
        if isinstance(arg, ast.UnaryOp) and isinstance(arg.op, ast.USub):
            arg, negated = arg.operand, not negated
        elif isinstance(arg, ast.Call) and ctx.qualified(arg.func) in NEG_FUNCS and arg.args:
            arg, negated = arg.args[0], not negated
        else:
            break
    if isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Mult):
        _pair(ctx, arg.left, arg.right, node, negated, sums)
    elif isinstance(arg, ast.Call) and ctx.qualified(arg.func) in MUL_FUNCS and len(arg.args) == 2:
        _pair(ctx, arg.args[0], arg.args[1], node, negated, sums)


def _pair(
    ctx: RuleContext,
    a: ast.expr,
    b: ast.expr,
    node: ast.AST,
    negated: bool,
    sums: list | None = None,
) -> None:
    """Report ``node`` if one factor is ``log(p)`` of probabilities; the ``sums`` inside it
    (met before, not negated there) are said by this finding."""
    for other, log_call in ((a, b), (b, a)):
        inner = _log_argument(ctx, log_call)
        if inner is None:
            continue
        base = _without_epsilon(inner)
        if isinstance(base, ast.BinOp):
            continue  # log(p / q): a divergence, not a cross-entropy
        minus = isinstance(other, ast.UnaryOp) and isinstance(other.op, ast.USub)
        if ast.dump(base) == ast.dump(other.operand if minus else other):  # type: ignore[attr-defined]
            continue  # p * log(p + eps): an entropy
        value = ctx.value_of(inner)
        if is_kind(value, LOG_PROBS):
            continue
        if not is_kind(value, PROBS) and not (negated ^ minus and _probability_name(base)):
            continue  # -(order * log(diag)).sum() is a log-determinant, not a loss
        # LMX107 says it, with the better fix; a fixable LMX103 on the log is kept
        covers = [("LMX103", log_call), *(("LMX107", call) for call in sums or ())]
        ctx.report(node, _MESSAGE, covers=tuple(covers))
        return


_PROBABILITY_WORDS = ("prob", "pred", "softmax", "hat", "dist", "output", "out")


def _without_epsilon(node: ast.expr) -> ast.expr:
    """``p`` for ``p + 1e-8`` or ``p + eps``."""
    if (
        isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Add)
        and isinstance(node.right, ast.Constant | ast.Name | ast.Attribute)
    ):
        return node.left
    return node


def _probability_name(node: ast.expr) -> bool:
    """Whether the log's argument is named as probabilities are (``p``, ``q``, ``probs``,
    ``y_pred``, ``softmax_out``...): without a softmax in sight, the name is the evidence."""
    while isinstance(node, ast.Subscript | ast.Call):
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Attribute):
                return False
            node = node.func.value  # p.float(), p.clamp(...)
        else:
            node = node.value
    name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", "")
    lowered = name.lower()
    return lowered in ("p", "q") or any(word in lowered for word in _PROBABILITY_WORDS)


def _log_argument(ctx: RuleContext, node: ast.expr) -> ast.expr | None:
    if not isinstance(node, ast.Call):
        return None
    if ctx.qualified(node.func) in LOG_FUNCS and len(node.args) == 1:
        return node.args[0]
    if (
        isinstance(node.func, ast.Attribute)
        and node.func.attr == "log"
        and not node.args
        and ctx.qualified(node.func) is None
    ):
        return node.func.value
    return None
