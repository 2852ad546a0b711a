"""Output formats for tools: SARIF for code scanning, GitHub workflow annotations."""

from __future__ import annotations

import json

import pytest

from logmax.cli import main

CELL = "import torch\ny = torch.log(torch.softmax(x, dim=1))"


def run(capsys, *argv):
    code = main(["lint", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def results(capsys, *argv) -> list[dict]:
    _, out, _ = run(capsys, "--format", "sarif", *argv)
    log = json.loads(out)
    assert log["version"] == "2.1.0"
    return log["runs"][0]["results"]


def test_sarif_uris_are_percent_encoded(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "my project#1"
    folder.mkdir()
    (folder / "train step.py").write_text(CELL + "\n")
    monkeypatch.chdir(tmp_path)
    (relative,) = results(capsys, "my project#1")
    uri = relative["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == "my%20project%231/train%20step.py"
    (absolute,) = results(capsys, folder)
    uri = absolute["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri.startswith("file:///") and uri.endswith("/my%20project%231/train%20step.py")


def test_sarif_places_notebook_findings_in_the_file_and_names_the_cell(notebook, capsys):
    path = notebook([("markdown", "# title"), ("code", CELL), ("code", CELL)])
    first, second = results(capsys, path)
    lines = path.read_text().splitlines()
    for result, cell in ((first, 2), (second, 3)):
        location = result["locations"][0]
        region = location["physicalLocation"]["region"]
        raw = lines[region["startLine"] - 1]
        assert "torch.log(torch.softmax" in raw  # the line of the .ipynb holding that source
        assert raw[region["startColumn"] - 1 :].startswith("torch.log(")
        assert location["logicalLocations"][0]["name"] == f"cell{cell}"
        assert result["properties"] == {"cell": cell, "cellLine": 2, "cellColumn": 5}
        assert result["message"]["text"].startswith(f"cell {cell}, line 2: log of a softmax")
    assert first["partialFingerprints"] != second["partialFingerprints"]


def test_sarif_fingerprints_differ_for_the_same_finding_twice_in_a_file(tmp_path, capsys):
    path = tmp_path / "twice.py"
    path.write_text(CELL + "\n" + CELL.splitlines()[1] + "\n")
    first, second = results(capsys, path)
    assert first["partialFingerprints"] != second["partialFingerprints"]


def test_github_annotations(tmp_path, capsys):
    path = tmp_path / "a, b.py"
    path.write_text("import torch\nimport torch.nn.functional as F\n"
                    "loss = F.cross_entropy(F.softmax(x), y)\n")  # fmt: skip
    code, out, _ = run(capsys, "--format", "github", path)
    first, second = out.splitlines()
    assert code == 1
    assert first.startswith(
        f"::error title=logmax (LMX101),file={str(path).replace(',', '%2C')},line=3,col=8,"
        "endLine=3,endColumn=40::"
    )
    assert first.endswith("which applies log_softmax itself (fix: pass the raw logits and drop "
                          "the softmax)")  # fmt: skip
    assert second.startswith("::warning title=logmax (LMX202),")


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "github"])
def test_every_format_writes_nothing_unexpected_for_a_clean_file(tmp_path, capsys, fmt):
    path = tmp_path / "ok.py"
    path.write_text("import torch\ny = torch.log_softmax(x, dim=1)\n")
    code, out, err = run(capsys, "--format", fmt, path)
    assert code == 0 and err == ""
    if fmt == "json":
        assert json.loads(out) == []
    elif fmt == "sarif":
        assert json.loads(out)["runs"][0]["results"] == []
    else:
        assert out == ""
