"""The ``logmax`` command: --help, --version, and every registered subcommand's --help."""

from __future__ import annotations

import subprocess
import sys

import pytest

import logmax
from logmax.cli import COMMANDS, main


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"logmax {logmax.__version__}"


def test_help_lists_every_command(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_subcommand_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    assert "usage: logmax " + name in capsys.readouterr().out


def test_help_does_not_import_heavy_frameworks():
    code = (
        "import sys; from logmax.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('torch', 'numba', 'matplotlib', 'flint') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_import_logmax_stays_light():
    code = "import sys, logmax; print(sorted(m for m in ('torch', 'numba') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
