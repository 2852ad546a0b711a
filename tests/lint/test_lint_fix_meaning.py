"""``--fix`` keeps the meaning: the rewritten expression computes the same numbers.

Each original expression is linted and fixed as a line of a small script; both are then
evaluated on the same arrays. Where the original is finite they agree to rounding; where the
original is already ``-inf``/``inf`` (the bug the rule is about) the rewrite is finite, or the
same infinity when the true value is one.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import logmax
from logmax.lint import fix_source

torch = pytest.importorskip("torch")
scipy_special = pytest.importorskip("scipy.special")
F = torch.nn.functional

HEADER = (
    "import numpy as np\nimport scipy.special\nimport torch\nimport torch.nn.functional as F\n"
    "from torch import nn\nimport logmax\n"
)
NAMESPACE = {"np": np, "scipy": pytest.importorskip("scipy"), "torch": torch, "F": F,
             "nn": torch.nn, "logmax": logmax}  # fmt: skip

TORCH_CASES = [
    ("torch.log(torch.softmax(x, dim=1))", "torch.log_softmax(x, dim=1)"),
    ("torch.log(F.softmax(x, 1))", "F.log_softmax(x, 1)"),
    ("F.softmax(x, dim=-1).log()", "F.log_softmax(x, dim=-1)"),
    ("x.softmax(0).log()", "x.log_softmax(0)"),
    ("torch.log(nn.Softmax(dim=1)(x))", "nn.LogSoftmax(dim=1)(x)"),
    ("torch.log(torch.sum(torch.exp(x), dim=1))", "torch.logsumexp(x, dim=1)"),
    ("torch.log(torch.exp(x).sum(-1, keepdim=True))", "torch.logsumexp(x, -1, keepdim=True)"),
    ("x.exp().sum(dim=0).log()", "torch.logsumexp(x, dim=0)"),
]
NUMPY_CASES = [
    ("np.log(scipy.special.softmax(x, axis=1))", "scipy.special.log_softmax(x, axis=1)"),
    ("np.log(logmax.softmax(x))", "logmax.log_softmax(x)"),
]


def fixed(expression: str) -> str:
    text, left = fix_source(f"{HEADER}result = {expression}\n")
    assert [f.code for f in left if f.edit is not None] == []
    return text.splitlines()[-1].removeprefix("result = ")


@pytest.mark.parametrize(("original", "expected"), TORCH_CASES + NUMPY_CASES)
def test_the_rewrite_is_the_expected_one(original, expected):
    assert fixed(original) == expected


moderate = arrays(
    np.float64, st.tuples(st.integers(1, 4), st.integers(1, 5)),
    elements=st.floats(-30, 30, allow_nan=False),
)  # fmt: skip


@pytest.mark.parametrize(("original", "_"), TORCH_CASES)
@given(x=moderate)
def test_torch_rewrites_compute_the_same(original, _, x):
    tensor = torch.from_numpy(x)
    before = eval(original, NAMESPACE, {"x": tensor})  # noqa: S307 - the test's own strings
    after = eval(fixed(original), NAMESPACE, {"x": tensor})  # noqa: S307
    assert after.dtype == before.dtype and after.shape == before.shape
    torch.testing.assert_close(after, before, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("original", "_"), NUMPY_CASES)
@given(x=moderate)
def test_numpy_rewrites_compute_the_same(original, _, x):
    before = eval(original, NAMESPACE, {"x": x})  # noqa: S307
    after = eval(fixed(original), NAMESPACE, {"x": x})  # noqa: S307
    assert isinstance(after, np.ndarray) and after.shape == before.shape
    np.testing.assert_allclose(after, before, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("original", "_"), TORCH_CASES + NUMPY_CASES)
def test_rewrites_stay_finite_where_the_original_overflows(original, _):
    x = np.array([[1000.0, 0.0, -1000.0], [0.0, 1.0, 2.0]])
    local = {"x": torch.from_numpy(x)} if "np." not in original else {"x": x}
    with np.errstate(all="ignore"):
        before = np.asarray(eval(original, NAMESPACE, dict(local)))  # noqa: S307
        after = np.asarray(eval(fixed(original), NAMESPACE, dict(local)))  # noqa: S307
    assert not np.isfinite(before).all()  # the bug the rule reports
    assert np.isfinite(after).all()
