"""``[tool.logmax.lint]`` in ``pyproject.toml``: which codes, for which files.

Found as ruff finds its configuration: for each linted file, the nearest ``pyproject.toml`` at or
above the file's folder that has a ``[tool.logmax.lint]`` table (read with the standard
library's ``tomllib``). Keys::

    [tool.logmax.lint]
    select = ["LMX1", "LMX202"]          # codes or prefixes; all codes when left out
    ignore = ["LMX106"]
    exclude = ["notebooks/scratch", "*_generated.py"]
    [tool.logmax.lint.per-file-ignores]
    "tests/*" = ["LMX1"]                  # glob on the path from the pyproject.toml's folder
    "exercise_*.ipynb" = ["LMX000"]       # a pattern without "/" matches the file name too

On the command line, ``--select`` replaces the configured ``select`` and ``ignore`` (the codes
asked for are shown, per-file ignores still apply), ``--ignore`` adds to ``ignore``,
``--exclude`` adds to ``exclude``, ``--isolated`` ignores every ``pyproject.toml``.
An unknown key or code is an error (:class:`ConfigError`), as a typo would otherwise select
nothing without a word.
"""

from __future__ import annotations

import fnmatch
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from logmax.lint.rules import unknown_codes

KEYS = ("select", "ignore", "exclude", "per-file-ignores")


class ConfigError(ValueError):
    """A ``[tool.logmax.lint]`` table that cannot be used, with where and why."""


@dataclass(frozen=True)
class Config:
    """The settings of one ``pyproject.toml`` (``folder`` is where it lies)."""

    folder: Path | None = None
    select: list[str] | None = None
    ignore: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    per_file_ignores: dict[str, list[str]] = field(default_factory=dict)

    def codes_for(self, path: str) -> tuple[list[str] | None, list[str]]:
        """(select, ignore) for one file, its per-file ignores included."""
        return self.select, [*self.ignore, *self.per_file_codes(path)]

    def per_file_codes(self, path: str) -> list[str]:
        """The codes ``per-file-ignores`` ignores in one file."""
        codes: list[str] = []
        if self.per_file_ignores:
            relative = _relative(path, self.folder)
            name = Path(path).name
            for pattern, ignored in self.per_file_ignores.items():
                if fnmatch.fnmatch(relative, pattern) or (
                    "/" not in pattern and fnmatch.fnmatch(name, pattern)
                ):
                    codes.extend(ignored)
        return codes

    def exclude_patterns(self) -> list[str]:
        """The exclude patterns, those with a ``/`` made absolute from the config's folder."""
        if self.folder is None:
            return list(self.exclude)
        return [
            str(self.folder / pattern) if "/" in pattern else pattern for pattern in self.exclude
        ]


def _relative(path: str, folder: Path | None) -> str:
    absolute = Path(os.path.abspath(path))
    if folder is not None:
        try:
            return absolute.relative_to(folder).as_posix()
        except ValueError:
            pass
    return Path(path).as_posix()


def _codes(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise ConfigError(f'{where}: expected a list of codes such as ["LMX101", "LMX2"]')
    codes = [c.strip().upper() for c in value]
    unknown = unknown_codes(codes)
    if unknown:
        raise ConfigError(f"{where}: unknown rule code {unknown[0]!r} ({known_codes_hint()})")
    return codes


def known_codes_hint() -> str:
    from logmax.lint.rules import RULES

    return f"codes are {', '.join(RULES)}; a prefix such as LMX1 names a group"


def parse(table: object, origin: str, folder: Path | None) -> Config:
    """A :class:`Config` from the ``[tool.logmax.lint]`` table read from ``origin``."""
    if not isinstance(table, dict):
        raise ConfigError(f"{origin}: [tool.logmax.lint] must be a table")
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise ConfigError(
            f"{origin}: unknown key {unknown[0]!r} in [tool.logmax.lint] (keys: {', '.join(KEYS)})"
        )
    select = _codes(table["select"], f"{origin}: select") if "select" in table else None
    ignore = _codes(table.get("ignore", []), f"{origin}: ignore")
    exclude = table.get("exclude", [])
    if not isinstance(exclude, list) or not all(isinstance(p, str) for p in exclude):
        raise ConfigError(f"{origin}: exclude: expected a list of path patterns")
    per_file = table.get("per-file-ignores", {})
    if not isinstance(per_file, dict):
        raise ConfigError(f"{origin}: per-file-ignores: expected a table of pattern = [codes]")
    per_file_ignores = {
        str(pattern): _codes(codes, f"{origin}: per-file-ignores {pattern!r}")
        for pattern, codes in per_file.items()
    }
    return Config(folder, select, ignore, list(exclude), per_file_ignores)


def load(path: Path) -> Config | None:
    """The ``[tool.logmax.lint]`` of one ``pyproject.toml``, or None when it has none."""
    try:
        with path.open("rb") as stream:
            data = tomllib.load(stream)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror or error}") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from error
    tool = data.get("tool", {})
    table = tool.get("logmax", {}).get("lint") if isinstance(tool, dict) else None
    if table is None:
        return None
    return parse(table, str(path), path.parent.resolve())


class Finder:
    """The config that applies to each file, found once per folder (``isolated``: none)."""

    def __init__(self, isolated: bool = False) -> None:
        self.isolated = isolated
        self._by_folder: dict[Path, Config] = {}

    def for_path(self, path: str) -> Config:
        if self.isolated:
            return Config()
        folder = Path(os.path.abspath(path))
        folder = folder if folder.is_dir() else folder.parent
        return self._for_folder(folder)

    def _for_folder(self, folder: Path) -> Config:
        if folder in self._by_folder:
            return self._by_folder[folder]
        candidate = folder / "pyproject.toml"
        config = load(candidate) if candidate.is_file() else None
        if config is None:
            config = Config() if folder.parent == folder else self._for_folder(folder.parent)
        self._by_folder[folder] = config
        return config
