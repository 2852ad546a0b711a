"""The real-world corpus: short snippets of mistakes found in public code, and the recall on them.

Each entry of ``fixtures/corpus`` is one source (a forum thread, an issue, a fix commit, cited in
the first comment of every file): a ``.py`` file, a notebook, or a folder holding the few modules
of one project (the model in one, the training loop in another). The lines that carry a mistake end
with ``# expect LMXnnn``. A folder is linted as one project, as ``logmax lint FOLDER`` would.

``uv run python tests/lint/real_world.py`` prints the recall per rule and every finding that no
marker expects; ``tests/lint/test_lint_real_world.py`` asserts the figures.
"""

from __future__ import annotations

import collections
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from logmax.lint import lint_paths

CORPUS = Path(__file__).parent / "fixtures" / "corpus"
_EXPECT = re.compile(r"#\s*expect\s+((?:LMX\d{3}[,\s]*)+)")


@dataclass
class Tally:
    expected: collections.Counter = field(default_factory=collections.Counter)
    found: collections.Counter = field(default_factory=collections.Counter)
    missed: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def recall(self, code: str) -> float:
        return self.found[code] / self.expected[code] if self.expected[code] else 1.0


def _marked_lines(path: Path) -> list[tuple[int | None, int, str]]:
    """(cell, line, code) of every ``# expect`` marker; cell is None for a ``.py`` file."""
    marks = []
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        for index, cell in enumerate(cells, start=1):
            source = cell.get("source", "")
            text = "".join(source) if isinstance(source, list) else source
            for number, line in enumerate(text.splitlines(), start=1):
                for match in _EXPECT.finditer(line):
                    marks += [(index, number, c) for c in re.findall(r"LMX\d{3}", match[1])]
        return marks
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        for match in _EXPECT.finditer(line):
            marks += [(None, number, c) for c in re.findall(r"LMX\d{3}", match[1])]
    return marks


def measure(corpus: Path = CORPUS) -> Tally:
    tally = Tally()
    for entry in sorted(corpus.iterdir()):
        files = sorted(p for p in entry.rglob("*") if p.suffix in (".py", ".ipynb"))
        files = files if entry.is_dir() else [entry]
        expected = {
            (str(p), cell, line, code) for p in files for cell, line, code in _marked_lines(p)
        }
        found = {(f.path, f.cell, f.line, f.code) for f in lint_paths([str(entry)])}
        for key in expected:
            tally.expected[key[3]] += 1
            if key in found:
                tally.found[key[3]] += 1
            else:
                tally.missed.append(_shown(key))
        tally.unexpected += [_shown(key) for key in sorted(found - expected, key=str)]
    return tally


def _shown(key: tuple) -> str:
    path, cell, line, code = key
    where = f":cell{cell}" if cell is not None else ""
    return f"{Path(path).relative_to(CORPUS)}{where}:{line} {code}"


def main() -> int:
    tally = measure()
    print(f"{'rule':<8} {'found':>5} {'of':>4} {'recall':>7}")
    for code in sorted(tally.expected):
        print(f"{code:<8} {tally.found[code]:>5} {tally.expected[code]:>4} "
              f"{tally.recall(code):>7.0%}")  # fmt: skip
    total, found = sum(tally.expected.values()), sum(tally.found.values())
    print(f"{'all':<8} {found:>5} {total:>4} {found / total:>7.0%}")
    for line in tally.missed:
        print(f"missed      {line}")
    for line in tally.unexpected:
        print(f"unexpected  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
