"""What the analysis keeps while it runs: scopes of names, definitions met before they run,
and findings in a module's analysed text."""

from __future__ import annotations

import ast
from dataclasses import dataclass

from logmax.lint.finding import Edit
from logmax.lint.project import Module
from logmax.lint.values import ClassInfo, Path


@dataclass(frozen=True)
class RawFinding:
    """A finding in a module's analysed text: 1-based line, 1-based character column."""

    code: str
    line: int
    col: int
    end_line: int
    end_col: int
    message: str
    hint: str = ""
    edit: Edit | None = None


@dataclass(eq=False)
class Lazy:
    """A ``def`` or ``class`` of a body, known before the body runs; analysed on first use."""

    stmt: ast.stmt
    scope: object
    module: Module
    busy: bool = False


class Scope:
    """Names bound in one function (or module, or class body), with the enclosing scope behind."""

    def __init__(
        self,
        parent: Scope | None = None,
        cls: ClassInfo | None = None,
        self_name: str | None = None,
    ) -> None:
        self.env: dict[str, object] = {}
        self.parent = parent
        self.cls = cls
        self.self_name = self_name
        self.returns: list[tuple[object, Path]] = []
        self.function = False  # a def's own scope (not a comprehension's or a class body's)
        self.generator = False  # a yield was met: calling the function gives no tensor
        self.path: Path = ()  # the branch conditions that lead to the statement being run
        self.off = 0  # > 0 while running an inference-only arm: its values are not kept

    def owner(self, name: str) -> Scope | None:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.env:
                return scope
            scope = scope.parent
        return None

    def binds(self, name: str) -> bool:
        return self.owner(name) is not None


def reads_of(node: ast.AST) -> tuple[frozenset[str], frozenset[str]]:
    """The free names a function body loads and the ``self.x`` attributes it reads."""
    loaded: set[str] = set()
    stored: set[str] = set()
    attrs: set[str] = set()
    args = getattr(node, "args", None)
    if isinstance(args, ast.arguments):
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if arg is not None:
                stored.add(arg.arg)
    for child in ast.walk(node):
        if isinstance(child, ast.Name):
            (loaded if isinstance(child.ctx, ast.Load) else stored).add(child.id)
        elif isinstance(child, ast.Attribute) and isinstance(child.value, ast.Name):
            attrs.add(child.attr)
    return frozenset(loaded - stored), frozenset(attrs)
