"""torch.compile: the logmax::operators trace with fullgraph=True (no graph break), forward and
backward, and give the eager results."""

from __future__ import annotations

import pytest
import torch

import logmax.torch as lt


def _step(x, t):
    return (
        lt.cross_entropy(2 * x, t, label_smoothing=0.1)
        + lt.log_softmax(x, 1).exp().sum()
        + lt.softmax(x, 1)[:, 0].sum()
        + lt.logsumexp(x, 1).sum()
        + lt.nll_loss(lt.log_softmax(x, 1), t)
        + _MODULES[0](lt.LogSoftmax(1)(x), t)
        + _MODULES[1](x, t)
        + lt.Softmax(dim=1, temperature=2.0)(x)[:, 1].sum()
    )


# modules built outside the compiled function, as in a training loop
_MODULES = (lt.NLLLoss(reduction="sum"), lt.CrossEntropyLoss(z_loss=0.01, softcap=5.0))


def _check(backend):
    torch._dynamo.reset()
    x = torch.randn(8, 5, generator=torch.Generator().manual_seed(0), requires_grad=True)
    t = torch.randint(0, 5, (8,), generator=torch.Generator().manual_seed(1))
    compiled = torch.compile(_step, backend=backend, fullgraph=True)(x, t)
    compiled.backward()
    grad_compiled = x.grad.clone()
    x.grad = None
    eager = _step(x, t)
    eager.backward()
    torch.testing.assert_close(compiled, eager)
    torch.testing.assert_close(grad_compiled, x.grad)


def test_torch_compile_fullgraph():
    # dynamo and AOTAutograd around the operators, without inductor's code generation
    _check("aot_eager")


@pytest.mark.slow
def test_torch_compile_fullgraph_inductor():
    _check("inductor")
