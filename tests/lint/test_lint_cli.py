"""``logmax lint`` from the command line: output formats, exit codes, selection, noqa, --fix."""

from __future__ import annotations

import json

import pytest

from logmax.cli import main

BAD = """\
import torch
import torch.nn.functional as F


def step(logits, target):
    probs = F.softmax(logits, dim=1)
    loss = F.cross_entropy(probs, target)
    return loss, torch.log(F.softmax(logits, dim=1))
"""


@pytest.fixture
def bad(tmp_path):
    path = tmp_path / "train.py"
    path.write_text(BAD)
    return path


def run(capsys, *argv):
    code = main(["lint", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_text_output_and_exit_code(bad, capsys):
    code, out, err = run(capsys, bad)
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith(f"{bad}:7:12: LMX101 softmax output (F.softmax, line 6)")
    assert lines[1].startswith(f"{bad}:8:18: LMX103 [*] log of a softmax")
    assert "(fix: use F.log_softmax with the same arguments)" in lines[1]
    assert "2 found, 1 fixable with --fix" in err


def test_clean_file_exits_zero(tmp_path, capsys):
    path = tmp_path / "ok.py"
    path.write_text("import torch\nloss = torch.nn.functional.cross_entropy(logits, y)\n")
    assert run(capsys, path) == (0, "", "")


def test_json_format(bad, capsys):
    code, out, _ = run(capsys, "--format", "json", bad)
    rows = json.loads(out)
    assert code == 1
    assert [(r["line"], r["column"], r["code"], r["fixable"]) for r in rows] == [
        (7, 12, "LMX101", False),
        (8, 18, "LMX103", True),
    ]
    assert rows[0]["severity"] == "error" and rows[0]["name"] == "softmax-into-cross-entropy"
    assert rows[0]["cell"] is None and rows[0]["path"] == str(bad)


def test_sarif_format(bad, capsys):
    _, out, _ = run(capsys, "--format", "sarif", bad)
    log = json.loads(out)
    assert log["version"] == "2.1.0"
    run_ = log["runs"][0]
    rule_ids = [rule["id"] for rule in run_["tool"]["driver"]["rules"]]
    results = run_["results"]
    assert [r["ruleId"] for r in results] == ["LMX101", "LMX103"]
    for result in results:
        assert rule_ids[result["ruleIndex"]] == result["ruleId"]
        region = result["locations"][0]["physicalLocation"]["region"]
        assert region["startLine"] in (7, 8) and result["level"] == "error"


@pytest.mark.parametrize(
    ("options", "codes"),
    [
        (["--select", "LMX103"], ["LMX103"]),
        (["--select", "lmx1"], ["LMX101", "LMX103"]),
        (["--ignore", "LMX101"], ["LMX103"]),
        (["--select", "LMX1", "--ignore", "LMX103"], ["LMX101"]),
        (["--ignore", "LMX1", "--select", "LMX101"], ["LMX101"]),
        (["--select", "LMX101,LMX103"], ["LMX101", "LMX103"]),
        (["--select", "LMX2"], []),
    ],
)
def test_select_and_ignore(bad, capsys, options, codes):
    code, out, _ = run(capsys, "--format", "json", *options, bad)
    assert [r["code"] for r in json.loads(out)] == codes
    assert code == (1 if codes else 0)


@pytest.mark.parametrize(
    ("comment", "codes"),
    [
        ("  # noqa", []),
        ("  # noqa: LMX101", []),
        ("  # NOQA:LMX101,LMX103", []),
        ("  # noqa: LMX1", []),
        ("  # noqa: LMX103", ["LMX101"]),
        ("  # noqa: E501", ["LMX101"]),
    ],
)
def test_noqa(tmp_path, capsys, comment, codes):
    path = tmp_path / "t.py"
    path.write_text(
        BAD.replace(
            "loss = F.cross_entropy(probs, target)",
            f"loss = F.cross_entropy(probs, target){comment}",
        )
    )
    _, out, _ = run(capsys, "--format", "json", "--select", "LMX101", path)
    assert [r["code"] for r in json.loads(out)] == codes


def test_fix_rewrites_in_place(bad, capsys):
    code, out, err = run(capsys, "--fix", bad)
    assert code == 1  # the LMX101 has no safe rewrite and is still there
    assert "LMX101" in out and "LMX103" not in out
    assert "fixed 1" in err
    text = bad.read_text()
    assert "    return loss, F.log_softmax(logits, dim=1)\n" in text
    assert (
        text.replace("F.log_softmax(logits, dim=1)", "torch.log(F.softmax(logits, dim=1))") == BAD
    )


def test_diff_writes_nothing(bad, capsys):
    code, out, err = run(capsys, "--diff", bad)
    assert "-    return loss, torch.log(F.softmax(logits, dim=1))" in out
    assert "+    return loss, F.log_softmax(logits, dim=1)" in out
    assert bad.read_text() == BAD
    assert code == 1 and "would fix 1" in err


def test_folders_excludes_and_missing_paths(tmp_path, capsys):
    (tmp_path / "pkg" / "fixtures").mkdir(parents=True)
    (tmp_path / ".venv").mkdir()
    for folder in ("pkg", "pkg/fixtures", ".venv"):
        (tmp_path / folder / "m.py").write_text(BAD)
    (tmp_path / "pkg" / "notes.txt").write_text(BAD)
    _, out, _ = run(capsys, "--format", "json", tmp_path)
    assert {r["path"] for r in json.loads(out)} == {
        str(tmp_path / "pkg" / "m.py"),
        str(tmp_path / "pkg" / "fixtures" / "m.py"),
    }
    _, out, _ = run(capsys, "--format", "json", "--exclude", "fixtures", tmp_path)
    assert {r["path"] for r in json.loads(out)} == {str(tmp_path / "pkg" / "m.py")}
    code, _, err = run(capsys, tmp_path / "nope.py")
    assert code == 2 and "no such file" in err


def test_syntax_error_is_a_finding_not_a_crash(tmp_path, capsys):
    (tmp_path / "py2.py").write_text("print 'hello'\n")
    (tmp_path / "nul.py").write_bytes(b"x = 1\x00\n")
    (tmp_path / "latin.py").write_bytes(b"# -*- coding: ascii -*-\nx = '\xe9'\n")
    code, out, _ = run(capsys, "--format", "json", tmp_path)
    rows = json.loads(out)
    assert code == 1
    assert [(r["path"].rsplit("/", 1)[-1], r["code"]) for r in rows] == [
        ("latin.py", "LMX000"),
        ("nul.py", "LMX000"),
        ("py2.py", "LMX000"),
    ]


def test_exit_zero_and_list_rules(bad, capsys):
    assert run(capsys, "--exit-zero", bad)[0] == 0
    code, out, _ = run(capsys, "--list-rules")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == [
        "LMX000", "LMX101", "LMX102", "LMX103", "LMX104", "LMX105", "LMX106", "LMX107",
        "LMX201", "LMX202",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "content", "col"),
    [
        ("crlf.py", b"import torch\r\ny = torch.log(torch.softmax(x, dim=1))\r\nz = 1\r\n", 5),
        (
            "latin1.py",
            b'# -*- coding: latin-1 -*-\nimport torch\ns = "\xe9t\xe9"; '
            b"y = torch.log(torch.softmax(x, dim=1))\n",
            16,
        ),
        (
            "bom.py",
            b'\xef\xbb\xbfimport torch\ns = "\xc3\xa9t\xc3\xa9"; '
            b"y = torch.log(torch.softmax(x, dim=1))\n",
            16,
        ),
    ],
)
def test_columns_count_characters_and_fix_keeps_bytes(tmp_path, capsys, name, content, col):
    path = tmp_path / name
    path.write_bytes(content)
    _, out, _ = run(capsys, "--format", "json", path)
    assert [(r["code"], r["column"]) for r in json.loads(out)] == [("LMX103", col)]
    assert run(capsys, "--fix", path)[0] == 0
    old = b"torch.log(torch.softmax(x, dim=1))"
    assert path.read_bytes() == content.replace(old, b"torch.log_softmax(x, dim=1)")
