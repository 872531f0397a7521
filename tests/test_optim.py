from __future__ import annotations

import copy
import io
import math

import pytest
import torch

from training.optim import Eden, ScaledAdam

torch.set_num_threads(1)


def regression_problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 8, generator=g)
    w_true = torch.randn(8, 4, generator=g)
    y = x @ w_true + 0.5 + 0.01 * torch.randn(256, 4, generator=g)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 4))
    return model, x, y


def train(model, opt, sched, x, y, steps: int, start: int = 0):
    losses = []
    for i in range(start, start + steps):
        idx = torch.arange(i * 32, i * 32 + 32) % x.shape[0]
        loss = torch.nn.functional.mse_loss(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
        opt.zero_grad()
        if sched is not None:
            sched.step_batch()
        losses.append(loss.item())
    return losses


def test_converges_on_regression():
    model, x, y = regression_problem()
    opt = ScaledAdam(model.named_parameters(), lr=0.05, clipping_scale=2.0)
    sched = Eden(opt, lr_batches=100, lr_epochs=2, warmup_batches=20)
    losses = train(model, opt, sched, x, y, 400)
    full = torch.nn.functional.mse_loss(model(x), y).item()
    assert losses[0] > 1.0
    assert full < 0.01 * losses[0], (losses[0], full)


@pytest.mark.parametrize(
    "batch,epoch", [(0, 0), (10, 0), (499, 1), (500, 1), (5000, 3), (20000, 7.5)]
)
def test_eden_matches_formula(batch, epoch):
    p = torch.nn.Parameter(torch.zeros(3, 3))
    opt = ScaledAdam([p], lr=0.045)
    sched = Eden(opt, lr_batches=7500, lr_epochs=3.5, warmup_batches=500, warmup_start=0.1)
    sched.step_epoch(epoch)
    sched.step_batch(batch)
    warmup = 1.0 if batch >= 500 else 0.1 + 0.9 * batch / 500
    expected = (
        0.045
        * ((batch**2 + 7500**2) / 7500**2) ** -0.25
        * ((epoch**2 + 3.5**2) / 3.5**2) ** -0.25
        * warmup
    )
    assert sched.get_last_lr() == [pytest.approx(expected, rel=1e-12)]
    assert opt.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-12)


def test_eden_counts_batches_and_epochs_and_keeps_group_ratios():
    a, b = torch.nn.Parameter(torch.zeros(2, 2)), torch.nn.Parameter(torch.zeros(2))
    opt = ScaledAdam([{"params": [a], "lr": 0.04}, {"params": [b], "lr": 0.02}], lr=0.01)
    sched = Eden(opt, lr_batches=10, lr_epochs=2, warmup_batches=0)
    for _ in range(3):
        sched.step_batch()
    sched.step_epoch()
    assert (sched.batch, sched.epoch) == (3, 1)
    lr_a, lr_b = sched.get_last_lr()
    assert lr_a == pytest.approx(2 * lr_b)
    assert lr_a == pytest.approx(0.04 * (109 / 100) ** -0.25 * (5 / 4) ** -0.25)


def test_state_dict_round_trip_resumes_identically():
    model, x, y = regression_problem(1)
    model.append(torch.nn.Linear(4, 4))  # two same-shaped biases share a stacked batch
    model[1].bias.data.zero_()
    opt = ScaledAdam(model.parameters(), lr=0.03, clipping_scale=2.0, clipping_update_period=8)
    sched = Eden(opt, lr_batches=50, lr_epochs=2, warmup_batches=10)
    train(model, opt, sched, x, y, 23)  # past scale updates and clipping estimates

    buf = io.BytesIO()
    torch.save(
        {"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()}, buf
    )
    expected_model = copy.deepcopy(model)
    cont = train(model, opt, sched, x, y, 17, start=23)

    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    model2 = copy.deepcopy(expected_model)
    model2.load_state_dict(saved["model"])
    opt2 = ScaledAdam(model2.parameters(), lr=0.03, clipping_scale=2.0, clipping_update_period=8)
    opt2.load_state_dict(saved["opt"])
    sched2 = Eden(opt2, lr_batches=50, lr_epochs=2, warmup_batches=10)
    sched2.load_state_dict(saved["sched"])
    cont2 = train(model2, opt2, sched2, x, y, 17, start=23)
    assert cont == cont2
    for p, q in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(p, q)


def test_update_is_relative_to_parameter_scale():
    # the same gradient direction moves a 100x larger tensor 100x further
    g = torch.Generator().manual_seed(0)
    base = torch.randn(16, 16, generator=g)
    small, big = torch.nn.Parameter(base * 0.01), torch.nn.Parameter(base * 1.0)
    opt = ScaledAdam([small, big], lr=0.05)
    before = [small.detach().clone(), big.detach().clone()]
    grad = torch.randn(16, 16, generator=g)
    small.grad, big.grad = grad.clone(), grad.clone()
    opt.step()
    moved_small = (small.detach() - before[0]).norm()
    moved_big = (big.detach() - before[1]).norm()
    assert moved_big / moved_small == pytest.approx(100.0, rel=1e-3)


def test_oversized_parameter_is_shrunk_below_param_max_rms():
    # with zero gradients only the learned-scale update acts: it must pull rms under the cap
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(32, 32) * 2.0)
    opt = ScaledAdam([p], lr=0.05, param_max_rms=0.5)
    direction = p.detach() / p.detach().norm()
    for _ in range(200):
        p.grad = torch.zeros_like(p)
        opt.step()
    rms = p.detach().pow(2).mean().sqrt().item()
    assert 0.25 < rms <= 0.5
    # only the size changed, not the direction (momentum may carry it through zero)
    cosine = (p.detach() / p.detach().norm() * direction).sum().abs().item()
    assert cosine == pytest.approx(1.0, abs=1e-5)


def test_stacked_update_equals_separate_updates():
    torch.manual_seed(0)
    a, b = torch.randn(5, 3), torch.randn(5, 3)
    grads = [(torch.randn(5, 3), torch.randn(5, 3)) for _ in range(12)]
    pa, pb = torch.nn.Parameter(a.clone()), torch.nn.Parameter(b.clone())
    together = ScaledAdam([pa, pb], lr=0.02)
    qa, qb = torch.nn.Parameter(a.clone()), torch.nn.Parameter(b.clone())
    alone = [ScaledAdam([qa], lr=0.02), ScaledAdam([qb], lr=0.02)]
    for ga, gb in grads:
        pa.grad, pb.grad, qa.grad, qb.grad = ga, gb, ga.clone(), gb.clone()
        together.step()
        for o in alone:
            o.step()
    torch.testing.assert_close(pa.detach(), qa.detach(), rtol=0, atol=1e-6)
    torch.testing.assert_close(pb.detach(), qb.detach(), rtol=0, atol=1e-6)
    assert len(together.state) == 1  # one state for the stacked pair


def test_gradient_spike_is_clipped_to_median_norm():
    def run(clipping_scale):
        torch.manual_seed(0)
        p = torch.nn.Parameter(torch.randn(8, 8))
        opt = ScaledAdam([p], lr=0.01, clipping_scale=clipping_scale, clipping_update_period=10)
        for i in range(31):
            p.grad = torch.randn(8, 8) * (1e4 if i == 30 else 1.0)
            opt.step()
        return opt.state[p]["exp_avg_sq"].mean().item()

    clipped, unclipped = run(2.0), run(None)
    assert unclipped > 1e4 * clipped
    assert clipped < 1.0


def test_non_finite_gradient_is_skipped():
    p = torch.nn.Parameter(torch.ones(4, 4))
    opt = ScaledAdam([p], lr=0.01, clipping_scale=2.0, clipping_update_period=10)
    for _ in range(12):
        p.grad = torch.full((4, 4), 0.1)
        opt.step()
    before = p.detach().clone()
    p.grad = torch.full((4, 4), math.inf)
    opt.step()
    assert torch.isfinite(p).all()
    # only the stored momentum moves it; no inf reached the parameter
    assert (p.detach() - before).abs().max() < 0.1


def test_scalar_parameters_are_bounded():
    s = torch.nn.Parameter(torch.tensor(9.9))
    opt = ScaledAdam([s], lr=0.5, scalar_max=10.0)
    for _ in range(20):
        s.grad = torch.tensor(-1.0)
        opt.step()
    assert s.item() == pytest.approx(10.0)


def test_bad_settings_are_explained():
    p = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="betas"):
        ScaledAdam([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="no parameters"):
        ScaledAdam([])
    with pytest.raises(ValueError, match="warmup_start"):
        Eden(ScaledAdam([p]), 10, 2, warmup_start=2.0)
