"""Where logmax.torch differs from torch on purpose, each shown against torch itself."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import logmax.torch as lt


def test_mean_over_zero_counted_rows_is_zero_not_nan(path):
    x = torch.randn(3, 4, requires_grad=True)
    t = torch.full((3,), -100)
    assert torch.isnan(F.cross_entropy(x, t))
    loss = lt.cross_entropy(x, t)
    assert loss == 0
    loss.backward()
    assert torch.equal(x.grad, torch.zeros(3, 4))
    assert lt.nll_loss(x.detach(), t) == 0
    zero_weight = torch.tensor([0.0, 1.0, 1.0, 1.0])
    assert lt.cross_entropy(x.detach(), torch.zeros(3, dtype=torch.long), zero_weight) == 0


def test_float16_mean_over_1e5_rows_does_not_overflow(path, gen):
    x = torch.full((100_000, 8), -8.0, dtype=torch.float16)
    x[:, 0] = 8.0
    x = x.requires_grad_()
    t = torch.full((100_000,), 3)
    assert torch.isnan(F.cross_entropy(x.detach(), t))  # torch sums in float16: inf / inf
    loss = lt.cross_entropy(x, t)
    exact = F.cross_entropy(x.detach().double(), t)
    assert loss.dtype == torch.float16
    assert loss == exact.half()
    loss.backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_confident_prediction_gives_the_exact_tiny_loss(path, dtype):
    margin = 30.0 if dtype == torch.float32 else 60.0
    x = torch.tensor([[0.0, -margin]], dtype=dtype)
    t = torch.tensor([0])
    exact = math.log1p(math.exp(-margin))
    assert F.cross_entropy(x, t) == 0  # torch rounds log(1 + tiny) to 0
    ours = lt.cross_entropy(x, t)
    assert ours > 0
    assert abs(ours.item() - exact) <= 1e-6 * exact
    assert abs(lt.log_softmax(x, 1)[0, 0].item() + exact) <= 1e-6 * exact


def test_fully_masked_rows_give_zeros_not_nan(path):
    x = torch.full((2, 3), -math.inf, requires_grad=True)
    assert torch.isnan(torch.softmax(x, 1)).all()
    assert torch.equal(lt.softmax(x, 1), torch.zeros(2, 3))
    lt.logsumexp(x, 1).clamp(min=-1.0).sum().backward()
    assert torch.equal(x.grad, torch.zeros(2, 3))
    x.grad = None
    torch.logsumexp(x, 1).clamp(min=-1.0).sum().backward()
    assert torch.isnan(x.grad).all()


def test_log_softmax_gradient_is_zero_at_masked_entries(path):
    x = torch.tensor([[0.0, -math.inf, 1.0]], requires_grad=True)
    up = torch.tensor([[1.0, 2.0, 3.0]])
    (lt.log_softmax(x, 1) * up).sum().backward()
    assert x.grad[0, 1] == 0
    ref = x.detach().clone().requires_grad_()
    torch.log_softmax(ref, 1).backward(up)
    assert ref.grad[0, 1] == 2.0  # torch passes the upstream gradient to a -inf input
    finite = [0, 2]
    # on the unmasked entries both agree once the masked entry's upstream gradient is left out
    ref2 = x.detach()[:, finite].clone().requires_grad_()
    torch.log_softmax(ref2, 1).backward(up[:, finite])
    torch.testing.assert_close(x.grad[:, finite], ref2.grad)


def test_any_integer_dtype_for_class_indices(path):
    x = torch.randn(4, 3)
    t = torch.tensor([0, 2, 1, 2])
    with pytest.raises(RuntimeError):
        F.cross_entropy(x, t.int())
    for dtype in (torch.int8, torch.int16, torch.int32, torch.uint8):
        torch.testing.assert_close(lt.cross_entropy(x, t.to(dtype)), F.cross_entropy(x, t))


def test_out_of_range_label_is_a_value_error_not_wrapped(path):
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"target\[2\] = 3 .* 3 \(the number of classes\)"):
        lt.cross_entropy(x, torch.tensor([0, 1, 3, 2]))
    with pytest.raises(ValueError, match="-2"):
        lt.nll_loss(x, torch.tensor([0, 1, -2, 2]))


def test_float_class_indices_get_a_clear_error(path):
    with pytest.raises(ValueError, match=r"class indices must be integers, call \.long\(\)"):
        lt.cross_entropy(torch.randn(4, 3), torch.tensor([0.0, 1.0, 2.0, 1.0]))
