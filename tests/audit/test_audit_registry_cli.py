"""The implementation registry, run_audit's result, and the ``logmax audit`` command."""

import json

import numpy as np
import pytest

from logmax.audit import registry, run_audit
from logmax.audit.catalogue import CASES
from logmax.audit.runner import exact_for
from logmax.cli import main


def test_registry_skips_missing_packages_and_rejects_unknown_names(monkeypatch):
    def missing():
        import logmax_no_such_package  # noqa: F401

    monkeypatch.setitem(registry._LOADERS, "ghost", ("not installed anywhere", missing))
    found, skipped = registry.load()
    assert "logmax" in found and "ghost" in skipped and "not installed" in skipped["ghost"]
    with pytest.raises(ValueError, match="unknown implementation"):
        registry.load(["nope"])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_every_implementation_answers_in_the_reference_shape(dtype):
    found, _ = registry.load()
    for name in ("random_small_rows", "ce_weighted_mean", "logsumexp_b_signed", "nll_none"):
        data = CASES[name].inputs(dtype, quick=True)
        for op in CASES[name].ops:
            exact = exact_for(op, data)
            for impl in found.values():
                fn = impl.ops.get(op)
                if fn is None:
                    continue
                try:
                    out = fn(data.x, data.target, **data.options_for(op))
                except registry.Unsupported:
                    continue
                lse = out[0] if isinstance(out, tuple) else out
                assert np.shape(lse) == exact.shape, (impl.name, op, name)


def test_run_audit_result():
    result = run_audit(
        ops=["log_softmax", "cross_entropy"],
        dtypes=["float32"],
        impls=["logmax", "naive"],
        cases=["seed002_alpha_sweep"],
        quick=True,
    )
    cells = {(c["op"], c["impl"]): c for c in result.summary()}
    assert cells[("log_softmax", "logmax")]["within_bound"]
    assert cells[("log_softmax", "logmax")]["max_ulp"] <= 0.5
    naive = cells[("log_softmax", "naive")]
    assert not naive["within_bound"] and naive["nonfinite"] > 0  # seed 002: -inf from log(0)
    assert "log_softmax" in result.table() and "naive" in result.table()
    json.dumps(result.to_json())
    assert result.failures("logmax") == [] and result.failures("naive")
    rec = next(r for r in result.records if r.impl == "naive" and r.op == "log_softmax")
    assert len(rec.row_ulp) == len(rec.sweep) and np.isinf(rec.row_ulp[-1])
    with pytest.raises(ValueError, match="unknown op"):
        run_audit(ops=["softmin"])


def test_cli_writes_json_and_a_self_contained_page(tmp_path, capsys):
    out = tmp_path / "audit"
    code = main(["audit", "--quick", "--ops", "log_softmax,cross_entropy", "--dtypes",
                 "float32,float16", "--impls", "logmax,torch", "--cases", "seed002_alpha_sweep",
                 "--cases", "confident_margins", "--out", str(out), "--no-progress"])  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "log_softmax" in text and "logmax is within its bound" in text
    page = (out / "audit.html").read_text()
    assert page.count("data:image/png;base64,") == 2
    assert "http://" not in page and "https://" not in page and "<script" not in page
    data = json.loads((out / "audit.json").read_text())
    assert {c["impl"] for c in data["summary"]} == {"logmax", "torch"}


def test_cli_list_and_bad_arguments(capsys):
    assert main(["audit", "--list"]) == 0
    listed = capsys.readouterr().out
    assert "seed002_alpha_sweep" in listed and "naive" in listed
    assert main(["audit", "--ops", "softmin", "--no-progress"]) == 2
    assert "softmin" in capsys.readouterr().err
