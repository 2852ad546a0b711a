"""What the linter reads: regular files only, at most a size limit, and standard input."""

from __future__ import annotations

import io
import os
import sys
import threading
from pathlib import Path

import pytest

from logmax.cli import main
from logmax.lint import check, read_source
from logmax.lint import source as source_module


def run(capsys, *argv):
    code = main(["lint", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_named_like_a_python_file_is_not_opened_for_reading(tmp_path, capsys):
    fifo = tmp_path / "pipe.py"
    os.mkfifo(fifo)
    (tmp_path / "ok.py").write_text("x = 1\n")
    done = threading.Event()
    result = {}

    def lint():
        result["out"] = run(capsys, tmp_path)
        done.set()

    worker = threading.Thread(target=lint, daemon=True)
    worker.start()
    assert done.wait(20), "the FIFO was opened for reading and the run waits on it"
    code, out, _ = result["out"]
    assert code == 1
    assert f"{fifo}:1:1: LMX000 not a regular file (a FIFO): not read" in out


def test_a_device_is_not_read(capsys):
    zero = Path("/dev/zero")
    if not zero.exists():
        pytest.skip("no /dev/zero here")
    (finding,) = check(read_source(zero))
    assert finding.message == "not a regular file (a character device): not read"


def test_a_file_over_the_size_limit_is_not_read(tmp_path, monkeypatch):
    monkeypatch.setattr(source_module, "MAX_BYTES", 1000)
    big = tmp_path / "big.py"
    big.write_text("x = 1\n" * 400)
    (finding,) = check(read_source(big))
    assert finding.code == "LMX000"
    assert "more than the 1000 bytes limit: not read" in finding.message


def test_standard_input(monkeypatch, capsys):
    text = b"import torch\ny = torch.log(torch.softmax(x, dim=1))\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text)))
    code, out, _ = run(capsys, "-")
    assert code == 1 and out.startswith("-:2:5: LMX103")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text)))
    code, out, _ = run(capsys, "--stdin-filename", "model.py", "-")
    assert out.startswith("model.py:2:5: LMX103")


def test_standard_input_fixed_goes_to_standard_output(monkeypatch, capsys):
    text = b"import torch\ny = torch.log(torch.softmax(x, dim=1))\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text)))
    code, out, err = run(capsys, "--fix", "-")
    assert out == "import torch\ny = torch.log_softmax(x, dim=1)\n"
    assert code == 0 and "fixed 1" in err


def test_standard_input_over_the_limit(monkeypatch, capsys):
    monkeypatch.setattr(source_module, "MAX_BYTES", 10)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"x = 1\n" * 10)))
    code, out, _ = run(capsys, "-")
    assert code == 1 and "LMX000 standard input is more than the 10 bytes limit" in out
