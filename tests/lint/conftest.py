"""Helpers for the linter's tests: writing a notebook from (cell type, source) pairs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest


def write_notebook(path: Path, cells: list[tuple[str, str]]) -> Path:
    notebook = {
        "cells": [
            {
                "cell_type": kind,
                "metadata": {},
                "source": source.splitlines(keepends=True),
                **({"outputs": [], "execution_count": None} if kind == "code" else {}),
            }
            for kind, source in cells
        ],
        "metadata": {"kernelspec": {"language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(notebook, sort_keys=True, indent=1, ensure_ascii=False) + "\n")
    return path


@pytest.fixture
def notebook(tmp_path: Path) -> Callable[[list[tuple[str, str]]], Path]:
    """``notebook(cells)`` writes ``nb.ipynb`` in a fresh folder and returns its path."""
    return lambda cells: write_notebook(tmp_path / "nb.ipynb", cells)
