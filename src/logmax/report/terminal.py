"""The report's short terminal summary."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from logmax.report.document import Report
from logmax.study.results import Table
from logmax.study.terminal import MARK, print_part, print_table

# the training table's columns worth a terminal line: pairing, accuracy, epochs, seeds reaching
COMPACT_TRAINING_COLUMNS = (0, 1, 2, 4)


def compact(table: Table, columns: tuple[int, ...]) -> Table:
    """The same table with only the given columns."""
    return Table(
        table.title,
        tuple(table.columns[i] for i in columns),
        tuple(tuple(row[i] for i in columns) for row in table.rows),
        table.note,
    )


def print_summary(console: Console, report: Report, *, tables: bool = False) -> None:
    """A short summary: one line per section, the training table, and every finding that
    contradicts a seed. With ``tables``, every part in full."""
    if tables:
        for section in report.sections:
            for part in section.parts:
                print_part(console, part)
    overview = RichTable(title=Text("logmax report"))
    for column in ("section", "time", "result"):
        overview.add_column(column, overflow="fold")
    for section in report.sections:
        overview.add_row(
            Text(section.title), Text(f"{section.seconds:.1f} s"), Text(section.headline)
        )
    console.print(overview)
    if not tables:
        study = report.section("study")
        training = next((p for p in study.parts if p.key == "training"), None) if study else None
        if training is not None:
            for table in training.tables:
                print_table(console, compact(table, COMPACT_TRAINING_COLUMNS))
    differing = [
        f for s in report.sections for p in s.parts for f in p.findings if f.agrees is False
    ]
    if differing:
        console.print(Text("Where the measurements differ from the seeds' claims:", style="bold"))
        for finding in differing:
            console.print(Text("  ") + MARK[False] + Text("  " + finding.text))
