"""A minimal progress interface, so the study runs with or without a progress bar."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, name: str, total: int) -> None: ...

    def advance(self, steps: int = 1) -> None: ...


class Silent:
    """Progress that shows nothing."""

    def start(self, name: str, total: int) -> None:
        pass

    def advance(self, steps: int = 1) -> None:
        pass
