"""``logmax report`` prints the seeds' worked examples with the values torch and logmax compute."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from logmax.study.results import fmt, fmt_row  # noqa: E402


@pytest.fixture(scope="module")
def printed(tiny_report) -> str:
    return tiny_report.stdout


def line_with(text: str, *needles: str) -> str:
    """The first printed line containing every needle (fails the test if there is none)."""
    for line in text.splitlines():
        if all(n in line for n in needles):
            return line
    raise AssertionError(f"no line contains all of {needles!r}")


def printed_values(line: str) -> list[float]:
    """The numbers of the last bracketed list on a printed line."""
    inside = line[line.rindex("[") + 1 : line.rindex("]")]
    return [float(v) for v in inside.split(",")]


def test_seed001_every_way(printed: str) -> None:
    output = torch.tensor([[3.2, 1.3, 0.2, 0.8], [1.2, 4.1, 3.8, 0.1], [3.3, 2.5, 1.9, 5.9]])
    target = torch.tensor([0, 2, 3])
    ce = torch.nn.CrossEntropyLoss()(output, target).item()
    nll = torch.nn.NLLLoss()(torch.nn.LogSoftmax(dim=1)(output), target).item()
    assert fmt(ce) in line_with(printed, "nn.CrossEntropyLoss()(output, target)")
    assert fmt(nll) in line_with(printed, "nn.NLLLoss()(nn.LogSoftmax(dim=1)(output), target)")
    # the seed's notebook printed this value for its manual formulas
    assert "0.42298611998558044" in line_with(printed, "manual CrossEntropy(Softmax(output)")
    import logmax

    lm = float(logmax.cross_entropy(output.numpy(), target.numpy()))
    assert math.isclose(lm, ce, rel_tol=1e-6)
    assert fmt(lm) in line_with(printed, "logmax.cross_entropy(x, target)")


def test_seed002_alpha_1000(printed: str) -> None:
    x = 1000 * torch.tensor([-1.0, 0.0, 1.0])
    naive = torch.log(torch.softmax(x, dim=0)).numpy()
    assert np.isneginf(naive[:2]).all()
    assert fmt_row(naive, 8) in line_with(printed, "1000", "torch.log(torch.softmax(x)) float32")
    ls = torch.log_softmax(x, dim=0).numpy()
    assert fmt_row(ls, 8) == "[-2000, -1000, 0]"
    assert fmt_row(ls, 8) in line_with(printed, "1000", "torch.log_softmax(x) float32")
    logmax_row = line_with(printed, "1000", "logmax.log_softmax(x) float32")
    assert printed_values(logmax_row) == [-2000.0, -1000.0, 0.0]  # -0.0 == 0.0


def test_seed000_tiny_values_are_distinct(printed: str) -> None:
    z = torch.tensor([1e-15, 2e-15, 3e-15], dtype=torch.float64)
    values = torch.log_softmax(z, dim=0).numpy()
    row = line_with(printed, "torch.log_softmax(z, dim=0)")
    assert all(fmt(v) in row for v in values)
    assert len({fmt(v) for v in values}) == 3
    assert "display effect" in printed


def test_seed003_constant_rows(printed: str) -> None:
    n = 4
    for c in ("-10000", "10000"):
        row = line_with(printed, f"│ {c} ", "float64")
        assert "[nan, nan, nan, nan]" in row  # the textbook formula
        assert fmt_row([1 / n] * n, 8) in row  # torch and logmax
        assert fmt_row([-math.log(n)] * n, 8) in row  # logmax.log_softmax
