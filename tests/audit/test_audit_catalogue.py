"""The stress catalogue: named, reasoned, buildable in every dtype, covering the issue's list."""

import numpy as np
import pytest

from logmax.audit.catalogue import CASES, OP_OPTIONS, OPS, cases
from logmax.audit.formats import FORMATS


def test_every_case_has_a_reason_and_known_ops():
    for name, case in CASES.items():
        assert case.name == name and len(case.reason) > 20, name
        assert case.ops and set(case.ops) <= set(OPS), name


@pytest.mark.parametrize("dtype", list(FORMATS))
def test_every_case_builds_in_every_dtype(dtype):
    for case in CASES.values():
        data = case.inputs(dtype, quick=True)
        assert data.x.dtype == FORMATS[dtype].dtype and data.x.ndim == 2, case.name
        for op in case.ops:
            assert set(data.options_for(op)) <= OP_OPTIONS[op]
        used = {k for op in case.ops for k in data.options_for(op)}
        assert used == set(data.options), f"{case.name}: options no op takes"
        if {"nll_loss", "cross_entropy"} & set(case.ops):
            assert data.target is not None and len(data.target) == data.x.shape[0], case.name
        if data.sweep is not None:
            assert len(data.sweep) == data.x.shape[0] and case.sweep_label, case.name
        vals = data.x.astype(np.float64)
        assert not np.any(np.isnan(vals)) and not np.any(vals == np.inf), case.name


def test_the_scenarios_the_issue_asks_for_are_there():
    names = set(CASES)
    for required in [
        "seed002_alpha_sweep", "seed003_constant_rows_n3", "seed003_near_overflow",
        "seed000_tiny_differences", "confident_margins", "masked_minus_inf", "masked_where",
        "vocab_2e18", "random_scale_1000", "overflow_thresholds", "ce_label_on_max",
        "ce_label_on_min",
    ]:  # fmt: skip
        assert required in names
    alpha = CASES["seed002_alpha_sweep"].inputs("float32").sweep
    assert alpha.min() == 1 and alpha.max() == 1e4
    margins = CASES["confident_margins"].inputs("float32").sweep
    assert margins.min() == 1 and margins.max() == 100
    assert CASES["vocab_2e18"].inputs("float32").x.shape[1] == 2**18
    assert CASES["vocab_2e18"].inputs("float32", quick=True).x.shape[1] < 2**18
    over = CASES["seed003_near_overflow"].inputs("float16").x.astype(float)
    assert over.max() == 65504.0
    masked = CASES["masked_minus_inf"].inputs("float64").x
    assert np.any(np.all(masked == -np.inf, axis=1))


def test_case_selection():
    assert [c.name for c in cases(["ce_softcap"])] == ["ce_softcap"]
    only_nll = cases(ops=["nll_loss"])
    assert only_nll and all("nll_loss" in c.ops for c in only_nll)
    with pytest.raises(KeyError):
        cases(["no_such_case"])
