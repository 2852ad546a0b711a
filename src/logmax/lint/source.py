"""Reading what is linted: Python files and Jupyter notebooks, as text, never as code.

A Python file is decoded with the encoding its coding cookie or BOM declares. A notebook is read as
JSON; its code cells are joined into one text (cells share their names, as in a kernel that ran
them in order), so the analysis follows a softmax from one cell into a loss in a later one. Each
line of that text remembers its cell; findings are reported as ``nb.ipynb:cell3:2:5`` (cell 3
counting every cell, markdown included, line 2 of that cell, column 5).

IPython syntax is blanked out line by line before parsing, keeping line numbers: ``%magic``,
``!shell`` and ``x = !cmd`` lines become ``pass``; a cell starting with ``%%time``, ``%%timeit``
or ``%%capture`` is read without that line, other ``%%`` cells (``%%bash``...) are skipped. A
cell that still does not parse is reported as LMX000 and left out of the joined text. Notebooks
whose kernel declares a language other than Python are skipped.
"""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

from logmax.lint.finding import Edit, Finding, apply_edits, split_lines

PYTHON_CELL_MAGICS = ("%%time", "%%timeit", "%%capture", "%%prun", "%%debug")
_LINE_MAGIC = re.compile(r"^(\s*)(?:[%!]|[\w.,\s\[\]]+=\s*[%!])")
_HELP = re.compile(r"^(\s*)[\w.]+\?\??\s*$")


@dataclass
class Source:
    """One Python file or notebook: the text to analyse and how to map findings back to it."""

    path: str
    text: str | None = None  # None when unreadable; ``errors`` then says why
    errors: list[Finding] = field(default_factory=list)
    encoding: str = "utf-8"
    notebook: dict | None = None
    # notebooks: (cell index, first line in ``text``, number of lines), in order
    cells: list[tuple[int, int, int]] = field(default_factory=list)

    def locate(self, line: int) -> tuple[int | None, int]:
        """(cell, line in the cell) of a line of ``text``; cell is None for Python files."""
        if self.notebook is None:
            return None, line
        for cell, first, count in self.cells:
            if first <= line < first + count:
                return cell, line - first + 1
        return None, line

    def where(self, line: int) -> str:
        """A line of ``text`` as messages name it: ``line 12`` or ``cell3 line 2``."""
        cell, line = self.locate(line)
        return f"line {line}" if cell is None else f"cell{cell} line {line}"

    def finding(self, code: str, line: int, col: int, message: str, **extra) -> Finding:
        cell, cell_line = self.locate(line)
        return Finding(self.path, cell_line, col, code, message, cell=cell, **extra)

    def apply(self, edits: list[Edit]) -> None:
        """Apply edits given in ``text`` coordinates to the file's content, then re-read it."""
        if self.notebook is None:
            self.text = apply_edits(self.text or "", edits)
            return
        by_cell: dict[int, list[Edit]] = {}
        for edit in edits:
            cell, first = self._cell_of(edit.start_line)
            shift = first - 1
            by_cell.setdefault(cell, []).append(
                Edit(
                    edit.start_line - shift,
                    edit.start_col,
                    edit.end_line - shift,
                    edit.end_col,
                    edit.text,
                )
            )
        cells = self.notebook["cells"]
        for index, cell_edits in by_cell.items():
            cell = cells[index - 1]
            text = apply_edits(_cell_text(cell), cell_edits)
            cell["source"] = split_lines(text) if isinstance(cell.get("source"), list) else text
        self._join_cells()

    def _cell_of(self, line: int) -> tuple[int, int]:
        for cell, first, count in self.cells:
            if first <= line < first + count:
                return cell, first
        raise ValueError(f"line {line} is in no cell")

    def dump(self) -> bytes:
        """The file's content as it should be written back."""
        if self.notebook is not None:
            # as nbformat writes it, so that only the edited cells differ in a saved notebook
            text = json.dumps(self.notebook, sort_keys=True, indent=1, ensure_ascii=False)
            return (text + "\n").encode()
        return (self.text or "").encode(self.encoding)

    def _join_cells(self) -> None:
        assert self.notebook is not None
        self.errors = [e for e in self.errors if e.cell is None]
        self.cells = []
        chunks: list[str] = []
        next_line = 1
        for index, cell in enumerate(self.notebook.get("cells", []), start=1):
            if not isinstance(cell, dict) or cell.get("cell_type") != "code":
                continue
            code = _python_of_cell(_cell_text(cell))
            if code is None or not code.strip():
                continue
            try:
                ast.parse(code, f"{self.path}:cell{index}")
            except SyntaxError as error:
                message = f"cell cannot be parsed: {error.msg}"
                line, col = error.lineno or 1, error.offset or 1
                self.errors.append(Finding(self.path, line, col, "LMX000", message, cell=index))
                continue
            except (ValueError, RecursionError, MemoryError) as error:
                message = f"cell cannot be parsed: {error}"
                self.errors.append(Finding(self.path, 1, 1, "LMX000", message, cell=index))
                continue
            if not code.endswith(("\n", "\r")):
                code += "\n"
            count = len(split_lines(code))
            self.cells.append((index, next_line, count))
            chunks.append(code)
            next_line += count
        self.text = "".join(chunks)


def _mapping(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _cell_text(cell: dict) -> str:
    source = cell.get("source", "")
    if isinstance(source, list):
        return "".join(s for s in source if isinstance(s, str))
    return source if isinstance(source, str) else ""


def _python_of_cell(code: str) -> str | None:
    """The cell with IPython-only lines made ``pass`` (same line count); None if not Python."""
    lines = split_lines(code)
    if lines and lines[0].startswith("%%"):
        if lines[0].split()[0] not in PYTHON_CELL_MAGICS:
            return None
        lines[0] = "\n"
    out = []
    for line in lines:
        ending = line[len(line.rstrip("\r\n")) :]
        match = _LINE_MAGIC.match(line) or _HELP.match(line)
        out.append(f"{match.group(1)}pass{ending}" if match else line)
    return "".join(out)


def read_source(path: Path, shown: str | None = None) -> Source:
    """Read a ``.py`` file or an ``.ipynb`` notebook; problems become LMX000 findings."""
    shown = shown if shown is not None else str(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        return Source(shown, errors=[Finding(shown, 1, 1, "LMX000", f"cannot read: {error}")])
    if path.suffix == ".ipynb":
        return _read_notebook(data, shown)
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        text = data.decode(encoding)
    except (SyntaxError, UnicodeDecodeError, LookupError) as error:
        return Source(shown, errors=[Finding(shown, 1, 1, "LMX000", f"cannot decode: {error}")])
    return Source(shown, text=text, encoding=encoding)


def _read_notebook(data: bytes, shown: str) -> Source:
    try:
        notebook = json.loads(data)
        if not isinstance(notebook, dict) or not isinstance(notebook.get("cells", []), list):
            raise ValueError("no list of cells")
    except (ValueError, UnicodeDecodeError) as error:
        message = f"not a readable notebook: {error}"
        return Source(shown, errors=[Finding(shown, 1, 1, "LMX000", message)])
    metadata = _mapping(notebook.get("metadata"))
    language = _mapping(metadata.get("kernelspec")).get("language") or _mapping(
        metadata.get("language_info")
    ).get("name")
    source = Source(shown, text="", notebook=notebook)
    if language and str(language).lower() != "python":
        return source
    source._join_cells()
    return source
