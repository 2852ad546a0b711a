"""Options and configuration: codes checked, lists, ``[tool.logmax.lint]``, exit statuses."""

from __future__ import annotations

import json

import pytest

from logmax.cli import main

BAD = """\
import torch
import torch.nn.functional as F

loss = F.cross_entropy(F.softmax(x, dim=1), y)
y = torch.log(torch.softmax(x))
"""  # LMX101 on line 4; LMX103 and LMX202 on line 5


def run(capsys, *argv):
    """Exit status, stdout, stderr; argparse's usage errors exit through SystemExit(2)."""
    try:
        code = main(["lint", *map(str, argv)])
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def codes_of(out: str) -> list[str]:
    return [r["code"] for r in json.loads(out)]


@pytest.fixture
def project(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(BAD)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_train.py").write_text(BAD)
    return tmp_path


@pytest.mark.parametrize("option", ["--select", "--ignore"])
@pytest.mark.parametrize("value", ["ZZZ999", "LMX101,LMX999", "lmx9"])
def test_an_unknown_code_is_a_usage_error(project, capsys, option, value):
    code, out, err = run(capsys, option, value, project)
    assert code == 2 and out == ""
    assert f"argument {option}: invalid code" in err and "no rule has it" in err
    assert "Traceback" not in err


def test_list_options_take_commas_and_repeat(project, capsys):
    path = project / "src" / "train.py"
    _, out, _ = run(
        capsys, "--format", "json", "--select", "LMX101,LMX202", "--select", "lmx103", path
    )
    assert codes_of(out) == ["LMX101", "LMX103", "LMX202"]
    _, out, _ = run(
        capsys, "--format", "json", "--ignore", "LMX101", "--ignore", "LMX103,LMX2", path
    )
    assert codes_of(out) == []


def test_a_bad_format_is_a_usage_error(project, capsys):
    code, _, err = run(capsys, "--format", "xml", project)
    assert code == 2 and "invalid choice: 'xml'" in err


def test_the_nearest_pyproject_configures_each_file(project, capsys):
    (project / "pyproject.toml").write_text(
        '[tool.logmax.lint]\nignore = ["LMX202"]\n'
        '[tool.logmax.lint.per-file-ignores]\n"tests/*" = ["LMX1"]\n'
    )
    _, out, _ = run(capsys, "--format", "json", project)
    assert [(r["path"].rsplit("/", 1)[-1], r["code"]) for r in json.loads(out)] == [
        ("train.py", "LMX101"),
        ("train.py", "LMX103"),
    ]
    # the command line adds to ignore and replaces select
    _, out, _ = run(capsys, "--format", "json", "--select", "LMX2", project / "tests")
    assert codes_of(out) == ["LMX202"]
    _, out, _ = run(capsys, "--format", "json", "--isolated", project / "tests")
    assert codes_of(out) == ["LMX101", "LMX103", "LMX202"]


def test_a_closer_pyproject_wins_and_excludes_apply(project, capsys):
    (project / "pyproject.toml").write_text('[tool.logmax.lint]\nselect = ["LMX101"]\n')
    (project / "tests" / "pyproject.toml").write_text(
        '[tool.logmax.lint]\nselect = ["LMX103"]\nexclude = ["test_*.py"]\n'
    )
    (project / "tests" / "helper.py").write_text(BAD)
    _, out, _ = run(capsys, "--format", "json", project)
    assert [(r["path"].rsplit("/", 1)[-1], r["code"]) for r in json.loads(out)] == [
        ("train.py", "LMX101"),
        ("helper.py", "LMX103"),
    ]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('select = ["LMX1O1"]', "select: unknown rule code 'LMX1O1'"),
        ('ignore = "LMX101"', "ignore: expected a list of codes"),
        ('selct = ["LMX101"]', "unknown key 'selct' in [tool.logmax.lint]"),
        ('[tool.logmax.lint.per-file-ignores]\n"a.py" = ["X"]', "per-file-ignores 'a.py'"),
        ("select = [", "not valid TOML"),
    ],
)
def test_a_bad_configuration_is_a_usage_error(project, capsys, table, message):
    (project / "pyproject.toml").write_text(f"[tool.logmax.lint]\n{table}\n")
    code, out, err = run(capsys, project)
    assert code == 2 and out == ""
    assert message in err and str(project / "pyproject.toml") in err


def test_exit_statuses(project, capsys):
    clean = project / "clean.py"
    clean.write_text("import torch\ny = torch.log_softmax(x, dim=1)\n")
    assert run(capsys, clean)[0] == 0
    assert run(capsys, project / "src")[0] == 1
    assert run(capsys, "--exit-zero", project / "src")[0] == 0
    assert run(capsys, "--exit-zero", project / "nope.py")[0] == 2
