"""``--fix`` rewrites: built where a finding is made, applied by :mod:`logmax.lint.engine`.

An :class:`~logmax.lint.finding.Edit` replaces the text of one call with the rewritten call. It is
built only for spellings whose rewrite keeps the meaning:

- ``log(M.softmax(args))`` / ``M.softmax(args).log()`` -> ``M.log_softmax(args)`` when the log and
  the softmax come from the same library (torch with torch, ``np.log`` with SciPy or NumPy
  logmax, ``jnp.log`` with ``jax.nn``); ``x.softmax(d).log()`` -> ``x.log_softmax(d)``;
- ``torch.log(nn.Softmax(d)(x))`` -> ``nn.LogSoftmax(d)(x)``;
- ``torch.log(torch.sum(torch.exp(x), dim=d))`` and its method spellings ->
  ``torch.logsumexp(x, dim=d)``, when the sum names a dim and takes only ``keepdim`` besides.

The original text is kept everywhere else; a call with a comment inside is never rewritten.
"""

from __future__ import annotations

import ast

from logmax.lint.finding import Edit
from logmax.lint.names import base_name
from logmax.lint.values import LOG_FAMILY, SOFTMAX_FUNCS, SOFTMAX_LAYERS, Tensor


class Fixes:
    """Mixed into :class:`~logmax.lint.analysis.Analyzer` (uses its text, spans and imports)."""

    def _edit(self, node: ast.AST, text: str) -> Edit | None:
        original = self.segment(node)
        if not original or "#" in original:
            return None  # a comment inside would be lost
        line, col, end_line, end_col = self._span(node)
        return Edit(line, col, end_line, end_col, text)

    def log_softmax_edit(
        self, node: ast.Call, arg: ast.expr, log_name: str, value: Tensor
    ) -> Edit | None:
        """``log(M.softmax(a))`` / ``M.softmax(a).log()`` -> ``M.log_softmax(a)``; layers too."""
        if not isinstance(arg, ast.Call):
            return None
        family = LOG_FAMILY.get("torch.log" if log_name == "method" else log_name)
        if family is None:
            return None
        func = arg.func
        inner = self.segment(arg)
        head = self.segment(func)
        if not inner.startswith(head) or not isinstance(func, ast.Attribute | ast.Call):
            return None
        if isinstance(func, ast.Call) and isinstance(func.func, ast.Attribute):
            # nn.Softmax(dim=1)(x) -> nn.LogSoftmax(dim=1)(x)
            name = self.imports.resolve(func.func)
            if name not in SOFTMAX_LAYERS or name not in family:
                return None
            layer = self.segment(func.func)
            return self._edit(node, layer[: -len("Softmax")] + "LogSoftmax" + inner[len(layer) :])
        if not isinstance(func, ast.Attribute) or func.attr != "softmax":
            return None
        name = self.imports.resolve(func)
        if name is None:
            if value.origin != ".softmax()" or family is not LOG_FAMILY["torch.log"]:
                return None  # only x.softmax(d), the torch Tensor method
        elif name not in SOFTMAX_FUNCS or name not in family:
            return None
        return self._edit(node, head[: -len("softmax")] + "log_softmax" + inner[len(head) :])

    def logsumexp_edit(self, node: ast.Call, arg: ast.expr, log_name: str) -> Edit | None:
        """``torch.log(torch.sum(torch.exp(x), dim=d))`` -> ``torch.logsumexp(x, dim=d)``."""
        if log_name not in ("torch.log", "method") or not isinstance(arg, ast.Call):
            return None
        torch_alias = self.imports.alias_of("torch")
        if isinstance(node.func, ast.Attribute) and self.imports.resolve(node.func) == "torch.log":
            torch_alias = base_name(node.func)  # the spelling of the torch.log being replaced
        if torch_alias is None:
            return None
        sum_func = arg.func
        if self.imports.resolve(sum_func) == "torch.sum" and arg.args:
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
        if not isinstance(exp_call, ast.Call):
            return None
        if self.imports.resolve(exp_call.func) == "torch.exp" and len(exp_call.args) == 1:
            exponent = exp_call.args[0]
        elif (
            isinstance(exp_call.func, ast.Attribute)
            and exp_call.func.attr == "exp"
            and not exp_call.args
            and self.imports.resolve(exp_call.func) is None
        ):
            exponent = exp_call.func.value
        else:
            return None
        if exp_call.keywords:
            return None
        pieces = [self.segment(exponent), *(self.segment(a) for a in rest)]
        pieces += [f"{kw.arg}={self.segment(kw.value)}" for kw in arg.keywords]
        return self._edit(node, f"{torch_alias}.logsumexp({', '.join(pieces)})")
