"""Unit tests of the Zipformer2 building blocks in training/model/scaling.py."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)

from training.model import scaling as S  # noqa: E402


def _ref_swoosh(x: torch.Tensor, shift: float, offset: float) -> torch.Tensor:
    return torch.logaddexp(torch.zeros_like(x), x - shift) - 0.08 * x - offset


@pytest.mark.parametrize(
    ("fn", "shift", "offset"), [(S.swoosh_l, 4.0, 0.035), (S.swoosh_r, 1.0, 0.313261687)]
)
def test_swoosh_values_and_gradient(fn, shift, offset):
    x = torch.cat([torch.linspace(-30, 30, 301), torch.tensor([100.0, 1000.0, -1000.0])])
    with torch.no_grad():
        y = fn(x)
    assert torch.isfinite(y).all()
    assert torch.allclose(y, _ref_swoosh(x, shift, offset), atol=1e-5)
    assert y[-2].item() == pytest.approx(1000.0 - shift - 80.0 - offset)
    xa = x.clone().requires_grad_(True)
    xb = x.clone().requires_grad_(True)
    fn(xa).sum().backward()
    _ref_swoosh(xb, shift, offset).sum().backward()
    assert torch.allclose(xa.grad, xb.grad, atol=1e-6)


def test_activation_dropout_and_linear_matches_plain_formula():
    torch.manual_seed(0)
    m = S.ActivationDropoutAndLinear(6, 5, activation="SwooshR", dropout_p=0.0).train()
    x = torch.randn(7, 3, 6, requires_grad=True)
    out = m(x)
    g = torch.randn_like(out)
    out.backward(g)
    grads = (x.grad.clone(), m.weight.grad.clone(), m.bias.grad.clone())
    x2 = x.detach().clone().requires_grad_(True)
    w2 = m.weight.detach().clone().requires_grad_(True)
    b2 = m.bias.detach().clone().requires_grad_(True)
    ref = torch.nn.functional.linear(_ref_swoosh(x2, 1.0, 0.313261687), w2, b2)
    ref.backward(g)
    assert torch.allclose(out, ref, atol=1e-5)
    for a, b in zip(grads, (x2.grad, w2.grad, b2.grad), strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    m.eval()
    with torch.no_grad():
        assert torch.allclose(m(x), ref, atol=1e-5)


def test_activation_dropout_shares_mask_over_time():
    torch.manual_seed(0)
    m = S.ActivationDropoutAndLinear(8, 8, dropout_p=0.5, dropout_shared_dim=0).train()
    with torch.no_grad():
        m.weight.copy_(torch.eye(8))
        m.bias.zero_()
    x = torch.full((5, 2, 8), 10.0, requires_grad=True)
    y = m(x)
    dropped = y == 0
    assert dropped.any() and not dropped.all()
    assert (dropped == dropped[0:1]).all()  # same channels dropped at every time step


def test_bias_norm_gradient_matches_autograd():
    torch.manual_seed(0)
    norm = S.BiasNorm(6).train()
    with torch.no_grad():
        norm.bias.uniform_(-0.5, 0.5)
        norm.log_scale.fill_(0.3)
    x = torch.randn(4, 3, 6, requires_grad=True)
    y = norm(x)
    g = torch.randn_like(y)
    y.backward(g)
    x2 = x.detach().clone().requires_grad_(True)
    b2 = norm.bias.detach().clone().requires_grad_(True)
    s2 = norm.log_scale.detach().clone().requires_grad_(True)
    ref = x2 * ((x2 - b2) ** 2).mean(-1, keepdim=True) ** -0.5 * s2.exp()
    ref.backward(g)
    assert torch.allclose(y, ref, atol=1e-6)
    assert torch.allclose(x.grad, x2.grad, atol=1e-5)
    assert torch.allclose(norm.bias.grad, b2.grad, atol=1e-5)
    assert torch.allclose(norm.log_scale.grad, s2.grad, atol=1e-5)


def test_balancer_changes_gradient_only_when_constraints_are_violated():
    torch.manual_seed(0)
    bal = S.Balancer(
        4, channel_dim=-1, min_positive=0.3, max_positive=0.7, min_abs=0.2, max_abs=2.0, prob=1.0
    ).train()
    g = torch.randn(200, 4)
    # Satisfied: zero-mean, unit-scale data.
    x_ok = torch.randn(200, 4, requires_grad=True)
    y = bal(x_ok)
    assert torch.equal(y, x_ok)
    y.backward(g)
    assert torch.allclose(x_ok.grad, g)
    # Violated: always positive and too large.
    x_bad = (torch.rand(200, 4) * 5 + 5).requires_grad_(True)
    bal(x_bad).backward(g)
    diff = x_bad.grad - g
    assert diff.abs().max() > 1e-3
    # The extra gradient pushes values down (a positive gradient decreases x under descent).
    assert diff.sum() > 0


def test_whiten_adds_gradient_for_correlated_features():
    torch.manual_seed(0)
    w = S.Whiten(num_groups=1, whitening_limit=1.5, prob=1.0, grad_scale=0.1).train()
    white = torch.randn(500, 8)
    assert S.whitening_metric(white, 1).item() < 1.2
    base = torch.randn(500, 1)
    correlated = (base.repeat(1, 8) + 0.05 * torch.randn(500, 8)).requires_grad_(True)
    assert S.whitening_metric(correlated.detach(), 1).item() > 5
    g = torch.randn(500, 8)
    w(correlated).backward(g)
    assert (correlated.grad - g).norm() / g.norm() == pytest.approx(0.1, rel=1e-3)
    x = white.clone().requires_grad_(True)
    w(x).backward(g)
    assert torch.allclose(x.grad, g)


def test_scale_grad_and_limit_param_value():
    x = torch.ones(3, requires_grad=True)
    sg = S.ScaleGrad(0.2).train()
    sg(x).sum().backward()
    assert torch.allclose(x.grad, torch.full((3,), 0.2))
    p = torch.tensor([-1.0, 0.5, 2.0], requires_grad=True)
    # A gradient of +1 everywhere would push all values down; below min it is flipped.
    S.limit_param_value(p, min=0.0, max=1.0, prob=1.0).sum().backward()
    assert p.grad.tolist() == [-1.0, 1.0, 1.0]


def test_scheduled_float():
    s = S.ScheduledFloat((0.0, 0.5), (100.0, 0.1), default=0.0)
    assert float(s) == 0.0  # no batch count yet
    s.batch_count = 50
    assert float(s) == pytest.approx(0.3)
    s.batch_count = 1000
    assert float(s) == pytest.approx(0.1)
    s.eval()
    assert float(s) == 0.0
    with pytest.raises(ValueError):
        S.ScheduledFloat((1.0, 0.0), (0.0, 1.0))


@pytest.mark.parametrize("chunk", [4, 8, 16])
def test_chunk_causal_conv_is_causal_per_chunk_and_streams(chunk):
    torch.manual_seed(0)
    conv = S.ChunkCausalDepthwiseConv1d(3, 7).eval()
    with torch.no_grad():
        conv.chunkwise_conv_scale.uniform_(-0.5, 0.5)
        x = torch.randn(2, 3, 4 * chunk)
        full = conv(x, chunk_size=chunk)
        # Changing the future does not change earlier chunks.
        x2 = x.clone()
        x2[..., 2 * chunk :] += 1.0
        assert torch.equal(conv(x2, chunk_size=chunk)[..., : 2 * chunk], full[..., : 2 * chunk])
        cache = torch.zeros(2, 3, 3)
        outs = []
        for k in range(4):
            y, cache = conv.streaming_forward(x[..., k * chunk : (k + 1) * chunk], cache)
            outs.append(y)
        assert torch.allclose(torch.cat(outs, dim=-1), full, atol=1e-6)


def test_convert_num_channels():
    x = torch.ones(2, 3, 4)
    assert S.convert_num_channels(x, 2).shape == (2, 3, 2)
    y = S.convert_num_channels(x, 6)
    assert y.shape == (2, 3, 6) and y[..., 4:].abs().sum() == 0


@pytest.mark.parametrize(("batch", "channels", "time", "kernel"), [(2, 6, 40, 31), (8, 4, 16, 15)])
def test_fast_depthwise_conv1d_matches_conv1d(batch, channels, time, kernel):
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(channels, channels, kernel, padding=kernel // 2, groups=channels)
    x = torch.randn(batch, channels, time)
    outs, grads = [], []
    for fast in (False, True):
        xi = x.clone().requires_grad_(True)
        conv.zero_grad()
        y = S.depthwise_conv1d(xi, conv, fast=fast)
        y.backward(torch.ones_like(y) * torch.arange(time))
        outs.append(y.detach())
        grads.append((xi.grad, conv.weight.grad.clone(), conv.bias.grad.clone()))
    assert torch.allclose(outs[0], outs[1], atol=1e-5)
    for a, b in zip(grads[0], grads[1], strict=True):
        assert torch.allclose(a, b, atol=1e-3, rtol=1e-5)
