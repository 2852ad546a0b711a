"""Notebooks: read as JSON, code cells joined, findings located as ``nb.ipynb:cellN:line:col``."""

from __future__ import annotations

import json

import pytest

from logmax.cli import main
from logmax.lint import check, fix, read_source


def test_flow_across_cells_and_magics(notebook, tmp_path):
    path = notebook(
        [
            ("code", "%matplotlib inline\n!pip install torch\nimport torch\nimport torch.nn as nn"),
            ("markdown", "# model"),
            ("code", "model = nn.Sequential(nn.Linear(4, 2), nn.Softmax(dim=1))\nmodel?"),
            ("code", "%%time\ncriterion = nn.CrossEntropyLoss()\nloss = criterion(model(x), y)"),
            ("code", "%%bash\necho torch.log(torch.softmax(x, 1))"),
            ("raw", "torch.log(torch.softmax(x, 1))"),
        ],
    )
    findings = check(read_source(path))
    assert [f.location for f in findings] == [f"{path}:cell4:3:8"]
    assert findings[0].code == "LMX101"
    assert "(nn.Softmax, cell3 line 1)" in findings[0].message


def test_a_cell_that_does_not_parse_is_reported_and_the_rest_is_checked(notebook, tmp_path):
    path = notebook(
        [
            ("code", "import torch"),
            ("code", "def broken(:\n    pass"),
            ("code", "y = torch.log(torch.softmax(x, dim=1))"),
        ],
    )
    findings = check(read_source(path))
    assert [(f.cell, f.line, f.code) for f in findings] == [(2, 1, "LMX000"), (3, 1, "LMX103")]


def test_other_kernels_are_skipped_and_bad_json_is_reported(notebook, tmp_path):
    path = notebook([("code", "y = log(softmax(x))")])
    notebook = json.loads(path.read_text())
    notebook["metadata"]["kernelspec"]["language"] = "R"
    path.write_text(json.dumps(notebook))
    assert check(read_source(path)) == []
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json")
    assert [f.code for f in check(read_source(broken))] == ["LMX000"]


def test_noqa_in_a_cell(notebook, tmp_path):
    path = notebook([
            ("code", "import torch"),
            ("code", "a = torch.log(torch.softmax(x, dim=1))  # noqa: LMX103\n"
                     "b = torch.log(torch.softmax(x, dim=1))"),
        ],
    )  # fmt: skip
    assert [(f.cell, f.line) for f in check(read_source(path))] == [(2, 2)]


def test_fix_rewrites_only_the_cell_source(notebook, capsys, tmp_path):
    path = notebook([
            ("code", "%load_ext autoreload\nimport torch"),
            ("markdown", "log(softmax) in markdown stays"),
            ("code", "x = torch.randn(3, 4)\n\n"
                     "a = torch.log(torch.softmax(x, dim=1))\nb = x.softmax(1).log()"),
        ],
    )  # fmt: skip
    before = path.read_text().splitlines()
    assert main(["lint", "--fix", str(path)]) == 0
    after = path.read_text().splitlines()
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert changed == [
        (
            '    "a = torch.log(torch.softmax(x, dim=1))\\n",',
            '    "a = torch.log_softmax(x, dim=1)\\n",',
        ),
        ('    "b = x.softmax(1).log()"', '    "b = x.log_softmax(1)"'),
    ]
    notebook = json.loads(path.read_text())
    cells = notebook["cells"]
    assert "".join(cells[0]["source"]) == "%load_ext autoreload\nimport torch"
    assert "".join(cells[1]["source"]) == "log(softmax) in markdown stays"
    assert cells[2]["source"] == [
        "x = torch.randn(3, 4)\n",
        "\n",
        "a = torch.log_softmax(x, dim=1)\n",
        "b = x.log_softmax(1)",
    ]
    assert check(read_source(path)) == []
    source = read_source(path)
    assert fix(source) == ([], 0)


@pytest.mark.parametrize(
    "content",
    [
        "[]",
        '{"cells": {}}',
        '{"cells": [1, null, "x", {"cell_type": "code"}]}',
        '{"cells": [{"cell_type": "code", "source": [1, 2]}], "metadata": []}',
        '{"cells": [{"cell_type": "code", "source": null}], "metadata": {"kernelspec": 3}}',
        '{"worksheets": [{"cells": []}], "nbformat": 3}',
        "\xff\xfe",
    ],
)
def test_malformed_notebooks_are_not_a_crash(tmp_path, content):
    path = tmp_path / "odd.ipynb"
    path.write_bytes(content.encode("latin-1"))
    assert {f.code for f in check(read_source(path))} <= {"LMX000"}


@pytest.mark.parametrize(
    "cell",
    [
        # a statement continued on a line starting with %, after a backslash or inside brackets
        "print('epoch %d loss %.3f' \\\n      % (epoch, loss))",
        "print('Epoch: %03d/%03d'\n      %(epoch+1, num_epochs))",
        "text = '''\n%not a magic\n'''",
        # IPython help, with a comment or a wildcard, and shell commands continued
        "torch.Tensor?\n??F.softmax\nnp.*cos*?  # search\ntorch.nn.Module.forward??",
        "!pip install torch \\\n    torchvision\n%time x = 1",
    ],
)
def test_ipython_lines_are_blanked_only_where_a_statement_starts(notebook, cell):
    path = notebook([("code", "import torch\nimport numpy as np"), ("code", cell),
                     ("code", "y = torch.log(torch.softmax(x, dim=1))")])  # fmt: skip
    assert [(f.cell, f.code) for f in check(read_source(path))] == [(3, "LMX103")]


def test_a_percent_continuation_is_linted_as_the_statement_it_continues(notebook):
    path = notebook(
        [("code", "import torch\nprint('log p %s' \\\n      % torch.log(torch.softmax(x, 1)))")]
    )
    assert [(f.line, f.code) for f in check(read_source(path))] == [(3, "LMX103")]
