"""The checker: walks a parsed module, following values through names, and reports.

How it works (see :mod:`logmax.lint.values` for the values):

1. Imports are read first (:class:`~logmax.lint.names.ImportTable`), so ``F.softmax``,
   ``torch.softmax`` and ``from torch.nn.functional import softmax as sm`` are the same function.
2. Statements run in order in an environment ``name -> value``. A ``def`` is analysed when it is
   met, with its parameters unknown; if every ``return`` gives a softmax, a call of it gives one.
   A call whose arguments are known (a softmax output, a model, a loss) runs the body again with
   them bound, two calls deep. ``if``/``else`` branches are merged: a value survives only when
   both branches agree, so ``if training: return logits`` does not make a ``forward`` look like
   a softmax.
3. A class is analysed method by method: ``__init__`` first (``self.act = nn.Softmax(1)`` is
   remembered), then the other methods, then ``forward`` (its return value is what calling an
   instance gives), then the other methods again so that ``self(x)`` is known in them.
4. Each call is checked against the rules when it is evaluated; a finding is kept once per
   (code, place) even when its function is analysed twice.

Nothing is imported or executed; unknown things are ``None`` and never reported.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, replace

from logmax.lint.checks import RuleChecks, family_hint
from logmax.lint.finding import Edit, split_lines
from logmax.lint.fixes import Fixes
from logmax.lint.names import ImportTable, base_name
from logmax.lint.values import (
    CLAMP_FUNCS,
    CLAMP_METHODS,
    EXP,
    EXP_FUNCS,
    IMPLICIT_DIM,
    LOG_FUNCS,
    LOG_PROBS,
    LOG_SOFTMAX_FUNCS,
    LOG_SOFTMAX_LAYERS,
    LOGSUMEXP_FUNCS,
    LOSS_FUNCS,
    LOSS_LAYERS,
    MEAN_FUNCS,
    PROBS,
    SAME_VALUE_ATTRS,
    SAME_VALUE_FUNCS,
    SAME_VALUE_METHODS,
    SEQUENTIAL,
    SHIFTED,
    SOFTMAX_FUNCS,
    SOFTMAX_LAYERS,
    SUM_EXP,
    SUM_FUNCS,
    ClassInfo,
    Function,
    Instance,
    Loss,
    Producer,
    Tensor,
    Tup,
    join,
)

# How deep calls are followed with known arguments: train(model) -> step(model) -> loss.
MAX_CALL_DEPTH = 2


def _interesting(value: object) -> bool:
    """Whether an argument is worth analysing a function again for."""
    if isinstance(value, Tensor):
        return value.kind in (PROBS, LOG_PROBS)
    if isinstance(value, Producer):
        return isinstance(value.returns, Tensor | Tup)
    if isinstance(value, Loss):
        return True
    if isinstance(value, Instance):
        return value.cls.forward is not None
    return False


@dataclass(frozen=True)
class RawFinding:
    """A finding in the analysed text: 1-based line, 1-based character column."""

    code: str
    line: int
    col: int
    end_line: int
    end_col: int
    message: str
    hint: str = ""
    edit: Edit | None = None


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
        self.returns: list[object] = []
        self.function = False  # a def's own scope (not a comprehension's or a class body's)
        self.generator = False  # a yield was met: calling the function gives no tensor

    def binds(self, name: str) -> bool:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.env:
                return True
            scope = scope.parent
        return False

    def lookup(self, name: str) -> object:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.env:
                return scope.env[name]
            scope = scope.parent
        return None


def _sibling(shown: str, name: str) -> str:
    """``F.softmax`` -> ``F.log_softmax``; a bare imported ``softmax`` -> its full sibling name."""
    if name in SOFTMAX_LAYERS:
        return shown[: -len("Softmax")] + "LogSoftmax" if shown.endswith("Softmax") else name
    if "." in shown and shown.endswith("softmax"):
        return shown[: -len("softmax")] + "log_softmax"
    return SOFTMAX_FUNCS.get(name, "")


class Analyzer(RuleChecks, Fixes):
    """Run every rule over one module. ``where(line)`` formats a line for messages."""

    def __init__(self, tree: ast.Module, text: str, where: Callable[[int], str]) -> None:
        self.tree = tree
        self.text = text
        self.lines = [line.rstrip("\r\n") for line in split_lines(text)]
        self.where = where
        self.imports = ImportTable(tree)
        self.findings: dict[tuple[str, int, int], RawFinding] = {}
        self.depth = 0  # calls being analysed again with known arguments
        self.suppressed: set[tuple[str, int, int]] = set()  # said better by another finding

    # -- output --------------------------------------------------------------------------------

    def run(self) -> list[RawFinding]:
        self.exec_body(self.tree.body, Scope())
        return sorted(self.findings.values(), key=lambda f: (f.line, f.col, f.code))

    def _col(self, line: int, byte_col: int) -> int:
        """Character column (0-based) of a UTF-8 byte offset on a 1-based line."""
        if line - 1 >= len(self.lines):
            return byte_col
        text = self.lines[line - 1]
        if text.isascii():
            return byte_col
        return len(text.encode("utf-8")[:byte_col].decode("utf-8", "replace"))

    def _span(self, node: ast.AST) -> tuple[int, int, int, int]:
        end_line = node.end_lineno or node.lineno
        end_col = node.end_col_offset if node.end_col_offset is not None else node.col_offset
        return (
            node.lineno,
            self._col(node.lineno, node.col_offset),
            end_line,
            self._col(end_line, end_col),
        )

    def segment(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.text, node) or ""

    def report(
        self, code: str, node: ast.AST, message: str, hint: str = "", edit: Edit | None = None
    ) -> None:
        line, col, end_line, end_col = self._span(node)
        key = (code, line, col)
        if key not in self.findings and key not in self.suppressed:
            self.findings[key] = RawFinding(
                code, line, col + 1, end_line, end_col + 1, message, hint, edit
            )

    def suppress(self, code: str, node: ast.AST) -> None:
        """Drop the finding ``code`` at ``node`` (now and when met again), unless it is fixable."""
        line, col, _, _ = self._span(node)
        key = (code, line, col)
        finding = self.findings.get(key)
        if finding is None or finding.edit is None:
            self.findings.pop(key, None)
            self.suppressed.add(key)

    def describe(self, value: Tensor, node: ast.AST | None = None) -> str:
        """``F.softmax, line 12`` (just ``F.softmax`` when made on the line of ``node``)."""
        if not value.line or (node is not None and node.lineno == value.line):
            return value.origin
        return f"{value.origin}, {self.where(value.line)}"

    # -- statements ----------------------------------------------------------------------------

    def exec_body(self, body: list[ast.stmt], scope: Scope) -> None:
        for stmt in body:
            self.exec_stmt(stmt, scope)

    def exec_stmt(self, stmt: ast.stmt, scope: Scope) -> None:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            for decorator in stmt.decorator_list:
                self.eval(decorator, scope)
            scope.env[stmt.name] = self.function_value(stmt, scope)
        elif isinstance(stmt, ast.ClassDef):
            scope.env[stmt.name] = self.class_value(stmt, scope)
        elif isinstance(stmt, ast.Return):
            scope.returns.append(self.eval(stmt.value, scope) if stmt.value else None)
        elif isinstance(stmt, ast.Assign):
            value = self.eval(stmt.value, scope)
            for target in stmt.targets:
                self.assign(target, value, scope)
        elif isinstance(stmt, ast.AnnAssign):
            if stmt.value is not None:
                self.assign(stmt.target, self.eval(stmt.value, scope), scope)
        elif isinstance(stmt, ast.AugAssign):
            self.eval(stmt.value, scope)
            self.assign(stmt.target, None, scope)
        elif isinstance(stmt, ast.If):
            self.eval(stmt.test, scope)
            self.exec_branches([stmt.body, stmt.orelse], scope)  # an empty orelse: skipped
        elif isinstance(stmt, ast.For | ast.AsyncFor):
            self.eval(stmt.iter, scope)
            self.assign(stmt.target, None, scope)
            self.exec_body(stmt.body, scope)
            self.exec_body(stmt.orelse, scope)
        elif isinstance(stmt, ast.While):
            self.eval(stmt.test, scope)
            self.exec_body(stmt.body, scope)
            self.exec_body(stmt.orelse, scope)
        elif isinstance(stmt, ast.With | ast.AsyncWith):
            for item in stmt.items:
                self.eval(item.context_expr, scope)
                if item.optional_vars is not None:
                    self.assign(item.optional_vars, None, scope)
            self.exec_body(stmt.body, scope)
        elif isinstance(stmt, ast.Try | ast.TryStar):
            self.exec_body(stmt.body, scope)
            for handler in stmt.handlers:
                if handler.name:
                    scope.env[handler.name] = None
                self.exec_body(handler.body, scope)
            self.exec_body(stmt.orelse, scope)
            self.exec_body(stmt.finalbody, scope)
        elif isinstance(stmt, ast.Match):
            self.eval(stmt.subject, scope)
            self.exec_branches([*(case.body for case in stmt.cases), []], scope)
        elif isinstance(stmt, ast.Expr):
            self.eval(stmt.value, scope)
        elif isinstance(stmt, ast.Raise | ast.Assert | ast.Delete):
            for child in ast.iter_child_nodes(stmt):
                if isinstance(child, ast.expr):
                    self.eval(child, scope)
        elif isinstance(stmt, ast.Import | ast.ImportFrom):
            for alias in stmt.names:
                name = alias.asname or alias.name.split(".")[0]
                scope.env.pop(name, None)  # the import table knows it again

    def exec_branches(self, branches: list[list[ast.stmt]], scope: Scope) -> None:
        """Run each branch on a copy of the local names and keep what all branches agree on."""
        before = dict(scope.env)
        results = []
        for body in branches:
            scope.env = dict(before)
            self.exec_body(body, scope)
            results.append(scope.env)
        outer = scope.parent.lookup if scope.parent is not None else (lambda name: None)
        merged: dict[str, object] = {}
        for name in set().union(*results):
            values = [env[name] if name in env else outer(name) for env in results]
            value = values[0]
            for other in values[1:]:
                value = join(value, other)
            merged[name] = value
        scope.env = merged

    def assign(self, target: ast.expr, value: object, scope: Scope) -> None:
        if isinstance(target, ast.Name):
            scope.env[target.id] = value
        elif isinstance(target, ast.Tuple | ast.List):
            items = value.items if isinstance(value, Tup) else ()
            starred = any(isinstance(t, ast.Starred) for t in target.elts)
            for i, element in enumerate(target.elts):
                item = items[i] if len(items) == len(target.elts) and not starred else None
                self.assign(element, item, scope)
        elif isinstance(target, ast.Starred):
            self.assign(target.value, None, scope)
        elif isinstance(target, ast.Attribute):
            self.eval(target.value, scope)
            if (
                scope.cls is not None
                and isinstance(target.value, ast.Name)
                and target.value.id == scope.self_name
            ):
                attrs = scope.cls.attrs
                attrs[target.attr] = (
                    join(attrs[target.attr], value) if target.attr in attrs else value
                )
        elif isinstance(target, ast.Subscript):
            self.eval(target.value, scope)
            self.eval(target.slice, scope)

    # -- functions and classes -----------------------------------------------------------------

    def function_value(
        self,
        node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda,
        scope: Scope,
        cls: ClassInfo | None = None,
    ) -> object:
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                self.eval(default, scope)
        if isinstance(node, ast.Lambda):
            inner = self.bind(node, scope, cls, [], {})
            return Producer(self.eval(node.body, inner))
        return Function(node, scope, cls, self.run_function(node, scope, cls, [], {}))

    def bind(
        self, node: ast.AST, scope: Scope, cls: ClassInfo | None, args: list, kwargs: dict
    ) -> Scope:
        """The scope of a call: parameters bound to the values given, the others unknown."""
        inner = Scope(parent=scope, cls=cls)
        spec = node.args
        positional = [*spec.posonlyargs, *spec.args]
        for param in [*positional, *spec.kwonlyargs, spec.vararg, spec.kwarg]:
            if param is not None:
                inner.env[param.arg] = None
        if cls is not None and positional:
            inner.self_name = positional[0].arg
            inner.env[inner.self_name] = Instance(cls)
            positional = positional[1:]
        for param, value in zip(positional, args, strict=False):
            inner.env[param.arg] = value
        for name, value in kwargs.items():
            if name in inner.env and name != inner.self_name:
                inner.env[name] = value
        return inner

    def run_function(
        self,
        node: ast.FunctionDef | ast.AsyncFunctionDef,
        scope: Scope,
        cls: ClassInfo | None,
        args: list,
        kwargs: dict,
    ) -> object:
        """What a call returns: the join of every ``return``; None for generators."""
        inner = self.bind(node, scope, cls, args, kwargs)
        inner.function = True
        self.exec_body(node.body, inner)
        if inner.generator or not inner.returns:
            return None
        value = inner.returns[0]
        for other in inner.returns[1:]:
            value = join(value, other)
        return value

    def call_function(self, function: Function, args: list, kwargs: dict) -> object:
        """A call of a ``def``: analysed again with its arguments when some of them are known."""
        known = [*args, *kwargs.values()]
        if self.depth >= MAX_CALL_DEPTH or not any(_interesting(v) for v in known):
            return function.returns
        self.depth += 1
        try:
            return self.run_function(function.node, function.scope, function.cls, args, kwargs)
        finally:
            self.depth -= 1

    def class_value(self, node: ast.ClassDef, scope: Scope) -> ClassInfo:
        info = ClassInfo(node.name)
        for base in node.bases:
            parent = self.eval(base, scope)
            if isinstance(parent, ClassInfo):
                info.attrs.update(parent.attrs)
                info.methods.update(parent.methods)
                info.forward = parent.forward
        for keyword in node.keywords:
            self.eval(keyword.value, scope)
        body_scope = Scope(parent=scope, cls=None)
        methods: list[ast.FunctionDef | ast.AsyncFunctionDef] = []
        for stmt in node.body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                for decorator in stmt.decorator_list:
                    self.eval(decorator, body_scope)
                methods.append(stmt)
            else:
                self.exec_stmt(stmt, body_scope)
        for name, value in body_scope.env.items():
            info.attrs.setdefault(name, value)
        forward_names = ("forward", "__call__")
        init = [m for m in methods if m.name == "__init__"]
        others = [m for m in methods if m.name != "__init__" and m.name not in forward_names]
        forwards = [m for m in methods if m.name in forward_names]
        for method in [*init, *others]:
            info.methods[method.name] = self.function_value(method, scope, info)
        for method in forwards:
            info.methods[method.name] = value = self.function_value(method, scope, info)
            if method.name == "forward" or info.forward is None:
                info.forward = value.returns if isinstance(value, Function) else None
        for method in others:
            info.methods[method.name] = self.function_value(method, scope, info)
        return info

    # -- expressions ---------------------------------------------------------------------------

    def eval(self, node: ast.expr | None, scope: Scope) -> object:
        if node is None:
            return None
        if isinstance(node, ast.Name):
            if scope.binds(node.id):
                return scope.lookup(node.id)
            return self.function_as_value(node, scope)
        if isinstance(node, ast.Call):
            return self.eval_call(node, scope)
        if isinstance(node, ast.Attribute):
            return self.eval_attribute(node, scope)
        if isinstance(node, ast.BinOp):
            return self.eval_binop(node, scope)
        if isinstance(node, ast.Subscript):
            value = self.eval(node.value, scope)
            index = node.slice
            self.eval(index, scope)
            if isinstance(value, Tup):
                if (
                    isinstance(index, ast.Constant)
                    and isinstance(index.value, int)
                    and -len(value.items) <= index.value < len(value.items)
                ):
                    return value.items[index.value]
                return None
            return value if isinstance(value, Tensor) else None
        if isinstance(node, ast.Tuple | ast.List):
            return Tup(tuple(self.eval(element, scope) for element in node.elts))
        if isinstance(node, ast.IfExp):
            self.eval(node.test, scope)
            return join(self.eval(node.body, scope), self.eval(node.orelse, scope))
        if isinstance(node, ast.Lambda):
            return self.function_value(node, scope)
        if isinstance(node, ast.GeneratorExp | ast.ListComp | ast.SetComp | ast.DictComp):
            return self.eval_comprehension(node, scope)
        if isinstance(node, ast.UnaryOp):
            self.eval(node.operand, scope)
            if isinstance(node.op, ast.USub):
                self.check_negated_reduction(node.operand, scope)
            return None
        if isinstance(node, ast.Yield | ast.YieldFrom):
            self.eval(node.value, scope)
            function: Scope | None = scope
            while function is not None and not function.function:
                function = function.parent
            if function is not None:
                function.generator = True
            return None
        if isinstance(node, ast.NamedExpr):
            value = self.eval(node.value, scope)
            self.assign(node.target, value, scope)
            return value
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.eval(child, scope)
        return None

    def eval_comprehension(self, node: ast.expr, scope: Scope) -> object:
        inner = Scope(parent=scope, cls=scope.cls, self_name=scope.self_name)
        for generator in node.generators:
            self.eval(generator.iter, inner)
            self.assign(generator.target, None, inner)
            for condition in generator.ifs:
                self.eval(condition, inner)
        if isinstance(node, ast.DictComp):
            self.eval(node.key, inner)
            self.eval(node.value, inner)
            return None
        element = self.eval(node.elt, inner)
        if isinstance(element, Tensor) and element.kind == EXP:
            return element  # sum(exp(v) for v in x)
        return None

    def eval_attribute(self, node: ast.Attribute, scope: Scope) -> object:
        if (
            scope.cls is not None
            and isinstance(node.value, ast.Name)
            and node.value.id == scope.self_name
        ):
            return self.member(Instance(scope.cls), node.attr)
        named = self.function_as_value(node, scope)
        if named is not None:
            return named
        base = self.eval(node.value, scope)
        if isinstance(base, Tensor) and node.attr in SAME_VALUE_ATTRS:
            return base
        if isinstance(base, Instance):
            return self.member(base, node.attr)
        if isinstance(base, ClassInfo):
            return base.attrs.get(node.attr)
        return None

    def function_as_value(self, node: ast.Name | ast.Attribute, scope: Scope) -> object:
        """``COST_FN = F.cross_entropy``, ``ACTIVATION = F.softmax`` (seed 000): the function."""
        name = self.qualified(node, scope)
        if name is None:
            return None
        shown = ast.unparse(node)
        if name in SOFTMAX_FUNCS:
            probs = Tensor(PROBS, shown, node.lineno, sibling=_sibling(shown, name))
            return Producer(probs, shown)
        if name in LOG_SOFTMAX_FUNCS:
            return Producer(Tensor(LOG_PROBS, shown, node.lineno), shown)
        if name in LOSS_FUNCS:
            return Loss(LOSS_FUNCS[name], shown)
        return None

    @staticmethod
    def member(instance: Instance, name: str) -> object:
        cls = instance.cls
        if name in cls.attrs:
            return cls.attrs[name]
        if name == "forward" and cls.forward is not None:
            return Producer(cls.forward, "forward")
        return cls.methods.get(name)

    def eval_binop(self, node: ast.BinOp, scope: Scope) -> object:
        left = self.eval(node.left, scope)
        right = self.eval(node.right, scope)
        if isinstance(node.op, ast.Sub):
            if self.is_logsumexp(node.right, right):
                return Tensor(LOG_PROBS, "x - logsumexp(x)", node.lineno)
            return Tensor(SHIFTED)
        if isinstance(node.op, ast.Add):
            for probs, other, other_value in ((left, node.right, right), (right, node.left, left)):
                if (
                    isinstance(probs, Tensor)
                    and probs.kind == PROBS
                    and _is_constant_like(other)
                    and not isinstance(other_value, Tensor)
                ):
                    return replace(probs, eps=True)
            return None
        if (
            isinstance(node.op, ast.Div)
            and isinstance(left, Tensor)
            and isinstance(right, Tensor)
            and left.kind == EXP
            and right.kind == SUM_EXP
            and left.key == right.key
        ):
            if not (left.shifted and right.shifted):
                hint = family_hint(
                    left.origin,
                    "torch.softmax(x, dim=...)",
                    "scipy.special.softmax(x, axis=...) or logmax.softmax(x, axis=...)",
                )
                self.report(
                    "LMX104",
                    node,
                    "hand-written softmax exp(x) / sum(exp(x)) without subtracting the max: "
                    "inf/inf = NaN once x > 88.7 (float32)",
                    hint,
                )
            return Tensor(PROBS, "hand-written softmax", node.lineno)
        return None

    def is_logsumexp(self, node: ast.expr, value: object) -> bool:
        if isinstance(node, ast.Call):
            name = self.qualified(node.func, None)
            if name in LOGSUMEXP_FUNCS:
                return True
            if isinstance(node.func, ast.Attribute) and node.func.attr == "logsumexp":
                return True
        return False

    def qualified(self, func: ast.expr, scope: Scope | None) -> str | None:
        """The canonical name of a callee, unless a local name shadows its import."""
        base = base_name(func)
        if base is None or (scope is not None and scope.binds(base)):
            return None
        return self.imports.resolve(func)

    # -- calls ---------------------------------------------------------------------------------

    def eval_call(self, node: ast.Call, scope: Scope) -> object:
        func = node.func
        name = self.qualified(func, scope)
        receiver = None
        callee = None
        if name is None:
            if isinstance(func, ast.Attribute):
                receiver = self.eval(func.value, scope)
                callee = self.member_or_none(func, receiver, scope)
            else:
                callee = self.eval(func, scope)
        args = [self.eval(arg, scope) for arg in node.args]
        kwargs = {kw.arg: self.eval(kw.value, scope) for kw in node.keywords}
        if name is not None:
            return self.call_named(node, name, args, kwargs, scope)
        if isinstance(func, ast.Name) and func.id == "sum" and not scope.binds("sum"):
            return self.call_sum(node, node.args[0] if node.args else None, args, scope, "sum")
        if callee is not None:
            return self.call_value(node, callee, args, kwargs)
        if isinstance(func, ast.Attribute) and not (
            isinstance(func.value, ast.Name) and func.value.id == scope.self_name
        ):
            return self.call_method(node, func, receiver, args, kwargs, scope)
        return None

    def member_or_none(self, func: ast.Attribute, receiver: object, scope: Scope) -> object:
        if (
            scope.cls is not None
            and isinstance(func.value, ast.Name)
            and func.value.id == scope.self_name
        ):
            return self.member(Instance(scope.cls), func.attr)
        if isinstance(receiver, Instance):
            return self.member(receiver, func.attr)
        return None

    def call_value(self, node: ast.Call, callee: object, args: list, kwargs: dict) -> object:
        if isinstance(callee, Producer):
            return callee.returns
        if isinstance(callee, Function):
            return self.call_function(callee, args, kwargs)
        if isinstance(callee, Loss):
            self.check_loss(node, callee.kind, ast.unparse(node.func), args, kwargs)
            return None
        if isinstance(callee, ClassInfo):
            return Instance(callee)
        if isinstance(callee, Instance):
            return callee.cls.forward
        return None

    def call_named(
        self, node: ast.Call, name: str, args: list, kwargs: dict, scope: Scope
    ) -> object:
        shown = ast.unparse(node.func)
        if name in IMPLICIT_DIM:
            self.check_dim(node, name, shown)
        if name in SOFTMAX_FUNCS:
            return Tensor(PROBS, shown, node.lineno, sibling=_sibling(shown, name))
        if name in LOG_SOFTMAX_FUNCS:
            return Tensor(LOG_PROBS, shown, node.lineno)
        if name in SOFTMAX_LAYERS:
            probs = Tensor(PROBS, shown, node.lineno, sibling=_sibling(shown, name))
            return Producer(probs, shown)
        if name in LOG_SOFTMAX_LAYERS:
            return Producer(Tensor(LOG_PROBS, shown, node.lineno), shown)
        if name in SEQUENTIAL:
            return self.sequential(node, args, scope)
        if name in LOSS_LAYERS:
            return Loss(LOSS_LAYERS[name], shown)
        if name in LOSS_FUNCS:
            self.check_loss(node, LOSS_FUNCS[name], shown, args, kwargs)
            return None
        first = args[0] if args else None
        if name in LOG_FUNCS and len(node.args) == 1 and not node.keywords:
            return self.call_log(node, node.args[0], first, name)
        if name in EXP_FUNCS and len(node.args) >= 1:
            return self.call_exp(node.args[0], first, name)
        if name in SUM_FUNCS and node.args:
            return self.call_sum(node, node.args[0], args, scope, name)
        if name in MEAN_FUNCS and node.args:
            self.check_manual_cross_entropy(node.args[0], node, scope)
            return None
        if name in CLAMP_FUNCS and isinstance(first, Tensor) and first.kind == PROBS:
            return replace(first, eps=True)
        if name in SAME_VALUE_FUNCS:
            return first
        return None

    def call_method(
        self,
        node: ast.Call,
        func: ast.Attribute,
        receiver: object,
        args: list,
        kwargs: dict,
        scope: Scope,
    ) -> object:
        method = func.attr
        if isinstance(receiver, Producer | Function | Instance | Tup | ClassInfo | Loss):
            return receiver if method in SAME_VALUE_METHODS else None
        if method == "softmax":
            return Tensor(PROBS, ".softmax()", node.lineno, sibling=".log_softmax()")
        if method == "log_softmax":
            return Tensor(LOG_PROBS, ".log_softmax()", node.lineno)
        if method == "log" and not node.args and not node.keywords:
            return self.call_log(node, func.value, receiver, "method")
        if method == "exp" and not node.args and not node.keywords:
            return self.call_exp(func.value, receiver, ".exp()")
        if method == "sum":
            return self.call_sum(node, func.value, [receiver], scope, "method")
        if method == "mean":
            self.check_manual_cross_entropy(func.value, node, scope)
            return None
        if isinstance(receiver, Tensor):
            if method in CLAMP_METHODS and receiver.kind == PROBS:
                return replace(receiver, eps=True)
            if method in SAME_VALUE_METHODS:
                return receiver
        return None

    def sequential(self, node: ast.Call, args: list, scope: Scope) -> object:
        if not node.args or isinstance(node.args[-1], ast.Starred):
            return None
        last = args[-1]
        only = node.args[0]
        if (
            len(node.args) == 1
            and isinstance(only, ast.Call)
            and (self.imports.resolve(only.func) or "").endswith("OrderedDict")
        ):
            # nn.Sequential(OrderedDict([("fc", ...), ("softmax", nn.Softmax(1))]))
            items = only.args[0] if only.args else None
            if isinstance(items, ast.List | ast.Tuple) and items.elts:
                pair = items.elts[-1]
                if isinstance(pair, ast.Tuple) and len(pair.elts) == 2:
                    last = self.eval(pair.elts[1], scope)
        if isinstance(last, Producer) and isinstance(last.returns, Tensor):
            return Producer(last.returns, "nn.Sequential")
        return None

    def call_exp(self, arg: ast.expr, value: object, origin: str) -> object:
        if isinstance(value, Tensor) and value.kind == LOG_PROBS:
            return Tensor(PROBS, f"exp of {value.origin}", value.line)
        shifted = (isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Sub)) or (
            isinstance(value, Tensor) and value.kind in (SHIFTED, LOG_PROBS)
        )
        return Tensor(EXP, origin, arg.lineno, key=ast.dump(arg), shifted=shifted)

    def call_sum(
        self, node: ast.Call, arg: ast.expr | None, args: list, scope: Scope, how: str
    ) -> object:
        if arg is None:
            return None
        if isinstance(arg, ast.GeneratorExp | ast.ListComp):
            arg = arg.elt
        self.check_manual_cross_entropy(arg, node, scope)
        first = args[0] if args else None
        if isinstance(first, Tensor) and first.kind == EXP:
            return Tensor(SUM_EXP, first.origin, first.line, first.key, first.shifted)
        return None


def _is_constant_like(node: ast.expr) -> bool:
    """``1e-8``, ``eps``, ``self.eps``: what is added to probabilities to keep log finite."""
    if isinstance(node, ast.UnaryOp):
        node = node.operand
    return isinstance(node, ast.Constant | ast.Name | ast.Attribute)
