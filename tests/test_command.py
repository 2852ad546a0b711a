"""The ``logmax`` command: help, version, argument checking, list syntax and exit statuses."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import logmax
from logmax.cli import COMMANDS, build_parser, main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"logmax {logmax.__version__}"


def test_bare_logmax_prints_the_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: logmax")
    for name in COMMANDS:
        assert name in err


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_subcommand_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([name, "--help"]) == 0
    assert "usage: logmax " + name in capsys.readouterr().out


HEAVY = ("torch", "numba", "matplotlib", "flint", "rich", "sklearn")


def imported_by(call: str) -> list[str]:
    """The heavy modules (and NumPy) that ``call`` imports in a new interpreter."""
    code = (
        f"import contextlib, io, sys\nfrom logmax.cli import build_parser, main\n"
        f"with contextlib.redirect_stdout(io.StringIO()): {call}\n"
        f"print(sorted(m for m in {(*HEAVY, 'numpy')!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return ast.literal_eval(out.stdout.strip().splitlines()[-1])


def test_help_does_not_import_heavy_frameworks() -> None:
    assert imported_by("build_parser()") == ["numpy"]  # logmax.bench's package imports NumPy
    assert imported_by("main(['--help'])") == []
    assert imported_by("main(['lint', '--help'])") == []  # the pre-commit hook starts light
    assert imported_by("main(['audit', '--help'])") == []


def test_import_logmax_stays_light() -> None:
    code = "import sys, logmax; print(sorted(m for m in ('torch', 'numba') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------
# Every option is checked by argparse before any work starts: exit 2, a reason, no traceback.
@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path


BAD = {
    "bench --shapes abc": (["bench", "--shapes", "abc"], "ROWSxCOLS"),
    "bench --shapes 0x5": (["bench", "--shapes", "0x5"], "positive"),
    "bench --ops bogus": (["bench", "--ops", "softmax,bogus"], "invalid op 'bogus'"),
    "bench --threads 0": (["bench", "--threads", "0"], "positive integer"),
    "bench --repeats -1": (["bench", "--repeats", "-1"], "positive integer"),
    "bench --repeats x": (["bench", "--repeats", "x"], "positive integer"),
    "bench --dtypes": (["bench", "--dtypes", "float8"], "invalid dtype 'float8'"),
    "bench --peers": (["bench", "--peers", "numpy"], "invalid peer 'numpy'"),
    "audit --ops bogus": (["audit", "--ops", "bogus"], "invalid op 'bogus'"),
    "audit --dtypes": (["audit", "--dtypes", "float8"], "invalid dtype 'float8'"),
    "audit --impls": (["audit", "--impls", "logmax,nope"], "invalid impl 'nope'"),
    "audit --cases": (["audit", "--cases", "nope"], "invalid case 'nope'"),
    "report --sections": (["report", "--sections", "study,bogus"], "invalid section 'bogus'"),
    "report --sections empty": (["report", "--sections", ","], "one or more"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_values_are_usage_errors(case: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv, reason = BAD[case]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert reason in err and "Traceback" not in err
    assert err.startswith(f"usage: logmax {argv[0]}")


@pytest.mark.parametrize(
    "argv",
    [["report", "--out"], ["audit", "--out"], ["study", "--figures"]],
    ids=lambda a: " ".join(a),
)
def test_an_output_folder_that_is_a_file(
    argv: list[str], a_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, str(a_file)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert main([*argv, str(a_file / "below")]) == 2
    assert "is a file" in capsys.readouterr().err


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_an_output_folder_that_cannot_be_written(capsys: pytest.CaptureFixture[str]) -> None:
    # /proc refuses new files even to root, for whom permission bits are no obstacle
    assert main(["report", "--out", "/proc/logmax-out"]) == 2
    assert "cannot write in '/proc'" in capsys.readouterr().err


def test_an_unwritable_folder_as_a_user(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if _can_write(locked):
        pytest.skip("running as root: permission bits do not stop us")
    assert main(["audit", "--out", str(locked / "audit")]) == 2
    assert "cannot write in" in capsys.readouterr().err


def _can_write(folder: Path) -> bool:
    try:
        (folder / "probe").write_text("")
    except OSError:
        return False
    (folder / "probe").unlink()
    return True


def test_no_traceback_from_the_installed_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "logmax.cli", "bench", "--shapes", "abc"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "ROWSxCOLS" in done.stderr and "Traceback" not in done.stderr


# ---------------------------------------------------------------------------------------------
# One list syntax: comma-separated values, the option repeatable.
@pytest.mark.parametrize(
    ("argv", "dest", "expected"),
    [
        (
            ["bench", "--ops", "softmax,log_softmax", "--ops", "logsumexp"],
            "ops",
            ["softmax", "log_softmax", "logsumexp"],
        ),
        (
            ["bench", "--shapes", "8x64, 4x32", "--shapes", "2x2"],
            "shapes",
            [(8, 64), (4, 32), (2, 2)],
        ),
        (["bench", "--dtypes", "float64"], "dtypes", ["float64"]),
        (["bench"], "ops", None),
        (
            ["audit", "--ops", "softmax,log_softmax", "--ops", "logsumexp"],
            "ops",
            ["softmax", "log_softmax", "logsumexp"],
        ),
        (["audit", "--dtypes", "float32,float16"], "dtypes", ["float32", "float16"]),
        (
            ["report", "--sections", "study,lint", "--sections", "audit"],
            "sections",
            ["study", "lint", "audit"],
        ),
        (["report"], "sections", None),
    ],
)
def test_list_options(argv: list[str], dest: str, expected: object) -> None:
    assert getattr(build_parser().parse_args(argv), dest) == expected


# ---------------------------------------------------------------------------------------------
def test_a_missing_package_is_named_with_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "flint" else real(name, *a)
    )
    assert main(["audit", "--list"]) == 2
    err = capsys.readouterr().err
    assert "needs python-flint" in err and "pip install 'logmax[audit]'" in err


def test_bench_prints_a_table_and_no_targets(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    argv = ["bench", "--ops", "softmax", "--shapes", "8x64", "--repeats", "1", "--peers", "torch"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "┃ op" in out and "vs torch" in out and "logmax" in out
    assert "target" not in out.lower() and "MISSED" not in out


def test_audit_exits_1_when_logmax_misses_its_bound(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("flint")
    from logmax.audit import runner

    argv = ["audit", "--quick", "--ops", "log_softmax", "--dtypes", "float32", "--impls", "logmax",
            "--cases", "seed002_alpha_sweep", "--out", str(tmp_path), "--no-figures"]  # fmt: skip
    assert main(argv) == 0
    assert "within its bound" in capsys.readouterr().out
    real = runner.AuditResult.failures

    def failing(self: runner.AuditResult, impl: str) -> list:
        records = [r for r in self.records if r.impl == impl]
        return records or real(self, impl)

    monkeypatch.setattr(runner.AuditResult, "failures", failing)
    assert main(argv) == 1
    assert "misses its bound" in capsys.readouterr().out


def test_report_exits_1_when_a_section_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("rich")
    from logmax.report import sections

    def broken(**_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(sections, "_import", lambda module, attribute: (broken, None))
    assert main(["report", "--sections", "bench", "--out", str(tmp_path)]) == 1
    assert "Failed: Quick benchmark" in capsys.readouterr().out
    assert (tmp_path / "report.html").is_file()
