"""The modules of a project are linted together: a model defined in one file and trained in
another is followed, through every way of importing it."""

from __future__ import annotations

from pathlib import Path

import pytest

from logmax.lint import lint_paths

MODEL = """\
import torch.nn.functional as F
from torch import nn


class Net(nn.Module):
    def forward(self, x):
        return F.softmax(self.fc(x), dim=1)


def make():
    return Net()
"""


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def found(paths: list[Path]) -> list[tuple[str, int, str]]:
    return [(Path(f.path).name, f.line, f.code) for f in lint_paths([str(p) for p in paths])]


@pytest.mark.parametrize(
    ("train", "files"),
    [
        ("from model import Net\nmodel = Net()\n", {}),
        ("import model as m\nmodel = m.Net()\n", {}),
        ("from model import *\nmodel = make()\n", {}),
        ("from pkg import model as mod\nmodel = mod.Net()\n", {"pkg/__init__.py": ""}),
        ("import pkg.model\nmodel = pkg.model.Net()\n", {"pkg/__init__.py": ""}),
        ("from pkg.model import Net\nmodel = Net()\n", {}),  # a folder without __init__.py
    ],
)
def test_the_model_is_followed_into_the_training_script(tmp_path, train, files):
    where = "pkg/model.py" if "pkg" in train else "model.py"
    root = write(tmp_path, {where: MODEL, **files})
    script = train + "import torch\nloss = torch.nn.CrossEntropyLoss()(model(x), y)\n"
    write(root, {"train.py": script})
    assert found([root]) == [("train.py", 4, "LMX101")]


def test_relative_imports_inside_a_package(tmp_path):
    root = write(
        tmp_path,
        {
            "proj/__init__.py": "",
            "proj/nets/__init__.py": "from .net import Net\n",
            "proj/nets/net.py": MODEL,
            "proj/fit.py": (
                "import torch.nn.functional as F\n"
                "from .nets import Net\n"
                "def fit(x, y):\n"
                "    return F.cross_entropy(Net()(x), y)\n"
            ),
        },
    )
    assert found([root]) == [("fit.py", 4, "LMX101")]


def test_the_message_names_the_file_where_the_softmax_was_made(tmp_path):
    root = write(tmp_path, {"model.py": MODEL, "train.py": "from model import Net\n"
                            "import torch.nn.functional as F\n"
                            "loss = F.cross_entropy(Net()(x), y)\n"})  # fmt: skip
    (finding,) = lint_paths([str(root)])
    assert f"F.softmax, {root / 'model.py'} line 7" in finding.message


def test_a_file_named_alone_still_sees_the_modules_beside_it(tmp_path):
    """pre-commit passes the staged files only; the modules they import are read from disk, and
    only the named files' findings are reported."""
    loop = (
        "import torch.nn.functional as F\n"
        "def fit(model, x, y):\n"
        "    return F.cross_entropy(model(x), y)\n"
    )
    root = write(tmp_path, {"model.py": MODEL + "import torch\ny = torch.log(F.softmax(z, 1))\n",
                            "loop.py": loop,
                            "train.py": "from model import Net\nfrom loop import fit\n"
                                        "fit(Net(), x, y)\n"})  # fmt: skip
    assert found([root / "train.py"]) == []  # the finding is in loop.py, not named
    assert found([root / "train.py", root / "loop.py"]) == [("loop.py", 3, "LMX101")]


def test_a_local_folder_named_like_a_library_does_not_hide_it(tmp_path):
    root = write(
        tmp_path,
        {
            "torch/__init__.py": "def softmax(x, dim):\n    return x\n",
            "train.py": "import torch\ny = torch.log(torch.softmax(x, dim=1))\n",
        },
    )
    assert ("train.py", 2, "LMX103") in found([root])


def test_imports_stop_at_the_project_root(tmp_path):
    write(tmp_path, {"model.py": MODEL})
    project = write(tmp_path / "proj", {"pyproject.toml": "", "train.py": (
        "from model import Net\nimport torch.nn.functional as F\n"
        "loss = F.cross_entropy(Net()(x), y)\n")})  # fmt: skip
    assert found([project]) == []  # model.py is outside the project holding train.py


def test_an_import_cycle_is_not_a_crash(tmp_path):
    root = write(
        tmp_path,
        {
            "a.py": "from b import g\nimport torch\ndef f(x):\n    return torch.softmax(x, 1)\n",
            "b.py": "from a import f\nimport torch\ndef g(x):\n    return torch.log(f(x))\n",
        },
    )
    assert found([root]) == [("b.py", 4, "LMX103")]


def test_a_module_that_does_not_parse_is_reported_and_imported_as_empty(tmp_path):
    root = write(
        tmp_path,
        {"broken.py": "def f(:\n", "train.py": "from broken import f\nimport torch\n"
                                               "y = torch.log(torch.softmax(x, 1))\n"},
    )  # fmt: skip
    assert found([root]) == [("broken.py", 1, "LMX000"), ("train.py", 3, "LMX103")]
