"""What a check produces: a :class:`Finding` at a place, and the :class:`Edit` that fixes it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Edit:
    """Replace the text from (start_line, start_col) to (end_line, end_col) by ``text``.

    Lines are 1-based, columns 0-based character offsets, in the text that was analysed.
    """

    start_line: int
    start_col: int
    end_line: int
    end_col: int
    text: str

    def overlaps(self, other: Edit) -> bool:
        return (self.start_line, self.start_col) < (other.end_line, other.end_col) and (
            other.start_line,
            other.start_col,
        ) < (self.end_line, self.end_col)


@dataclass(frozen=True)
class Finding:
    """One problem: a rule code at ``path:line:col`` (1-based line and column).

    ``cell`` is the 1-based index of the notebook cell (counting every cell, markdown included);
    ``line`` is then the line inside that cell.
    """

    path: str
    line: int
    col: int
    code: str
    message: str
    end_line: int = 0
    end_col: int = 0
    cell: int | None = None
    fix_hint: str = ""
    edit: Edit | None = field(default=None, compare=False)

    @property
    def rule(self):
        from logmax.lint.rules import RULES  # the rules' modules use findings' edits

        return RULES[self.code]

    @property
    def location(self) -> str:
        cell = f":cell{self.cell}" if self.cell is not None else ""
        return f"{self.path}{cell}:{self.line}:{self.col}"

    @property
    def hint(self) -> str:
        return self.fix_hint or self.rule.fix

    def text(self) -> str:
        """The flake8-style line ``path:line:col: CODE message (fix: ...)``."""
        fixable = " [*]" if self.edit is not None else ""
        return f"{self.location}: {self.code}{fixable} {self.message} (fix: {self.hint})"


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def split_lines(text: str) -> list[str]:
    """Lines with their endings, split as Python's tokenizer splits (at \\n, \\r\\n and \\r)."""
    return _LINE.findall(text)


def apply_edits(text: str, edits: list[Edit]) -> str:
    """Apply non-overlapping edits (positions as in :class:`Edit`) to ``text``."""
    starts = [0]
    for line in split_lines(text):
        starts.append(starts[-1] + len(line))

    def offset(line: int, col: int) -> int:
        return starts[min(line, len(starts)) - 1] + col

    for edit in sorted(edits, key=lambda e: (e.start_line, e.start_col), reverse=True):
        start = offset(edit.start_line, edit.start_col)
        end = offset(edit.end_line, edit.end_col)
        text = text[:start] + edit.text + text[end:]
    return text


def non_overlapping(edits: list[Edit]) -> list[Edit]:
    """The edits to apply in one round: outermost first, skipping any that overlaps a kept one."""
    kept: list[Edit] = []
    ordered = sorted(edits, key=lambda e: (e.start_line, e.start_col, -e.end_line, -e.end_col))
    for edit in ordered:
        if not any(edit.overlaps(other) for other in kept):
            kept.append(edit)
    return kept
