"""The report's structure: sections made of study parts, or a line saying why a section is absent.

A section whose tool cannot be imported or fails is kept, with ``unavailable`` set to the reason,
so the report never shows a figure that was not measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from logmax.study.results import Part


@dataclass
class Section:
    key: str
    title: str
    intro: str
    parts: list[Part] = field(default_factory=list)
    unavailable: str | None = None  # why the section has no results
    failed: bool = False  # its tool raised (a missing package is not a failure)
    seconds: float = 0.0
    headline: str = ""  # one line for the terminal summary


@dataclass
class Report:
    title: str
    sections: list[Section]
    settings: dict[str, str]  # shown in the report's header: versions, options, timing

    def section(self, key: str) -> Section | None:
        return next((s for s in self.sections if s.key == key), None)
