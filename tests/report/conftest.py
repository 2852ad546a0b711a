"""A small real report, built once: ``logmax report --quick --tables`` with a tiny study, audit
and benchmark."""

from __future__ import annotations

import contextlib
import functools
import io
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Built:
    html_path: Path
    html: str
    stdout: str


@pytest.fixture(scope="session")
def tiny_report(tmp_path_factory: pytest.TempPathFactory) -> Built:
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    from logmax.cli import main
    from logmax.study import run as study_run
    from logmax.study.training import TrainConfig

    mp = pytest.MonkeyPatch()
    tiny = study_run.StudyConfig(
        train=TrainConfig(epochs=1, seeds=(0,), hidden=4), alpha_points=4, margin_points=9
    )
    mp.setattr(study_run, "QUICK_STUDY", tiny)
    with contextlib.suppress(Exception):  # if the audit does not import, the report says so
        import logmax.audit

        mp.setattr(
            logmax.audit,
            "run_audit",
            functools.partial(
                logmax.audit.run_audit,
                ops=["log_softmax"],
                impls=["logmax", "torch"],
                cases=["seed002_alpha_sweep"],
            ),
        )
    with contextlib.suppress(Exception):  # likewise for the benchmark: one tiny case
        import logmax.bench

        mp.setattr(
            logmax.bench,
            "run_bench",
            functools.partial(
                logmax.bench.run_bench,
                ops=["log_softmax"],
                shapes=[(64, 512)],
                repeats=1,
                peers=("torch",),
            ),
        )
    mp.setenv("COLUMNS", "400")  # one table row per printed line
    out = tmp_path_factory.mktemp("report")
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            rc = main(["report", "--quick", "--tables", "--out", str(out)])
    finally:
        mp.undo()
    assert rc == 0
    path = out / "report.html"
    return Built(path, path.read_text(encoding="utf-8"), buffer.getvalue())
