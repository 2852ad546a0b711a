"""Reading what is linted: Python files and Jupyter notebooks, as text, never as code.

Only regular files are read, and at most :data:`MAX_BYTES` of them: a FIFO named ``*.py`` is not
opened for reading (it would wait forever), ``/dev/zero`` is not read without end; both become an
LMX000 finding that says why. Standard input (``logmax lint -``) is read the same way.

A Python file is decoded with the encoding its coding cookie or BOM declares. A notebook is read as
JSON; its code cells are joined into one text (cells share their names, as in a kernel that ran
them in order), so the analysis follows a softmax from one cell into a loss in a later one. Each
line of that text remembers its cell; findings are reported as ``nb.ipynb:cell3:2:5`` (cell 3
counting every cell, markdown included, line 2 of that cell, column 5).

IPython syntax is blanked out line by line before parsing, keeping line numbers: ``%magic``,
``!shell`` and ``x = !cmd`` lines become ``pass``, and so do help lines (``torch.Tensor?``,
``??F.softmax``, ``np.*cos*?``). Only a line that starts a statement can be IPython syntax: the
continuation of a statement (``print('epoch %d' \\`` then ``% (epoch,))``, or a line inside
brackets or a triple-quoted string) is kept as it is. A cell starting with ``%%time``,
``%%timeit`` or ``%%capture`` is read without that line, other ``%%`` cells (``%%bash``...) are
skipped. The joined text is parsed once; when it does not parse, each cell is parsed alone and a
cell that does not parse is reported as LMX000 and left out. Notebooks whose kernel declares a
language other than Python are skipped.
"""

from __future__ import annotations

import ast
import io
import json
import os
import re
import stat
import sys
import tokenize
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from logmax.lint.finding import Edit, Finding, apply_edits, split_lines

MAX_BYTES = 64 * 2**20  # notebooks with embedded images reach tens of MB; more is not code
PYTHON_CELL_MAGICS = ("%%time", "%%timeit", "%%capture", "%%prun", "%%debug")
_LINE_MAGIC = re.compile(r"^(\s*)(?:[%!]|[\w.,\s\[\]]+=\s*[%!])")
_HELP = re.compile(r"^(\s*)(?:\?{1,2}[\w.*]+|[\w.*]+\?{1,2})\s*(?:#.*)?$")
_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


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
    raw: str | None = None  # a notebook's JSON text, to place findings in it (SARIF, GitHub)
    file: Path | None = None  # where it was read from, to follow its imports
    tree: ast.Module | None = field(default=None, repr=False)  # a notebook's, parsed when read
    _raw_lines: dict | None = field(default=None, repr=False)

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

    def raw_position(self, cell: int, line: int, col: int) -> tuple[int, int] | None:
        """Where a cell's (line, col) is in the notebook's JSON text (1-based), if it can be
        told: nbformat writes each source line as one JSON string on its own line."""
        if self.raw is None or self.notebook is None:
            return None
        if self._raw_lines is None:
            self._raw_lines = _map_raw_lines(self.raw, self.notebook)
        found = self._raw_lines.get((cell, line))
        if found is None:
            return None
        raw_line, quote_col, text = found
        prefix = json.dumps(text[: max(col - 1, 0)], ensure_ascii=False)[1:-1]
        return raw_line, quote_col + 1 + len(prefix)

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
        self.raw = None
        self._raw_lines = None
        self.tree = None
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
        """Join the Python code cells; a cell that does not parse is reported and left out.

        The joined text is parsed once and its tree kept; only when it does not parse is each
        cell parsed alone, to find the ones to leave out."""
        assert self.notebook is not None
        self.errors = [e for e in self.errors if e.cell is None]
        codes: list[tuple[int, str]] = []
        for index, cell in enumerate(self.notebook.get("cells", []), start=1):
            if not isinstance(cell, dict) or cell.get("cell_type") != "code":
                continue
            code = python_of_cell(_cell_text(cell))
            if code is None or not code.strip():
                continue
            codes.append((index, code if code.endswith(("\n", "\r")) else code + "\n"))
        self.tree = _parse("".join(code for _, code in codes), self.path)
        if self.tree is None:
            codes = [(index, code) for index, code in codes if self._cell_parses(index, code)]
        self.cells = []
        next_line = 1
        for index, code in codes:
            count = len(split_lines(code))
            self.cells.append((index, next_line, count))
            next_line += count
        self.text = "".join(code for _, code in codes)

    def _cell_parses(self, index: int, code: str) -> bool:
        try:
            with warnings.catch_warnings():  # odd escapes in other people's code
                warnings.simplefilter("ignore", SyntaxWarning)
                ast.parse(code, f"{self.path}:cell{index}")
        except SyntaxError as error:
            message = f"cell cannot be parsed: {error.msg}"
            line, col = error.lineno or 1, error.offset or 1
            self.errors.append(Finding(self.path, line, col, "LMX000", message, cell=index))
            return False
        except (ValueError, RecursionError, MemoryError) as error:
            message = f"cell cannot be parsed: {error}"
            self.errors.append(Finding(self.path, 1, 1, "LMX000", message, cell=index))
            return False
        return True


def _parse(text: str, path: str) -> ast.Module | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            return ast.parse(text, path)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _mapping(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _cell_text(cell: dict) -> str:
    source = cell.get("source", "")
    if isinstance(source, list):
        return "".join(s for s in source if isinstance(s, str))
    return source if isinstance(source, str) else ""


def _map_raw_lines(raw: str, notebook: dict) -> dict:
    """(cell, line) -> (line in the JSON text, column of its opening quote, the line's text)."""
    raw_lines = raw.splitlines()
    found: dict = {}
    pointer = 0
    for index, cell in enumerate(notebook.get("cells", []), start=1):
        source = cell.get("source") if isinstance(cell, dict) else None
        if not isinstance(source, list):
            continue
        for number, piece in enumerate(source, start=1):
            if not isinstance(piece, str):
                break
            wanted = {json.dumps(piece, ensure_ascii=False), json.dumps(piece)}
            for k in range(pointer, len(raw_lines)):
                stripped = raw_lines[k].strip().removesuffix(",")
                if stripped in wanted:
                    quote = raw_lines[k].index('"')
                    found[(index, number)] = (k + 1, quote + 1, piece.rstrip("\r\n"))
                    pointer = k + 1
                    break
            else:
                break
    return found


def _statement_starts(lines: list[str]) -> list[bool]:
    """For each line, whether it starts a statement: not inside brackets or a string, and not
    continuing the line before it with a backslash."""
    starts = []
    depth = 0
    quote = ""  # the open string's quote, "" outside strings
    continued = False
    for raw in lines:
        line = raw.rstrip("\r\n")
        starts.append(depth == 0 and not quote and not continued)
        continued = False
        i, n = 0, len(line)
        while i < n:
            c = line[i]
            if quote:
                if c == "\\":
                    i += 2
                    continue
                if line.startswith(quote, i):
                    i += len(quote)
                    quote = ""
                    continue
                i += 1
                continue
            if c == "#":
                break
            if c in "\"'":
                quote = line[i : i + 3] if line[i : i + 3] in ('"""', "'''") else c
                i += len(quote)
                continue
            if c in "([{":
                depth += 1
            elif c in ")]}":
                depth = max(0, depth - 1)
            elif c == "\\" and i == n - 1:
                continued = True
            i += 1
        if len(quote) == 1 and not line.endswith("\\"):
            quote = ""  # an unclosed one-line string ends with its line
    return starts


def python_of_cell(code: str) -> str | None:
    """The cell with IPython-only lines made ``pass`` (same line count); None if not Python."""
    lines = split_lines(code)
    if lines and lines[0].startswith("%%"):
        if lines[0].split()[0] not in PYTHON_CELL_MAGICS:
            return None
        lines[0] = "\n"
    if not any(_LINE_MAGIC.match(line) or _HELP.match(line) for line in lines):
        return "".join(lines)  # plain Python: nothing to blank
    starts = _statement_starts(lines)
    out = []
    in_magic = False  # a magic or shell line ending with a backslash goes on on the next one
    for line, start in zip(lines, starts, strict=True):
        ending = line[len(line.rstrip("\r\n")) :]
        match = (_LINE_MAGIC.match(line) or _HELP.match(line)) if start else None
        if match or in_magic:
            indent = match.group(1) if match else ""
            out.append(f"{indent}pass{ending}" if match else ending or "\n")
            in_magic = line.rstrip("\r\n").endswith("\\")
        else:
            out.append(line)
    return "".join(out)


def read_limited(path: Path) -> tuple[bytes | None, str]:
    """The bytes of a regular file of at most :data:`MAX_BYTES`, or None and why not."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)  # non-blocking: opening a FIFO does not wait for a writer
    except OSError as error:
        return None, f"cannot read: {error.strerror or error}"
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a file")
            return None, f"not a regular file ({kind}): not read"
        if info.st_size > MAX_BYTES:
            return None, f"{_size(info.st_size)}, more than the {_size(MAX_BYTES)} limit: not read"
        chunks = []
        left = MAX_BYTES + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    except OSError as error:
        return None, f"cannot read: {error.strerror or error}"
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:
        return None, f"more than the {_size(MAX_BYTES)} limit: not read"
    return data, ""


def _size(count: int) -> str:
    return f"{count / 2**20:.0f} MiB" if count >= 2**20 else f"{count} bytes"


def read_source(path: Path, shown: str | None = None) -> Source:
    """Read a ``.py`` file or an ``.ipynb`` notebook; problems become LMX000 findings."""
    shown = shown if shown is not None else str(path)
    data, why = read_limited(path)
    if data is None:
        return Source(shown, errors=[Finding(shown, 1, 1, "LMX000", why)], file=path)
    source = source_of_bytes(data, shown, notebook=path.suffix == ".ipynb")
    source.file = path
    return source


def read_stdin(shown: str = "-", notebook: bool = False) -> Source:
    """Read standard input as one file (``logmax lint -``), with the same size limit."""
    stream = getattr(sys.stdin, "buffer", None)
    data = stream.read(MAX_BYTES + 1) if stream is not None else sys.stdin.read().encode()
    if len(data) > MAX_BYTES:
        why = f"standard input is more than the {_size(MAX_BYTES)} limit: not read"
        return Source(shown, errors=[Finding(shown, 1, 1, "LMX000", why)])
    return source_of_bytes(data, shown, notebook=notebook)


def source_of_bytes(data: bytes, shown: str, notebook: bool = False) -> Source:
    if notebook:
        return _read_notebook(data, shown)
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        text = data.decode(encoding)
    except (SyntaxError, UnicodeDecodeError, LookupError) as error:
        return Source(shown, errors=[Finding(shown, 1, 1, "LMX000", f"cannot decode: {error}")])
    return Source(shown, text=text, encoding=encoding)


def _read_notebook(data: bytes, shown: str) -> Source:
    try:
        raw = data.decode("utf-8-sig")
        notebook = json.loads(raw)
        if not isinstance(notebook, dict) or not isinstance(notebook.get("cells", []), list):
            raise ValueError("no list of cells")
    except (ValueError, UnicodeDecodeError) as error:
        message = f"not a readable notebook: {error}"
        return Source(shown, errors=[Finding(shown, 1, 1, "LMX000", message)])
    metadata = _mapping(notebook.get("metadata"))
    language = _mapping(metadata.get("kernelspec")).get("language") or _mapping(
        metadata.get("language_info")
    ).get("name")
    source = Source(shown, text="", notebook=notebook, raw=raw)
    if language and str(language).lower() != "python":
        return source
    source._join_cells()
    return source
