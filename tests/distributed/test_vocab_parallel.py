"""logmax.torch.distributed on the CPU: gloo, spawned processes, world 2 and 3 (see vp_checks).

One spawn of three processes runs every check (the process group is shared); each test reports
one check's failures from every rank.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

if not (dist.is_available() and dist.is_gloo_available()):
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

import vp_harness  # noqa: E402

CHECKS = [
    "cross_entropy",
    "vocab_range",
    "soft_target_grad",
    "exact",
    "rows",
    "edges",
    "linear",
    "collectives",
    "errors",
    "empty_slice",
    "dtensor",
    "func_grad",
    "shapes",
]


@pytest.fixture(scope="module")
def results():
    return vp_harness.run(CHECKS)


@pytest.mark.parametrize("name", CHECKS)
def test_vocab_parallel(results, name):
    failures, _ = results[name]
    assert not failures, "\n".join(failures[:20])
