"""The pre-commit hook definition points at a real command that takes a list of files."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from logmax.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[2]


def hooks() -> list[dict]:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())


def test_hooks_run_logmax_lint_on_python_and_notebooks():
    defined = hooks()
    assert [hook["id"] for hook in defined] == ["logmax-lint", "logmax-lint-fix"]
    for hook in defined:
        program, command, *options = shlex.split(hook["entry"])
        assert (program, command) == ("logmax", "lint") and command in COMMANDS
        assert hook["language"] == "python"
        assert set(hook["types_or"]) == {"python", "jupyter"}
        assert options in ([], ["--fix"])
        assert hook["require_serial"] is True  # staged modules are checked together


def test_the_hook_command_on_staged_files(tmp_path, capsys):
    """pre-commit appends the staged file names to ``entry``; a finding fails the commit."""
    good = tmp_path / "good.py"
    good.write_text("import torch.nn.functional as F\nloss = F.cross_entropy(logits, y)\n")
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\ny = torch.log(torch.softmax(x, dim=1))\n")
    for hook in hooks():
        argv = shlex.split(hook["entry"])[1:]
        assert main([*argv, str(good)]) == 0
    assert main([*shlex.split(hooks()[0]["entry"])[1:], str(good), str(bad)]) == 1
    assert main([*shlex.split(hooks()[1]["entry"])[1:], str(good), str(bad)]) == 0  # fixed
    assert bad.read_text() == "import torch\ny = torch.log_softmax(x, dim=1)\n"
    capsys.readouterr()
