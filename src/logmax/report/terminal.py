"""Terminal rendering of study parts: rich tables and findings."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

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
