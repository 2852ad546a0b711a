"""The narrow view of the analysis that a rule gets: report, describe, look up, edit.

A rule never sees the analysis itself. It gets a :class:`RuleContext` bound to its code, for the
module being analysed, and uses only what is here: report a finding (with an optional ``--fix``
edit), describe where a value was made, look up the value or qualified name of a node, and cut
the source text of a node.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from logmax.lint.finding import Edit
from logmax.lint.values import Path, Tensor

if TYPE_CHECKING:
    from logmax.lint.analysis import Analysis
    from logmax.lint.rules.base import Rule


class RuleContext:
    """What one rule may do while the analysis runs (one context per rule and analysis)."""

    __slots__ = ("_analysis", "rule")

    def __init__(self, analysis: Analysis, rule: Rule) -> None:
        self._analysis = analysis
        self.rule = rule

    def report(
        self,
        node: ast.AST,
        message: str,
        hint: str = "",
        edit: Edit | None = None,
        covers: tuple[tuple[str, ast.AST], ...] = (),
    ) -> None:
        """Report this rule at ``node``; ``covers`` names findings this one says better
        (``(code, node)``), which are dropped unless they carry an edit."""
        self._analysis.report(self.rule.code, node, message, hint, edit)
        here = self._analysis.span(node)[:2]
        for code, other in covers:
            if code != self.rule.code or self._analysis.span(other)[:2] != here:
                self._analysis.suppress(code, other)

    def describe(self, value: Tensor, node: ast.AST | None = None, path: Path = ()) -> str:
        """``F.softmax, line 12`` (just ``F.softmax`` when made on the line of ``node``), with
        the place's file when it was made in another module, and the path that leads there."""
        return self._analysis.describe(value, node, path)

    def value_of(self, node: ast.AST) -> object:
        """The value the analysis gave ``node`` (an expression already evaluated), or None."""
        return self._analysis.value_of(node)

    def qualified(self, node: ast.expr) -> str | None:
        """``torch.nn.functional.softmax`` for ``F.softmax``, unless a local name shadows it."""
        return self._analysis.qualified_here(node)

    def is_builtin(self, name: str) -> bool:
        """Whether ``name`` (``sum``) is the builtin here, not a local or imported name."""
        return self._analysis.is_builtin(name)

    def resolve(self, node: ast.expr) -> str | None:
        """The import-qualified name of a dotted name, ignoring local shadowing (for fixes)."""
        return self._analysis.module.imports.resolve(node)

    def alias_of(self, module: str) -> str | None:
        """The local name bound to ``module`` by an import (``th`` for ``import torch as th``)."""
        return self._analysis.module.imports.alias_of(module)

    def segment(self, node: ast.AST) -> str:
        """The source text of ``node``."""
        return ast.get_source_segment(self._analysis.module.text, node) or ""

    def edit(self, node: ast.AST, text: str) -> Edit | None:
        """An edit replacing ``node``'s text by ``text``; None if a comment inside would be lost."""
        original = self.segment(node)
        if not original or "#" in original:
            return None
        line, col, end_line, end_col = self._analysis.span(node)
        return Edit(line, col, end_line, end_col, text)
