"""The linted project: its modules, and where ``import model`` leads among them.

Imports of the user's own modules are followed, so that a model defined in ``network.py`` and
trained in ``main.py`` is checked as one program. A module name is looked up as Python would find
it from the importing file: in the importer's folder, then in the folders above it, up to the
project's root (the nearest folder holding ``pyproject.toml``, ``setup.py``, ``setup.cfg`` or
``.git``, else the folder that was linted); relative imports (``from .model import Net``) from
the importer's package. Files found there are read even when they were not named on the command
line (their findings are not reported, only what they define is used). The libraries whose
functions the rules know (torch, NumPy, SciPy, JAX, math, logmax) are never looked up in the
project: a folder named ``torch`` does not hide ``torch``.
"""

from __future__ import annotations

import ast
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from logmax.lint.finding import Finding
from logmax.lint.names import ImportTable
from logmax.lint.source import Source, read_source

KNOWN_LIBRARIES = frozenset({"torch", "numpy", "scipy", "jax", "math", "logmax", "copy"})
ROOT_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", ".git")
MAX_LEVELS = 8  # folders walked up from an importer


@dataclass(eq=False)
class Module:
    """One Python file or notebook of the project, parsed once and analysed once."""

    source: Source
    file: Path | None  # on disk, for resolving its imports; None for text given directly
    root: Path | None = None  # the folder linted that holds it: where imports stop by default
    requested: bool = True  # named by the user: its findings are reported
    tree: ast.Module | None = None
    errors: list[Finding] = field(default_factory=list)  # LMX000 of parsing
    imports: ImportTable | None = None
    scope: object = None  # the module Scope, once its analysis started (done, or running)
    functions: list = field(default_factory=list)  # Function values defined here

    @property
    def path(self) -> str:
        return self.source.path

    @property
    def text(self) -> str:
        return self.source.text or ""

    def where(self, line: int) -> str:
        return self.source.where(line)

    def parse(self) -> None:
        """Parse the text; a syntax error becomes an LMX000 finding and an empty module."""
        self.errors = list(self.source.errors)
        if self.source.tree is not None:  # a notebook, parsed when its cells were joined
            self.tree, self.source.tree = self.source.tree, None
            self.imports = ImportTable(self.tree)
            return
        if not self.source.text:
            self.tree = ast.Module(body=[], type_ignores=[])
            self.imports = ImportTable(self.tree)
            return
        try:  # SyntaxWarnings (odd escapes) are not ours to report: the engine hides them
            self.tree = ast.parse(self.source.text, self.path)
        except SyntaxError as error:
            line, col = error.lineno or 1, error.offset or 1
            message = f"syntax error: {error.msg}"
            self.errors.append(self.source.finding("LMX000", line, col, message))
        except (ValueError, RecursionError, MemoryError) as error:
            message = f"cannot be parsed: {error}"
            self.errors.append(self.source.finding("LMX000", 1, 1, message))
        if self.tree is None:
            self.tree = ast.Module(body=[], type_ignores=[])
        self.imports = ImportTable(self.tree)


@dataclass(frozen=True)
class Package:
    """A folder imported as a package: its ``__init__`` module (if any) and the folder."""

    folder: Path
    init: Module | None
    root: Path | None = None


class Project:
    """The modules being linted, and the other modules of the project they import."""

    def __init__(self) -> None:
        self.modules: dict[Path, Module] = {}  # by resolved path
        self._roots: dict[Path, Path | None] = {}  # folder -> project root above it
        self._resolved: dict[tuple, Module | Package | None] = {}

    def add(self, source: Source, root: Path | None = None) -> Module:
        """A module named by the user (its findings are reported); ``root``: the folder linted."""
        file = source.file
        module = Module(source, file, root)
        module.parse()
        if file is not None:
            key = _key(file)
            old = self.modules.get(key)
            if old is not None and old.requested:
                return old  # named twice
            self.modules[key] = module
        return module

    def _load(self, file: Path, root: Path | None) -> Module | None:
        key = _key(file)
        module = self.modules.get(key)
        if module is None:
            module = Module(read_source(file), file, root, requested=False)
            module.parse()
            self.modules[key] = module
        return module

    def project_root(self, folder: Path, fallback: Path | None) -> Path:
        """The nearest folder at or above ``folder`` that marks a project, else ``fallback``
        (the folder linted), else ``folder`` itself."""
        folder = _key(folder)
        if folder not in self._roots:
            self._roots[folder] = next(
                (
                    candidate
                    for candidate in [folder, *folder.parents][:MAX_LEVELS]
                    if any((candidate / marker).exists() for marker in ROOT_MARKERS)
                ),
                None,
            )
        found = self._roots[folder]
        if found is not None:
            return found
        return _key(fallback) if fallback is not None else folder

    def resolve(self, importer: Module, name: str, level: int = 0) -> Module | Package | None:
        """The module or package that ``import name`` (``level`` dots) gives in ``importer``."""
        if importer.file is None:
            return None
        key = (importer.file.parent, importer.root, name, level)
        if key not in self._resolved:
            self._resolved[key] = self._resolve(importer, name, level)
        return self._resolved[key]

    def _resolve(self, importer: Module, name: str, level: int) -> Module | Package | None:
        assert importer.file is not None
        parts = name.split(".") if name else []
        here = importer.file.parent
        root = importer.root
        if level:
            base = here
            for _ in range(level - 1):
                base = base.parent
            return self._find(base, parts, root) if parts else self._package(base, root)
        if not parts or parts[0] in KNOWN_LIBRARIES or parts[0] in sys.stdlib_module_names:
            return None
        top = self.project_root(here, root)
        folder = here
        for _ in range(MAX_LEVELS):
            found = self._find(folder, parts, root)
            if found is not None:
                return found
            if _key(folder) == top or folder.parent == folder:
                break
            folder = folder.parent
        return None

    def submodule(self, package: Package, name: str) -> Module | Package | None:
        return self._find(package.folder, [name], package.root)

    def _find(self, base: Path, parts: list[str], root: Path | None) -> Module | Package | None:
        target = base.joinpath(*parts)
        file = target.with_suffix(".py") if parts else None
        if file is not None and _is_file(file):
            return self._load(file, root)
        if parts and os.path.isdir(target):
            return self._package(target, root)
        return None

    def _package(self, folder: Path, root: Path | None) -> Package:
        init = folder / "__init__.py"
        return Package(folder, self._load(init, root) if _is_file(init) else None, root)


def _key(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False
