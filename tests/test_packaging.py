"""The wheel: the package with its type marker and licence, nothing else; light core dependencies.

Builds the wheel with ``uv build`` into a temporary folder (skipped where uv is not installed)
and reads it as the zip file it is.
"""

from __future__ import annotations

import email
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "logmax"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed")
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [uv, "build", "--wheel", "--quiet", "--out-dir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = out.glob("logmax-*.whl")
    with zipfile.ZipFile(path) as archive:
        yield archive


def metadata(wheel: zipfile.ZipFile) -> email.message.Message:
    (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    return email.message_from_bytes(wheel.read(name))


def test_wheel_holds_the_package_and_nothing_else(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    packaged = {n for n in names if n.startswith("logmax/")}
    sources = {
        p.relative_to(PACKAGE.parent).as_posix()
        for p in PACKAGE.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    assert packaged == sources
    assert "logmax/py.typed" in packaged and "logmax/cli.py" in packaged
    outside = {n.split("/", 1)[0] for n in names} - {"logmax"}
    assert len(outside) == 1 and outside.pop().endswith(".dist-info")
    for name in names:
        assert "__pycache__" not in name and not name.endswith((".pyc", ".nbi", ".nbc")), name
        assert not name.startswith(("tests/", "benchmarks/")), name


def test_wheel_carries_the_licence_and_the_command(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    meta = metadata(wheel)
    assert meta["License-Expression"] == "MIT"
    (entry,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "logmax = logmax.cli:main" in wheel.read(entry).decode()


def test_core_needs_only_numpy_and_ml_dtypes(wheel: zipfile.ZipFile) -> None:
    requires = [Requirement(r) for r in metadata(wheel).get_all("Requires-Dist")]
    core = {canonicalize_name(r.name) for r in requires if "extra" not in str(r.marker or "")}
    assert core == {"numpy", "ml-dtypes"}
    optional = {canonicalize_name(r.name) for r in requires} - core
    assert {"numba", "torch", "matplotlib", "python-flint", "scikit-learn"} <= optional
    assert all(r.specifier for r in requires), "every dependency has a lower bound"
