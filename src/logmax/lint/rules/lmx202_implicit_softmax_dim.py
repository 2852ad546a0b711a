"""LMX202 implicit-softmax-dim: ``softmax``/``log_softmax``/``nn.Softmax`` without a dim.

``F.softmax(x)`` without ``dim`` picks dim 0 for 0-, 1- and 3-dimensional input and dim 1
otherwise (deprecated; torch warns "Implicit dimension choice for softmax has been deprecated"),
so a batch of one image and a batch of vectors normalize along different axes.
``scipy.special.softmax(x)`` without ``axis`` normalizes over all elements of a batch. The dim
may be given by position, as ``dim=``, or as ``axis=`` (torch takes ``axis`` as another name for
``dim``); ``dim=None`` is implicit. Fix: name it: ``F.softmax(x, dim=-1)``,
``nn.Softmax(dim=1)``, ``scipy.special.softmax(x, axis=-1)``.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from logmax.lint.events import SoftmaxCall
from logmax.lint.rules.base import Rule

if TYPE_CHECKING:
    from logmax.lint.context import RuleContext


RULE = Rule(
    "LMX202",
    "implicit-softmax-dim",
    "warning",
    "softmax without an explicit dim",
    "the implicit dim depends on the number of dimensions of the input",
    "name the dim",
)


def on_softmax_call(ctx: RuleContext, call: SoftmaxCall) -> None:
    node = call.node
    if any(isinstance(a, ast.Starred) for a in node.args) or any(
        kw.arg is None for kw in node.keywords
    ):
        return  # *args / **kwargs may carry it
    given = next((kw.value for kw in node.keywords if kw.arg in call.keywords), None)
    if given is None and len(node.args) > call.position:
        given = node.args[call.position]
    if given is not None and not (isinstance(given, ast.Constant) and given.value is None):
        return
    if call.name.startswith("scipy"):
        message = f"{call.shown} without axis normalizes over all elements, not per row"
        hint = f"name the axis: {call.shown}(x, axis=-1)"
    else:
        message = f"{call.shown} without dim: the implicit dim depends on the input's ndim"
        hint = f"name the dim: {call.shown}(..., dim=-1) or the class dim"
    ctx.report(node, message, hint)
