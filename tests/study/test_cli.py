"""``logmax study`` end to end on a tiny budget: every part, its findings, tables and figures."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")


def test_study_command_prints_parts_and_writes_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from logmax.cli import main
    from logmax.study import run as study_run
    from logmax.study.training import TrainConfig

    tiny = study_run.StudyConfig(
        train=TrainConfig(epochs=1, seeds=(0,), hidden=4), alpha_points=4, margin_points=9
    )
    monkeypatch.setattr(study_run, "QUICK_STUDY", tiny)
    seen = []

    def recording_run_study(*args, **kwargs):
        seen.extend(real_run_study(*args, **kwargs))
        return seen

    real_run_study = study_run.run_study
    monkeypatch.setattr(study_run, "run_study", recording_run_study)
    monkeypatch.setenv("COLUMNS", "200")
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["study", "--quick", "--figures", str(tmp_path)]) == 0
    out = buffer.getvalue()
    for title in ("Seed 001", "Seed 002", "Seed 000", "Seed 003", "head/loss pairing"):
        assert title in out
    written = sorted(p.name for p in tmp_path.glob("*.png"))
    assert written == ["alpha-1.png", "gradients-1.png", "gradients-2.png", "training-1.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in tmp_path.glob("*.png"))
    keys = [p.key for p in seen]
    assert keys == ["seed001", "seed002", "seed000", "seed003", "training", "gradients", "alpha"]
    for part in seen:
        assert part.findings, part.key
        for table in part.tables:
            assert all(len(row) == len(table.columns) for row in table.rows)
