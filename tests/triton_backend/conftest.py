"""The Triton kernels on CPU tensors through Triton's interpreter (no GPU needed).

``TRITON_INTERPRET=1`` is set here, before any kernel module is imported (Triton decides at
decoration time whether a kernel is compiled or interpreted); the tests force the backend with
``LOGMAX_BACKEND=triton``, so a call it cannot serve raises instead of falling back. Skipped
when Triton is not installed.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

HAS_TRITON = importlib.util.find_spec("triton") is not None
if HAS_TRITON:
    os.environ["TRITON_INTERPRET"] = "1"

collect_ignore_glob = [] if HAS_TRITON else ["test_*.py"]


@pytest.fixture
def forced(monkeypatch):
    """Every logmax call in the test runs on the Triton backend (or raises)."""
    monkeypatch.setenv("LOGMAX_BACKEND", "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")


@pytest.fixture
def small_blocks(monkeypatch):
    """Column blocks of 16 under the interpreter: rows of a few dozen entries span several
    blocks, so the merge of block statistics is exercised."""
    from logmax.kernels.triton import rows

    monkeypatch.setattr(rows, "INTERPRETER_BLOCK", 16)
