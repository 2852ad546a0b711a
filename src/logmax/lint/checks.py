"""The rule checks, called by the analysis when it evaluates a call (see :mod:`.analysis`).

Each check gets the values of the call's arguments (a softmax output, a log_softmax output, an
unshifted ``sum(exp(x))``...) and reports the rule whose pattern they make; the rules themselves,
with why and what to write instead, are in :mod:`logmax.lint.rules`.

- losses (:meth:`RuleChecks.check_loss`): LMX101 softmax into cross-entropy, LMX201 log_softmax
  into cross-entropy, LMX102 probabilities into NLL, LMX106 regression losses on a softmax;
- logs (:meth:`RuleChecks.call_log`): LMX103 ``log(softmax)``, LMX105 ``log(sum(exp(x)))``;
- LMX202 implicit softmax dim (:meth:`RuleChecks.check_dim`);
- LMX107 hand-written cross-entropy (:meth:`RuleChecks.check_manual_cross_entropy`).
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from logmax.lint.values import (
    IMPLICIT_DIM,
    LOG_FUNCS,
    LOG_PROBS,
    MEAN_FUNCS,
    PROBS,
    SUM_EXP,
    SUM_FUNCS,
    Tensor,
)

if TYPE_CHECKING:
    from logmax.lint.analysis import Scope


def _log_hint(value: Tensor) -> str:
    """The log_softmax spelling that replaces the softmax that made ``value``."""
    if value.sibling:
        return f"use {value.sibling} with the same arguments"
    return "use log_softmax: F.log_softmax(x, dim) / scipy.special.log_softmax / logmax.log_softmax"


def family_hint(exp_origin: str, torch_form: str, numpy_form: str) -> str:
    """The torch spelling for a torch ``exp``, else the NumPy/SciPy one."""
    if exp_origin.startswith("torch") or exp_origin == ".exp()":
        return f"use {torch_form}"
    return f"use {numpy_form}"


class RuleChecks:
    """Mixed into :class:`~logmax.lint.analysis.Analyzer`, whose evaluation state it uses."""

    def call_log(self, node: ast.Call, arg: ast.expr, value: object, name: str) -> object:
        if not isinstance(value, Tensor):
            return None
        if value.kind == PROBS:
            edit = None if value.eps else self.log_softmax_edit(node, arg, name, value)
            if value.eps:
                message = (
                    f"log of a softmax with an epsilon or clamp ({self.describe(value, node)}): "
                    "biased where probabilities underflow"
                )
            else:
                message = (
                    f"log of a softmax ({self.describe(value, node)}): "
                    "-inf once a probability rounds to 0"
                )
            self.report("LMX103", node, message, _log_hint(value), edit)
            return Tensor(LOG_PROBS, f"log of {value.origin}", value.line)
        if value.kind == SUM_EXP and not value.shifted:
            hint = family_hint(
                value.origin,
                "torch.logsumexp(x, dim=...)",
                "scipy.special.logsumexp(x, axis=...) or logmax.logsumexp(x, axis=...)",
            )
            self.report(
                "LMX105",
                node,
                "hand-written log(sum(exp(x))) without subtracting the max: "
                "inf once x > 88.7 (float32), -inf when every exp underflows",
                hint,
                self.logsumexp_edit(node, arg, name),
            )
        return None

    def check_dim(self, node: ast.Call, name: str, shown: str) -> None:
        position, keyword = IMPLICIT_DIM[name]
        if any(isinstance(a, ast.Starred) for a in node.args) or any(
            kw.arg is None for kw in node.keywords
        ):
            return
        given = next((kw.value for kw in node.keywords if kw.arg == keyword), None)
        if given is None and len(node.args) > position:
            given = node.args[position]
        if given is not None and not (isinstance(given, ast.Constant) and given.value is None):
            return
        if name.startswith("scipy"):
            message = f"{shown} without axis normalizes over all elements, not per row"
            hint = f"name the axis: {shown}(x, axis=-1)"
        else:
            message = f"{shown} without dim: the implicit dim depends on the input's ndim"
            hint = f"name the dim: {shown}(..., dim=-1) or the class dim"
        self.report("LMX202", node, message, hint)

    def check_loss(self, node: ast.Call, kind: str, shown: str, args: list, kwargs: dict) -> None:
        first = args[0] if args else kwargs.get("input")
        if kind == "regression":
            second = args[1] if len(args) > 1 else kwargs.get("target")
            for value in (first, second):
                if isinstance(value, Tensor) and value.kind == PROBS:
                    self.report(
                        "LMX106",
                        node,
                        f"{shown} on softmax output ({self.describe(value, node)}): the gradient "
                        "vanishes when the softmax saturates",
                    )
                    return
            return
        if not isinstance(first, Tensor):
            return
        if kind == "cross_entropy" and first.kind == PROBS:
            self.report(
                "LMX101",
                node,
                f"softmax output ({self.describe(first, node)}) passed to {shown}, "
                "which applies log_softmax itself",
            )
        elif kind == "cross_entropy" and first.kind == LOG_PROBS:
            self.report(
                "LMX201",
                node,
                f"log_softmax output ({self.describe(first, node)}) passed to {shown}, "
                "which applies log_softmax again",
            )
        elif kind == "nll" and first.kind == PROBS:
            self.report(
                "LMX102",
                node,
                f"probabilities ({self.describe(first, node)}) passed to {shown}, "
                "which expects log-probabilities",
            )

    def check_manual_cross_entropy(
        self, arg: ast.expr, node: ast.expr, scope: Scope, negated: bool = False
    ) -> None:
        """``-(y * log(p)).sum()``, ``-np.mean(y * np.log(p))``, ``torch.sum(-y * log(p))``.

        A cross-entropy is a negated sum of ``y * log(p)``; without the minus sign (a weighted
        log-likelihood such as ``sum(w * log(x))``) it is reported only when ``p`` is known to
        be a softmax output.
        """
        while isinstance(arg, ast.UnaryOp) and isinstance(arg.op, ast.USub):
            arg, negated = arg.operand, not negated
        if not (isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Mult)):
            return
        for other, log_call in ((arg.left, arg.right), (arg.right, arg.left)):
            inner = self.log_argument(log_call, scope)
            if inner is None:
                continue
            if isinstance(inner, ast.BinOp) and not (
                isinstance(inner.op, ast.Add) and isinstance(inner.right, ast.Constant)
            ):
                continue  # log(p / q): a divergence, not a cross-entropy
            if ast.dump(inner) == ast.dump(other):
                continue  # p * log(p): an entropy
            value = self.eval(inner, scope)
            if isinstance(value, Tensor) and value.kind == LOG_PROBS:
                continue
            minus = isinstance(other, ast.UnaryOp) and isinstance(other.op, ast.USub)
            if not (negated ^ minus) and not (isinstance(value, Tensor) and value.kind == PROBS):
                continue
            self.report(
                "LMX107",
                node,
                "hand-written cross-entropy sum(y * log(p)) on probabilities: "
                "log(0) = -inf and 0 * -inf = NaN",
            )
            self.suppress("LMX103", log_call)  # LMX107 says it, with the better fix
            return

    def check_negated_reduction(self, node: ast.expr, scope: Scope) -> None:
        """``-torch.sum(y * log(p))``, ``-(y * log(p)).sum(1).mean()``: find the inner sum."""
        while isinstance(node, ast.Call):
            func = node.func
            name = self.qualified(func, scope)
            if (
                name in SUM_FUNCS
                or name in MEAN_FUNCS
                or (isinstance(func, ast.Name) and func.id == "sum" and not scope.binds("sum"))
            ):
                arg = node.args[0] if node.args else None
            elif name is None and isinstance(func, ast.Attribute) and func.attr in ("sum", "mean"):
                arg = func.value
            else:
                return
            if isinstance(arg, ast.GeneratorExp | ast.ListComp):
                arg = arg.elt
            if isinstance(arg, ast.BinOp):
                self.check_manual_cross_entropy(arg, node, scope, negated=True)
                return
            node = arg

    def log_argument(self, node: ast.expr, scope: Scope) -> ast.expr | None:
        if not isinstance(node, ast.Call):
            return None
        if self.qualified(node.func, scope) in LOG_FUNCS and len(node.args) == 1:
            return node.args[0]
        if (
            isinstance(node.func, ast.Attribute)
            and node.func.attr == "log"
            and not node.args
            and self.qualified(node.func, scope) is None
        ):
            return node.func.value
        return None
