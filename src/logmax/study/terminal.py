"""Terminal output of the study: rich tables, findings and progress bars."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
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


class RichProgress:
    """One bar per started task; the previous task's bar is completed when a new one starts."""

    def __init__(self, console: Console | None = None) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<44}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> RichProgress:
        self._progress.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._finish()
        self._progress.__exit__(kind, value, traceback)

    def _finish(self) -> None:
        if self._task is not None:
            task = self._progress.tasks[-1]
            self._progress.update(self._task, completed=task.total)

    def start(self, name: str, total: int) -> None:
        self._finish()
        self._task = self._progress.add_task(name, total=max(total, 1))

    def advance(self, steps: int = 1) -> None:
        if self._task is not None:
            self._progress.advance(self._task, steps)
