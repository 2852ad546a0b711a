"""Every option of the functional API against torch.nn.functional, forward and gradient.

float64 inputs, where torch is accurate to a few ULP: both must agree to ~1e-12. Run on both
paths (NumPy API and plain torch).
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

import logmax.torch as lt

TOL = dict(rtol=1e-12, atol=1e-13)


def _grads(fn, inputs, upstream):
    """Output and the gradients of sum(output * upstream) with respect to ``inputs``."""
    leaves = [t.detach().clone().requires_grad_(t.requires_grad) for t in inputs]
    out = fn(*leaves)
    (out * upstream).sum().backward()
    return out.detach(), [None if t.grad is None else t.grad for t in leaves]


def assert_same(ours, theirs, inputs, gen):
    out_t = theirs(*inputs)
    upstream = torch.randn(out_t.shape, generator=gen, dtype=out_t.dtype)
    o1, g1 = _grads(ours, inputs, upstream)
    o2, g2 = _grads(theirs, inputs, upstream)
    torch.testing.assert_close(o1, o2, **TOL)
    for a, b in zip(g1, g2, strict=True):
        if b is not None:
            torch.testing.assert_close(a, b, **TOL)


def _x(shape, gen, requires_grad=True):
    return (3 * torch.randn(shape, generator=gen, dtype=torch.float64)).requires_grad_(
        requires_grad
    )


# --------------------------------------------------------------------------------- softmax
@pytest.mark.parametrize("shape,dim", [((5,), 0), ((4, 7), 1), ((4, 7), 0), ((2, 3, 5), -1)])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_family(path, gen, shape, dim, name):
    assert_same(
        lambda x: getattr(lt, name)(x, dim),
        lambda x: getattr(F, name)(x, dim),
        [_x(shape, gen)],
        gen,
    )


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_dtype_argument_and_implicit_dim(path, gen, name):
    x = torch.randn(3, 4, generator=gen)
    ours = getattr(lt, name)(x, dim=1, dtype=torch.float64)
    assert ours.dtype == torch.float64
    torch.testing.assert_close(ours, getattr(F, name)(x, dim=1, dtype=torch.float64), **TOL)
    with pytest.warns(UserWarning, match="Implicit dimension") as caught:
        implicit = getattr(lt, name)(x.double())
    assert caught[0].filename == __file__  # names the caller's line
    torch.testing.assert_close(implicit, getattr(F, name)(x.double(), dim=1), **TOL)


@pytest.mark.parametrize("dim,keepdim", [(1, False), (1, True), ((0, 2), False), ((0, 2), True)])
def test_logsumexp(path, gen, dim, keepdim):
    assert_same(
        lambda x: lt.logsumexp(x, dim, keepdim),
        lambda x: torch.logsumexp(x, dim, keepdim),
        [_x((3, 4, 5), gen)],
        gen,
    )


def test_temperature_is_division(path, gen):
    x = _x((4, 6), gen)
    assert_same(
        lambda x: lt.softmax(x, 1, temperature=2.5), lambda x: F.softmax(x / 2.5, 1), [x], gen
    )
    assert_same(
        lambda x: lt.logsumexp(x, 1, temperature=0.5),
        lambda x: torch.logsumexp(x / 0.5, 1),
        [x],
        gen,
    )


# ---------------------------------------------------------------------------------- losses
SHAPES = [(7,), (6, 5), (4, 5, 3), (2, 5, 3, 2)]  # (C,), (N, C), (N, C, d1), (N, C, d1, d2)


def _hard_target(shape, gen, ignore=True):
    c = shape[0] if len(shape) == 1 else shape[1]
    batch = () if len(shape) == 1 else (shape[0], *shape[2:])
    t = torch.randint(0, c, batch, generator=gen)
    if ignore and t.ndim:
        t.view(-1)[::3] = -100
    return t


def _soft_target(shape, gen):
    dim = 0 if len(shape) == 1 else 1
    return torch.rand(shape, generator=gen, dtype=torch.float64).softmax(dim)


CE_OPTIONS = list(
    itertools.product(
        [False, True],  # weight
        ["mean", "sum", "none"],
        [0.0, 0.3],  # label_smoothing
    )
)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("weighted,reduction,smoothing", CE_OPTIONS)
def test_cross_entropy_hard(path, gen, shape, weighted, reduction, smoothing):
    c = shape[0] if len(shape) == 1 else shape[1]
    w = torch.rand(c, generator=gen, dtype=torch.float64) + 0.1 if weighted else None
    t = _hard_target(shape, gen)
    kw = dict(weight=w, reduction=reduction, label_smoothing=smoothing)
    assert_same(
        lambda x: lt.cross_entropy(x, t, **kw),
        lambda x: F.cross_entropy(x, t, **kw),
        [_x(shape, gen)],
        gen,
    )


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("weighted,reduction,smoothing", CE_OPTIONS)
def test_cross_entropy_soft_with_target_grad(path, gen, shape, weighted, reduction, smoothing):
    c = shape[0] if len(shape) == 1 else shape[1]
    w = torch.rand(c, generator=gen, dtype=torch.float64) + 0.1 if weighted else None
    kw = dict(weight=w, reduction=reduction, label_smoothing=smoothing)
    target = _soft_target(shape, gen).requires_grad_()
    assert_same(
        lambda x, t: lt.cross_entropy(x, t, **kw),
        lambda x, t: F.cross_entropy(x, t, **kw),
        [_x(shape, gen), target],
        gen,
    )


def test_cross_entropy_ignore_index_value(path, gen):
    t = torch.tensor([0, 3, 2, 3, 1])
    kw = dict(ignore_index=3, weight=torch.rand(4, generator=gen, dtype=torch.float64))
    assert_same(
        lambda x: lt.cross_entropy(x, t, **kw),
        lambda x: F.cross_entropy(x, t, **kw),
        [_x((5, 4), gen)],
        gen,
    )


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    "weighted,reduction", list(itertools.product([False, True], ["mean", "sum", "none"]))
)
def test_nll_loss(path, gen, shape, weighted, reduction):
    c = shape[0] if len(shape) == 1 else shape[1]
    w = torch.rand(c, generator=gen, dtype=torch.float64) + 0.1 if weighted else None
    t = _hard_target(shape, gen)
    dim = 0 if len(shape) == 1 else 1
    logp = F.log_softmax(_x(shape, gen, False), dim).requires_grad_()
    kw = dict(weight=w, reduction=reduction)
    assert_same(lambda x: lt.nll_loss(x, t, **kw), lambda x: F.nll_loss(x, t, **kw), [logp], gen)


@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize(
    "size_average,reduce", [(True, None), (False, None), (None, False), (False, True)]
)
def test_deprecated_size_average_and_reduce(path, gen, fn, size_average, reduce):
    x = _x((4, 3), gen, False)
    t = torch.tensor([0, 2, 1, 1])
    with pytest.warns(UserWarning) as ours_w:
        ours = getattr(lt, fn)(x, t, None, size_average, -100, reduce)
    with pytest.warns(UserWarning) as torch_w:
        theirs = getattr(F, fn)(x, t, None, size_average, -100, reduce)
    torch.testing.assert_close(ours, theirs, **TOL)
    assert str(ours_w[0].message) == str(torch_w[0].message)


def test_positional_order_matches_torch():
    import inspect

    for name in ["softmax", "log_softmax", "cross_entropy", "nll_loss"]:
        ours = list(inspect.signature(getattr(lt, name)).parameters.values())
        theirs = list(inspect.signature(getattr(F, name)).parameters.values())
        assert [(p.name, p.default) for p in ours[: len(theirs)]] == [
            (p.name, p.default) for p in theirs
        ], name
        assert all(p.kind is p.KEYWORD_ONLY for p in ours[len(theirs) :]), name
