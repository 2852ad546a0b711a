"""The checker: runs the modules of a project abstractly, following values, and calls the rules.

How it works (see :mod:`logmax.lint.values` for the values):

1. Imports are read first (:class:`~logmax.lint.names.ImportTable`), so ``F.softmax``,
   ``torch.softmax`` and ``from torch.nn.functional import softmax as sm`` are the same function.
   Imports of the project's own modules (:mod:`logmax.lint.project`) bind what those modules
   define: their classes, functions and globals, analysed once.
2. Statements run in order in an environment ``name -> value``. The functions and classes of a
   body are known before it runs, so a function may call one defined below it. A ``def`` is
   analysed when it is met with its parameters unknown (or their default values); a call whose
   arguments are known (a softmax output, a model, a loss) runs the body again with them bound,
   a few calls deep, and so does a call made after the globals or ``self`` attributes that the
   body reads have changed. At the end of a module, functions whose globals changed after they
   were analysed are analysed again (the training loop defined above the model it uses).
3. ``if``/``else``: each arm runs on its own copy of the names; where they disagree the value
   keeps both options with the path of each (:class:`~logmax.lint.values.Alt`), and an arm that
   returns does not flow on. The inference arm of a training-mode test is followed for findings
   but not for values (:mod:`logmax.lint.branches`).
4. A class is analysed method by method: ``__init__`` first (``self.act = nn.Softmax(1)`` is
   remembered), then the other methods, then ``forward`` (what calling an instance gives), then
   the other methods again. Attributes set anywhere in the class, or on an instance from outside,
   are joined.
5. Where a rule may apply the analysis sends an event (:mod:`logmax.lint.events`) to every rule
   with that hook (:mod:`logmax.lint.rules`), through a narrow
   :class:`~logmax.lint.context.RuleContext`. A finding is kept once per (file, code, place).

Nothing is imported or executed; unknown things are ``None`` and never reported.
"""

from __future__ import annotations

import ast
from dataclasses import replace

from logmax.lint.branches import INFER, TRAIN, mode_of_test, phrase, terminates
from logmax.lint.context import RuleContext
from logmax.lint.events import Division, LogCall, LossCall, Reduction, SoftmaxCall
from logmax.lint.finding import Edit, split_lines
from logmax.lint.names import base_name
from logmax.lint.project import Module, Package, Project
from logmax.lint.rules import HOOKS
from logmax.lint.scope import Lazy, RawFinding, Scope, reads_of
from logmax.lint.values import (
    CLAMP_FUNCS,
    CLAMP_METHODS,
    DIV_FUNCS,
    DIV_METHODS,
    DOT_FUNCS,
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
    NEG_FUNCS,
    NEG_METHODS,
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
    Alt,
    ClassInfo,
    Function,
    Instance,
    Loss,
    ModuleValue,
    Path,
    Producer,
    Tensor,
    Tup,
    contradicts,
    interesting,
    is_kind,
    join,
    merge,
    options,
)

MAX_CALL_DEPTH = 4  # train(model) -> epoch(model) -> step(model) -> loss
FUEL = 400_000  # statements a project may spend on analysing functions again; then no more
_LIST_BUILDERS = {"append", "add_module"}
_ITERATORS = {"enumerate", "zip", "reversed", "list", "sorted", "tuple", "iter"}


def _sibling(shown: str, name: str) -> str:
    """``F.softmax`` -> ``F.log_softmax``; a bare imported ``softmax`` -> its full sibling name."""
    if name in SOFTMAX_LAYERS:
        return shown[: -len("Softmax")] + "LogSoftmax" if shown.endswith("Softmax") else name
    if "." in shown and shown.endswith("softmax"):
        return shown[: -len("softmax")] + "log_softmax"
    return SOFTMAX_FUNCS.get(name, "")


def _is_constant_like(node: ast.expr) -> bool:
    """``1e-8``, ``eps``, ``self.eps``: what is added to probabilities to keep log finite."""
    if isinstance(node, ast.UnaryOp):
        node = node.operand
    return isinstance(node, ast.Constant | ast.Name | ast.Attribute)


class Analysis:
    """Analyse the modules of one :class:`~logmax.lint.project.Project`; collect findings."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.module: Module = None  # type: ignore[assignment]  # set while a module runs
        self.scope: Scope | None = None
        self.findings: dict[str, dict[tuple[str, int, int], RawFinding]] = {}
        self.suppressed: dict[str, set[tuple[str, int, int]]] = {}
        self.values: dict[int, object] = {}  # id(expression node) -> its value, last evaluation
        self.contexts = {
            rule.code: RuleContext(self, rule) for hooks in HOOKS.values() for rule, _ in hooks
        }
        self.depth = 0  # calls being analysed again with known arguments
        self.fuel = FUEL
        self.version = 0  # bumped when a global or attribute gets an interesting value
        self.stamps: dict[tuple[int, str], int] = {}  # (id of scope or class, name) -> version
        self.defined: dict[int, object] = {}  # id(def/class statement) -> its value
        self.reads: dict[int, tuple[frozenset[str], frozenset[str]]] = {}
        self.memo: dict[tuple, object] = {}
        self.lines: dict[str, list[str]] = {}
        self.texts: dict[int, str] = {}
        self.by_path: dict[str, Module] = {}
        self.registered: set[int] = set()  # functions listed in their module (by node)
        self.held: dict[int, Scope | ClassInfo] = {}  # what functions hold: released at the end
        self.resolved: dict[int, str | None] = {}  # id(name node) -> its import-qualified name

    # -- modules -------------------------------------------------------------------------------

    def run_module(self, module: Module) -> Scope:
        """Analyse ``module`` (once); its module scope, with what it defines."""
        if module.scope is not None:
            return module.scope  # done, or running (an import cycle sees the names so far)
        if module.tree is None:
            module.parse()
        scope = Scope()
        self.held[id(scope)] = scope
        module.scope = scope
        self.by_path[module.path] = module
        saved = (self.module, self.scope)
        self.module, self.scope = module, scope
        try:
            self.exec_body(module.tree.body, scope, hoist=True)
            self.refresh_stale(module)
        finally:
            self.module, self.scope = saved
        return scope

    def refresh_stale(self, module: Module) -> None:
        """Analyse again the functions whose globals or attributes changed after their analysis."""
        for function in list(module.functions):
            if self.fuel > 0 and self.stale(function):
                self.call_function(function, [], {}, force=True)

    def release(self) -> None:
        """Break the reference cycles of the analysis (a function holds the scope that holds
        it, a class its methods and they their class), so that memory is freed at once rather
        than by the cyclic garbage collector walking every tree again."""
        for held in self.held.values():
            if isinstance(held, Scope):
                held.env.clear()
                held.returns.clear()
                held.parent = None
            else:
                held.attrs.clear()
                held.methods.clear()
                held.forward = None
        self.held.clear()
        for module in self.by_path.values():
            module.scope = None
            module.functions.clear()
        self.memo.clear()
        self.resolved.clear()
        self.defined.clear()
        self.values.clear()
        self.contexts.clear()

    def findings_of(self, module: Module) -> list[RawFinding]:
        found = self.findings.get(module.path, {})
        return sorted(found.values(), key=lambda f: (f.line, f.col, f.code))

    # -- what rules use (through RuleContext) ---------------------------------------------------

    def _col(self, line: int, byte_col: int) -> int:
        """Character column (0-based) of a UTF-8 byte offset on a 1-based line."""
        lines = self.source_lines()
        if line - 1 >= len(lines):
            return byte_col
        text = lines[line - 1]
        if text.isascii():
            return byte_col
        return len(text.encode("utf-8")[:byte_col].decode("utf-8", "replace"))

    def span(self, node: ast.AST) -> tuple[int, int, int, int]:
        end_line = node.end_lineno or node.lineno
        end_col = node.end_col_offset if node.end_col_offset is not None else node.col_offset
        return (
            node.lineno,
            self._col(node.lineno, node.col_offset),
            end_line,
            self._col(end_line, end_col),
        )

    def report(
        self, code: str, node: ast.AST, message: str, hint: str = "", edit: Edit | None = None
    ) -> None:
        line, col, end_line, end_col = self.span(node)
        key = (code, line, col)
        found = self.findings.setdefault(self.module.path, {})
        if key not in found and key not in self.suppressed.get(self.module.path, ()):
            found[key] = RawFinding(code, line, col + 1, end_line, end_col + 1, message, hint, edit)

    def suppress(self, code: str, node: ast.AST) -> None:
        """Drop the finding ``code`` at ``node`` (now and when met again), unless it is fixable."""
        line, col, _, _ = self.span(node)
        key = (code, line, col)
        found = self.findings.setdefault(self.module.path, {})
        if key in found and found[key].edit is not None:
            return
        found.pop(key, None)
        self.suppressed.setdefault(self.module.path, set()).add(key)

    def suppress_key(self, path: str, code: str, line: int, col: int) -> None:
        key = (code, line, col)
        found = self.findings.setdefault(path, {})
        if key in found and found[key].edit is None:
            del found[key]
            self.suppressed.setdefault(path, set()).add(key)

    def describe(self, value: Tensor, node: ast.AST | None = None, path: Path = ()) -> str:
        if not value.line or (
            node is not None and node.lineno == value.line and value.module == self.module.path
        ):
            text = value.origin
        else:
            made_in = self.by_path.get(value.module, self.module)
            where = made_in.where(value.line)
            if made_in is not self.module:
                where = f"{made_in.path} {where}"
            text = f"{value.origin}, {where}"
        if path:
            text += f", on the path where {phrase(path)}"
        return text

    def value_of(self, node: ast.AST) -> object:
        return self.values.get(id(node))

    def qualified_here(self, node: ast.expr) -> str | None:
        return self.qualified(node, self.scope)

    def is_builtin(self, name: str) -> bool:
        bound = self.scope is not None and self.scope.binds(name)
        return not bound and name not in self.module.imports.bindings

    def emit(self, hook: str, event: object) -> None:
        for rule, function in HOOKS[hook]:
            function(self.contexts[rule.code], event)

    # -- values --------------------------------------------------------------------------------

    def tensor(self, kind: str, origin: str, line: int, **fields) -> Tensor:
        return Tensor(kind, origin, line, module=self.module.path, **fields)

    def output_of(self, name: str, shown: str, line: int) -> Tensor:
        """What the softmax or log_softmax function or layer ``name`` gives."""
        if name in SOFTMAX_FUNCS or name in SOFTMAX_LAYERS:
            return self.tensor(PROBS, shown, line, sibling=_sibling(shown, name))
        return self.tensor(LOG_PROBS, shown, line)

    def text(self, node: ast.AST) -> str:
        """The source text of an expression (cached), as written."""
        text = self.texts.get(id(node))
        if text is None:
            text = self.texts[id(node)] = self._segment(node) or ast.unparse(node)
        return text

    def _segment(self, node: ast.AST) -> str:
        lines = self.source_lines()
        first, last = node.lineno - 1, (node.end_lineno or node.lineno) - 1
        end = node.end_col_offset
        if last >= len(lines) or end is None:
            return ""
        if first == last:
            line = lines[first]
            if line.isascii():
                return line[node.col_offset : end]
            return line.encode()[node.col_offset : end].decode("utf-8", "replace")
        head = lines[first].encode()[node.col_offset :].decode("utf-8", "replace")
        tail = lines[last].encode()[:end].decode("utf-8", "replace")
        return "\n".join([head, *lines[first + 1 : last], tail])

    def source_lines(self) -> list[str]:
        lines = self.lines.get(self.module.path)
        if lines is None:
            lines = [line.rstrip("\r\n") for line in split_lines(self.module.text)]
            self.lines[self.module.path] = lines
        return lines

    def store(self, owner: Scope | ClassInfo, env: dict, name: str, value: object) -> None:
        """Bind ``name`` in a module's globals or a class's attributes, stamping a change."""
        old = env.get(name)
        env[name] = value
        if value is not old and interesting(value):
            self.version += 1
            self.stamps[(id(owner), name)] = self.version

    def stale(self, function: Function) -> bool:
        """Whether what the function's body reads changed since it was analysed."""
        if function.seen >= self.version:
            return False  # nothing changed anywhere since
        node = function.node
        reads = self.reads.get(id(node))
        if reads is None:
            reads = self.reads[id(node)] = reads_of(node)
        names, attrs = reads
        scope = function.scope
        for name in names:
            owner = scope.owner(name) if isinstance(scope, Scope) else None
            if owner is not None and self.stamps.get((id(owner), name), -1) > function.seen:
                return True
        cls = function.cls
        if isinstance(cls, ClassInfo):
            for name in attrs:
                if self.stamps.get((id(cls), name), -1) > function.seen:
                    return True
        return False

    # -- statements ----------------------------------------------------------------------------

    def exec_body(self, body: list[ast.stmt], scope: Scope, hoist: bool = False) -> None:
        if hoist:
            for stmt in body:
                definition = isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                if definition and stmt.name not in scope.env:
                    scope.env[stmt.name] = Lazy(stmt, scope, self.module)
                    self.held[id(scope)] = scope
        saved_path, saved_off = scope.path, scope.off
        try:
            for stmt in body:
                rest = self.exec_stmt(stmt, scope)
                if rest is not None:  # the arm of an if that returned: the rest is the other
                    cond, off = rest
                    scope.path = scope.path + (cond,)
                    scope.off += off
        finally:
            scope.path, scope.off = saved_path, saved_off

    def exec_stmt(self, stmt: ast.stmt, scope: Scope):
        if self.depth:
            self.fuel -= 1  # analysing a function again: bounded per project
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            self.define(stmt, scope)
        elif isinstance(stmt, ast.Return):
            value = self.eval(stmt.value, scope) if stmt.value else None
            if not scope.off:
                scope.returns.append((value, scope.path))
        elif isinstance(stmt, ast.Assign):
            value = self.eval(stmt.value, scope)
            for target in stmt.targets:
                self.assign(target, value, scope)
        elif isinstance(stmt, ast.AnnAssign):
            if stmt.value is not None:
                self.assign(stmt.target, self.eval(stmt.value, scope), scope)
        elif isinstance(stmt, ast.AugAssign):
            self.aug_assign(stmt, scope)
        elif isinstance(stmt, ast.If):
            return self.exec_if(stmt, scope)
        elif isinstance(stmt, ast.For | ast.AsyncFor):
            iterated = self.eval(stmt.iter, scope)
            self.assign(stmt.target, self.element(stmt.iter, iterated), scope)
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
            subject = self.text(stmt.subject)
            arms = [
                (case.body, (f"{subject} matches {self.text(case.pattern)}", True), False)
                for case in stmt.cases
            ]
            self.exec_branches([*arms, ([], (f"{subject} matches nothing", True), False)], scope)
        elif isinstance(stmt, ast.Expr):
            self.eval(stmt.value, scope)
        elif isinstance(stmt, ast.Raise | ast.Assert | ast.Delete):
            for child in ast.iter_child_nodes(stmt):
                if isinstance(child, ast.expr):
                    self.eval(child, scope)
        elif isinstance(stmt, ast.Import | ast.ImportFrom):
            self.exec_import(stmt, scope)
        return None

    def exec_if(self, stmt: ast.If, scope: Scope):
        self.eval(stmt.test, scope)
        test = self.text(stmt.test)
        mode = mode_of_test(stmt.test)
        arms = [
            (stmt.body, (test, True), mode == INFER),
            (stmt.orelse, (test, False), mode == TRAIN),
        ]
        self.exec_branches(arms, scope)
        body_ends, else_ends = terminates(stmt.body), terminates(stmt.orelse)
        if body_ends and not else_ends:
            return (test, False), int(mode == TRAIN)
        if else_ends and not body_ends:
            return (test, True), int(mode == INFER)
        return None

    def exec_branches(self, arms: list, scope: Scope) -> None:
        """Run each arm on a copy of the local names; where they disagree keep every option."""
        original = scope.env
        before = dict(original)
        saved_path, saved_off = scope.path, scope.off
        results = []
        for body, cond, off in arms:
            scope.env = dict(before)
            scope.path = saved_path + (cond,)
            scope.off = saved_off + int(off)
            self.exec_body(body, scope)
            results.append((scope.env, cond, off, terminates(body)))
        scope.path, scope.off = saved_path, saved_off
        scope.env = original
        flowing = [r for r in results if not r[2] and not r[3]]
        if not flowing:
            flowing = [r for r in results if not r[2]] or results
        if len(flowing) == 1:
            merged = flowing[0][0]
        else:
            outer = scope.parent.env.get if scope.parent is not None else (lambda name: None)
            merged = {}
            for name in set().union(*(env for env, *_ in flowing)):
                values = [
                    (env[name] if name in env else outer(name), (cond,))
                    for env, cond, *_ in flowing
                ]
                if all(value is values[0][0] for value, _ in values):
                    merged[name] = values[0][0]
                else:
                    merged[name] = merge(values)
        for name, value in merged.items():
            if original.get(name) is not value:
                if scope.parent is None:
                    self.store(scope, original, name, value)
                else:
                    original[name] = value
        for name in [name for name in original if name not in merged]:
            del original[name]

    def assign(self, target: ast.expr, value: object, scope: Scope) -> None:
        if isinstance(target, ast.Name):
            if scope.parent is None:
                self.store(scope, scope.env, target.id, value)
            else:
                scope.env[target.id] = value
        elif isinstance(target, ast.Tuple | ast.List):
            starred = any(isinstance(t, ast.Starred) for t in target.elts)
            for i, element in enumerate(target.elts):
                item = None
                if not starred:
                    item = merge(
                        [
                            (
                                v.items[i]
                                if isinstance(v, Tup) and len(v.items) == len(target.elts)
                                else self.element(None, v),
                                path,
                            )  # fmt: skip
                            for v, path in options(value)
                        ]
                    )
                self.assign(element, item, scope)
        elif isinstance(target, ast.Starred):
            self.assign(target.value, None, scope)
        elif isinstance(target, ast.Attribute):
            base = self.eval(target.value, scope)
            cls = None
            if (
                scope.cls is not None
                and isinstance(target.value, ast.Name)
                and target.value.id == scope.self_name
            ):
                cls = scope.cls
            elif isinstance(base, Instance):
                cls = base.cls  # model.criterion = nn.CrossEntropyLoss(), set from outside
            elif isinstance(base, ModuleValue) and base.module is not None:
                return
            if cls is not None and not scope.off:
                if scope.path:
                    value = merge([(value, scope.path)])
                attrs = cls.attrs
                old = attrs.get(target.attr)
                self.store(cls, attrs, target.attr, join(old, value) if old is not None else value)
        elif isinstance(target, ast.Subscript):
            self.eval(target.value, scope)
            self.eval(target.slice, scope)

    def aug_assign(self, stmt: ast.AugAssign, scope: Scope) -> None:
        """``p /= p.sum()`` is a division, ``r += exp(v)`` a sum, ``loss -= y * log(p)`` a
        negated one; other in-place operations leave the target unknown."""
        target, op = stmt.target, stmt.op
        current = self.eval(target, scope) if isinstance(target, ast.Name | ast.Attribute) else None
        value = self.eval(stmt.value, scope)
        result: object = None
        if isinstance(op, ast.Div):
            result = self.divide(stmt, current, value)
        elif isinstance(op, ast.Add | ast.Sub):
            minus = isinstance(op, ast.Sub)
            self.emit("on_reduction", Reduction(stmt, stmt.value, negated=minus, summed=minus))
            if minus:
                result = Tensor(SHIFTED, key=self.key_of(target, current))  # x -= x.max(...)
            elif isinstance(current, Tup) and isinstance(value, Tup):
                result = Tup(current.items + value.items)
            elif is_kind(value, EXP) and not is_kind(current, PROBS, LOG_PROBS, EXP):
                result = replace(value, kind=SUM_EXP)  # total += exp(v)
            elif is_kind(current, SUM_EXP) and is_kind(value, EXP):
                result = current
        self.assign(target, result, scope)

    # -- imports -------------------------------------------------------------------------------

    def exec_import(self, stmt: ast.Import | ast.ImportFrom, scope: Scope) -> None:
        project, module = self.project, self.module
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                found = project.resolve(module, alias.name)
                if alias.asname:
                    bound, value = alias.asname, self.module_value(found, alias.name)
                else:
                    top = alias.name.split(".")[0]
                    bound = top
                    value = self.module_value(project.resolve(module, top), top) if found else None
                self.bind_import(scope, bound, value)
            return
        found = project.resolve(module, stmt.module or "", stmt.level)
        if found is None:
            for alias in stmt.names:
                if alias.name != "*":
                    self.bind_import(scope, alias.asname or alias.name, None)
            return
        if isinstance(found, Package):
            init_env = self.run_module(found.init).env if found.init is not None else {}
        else:
            init_env = self.run_module(found).env
        for alias in stmt.names:
            if alias.name == "*":
                for name, value in list(init_env.items()):
                    if not name.startswith("_"):
                        self.bind_import(scope, name, value)
                continue
            value = init_env.get(alias.name)
            if value is None and isinstance(found, Package):
                sub = project.submodule(found, alias.name)
                value = self.module_value(sub, alias.name) if sub is not None else None
            self.bind_import(scope, alias.asname or alias.name, value)

    def bind_import(self, scope: Scope, name: str, value: object) -> None:
        if isinstance(value, Lazy):
            value = self.force(value)
        if value is None:
            scope.env.pop(name, None)  # the import table knows it again
        elif scope.parent is None:
            self.store(scope, scope.env, name, value)
        else:
            scope.env[name] = value

    def module_value(self, found: Module | Package | None, name: str) -> ModuleValue | None:
        if found is None:
            return None
        return ModuleValue(found, name)

    def module_attr(self, value: ModuleValue, attr: str) -> object:
        found = value.module
        if isinstance(found, Package):
            if found.init is not None:
                got = self.run_module(found.init).env.get(attr)
                if got is not None:
                    return self.force(got) if isinstance(got, Lazy) else got
            sub = self.project.submodule(found, attr)
            return self.module_value(sub, f"{value.name}.{attr}")
        if isinstance(found, Module):
            got = self.run_module(found).env.get(attr)
            return self.force(got) if isinstance(got, Lazy) else got
        return None

    # -- functions and classes -----------------------------------------------------------------

    def define(self, stmt: ast.stmt, scope: Scope) -> None:
        known = self.defined.get(id(stmt))
        if known is not None and scope.env.get(stmt.name) is known:
            return  # met before its definition ran (a call from above), already analysed
        value = self.definition(stmt, scope)
        if scope.parent is None:
            self.store(scope, scope.env, stmt.name, value)
        else:
            scope.env[stmt.name] = value

    def definition(self, stmt, scope: Scope) -> object:
        """Analyse a ``def`` or ``class`` statement (its decorators first) into its value."""
        for decorator in stmt.decorator_list:
            self.eval(decorator, scope)
        if isinstance(stmt, ast.ClassDef):
            value = self.class_value(stmt, scope)
        else:
            value = self.function_value(stmt, scope)
        self.defined[id(stmt)] = value
        return value

    def force(self, lazy: Lazy) -> object:
        """The value of a ``def``/``class`` used before its statement ran."""
        if lazy.busy:
            return None  # it uses itself while being analysed
        known = self.defined.get(id(lazy.stmt))
        if known is not None:
            return known
        lazy.busy = True
        saved = self.module, self.scope
        self.module = lazy.module
        scope, stmt = lazy.scope, lazy.stmt
        try:
            value = self.definition(stmt, scope)
        finally:
            self.module, self.scope = saved
            lazy.busy = False
        if scope.env.get(stmt.name) is lazy:
            scope.env[stmt.name] = value
        return value

    def function_value(
        self,
        node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda,
        scope: Scope,
        cls: ClassInfo | None = None,
    ) -> object:
        defaults = self.defaults(node, scope)
        if isinstance(node, ast.Lambda):
            inner = self.bind(node, scope, cls, [], {}, defaults)
            return Producer(self.eval(node.body, inner))
        function = Function(node, scope, cls, self.module, defaults=defaults)
        self.held[id(scope)] = scope
        if id(node) not in self.registered:
            self.registered.add(id(node))
            self.module.functions.append(function)
        function.seen = self.version
        function.returns = self.run_function(function, [], {})
        return function

    def defaults(self, node, scope: Scope) -> dict[str, object]:
        """Parameter name -> the value of its default (``criterion=nn.CrossEntropyLoss()``)."""
        spec = node.args
        positional = [*spec.posonlyargs, *spec.args]
        out: dict[str, object] = {}
        with_default = positional[len(positional) - len(spec.defaults) :]
        for param, default in zip(with_default, spec.defaults, strict=True):
            out[param.arg] = self.eval(default, scope)
        for param, default in zip(spec.kwonlyargs, spec.kw_defaults, strict=True):
            if default is not None:
                out[param.arg] = self.eval(default, scope)
        return out

    def bind(
        self,
        node: ast.AST,
        scope: Scope,
        cls: ClassInfo | None,
        args: list,
        kwargs: dict,
        defaults: dict[str, object],
    ) -> Scope:
        """The scope of a call: parameters bound to the values given, else to their defaults."""
        inner = Scope(parent=scope, cls=cls)
        spec = node.args
        positional = [*spec.posonlyargs, *spec.args]
        for param in [*positional, *spec.kwonlyargs, spec.vararg, spec.kwarg]:
            if param is not None:
                inner.env[param.arg] = defaults.get(param.arg)
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

    def run_function(self, function: Function, args: list, kwargs: dict) -> object:
        """What a call returns: the options of every ``return``; None for generators."""
        node = function.node
        saved = self.module, self.scope
        self.module = function.module
        inner = self.bind(node, function.scope, function.cls, args, kwargs, function.defaults)
        inner.function = True
        self.scope = inner
        try:
            self.exec_body(node.body, inner, hoist=True)
        finally:
            self.module, self.scope = saved
        if inner.generator or not inner.returns:
            return None
        return merge(inner.returns)

    def call_function(
        self, function: Function, args: list, kwargs: dict, force: bool = False
    ) -> object:
        """A call of a ``def``: analysed again with its arguments when some of them are known, or
        when what it reads changed since it was analysed."""
        known = [*args, *kwargs.values()]
        fresh = self.stale(function)
        if not (force or fresh or any(interesting(v) for v in known)):
            return function.returns
        if self.depth >= MAX_CALL_DEPTH or self.fuel <= 0:
            return function.returns
        key = (
            id(function),
            tuple(_signature(v) for v in args),
            tuple(sorted((k, _signature(v)) for k, v in kwargs.items())),
            self.version,
        )
        if key in self.memo:
            return self.memo[key]
        self.memo[key] = function.returns  # a recursive call sees the plain result
        self.depth += 1
        seen = self.version
        try:
            result = self.run_function(function, args, kwargs)
        finally:
            self.depth -= 1
        if not known or not any(interesting(v) for v in known):
            function.seen = max(function.seen, seen)
            function.returns = result
        self.memo[key] = result
        return result

    def class_value(self, node: ast.ClassDef, scope: Scope) -> ClassInfo:
        info = ClassInfo(node.name)
        self.held[id(info)] = info
        for base in node.bases:
            parent = self.eval(base, scope)
            if isinstance(parent, ClassInfo):
                info.attrs.update(parent.attrs)
                for name, method in parent.methods.items():
                    if isinstance(method, Function):  # the parent's code, this class's self
                        method = Function(
                            method.node, method.scope, info, method.module, method.returns,
                            seen=method.seen, defaults=method.defaults,
                        )  # fmt: skip
                    info.methods[name] = method
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

    def instantiate(self, cls: ClassInfo, args: list, kwargs: dict) -> Instance:
        """``Trainer(model, criterion=nn.CrossEntropyLoss())``: ``__init__`` sees the arguments."""
        init = cls.methods.get("__init__")
        if isinstance(init, Function) and any(interesting(v) for v in [*args, *kwargs.values()]):
            self.call_function(init, args, kwargs)
        return Instance(cls)

    def call_instance(self, instance: Instance, args: list, kwargs: dict) -> object:
        """``model(x)``: what ``forward`` returns (analysed again if its attributes changed)."""
        cls = instance.cls
        forward = cls.methods.get("forward") or cls.methods.get("__call__")
        if isinstance(forward, Function):
            return self.call_function(forward, args, kwargs)
        return cls.forward

    # -- expressions ---------------------------------------------------------------------------

    def eval(self, node: ast.expr | None, scope: Scope) -> object:
        if node is None:
            return None
        return _EVAL.get(type(node), Analysis.eval_children)(self, node, scope)

    def eval_name(self, node: ast.Name, scope: Scope) -> object:
        owner = scope.owner(node.id)
        if owner is not None:
            value = owner.env[node.id]
            if isinstance(value, Lazy):
                value = self.force(value)
            return value
        return self.function_as_value(node, scope)

    def eval_subscript(self, node: ast.Subscript, scope: Scope) -> object:
        value = self.eval(node.value, scope)
        index = node.slice
        self.eval(index, scope)
        return self.map(value, lambda v: self.subscript(v, index))

    def eval_sequence(self, node: ast.Tuple | ast.List, scope: Scope) -> object:
        items = []
        for element in node.elts:
            if isinstance(element, ast.Starred):
                starred = self.eval(element.value, scope)
                if not isinstance(starred, Tup):
                    return Tup(())  # unknown length
                items.extend(starred.items)
            else:
                items.append(self.eval(element, scope))
        return Tup(tuple(items))

    def eval_ifexp(self, node: ast.IfExp, scope: Scope) -> object:
        self.eval(node.test, scope)
        mode = mode_of_test(node.test)
        body, orelse = self.eval(node.body, scope), self.eval(node.orelse, scope)
        if mode == TRAIN:
            return body
        if mode == INFER:
            return orelse
        if body is orelse:
            return body
        test = self.text(node.test)
        return merge([(body, ((test, True),)), (orelse, ((test, False),))])

    def eval_lambda(self, node: ast.Lambda, scope: Scope) -> object:
        return self.function_value(node, scope)

    def eval_unary(self, node: ast.UnaryOp, scope: Scope) -> object:
        self.eval(node.operand, scope)
        if isinstance(node.op, ast.USub):
            self.emit("on_reduction", Reduction(node, node.operand, negated=True))
        return None

    def eval_yield(self, node: ast.Yield | ast.YieldFrom, scope: Scope) -> object:
        self.eval(node.value, scope)
        function: Scope | None = scope
        while function is not None and not function.function:
            function = function.parent
        if function is not None:
            function.generator = True
        return None

    def eval_named(self, node: ast.NamedExpr, scope: Scope) -> object:
        value = self.eval(node.value, scope)
        self.assign(node.target, value, scope)
        return value

    def eval_starred(self, node: ast.Starred, scope: Scope) -> object:
        return self.eval(node.value, scope)

    def eval_constant(self, node: ast.Constant, scope: Scope) -> object:
        return None

    def eval_compare(self, node: ast.Compare, scope: Scope) -> object:
        self.eval(node.left, scope)
        for comparator in node.comparators:
            self.eval(comparator, scope)
        return None

    def eval_values(self, node: ast.BoolOp | ast.JoinedStr, scope: Scope) -> object:
        for value in node.values:
            self.eval(value, scope)
        return None

    def eval_formatted(self, node: ast.FormattedValue, scope: Scope) -> object:
        self.eval(node.value, scope)
        return None

    def eval_children(self, node: ast.expr, scope: Scope) -> object:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.eval(child, scope)
        return None

    def map(self, value: object, function) -> object:
        """Apply ``function`` to each option of ``value``."""
        if isinstance(value, Alt):
            return merge([(function(v), path) for v, path in value.options])
        return function(value)

    @staticmethod
    def subscript(value: object, index: ast.expr) -> object:
        if isinstance(value, Tup):
            if (
                isinstance(index, ast.Constant)
                and isinstance(index.value, int)
                and -len(value.items) <= index.value < len(value.items)
            ):
                return value.items[index.value]
            return None
        return value if isinstance(value, Tensor) else None

    def element(self, node: ast.expr | None, value: object) -> object:
        """What iterating over ``value`` gives: rows of a softmax are probabilities too;
        ``enumerate(p)`` gives ``(i, row)``, ``zip(a, b)`` pairs of rows."""
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args:
            name = node.func.id
            if self.scope is not None and not self.scope.binds(name):
                rows = [self.element(None, self.values.get(id(a))) for a in node.args]
                if name == "enumerate" and len(node.args) <= 2:
                    return Tup((None, rows[0]))
                if name == "zip":
                    return Tup(tuple(rows))
                if name in _ITERATORS:
                    return rows[0]
        if isinstance(value, Tensor) and value.kind in (PROBS, LOG_PROBS, EXP):
            return value
        if isinstance(value, Tup) and value.items:
            return merge([(item, ()) for item in value.items])
        if isinstance(value, Alt):
            return self.map(value, lambda v: self.element(None, v))
        return None

    def eval_comprehension(self, node: ast.expr, scope: Scope) -> object:
        inner = Scope(parent=scope, cls=scope.cls, self_name=scope.self_name)
        for generator in node.generators:
            iterated = self.eval(generator.iter, inner)
            self.assign(generator.target, self.element(generator.iter, iterated), inner)
            for condition in generator.ifs:
                self.eval(condition, inner)
        if isinstance(node, ast.DictComp):
            self.eval(node.key, inner)
            self.eval(node.value, inner)
            return None
        element = self.eval(node.elt, inner)
        if isinstance(element, Tensor) and element.kind in (EXP, PROBS, LOG_PROBS):
            return element  # sum(exp(v) for v in x), [e / s for e in exps]
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
        return self.map(base, lambda v: self.attribute(v, node.attr))

    def attribute(self, base: object, attr: str) -> object:
        if isinstance(base, Tensor) and attr in SAME_VALUE_ATTRS:
            return base
        if isinstance(base, Instance):
            return self.member(base, attr)
        if isinstance(base, ClassInfo):
            return base.attrs.get(attr) or base.methods.get(attr)
        if isinstance(base, ModuleValue):
            return self.module_attr(base, attr)
        if isinstance(base, Producer) and attr in ("forward", "__call__"):
            return base
        return None

    def function_as_value(self, node: ast.Name | ast.Attribute, scope: Scope) -> object:
        """``COST_FN = F.cross_entropy``, ``ACTIVATION = F.softmax`` (seed 000): the function."""
        name = self.qualified(node, scope)
        if name is None:
            return None
        shown = self.text(node)
        if name in SOFTMAX_FUNCS or name in LOG_SOFTMAX_FUNCS:
            return Producer(self.output_of(name, shown, node.lineno), shown)
        if name in LOSS_FUNCS:
            return Loss(LOSS_FUNCS[name], shown)
        return None

    @staticmethod
    def member(instance: Instance, name: str) -> object:
        cls = instance.cls
        if name in cls.attrs:
            return cls.attrs[name]
        if name in cls.methods:
            return cls.methods[name]
        if name == "__call__" and "forward" in cls.methods:
            return cls.methods["forward"]
        if name in ("forward", "__call__") and cls.forward is not None:
            return Producer(cls.forward, "forward")
        return None

    def eval_binop(self, node: ast.BinOp, scope: Scope) -> object:
        left = self.eval(node.left, scope)
        right = self.eval(node.right, scope)
        op = node.op
        if isinstance(op, ast.Div):
            return self.divide(node, left, right)
        if isinstance(op, ast.Sub):
            if self.is_logsumexp(node.right):
                return self.tensor(LOG_PROBS, "x - logsumexp(x)", node.lineno)
            return Tensor(SHIFTED, key=self.key_of(node.left, left))
        if isinstance(op, ast.Mult):
            self.entropy(left, right)
            return None
        if isinstance(op, ast.Add):
            for a, other, other_value in ((left, node.right, right), (right, node.left, left)):
                if (
                    is_kind(a, PROBS)
                    and _is_constant_like(other)
                    and not isinstance(other_value, Tensor)
                ):
                    return replace(a, eps=True)
                if is_kind(a, SUM_EXP) and _is_constant_like(other):
                    return a  # sum(exp(x)) + eps is still unshifted
            return None
        return None

    def entropy(self, left: object, right: object) -> None:
        """``p * log(clamp(p))``: an entropy, whose clamp is right (``0 * log(eps) = 0``); the
        LMX103 reported at that log is dropped."""
        pairs = [(a, b) for a, _ in options(left) for b, _ in options(right)]
        for probs, logs in [*pairs, *((b, a) for a, b in pairs)]:
            if (
                is_kind(probs, PROBS)
                and is_kind(logs, LOG_PROBS)
                and logs.eps  # type: ignore[union-attr]
                and logs.site  # type: ignore[union-attr]
                and logs.origin == f"log of {probs.origin}"  # type: ignore[union-attr]
                and logs.line == probs.line  # type: ignore[union-attr]
            ):
                path, line, col = logs.site  # type: ignore[union-attr]
                self.suppress_key(path, "LMX103", line, col)

    def divide(self, node: ast.AST, left: object, right: object) -> object:
        """``a / b`` in any spelling: a hand-written softmax when ``exp(x) / sum(exp(x))``."""
        results = []
        for top, top_path in options(left):
            for bottom, bottom_path in options(right):
                if contradicts(top_path, bottom_path):
                    continue
                path = top_path + bottom_path
                self.emit("on_division", Division(node, top, bottom, path))
                value = None
                if (
                    is_kind(top, EXP) and is_kind(bottom, SUM_EXP) and top.key == bottom.key  # type: ignore[union-attr]
                ):
                    value = self.tensor(PROBS, "hand-written softmax", node.lineno)
                results.append((value, path))
        return merge(results) if results else None

    def key_of(self, node: ast.expr, value: object) -> str:
        """What an exponent is, for matching ``exp(x)`` with ``sum(exp(x))``: the shifted
        variable's base, else the expression's text (without spaces)."""
        if isinstance(value, Tensor) and value.kind == SHIFTED and value.key:
            return value.key
        if isinstance(node, ast.Name):
            return node.id
        if node.lineno == node.end_lineno and (node.end_col_offset or 0) - node.col_offset < 120:
            return "".join(self.text(node).split())
        return f"#{id(node)}"  # a long expression: equal only to itself

    def is_logsumexp(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Call):
            if self.qualified(node.func, None) in LOGSUMEXP_FUNCS:
                return True
            if isinstance(node.func, ast.Attribute) and node.func.attr == "logsumexp":
                return True
        return False

    def random_draw(self, node: ast.expr) -> bool:
        """``torch.randn(3)``, ``np.random.rand(n)``: random numbers, not logits; their ``exp``
        normalized is a way to draw random probabilities (in tests), and cannot overflow."""
        while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name = self.qualified(node.func, self.scope) or ""
            if name.startswith(("torch.rand", "numpy.random.", "torch.normal", "random.")):
                return True
            if node.func.attr not in SAME_VALUE_METHODS and node.func.attr != "exp":
                return False
            node = node.func.value
        return False

    def qualified(self, func: ast.expr, scope: Scope | None) -> str | None:
        """The canonical name of a callee, unless a local name shadows its import."""
        base = base_name(func)
        if base is None or (scope is not None and scope.binds(base)):
            return None
        key = id(func)
        if key not in self.resolved:
            self.resolved[key] = self.module.imports.resolve(func)
        return self.resolved[key]

    # -- calls ---------------------------------------------------------------------------------

    def eval_call(self, node: ast.Call, scope: Scope) -> object:
        func = node.func
        name = self.qualified(func, scope)
        receiver = None
        callee = None
        if name is None:
            if isinstance(func, ast.Attribute):
                receiver = self.eval(func.value, scope)
                callee = self.map(receiver, lambda v: self.member_or_none(func, v, scope))
            else:
                callee = self.eval(func, scope)
        args = self.eval_args(node.args, scope)
        if isinstance(func, ast.Name) and func.id in _ITERATORS:
            for arg, value in zip(node.args, args, strict=False):
                self.values[id(arg)] = value  # for loops: what enumerate(p) gives
        kwargs = {kw.arg: self.eval(kw.value, scope) for kw in node.keywords if kw.arg}
        for kw in node.keywords:
            if not kw.arg:
                self.eval(kw.value, scope)
        if name is not None:
            return self.call_named(node, name, args, kwargs, scope)
        if isinstance(func, ast.Name) and func.id == "sum" and not scope.binds("sum"):
            return self.call_sum(node, node.args[0] if node.args else None, args)
        if callee is not None:
            return self.map_call(node, callee, args, kwargs)
        if isinstance(func, ast.Attribute) and not (
            isinstance(func.value, ast.Name) and func.value.id == scope.self_name
        ):
            return self.map(
                receiver, lambda v: self.call_method(node, func, v, args, kwargs, scope)
            )
        return None

    def eval_args(self, nodes: list[ast.expr], scope: Scope) -> list:
        """Positional argument values; ``*xs`` spreads a known list and ends an unknown one."""
        args: list = []
        ended = False
        for arg in nodes:
            value = self.eval(arg, scope)
            if ended:
                continue
            if isinstance(arg, ast.Starred):
                self.values[id(arg)] = value
                if isinstance(value, Tup) and value.items:
                    args.extend(value.items)
                else:
                    ended = True
            else:
                args.append(value)
        return args

    def map_call(self, node: ast.Call, callee: object, args: list, kwargs: dict) -> object:
        if not isinstance(callee, Alt):
            return self.call_value(node, callee, args, kwargs, ())
        return merge(
            [(self.call_value(node, v, args, kwargs, path), path) for v, path in callee.options]
        )

    def member_or_none(self, func: ast.Attribute, receiver: object, scope: Scope) -> object:
        if (
            scope.cls is not None
            and isinstance(func.value, ast.Name)
            and func.value.id == scope.self_name
        ):
            return self.member(Instance(scope.cls), func.attr)
        if isinstance(receiver, Instance):
            return self.member(receiver, func.attr)
        if isinstance(receiver, ModuleValue):
            return self.module_attr(receiver, func.attr)
        if isinstance(receiver, ClassInfo):
            return receiver.methods.get(func.attr)
        if isinstance(receiver, Producer) and func.attr in ("forward", "__call__"):
            return receiver
        if isinstance(receiver, Loss) and func.attr in ("forward", "__call__"):
            return receiver
        return None

    def call_value(
        self, node: ast.Call, callee: object, args: list, kwargs: dict, path: Path
    ) -> object:
        if isinstance(callee, Producer):
            return callee.returns
        if isinstance(callee, Function):
            return self.call_function(callee, args, kwargs)
        if isinstance(callee, Loss):
            self.loss_call(node, callee.kind, self.text(node.func), args, kwargs, path)
            return None
        if isinstance(callee, ClassInfo):
            return self.instantiate(callee, args, kwargs)
        if isinstance(callee, Instance):
            return self.call_instance(callee, args, kwargs)
        return None

    def loss_call(
        self, node: ast.Call, kind: str, shown: str, args: list, kwargs: dict, path: Path = ()
    ) -> None:
        first = args[0] if args else kwargs.get("input")
        second = args[1] if len(args) > 1 else kwargs.get("target")
        for value, value_path in options(first):
            for target, target_path in options(second):
                full = path + value_path + target_path
                if contradicts(path, value_path) or contradicts(path + value_path, target_path):
                    continue
                self.emit("on_loss", LossCall(node, kind, shown, value, target, full))

    def call_named(
        self, node: ast.Call, name: str, args: list, kwargs: dict, scope: Scope
    ) -> object:
        shown = self.text(node.func)
        if name in IMPLICIT_DIM:
            position, keywords = IMPLICIT_DIM[name]
            self.emit("on_softmax_call", SoftmaxCall(node, name, shown, position, keywords))
        first = args[0] if args else None
        if name in SOFTMAX_FUNCS:
            return self.output_of(name, shown, node.lineno)
        if name in LOG_SOFTMAX_FUNCS:
            self.loss_call(node, "log_softmax", shown, args, kwargs)
            return self.output_of(name, shown, node.lineno)
        if name in SOFTMAX_LAYERS or name in LOG_SOFTMAX_LAYERS:
            return Producer(self.output_of(name, shown, node.lineno), shown)
        if name in SEQUENTIAL:
            return self.sequential(node, args, scope)
        if name in LOSS_LAYERS:
            return Loss(LOSS_LAYERS[name], shown)
        if name in LOSS_FUNCS:
            self.loss_call(node, LOSS_FUNCS[name], shown, args, kwargs)
            return None
        if name in LOG_FUNCS and len(node.args) == 1 and not node.keywords:
            self.values[id(node.args[0])] = first  # LMX107 asks what was logged
            return self.call_log(node, node.args[0], first, name)
        if name in EXP_FUNCS and len(node.args) >= 1:
            return self.call_exp(node.args[0], first, name)
        if name in SUM_FUNCS and node.args:
            return self.call_sum(node, node.args[0], args)
        if name in MEAN_FUNCS and node.args:
            self.emit("on_reduction", Reduction(node, node.args[0]))
            return None
        if name in DIV_FUNCS and len(args) == 2:
            return self.divide(node, args[0], args[1])
        if name in NEG_FUNCS and node.args:
            self.emit("on_reduction", Reduction(node, node.args[0], negated=True))
            return None
        if name in DOT_FUNCS:
            return None
        if name in CLAMP_FUNCS:
            return self.map(first, lambda v: replace(v, eps=True) if is_kind(v, PROBS) else None)
        if name in SAME_VALUE_FUNCS:
            if name in ("torch.stack", "torch.cat", "numpy.stack", "numpy.concatenate"):
                return self.element(None, first)
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
        if method in _LIST_BUILDERS and (
            isinstance(receiver, Tup) or isinstance(receiver, Producer) and receiver.sequential
        ):
            self.build(func.value, receiver, method, args, scope)
            return None
        if isinstance(receiver, Producer | Function | Instance | Tup | ClassInfo | Loss):
            return receiver if method in SAME_VALUE_METHODS else None
        if method == "softmax":
            return self.tensor(PROBS, ".softmax()", node.lineno, sibling=".log_softmax()")
        if method == "log_softmax":
            self.loss_call(node, "log_softmax", ".log_softmax()", [receiver], {})
            return self.tensor(LOG_PROBS, ".log_softmax()", node.lineno)
        if method == "log" and not node.args and not node.keywords:
            self.values[id(func.value)] = receiver
            return self.call_log(node, func.value, receiver, "method")
        if method == "exp" and not node.args and not node.keywords:
            return self.call_exp(func.value, receiver, ".exp()")
        if method == "sum":
            return self.call_sum(node, func.value, [receiver])
        if method == "mean":
            self.emit("on_reduction", Reduction(node, func.value))
            return None
        if method in DIV_METHODS and len(args) == 1:
            result = self.divide(node, receiver, args[0])
            if method.endswith("_"):
                self.assign_back(func.value, result, scope)
            return result
        if method in NEG_METHODS and not node.args:
            self.emit("on_reduction", Reduction(node, func.value, negated=True))
            return None
        if isinstance(receiver, Tensor):
            if method in CLAMP_METHODS and receiver.kind == PROBS:
                return replace(receiver, eps=True)
            if method in SAME_VALUE_METHODS:
                return receiver
        return None

    def build(self, target: ast.expr, receiver: object, method: str, args: list, scope) -> None:
        """``layers.append(nn.Softmax(1))``, ``model.add_module("sm", nn.Softmax(1))``."""
        added = args[-1] if args else None
        if isinstance(receiver, Tup):
            value: object = Tup(receiver.items + (added,))
        else:
            returns = added.returns if isinstance(added, Producer) else None
            value = Producer(returns, "nn.Sequential", sequential=True)
        self.assign_back(target, value, scope)

    def assign_back(self, target: ast.expr, value: object, scope: Scope) -> None:
        """Rebind a name or ``self.x`` that an in-place method changed."""
        if isinstance(target, ast.Name | ast.Attribute):
            self.assign(target, value, scope)

    def sequential(self, node: ast.Call, args: list, scope: Scope) -> object:
        empty = Producer(None, "nn.Sequential", sequential=True)
        if not node.args:
            return empty
        last = args[-1] if args else None
        if isinstance(node.args[-1], ast.Starred):
            spread = self.values.get(id(node.args[-1]))
            last = self.map(
                spread, lambda v: v.items[-1] if isinstance(v, Tup) and v.items else None
            )
        only = node.args[0]
        if (
            len(node.args) == 1
            and isinstance(only, ast.Call)
            and (self.module.imports.resolve(only.func) or "").endswith("OrderedDict")
        ):
            # nn.Sequential(OrderedDict([("fc", ...), ("softmax", nn.Softmax(1))]))
            items = only.args[0] if only.args else None
            if isinstance(items, ast.List | ast.Tuple) and items.elts:
                pair = items.elts[-1]
                if isinstance(pair, ast.Tuple) and len(pair.elts) == 2:
                    last = self.eval(pair.elts[1], scope)
        returns = self.map(last, lambda v: v.returns if isinstance(v, Producer) else None)
        if isinstance(returns, Tensor | Alt):
            return Producer(returns, "nn.Sequential", sequential=True)
        return empty

    def call_log(self, node: ast.Call, arg: ast.expr, value: object, name: str) -> object:
        results = []
        for option, path in options(value):
            self.emit("on_log", LogCall(node, arg, option, name, path))
            result = None
            if isinstance(option, Tensor) and option.kind == PROBS:
                line, col, _, _ = self.span(node)
                result = self.tensor(
                    LOG_PROBS, f"log of {option.origin}", option.line, eps=option.eps,
                    site=(self.module.path, line, col),
                )  # fmt: skip
            results.append((result, path))
        return merge(results)

    def call_exp(self, arg: ast.expr, value: object, origin: str) -> object:
        def exp(option: object) -> object:
            if is_kind(option, LOG_PROBS):
                return self.tensor(PROBS, f"exp of {option.origin}", option.line)
            shifted = (
                (isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Sub))
                or is_kind(option, SHIFTED, LOG_PROBS)
                or _non_positive(arg)
                or self.random_draw(arg)
            )
            return Tensor(
                EXP, origin, arg.lineno, key=self.key_of(arg, option), shifted=shifted,
                module=self.module.path,
            )  # fmt: skip

        return self.map(value, exp)

    def call_sum(self, node: ast.Call, arg: ast.expr | None, args: list) -> object:
        if arg is None:
            return None
        if isinstance(arg, ast.GeneratorExp | ast.ListComp):
            arg = arg.elt
        self.emit("on_reduction", Reduction(node, arg))
        first = args[0] if args else None
        return self.map(
            first,
            lambda v: replace(v, kind=SUM_EXP) if is_kind(v, EXP) else None,
        )


def _non_positive(node: ast.expr) -> bool:
    """``-d**2 / (2 * s**2)``, ``-0.5 * x.pow(2)``, ``-dist``: an exponent written as a negated
    quantity (a Gaussian kernel, a softmin over distances) cannot overflow ``exp``."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult | ast.Div):
        return _non_positive(node.left) or (
            isinstance(node.op, ast.Mult) and _non_positive(node.right)
        )
    return False


def _signature(value: object) -> object:
    """What about an argument matters for the analysis of a call (for the memo)."""
    if isinstance(value, Tensor):
        return (value.kind, value.key, value.eps)
    if isinstance(value, Instance):
        return ("instance", id(value.cls))
    if isinstance(value, Loss):
        return ("loss", value.kind)
    if isinstance(value, Producer):
        return ("producer", _signature(value.returns))
    if isinstance(value, Tup):
        return tuple(_signature(v) for v in value.items)
    if isinstance(value, Alt):
        return ("alt", tuple(_signature(v) for v, _ in value.options))
    if value is None:
        return None
    return ("other", id(value))


# expression node type -> the Analysis method that evaluates it (one dict lookup per node)
_EVAL = {
    ast.Name: Analysis.eval_name,
    ast.Call: Analysis.eval_call,
    ast.Attribute: Analysis.eval_attribute,
    ast.BinOp: Analysis.eval_binop,
    ast.Subscript: Analysis.eval_subscript,
    ast.Tuple: Analysis.eval_sequence,
    ast.List: Analysis.eval_sequence,
    ast.IfExp: Analysis.eval_ifexp,
    ast.Lambda: Analysis.eval_lambda,
    ast.GeneratorExp: Analysis.eval_comprehension,
    ast.ListComp: Analysis.eval_comprehension,
    ast.SetComp: Analysis.eval_comprehension,
    ast.DictComp: Analysis.eval_comprehension,
    ast.UnaryOp: Analysis.eval_unary,
    ast.Yield: Analysis.eval_yield,
    ast.YieldFrom: Analysis.eval_yield,
    ast.NamedExpr: Analysis.eval_named,
    ast.Starred: Analysis.eval_starred,
    ast.Constant: Analysis.eval_constant,
    ast.Compare: Analysis.eval_compare,
    ast.BoolOp: Analysis.eval_values,
    ast.JoinedStr: Analysis.eval_values,
    ast.FormattedValue: Analysis.eval_formatted,
}
