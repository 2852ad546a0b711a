"""Import-aware names: what ``F.softmax`` or ``S`` means, from the imports of the file.

``import torch.nn.functional as F`` binds ``F -> torch.nn.functional``; ``from torch import nn``
binds ``nn -> torch.nn``; ``from torch.nn import Softmax as S`` binds ``S -> torch.nn.Softmax``;
``import torch.nn`` binds ``torch -> torch``. A dotted expression is then resolved by replacing
its first name: ``F.softmax -> torch.nn.functional.softmax``.

Imports are collected from the whole file (also inside functions): names are rarely rebound, and
a local variable of the same name still wins because the analysis looks in its own environment
first. ``torch``, ``numpy``, ``scipy`` and ``math`` used without any import (notebook fragments)
resolve to themselves. Relative and star imports bind nothing.

Aliases that mean the same function are folded to one spelling by :func:`canonical`
(``torch.nn.modules.loss.CrossEntropyLoss -> torch.nn.CrossEntropyLoss``).
"""

from __future__ import annotations

import ast

# Names a script may use without importing them (snippets, notebook fragments).
IMPLICIT_MODULES = ("torch", "numpy", "scipy", "math")

# Long module paths folded to the spelling users write; the linter's tables use the short one.
_FOLDS = (
    ("torch.nn.modules.activation.", "torch.nn."),
    ("torch.nn.modules.loss.", "torch.nn."),
    ("torch.nn.modules.container.", "torch.nn."),
    ("torch.nn.modules.module.", "torch.nn."),
    ("torch.nn.modules.", "torch.nn."),
    ("torch.special.", "torch."),
    ("torch.functional.", "torch."),
    ("torch._C._nn.", "torch.nn.functional."),
    ("scipy.special._logsumexp.", "scipy.special."),
    ("logmax.torch.functional.", "logmax.torch."),
    ("logmax.torch.modules.", "logmax.torch."),
    ("numpy.core.", "numpy."),
    ("numpy.ma.", "numpy."),
)


def canonical(qualified: str) -> str:
    """Fold an import path to the spelling the rule tables use."""
    for long, short in _FOLDS:
        if qualified.startswith(long):
            return short + qualified[len(long) :]
    return qualified


def base_name(node: ast.expr) -> str | None:
    """``F`` for ``F.softmax``, ``torch`` for ``torch.nn.functional.softmax``; None for calls."""
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


class ImportTable:
    """Local name -> qualified name, from every import statement of a module."""

    def __init__(self, tree: ast.AST) -> None:
        self.bindings: dict[str, str] = {}
        for node in _statements(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.bindings[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        self.bindings[top] = top
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    if alias.name != "*":
                        self.bindings[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def resolve(self, node: ast.expr) -> str | None:
        """The canonical qualified name of a ``Name`` or dotted ``Attribute`` chain, or None."""
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        base = self.bindings.get(node.id)
        if base is None:
            if node.id not in IMPLICIT_MODULES:
                return None
            base = node.id
        return canonical(".".join([base, *reversed(parts)]))

    def alias_of(self, module: str) -> str | None:
        """A local name bound to exactly ``module``: the module's own name if bound, else an alias
        (``import torch as th`` -> ``th``); None if the module is not imported."""
        if self.bindings.get(module) == module:
            return module
        for local, qualified in self.bindings.items():
            if qualified == module:
                return local
        return None


def _statements(tree: ast.AST):
    """Every statement of a module in source order, nested ones included, no expressions."""
    stack = list(reversed(getattr(tree, "body", [])))
    while stack:
        stmt = stack.pop()
        yield stmt
        children: list[ast.stmt] = []
        for name in ("body", "orelse", "finalbody"):
            children.extend(getattr(stmt, name, ()))
        for handler in getattr(stmt, "handlers", ()):
            children.extend(handler.body)
        for case in getattr(stmt, "cases", ()):
            children.extend(case.body)
        stack.extend(reversed(children))
