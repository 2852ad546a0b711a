"""LMX104 unshifted-softmax: ``exp(x) / sum(exp(x))`` written by hand without ``x - max``.

``exp(x)`` overflows to ``inf`` for x > 88.7 in float32 (709.8 in float64) and ``inf/inf`` is
NaN; if every ``x`` is very negative, the sum underflows to 0 and ``0/0`` is NaN. Subtracting the
row maximum first makes the largest term exactly 1. Any subtraction in the argument of ``exp``
(``x - x.max(...)``, ``x - m``) counts as a shift; numerator and denominator are matched by what
they exponentiate, under any names (``e = np.exp(x); s = e.sum(); e / s``), in any spelling
(``torch.div``, ``np.divide``, ``e /= e.sum()``, a list comprehension over ``math.exp``). A
shift of the numerator alone (``exp(x - m) / sum(exp(x))``) still overflows in the denominator
and is reported. Fix: ``torch.softmax(x, dim=...)``, ``scipy.special.softmax(x, axis=...)`` or
``logmax.softmax(x, axis=...)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from logmax.lint.events import Division
from logmax.lint.rules.base import Rule, torch_or_numpy
from logmax.lint.values import EXP, SUM_EXP, Tensor

if TYPE_CHECKING:
    from logmax.lint.context import RuleContext


RULE = Rule(
    "LMX104",
    "unshifted-softmax",
    "error",
    "hand-written softmax exp(x)/sum(exp(x)) without subtracting the max",
    "exp overflows to inf above 88.7 (float32) and inf/inf = NaN",
    "use softmax (torch.softmax / scipy.special.softmax / logmax.softmax)",
)


def on_division(ctx: RuleContext, division: Division) -> None:
    top, bottom = division.numerator, division.denominator
    if not (isinstance(top, Tensor) and isinstance(bottom, Tensor)):
        return
    if top.kind != EXP or bottom.kind != SUM_EXP or top.key != bottom.key:
        return
    if top.shifted and bottom.shifted:
        return
    hint = torch_or_numpy(
        top.origin,
        "torch.softmax(x, dim=...)",
        "scipy.special.softmax(x, axis=...) or logmax.softmax(x, axis=...)",
    )
    if top.shifted:
        message = (
            "hand-written softmax exp(x - m) / sum(exp(x)): the denominator is not shifted, "
            "inf/inf = NaN once x > 88.7 (float32)"
        )
    else:
        message = (
            "hand-written softmax exp(x) / sum(exp(x)) without subtracting the max: "
            "inf/inf = NaN once x > 88.7 (float32)"
        )
    ctx.report(division.node, message, hint)
