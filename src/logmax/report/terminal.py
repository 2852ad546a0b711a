"""Terminal rendering of study parts: rich tables and findings."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from logmax.report.document import Report
from logmax.study.results import Part, Table

MARK = {
    True: Text("agrees", style="green"),
    False: Text("differs", style="yellow"),
    None: Text("measured", style="blue"),
}


def print_table(console: Console, table: Table) -> None:
    rich_table = RichTable(
        title=Text(table.title), caption=Text(table.note) if table.note else None
    )
    for column in table.columns:
        rich_table.add_column(Text(column), overflow="fold")
    for row in table.rows:
        rich_table.add_row(*(Text(cell) for cell in row))
    console.print(rich_table)


def print_part(console: Console, part: Part, *, tables: bool = True) -> None:
    console.rule(Text(part.title, style="bold"))
    console.print(Text("Seed's claim: ", style="dim") + Text(part.claim), highlight=False)
    if tables:
        for table in part.tables:
            print_table(console, table)
    for finding in part.findings:
        console.print(Text("  ") + MARK[finding.agrees] + Text("  " + finding.text))


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
                print_table(console, table)
    differing = [
        f for s in report.sections for p in s.parts for f in p.findings if f.agrees is False
    ]
    if differing:
        console.print(Text("Where the measurements differ from the seeds' claims:", style="bold"))
        for finding in differing:
            console.print(Text("  ") + MARK[False] + Text("  " + finding.text))
