"""Every docstring example in ``src/logmax`` runs and prints what it says.

The modules are found by walking the package (modules whose optional library is not installed
are skipped and named); the test fails if an example fails, and also if the examples it found
are fewer than the package has, so it cannot pass by finding none.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import logmax

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
# modules whose docstrings must hold examples (the public API and the core)
MUST_HAVE = (
    "logmax._numpy",
    "logmax._core.specialise",
    "logmax.audit.reference",
    "logmax.audit.metric",
    "logmax.lint",
    "logmax.torch",
    "logmax.torch.functional",
    "logmax.torch.modules",
)
MIN_EXAMPLES = 80  # 88 when this was written


def _modules() -> list[str]:
    names = ["logmax"]
    for info in pkgutil.walk_packages(logmax.__path__, "logmax."):
        names.append(info.name)
    return sorted(names)


def test_docstring_examples_run():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    skipped, counts = [], {}
    for name in _modules():
        try:
            module = importlib.import_module(name)
        except ImportError as exc:  # an optional library (triton, jax, ...) is absent
            skipped.append(f"{name}: {exc}")
            continue
        tests = [t for t in finder.find(module, name) if t.examples]
        for t in tests:
            runner.run(t)
        counts[name] = sum(len(t.examples) for t in tests)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring examples failed"
    missing = [m for m in MUST_HAVE if counts.get(m, 0) == 0]
    assert not missing, f"modules without docstring examples: {missing}"
    assert result.attempted >= MIN_EXAMPLES, (result.attempted, skipped)


@pytest.mark.parametrize("name", MUST_HAVE)
def test_module_is_importable(name):
    importlib.import_module(name)
