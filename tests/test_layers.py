"""The U-Net's fast ELU and dropout (cellrobust.models.layers) against torch's own."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from cellrobust.models.layers import DROP_BITS, ELU, Dropout, elu_exp, keep_mask


def _inputs(dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 24, 24, generator=g) * 3
    edge = torch.tensor([0.0, -0.0, 1e-30, -1e-30, -1e-7, -1e-4, -20.0, -200.0, 50.0])
    return x.to(dtype), edge.to(dtype)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_elu_matches_float64_elu_within_an_ulp_of_one(layout):
    x, edge = _inputs()
    x = x.contiguous(memory_format=layout)
    for t in (x, edge):
        y = ELU()(t)
        exact = F.elu(t.double())
        assert (y.double() - exact).abs().max().item() < 2 ** -24  # ulp(1.0)/2 = 6e-8
        assert torch.equal(y[t > 0], t[t > 0])  # exactly x above zero
        assert (y[t <= 0] <= 0).all() and (y >= -1).all()
    assert ELU()(x).is_contiguous(memory_format=layout)


def test_elu_gradient_is_torchs():
    x, _ = _inputs()
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    g = torch.rand(x.shape, generator=torch.Generator().manual_seed(1)) * 2 - 1  # |g| <= 1
    ELU()(a).backward(g)
    F.elu(b).backward(g)
    # dy/dx = y + 1 below zero: |g| * (y's error, < 2**-24) plus the product's rounding
    torch.testing.assert_close(a.grad, b.grad, rtol=2 ** -22, atol=2 ** -23)


def test_elu_bf16_close_to_torch_bf16():
    x, _ = _inputs(torch.bfloat16)
    err = (elu_exp(x).float() - F.elu(x.double()).float()).abs().max().item()
    assert err <= 2 ** -8  # bf16: exp(x) near 1 is rounded to 2**-8 at worst


def test_traced_elu_is_the_standard_operator():
    traced = torch.jit.trace(ELU(), torch.randn(4))
    assert "aten::elu" in str(traced.graph)
    assert "aten::exp" not in str(traced.graph)


def test_dropout_identity_in_eval_and_rate_in_training():
    drop = Dropout(0.2)
    x = torch.ones(1_000_000)
    assert drop.eval()(x) is x
    y = drop.train()(x)
    dropped = (y == 0).float().mean().item()
    p = drop.effective_p
    assert abs(p - 0.2) <= 2 ** -DROP_BITS
    assert abs(dropped - p) < 5 * (p * (1 - p) / x.numel()) ** 0.5  # 5 binomial sigmas
    assert torch.allclose(y[y != 0], torch.tensor(1 / (1 - p)))
    assert abs(y.mean().item() - 1.0) < 5e-3  # expectation kept


def test_dropout_gradient_uses_the_same_mask():
    drop = Dropout(0.5).train()
    x = torch.randn(4, 3, 16, 16).requires_grad_()
    y = drop(x)
    y.sum().backward()
    kept = y.detach() != 0
    assert torch.equal(x.grad != 0, kept)
    assert torch.allclose(x.grad[kept], torch.tensor(2.0))


def test_dropout_reproducible_from_torchs_generator():
    drop = Dropout(0.1).train()
    x = torch.ones(3, 5, 7, 9)
    with torch.random.fork_rng(devices=[]):  # the training loop forks and seeds the same way
        torch.manual_seed(3)
        a = drop(x)
        torch.manual_seed(3)
        assert torch.equal(a, drop(x))


def test_keep_mask_follows_the_layout_and_is_unbiased():
    x = torch.empty(2, 16, 32, 32).contiguous(memory_format=torch.channels_last)
    keep = keep_mask(x, 2 ** (DROP_BITS - 1))
    assert keep.shape == x.shape and keep.stride() == x.stride()
    assert abs(keep.float().mean().item() - 0.5) < 0.01
    sliced = torch.empty(4, 8, 8)[:, ::2]  # not dense: a contiguous mask
    assert keep_mask(sliced, 0).all()


@pytest.mark.parametrize("p", [-0.1, 1.0, 2.0])
def test_dropout_rejects_a_bad_probability(p):
    with pytest.raises(ValueError, match="dropout: expected a probability in"):
        Dropout(p)
