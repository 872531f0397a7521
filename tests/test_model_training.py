"""Training mode of the tiny Zipformer2 transducer: regularisers active, gradients finite,
pruned RNN-T (+ CTC) loss, and the equivalence of the streaming and masked forwards."""

from __future__ import annotations

import random

import pytest
import torch

torch.set_num_threads(1)

from training.model.config import preset  # noqa: E402
from training.model.scaling import set_batch_count  # noqa: E402
from training.model.transducer import Transducer  # noqa: E402


def _batch(n: int = 2, t: int = 120, vocab: int = 40, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, t, 80, generator=g)
    x_lens = torch.tensor([t] + [t - 17 * i for i in range(1, n)], dtype=torch.int64)
    y = [[int(v) for v in torch.randint(1, vocab, (5 + 2 * i,), generator=g)] for i in range(n)]
    return x, x_lens, y


@pytest.fixture(scope="module")
def tiny() -> Transducer:
    torch.manual_seed(0)
    return Transducer(preset("tiny", vocab_size=40, use_ctc=True))


def test_tiny_size_is_small(tiny):
    n = sum(p.numel() for p in tiny.parameters())
    assert 200_000 < n < 1_500_000, n


@pytest.mark.parametrize("batch_count", [0, 3000, 60000])
def test_training_forward_backward_is_finite(tiny, batch_count):
    random.seed(batch_count)
    torch.manual_seed(batch_count)
    tiny.train()
    set_batch_count(tiny, batch_count)
    tiny.zero_grad()
    x, x_lens, y = _batch()
    simple, pruned, ctc = tiny(x, x_lens, y, prune_range=3)
    for loss in (simple, pruned, ctc):
        assert loss.ndim == 0 and torch.isfinite(loss), (simple, pruned, ctc)
        assert loss.item() > 0
    (0.5 * simple + pruned + 0.1 * ctc).backward()
    # The layer-level `bypass_scale` is unused (icefall keeps it only for checkpoints). Early in
    # training the positional scores are skipped on some calls, so linear_pos may get no grad.
    without_grad = [n for n, p in tiny.named_parameters() if p.grad is None]
    allowed = [n for n in without_grad if n.endswith(("0.bypass_scale", "linear_pos.weight"))]
    assert without_grad == allowed
    if batch_count >= 4000:
        assert not any("linear_pos" in n for n in without_grad)
    for name, p in tiny.named_parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all(), name
    total = sum(p.grad.abs().sum() for n, p in tiny.named_parameters() if p.grad is not None)
    assert total > 0


def test_schedules_follow_batch_count(tiny):
    tiny.train()
    layer = tiny.encoder.encoders[0].layers[0]  # stack 0 runs at full rate (no downsampling)
    set_batch_count(tiny, 0)
    assert float(layer.attention_skip_rate) == pytest.approx(0.2)
    set_batch_count(tiny, 2000)
    assert float(layer.attention_skip_rate) == pytest.approx(0.125)
    set_batch_count(tiny, 1e6)
    assert float(layer.attention_skip_rate) == 0.0
    tiny.eval()
    set_batch_count(tiny, 0)
    assert float(layer.attention_skip_rate) == 0.0  # default outside training


def test_training_mode_randomises_and_eval_is_deterministic(tiny):
    x, x_lens, _ = _batch()
    tiny.train()
    set_batch_count(tiny, 0)
    with torch.no_grad():
        torch.manual_seed(1)
        random.seed(1)
        a, _ = tiny.forward_encoder(x, x_lens)
        torch.manual_seed(2)
        random.seed(2)
        b, _ = tiny.forward_encoder(x, x_lens)
    assert (a - b).abs().max() > 1e-4  # dropout / layer skipping / random chunk sizes active
    tiny.eval()
    with torch.no_grad():
        c, _ = tiny.forward_encoder(x, x_lens)
        d, _ = tiny.forward_encoder(x, x_lens)
    assert torch.equal(c, d)


@pytest.mark.parametrize(("chunk", "left"), [(16, 64), (32, 128), (8, 32)])
def test_streaming_equals_masked_forward(tiny, chunk, left):
    tiny.eval()
    n_chunks = 4
    t = 2 * chunk * n_chunks + 13
    x = torch.randn(2, t, 80, generator=torch.Generator().manual_seed(chunk))
    with torch.no_grad():
        full, _ = tiny.forward_encoder(
            x, torch.tensor([t, t]), chunk_size=chunk, left_context_frames=left
        )
        states = tiny.get_init_states(2, left_context_frames=left)
        outs = []
        for k in range(n_chunks):
            win = x[:, 2 * chunk * k : 2 * chunk * k + 2 * chunk + 13]
            lens = torch.full((2,), win.shape[1], dtype=torch.int64)
            out, _, states = tiny.streaming_forward_encoder(win, lens, states, chunk, left)
            outs.append(out)
    stream = torch.cat(outs, dim=1)
    assert stream.shape == (2, n_chunks * chunk // 2, tiny.config.encoder_output_dim)
    assert (stream - full[:, : stream.shape[1]]).abs().max() < 1e-5
    assert states[-1].tolist() == [n_chunks * chunk] * 2


def test_non_causal_model_rejects_chunking():
    m = Transducer(preset("tiny", vocab_size=20, causal=False)).eval()
    x = torch.randn(1, 60, 80)
    with torch.no_grad():
        out, lens = m.forward_encoder(x, torch.tensor([60]))
    assert out.shape[1] == lens.item() == ((60 - 7) // 2 + 1) // 2
    with pytest.raises(ValueError, match="causal"):
        m.streaming_forward_encoder(x, torch.tensor([60]), [], 16, 64)


def test_tiny_model_fits_a_batch():
    """A few Adam steps on one batch: both transducer losses must fall clearly."""
    torch.manual_seed(0)
    random.seed(0)
    m = Transducer(preset("tiny", vocab_size=20)).train()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 70, 80, generator=g)
    x_lens = torch.tensor([70, 62])
    y = [[3, 5, 7, 9], [4, 6, 8]]
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    history = []
    for step in range(20):
        set_batch_count(m, 20000 + step)
        simple, pruned, _ = m(x, x_lens, y)
        opt.zero_grad()
        (0.5 * simple + pruned).backward()
        opt.step()
        history.append((simple.item(), pruned.item()))
    assert history[-1][0] < 0.4 * history[0][0], history
    assert history[-1][1] < 0.4 * history[0][1], history


def test_training_layout_of_front_end_matches_eval():
    """Training runs the ConvNeXt channels-last with matmuls; it must compute the same."""
    from training.model.scaling import Balancer, ScheduledFloat, Whiten
    from training.model.subsampling import Conv2dSubsampling

    torch.manual_seed(0)
    emb = Conv2dSubsampling(80, 32)
    # Switch off what makes training differ on purpose: layer drop, dropout, and the
    # gradient regularisers.
    emb.convnext.layerdrop_rate.batch_count = None
    emb.dropout.p = 0.0
    for mod in emb.modules():
        if isinstance(mod, Balancer) and isinstance(mod.prob, ScheduledFloat):
            mod.prob.default = 0.0  # no batch count set: the default applies
        elif isinstance(mod, Balancer):
            mod.prob = 0.0
        elif isinstance(mod, Whiten):
            mod.grad_scale = 0.0
    x = torch.randn(2, 60, 80)
    results = []
    for train in (False, True):
        emb.train(train)
        xi = x.clone().requires_grad_(True)
        emb.zero_grad()
        y, _ = emb(xi, torch.tensor([60, 60]))
        y.backward(torch.ones_like(y))
        w = emb.convnext.pointwise_conv1.weight.grad.clone()
        results.append((y.detach(), w, emb.convnext.depthwise_conv.weight.grad.clone()))
    for a, b in zip(results[0], results[1], strict=True):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


def test_training_step_under_bf16_autocast(tiny):
    random.seed(0)
    torch.manual_seed(0)
    tiny.train()
    set_batch_count(tiny, 100)
    tiny.zero_grad()
    x, x_lens, y = _batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        simple, pruned, _ = tiny(x, x_lens, y)
    assert torch.isfinite(simple) and torch.isfinite(pruned)
    (simple + pruned).backward()
    grads = [p.grad for p in tiny.parameters() if p.grad is not None]
    assert grads and all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)


def test_too_short_input_is_explained(tiny):
    tiny.eval()
    with pytest.raises(ValueError, match="at least 9 feature frames"):
        tiny.forward_encoder(torch.zeros(1, 8, 80), torch.tensor([8]))


def test_modified_rnnt_type_reaches_the_losses_and_bad_types_are_explained(tiny):
    tiny.eval()  # deterministic, so the two loss types are compared on the same encoder output
    x, x_lens, y = _batch()
    with torch.no_grad():
        regular = tiny(x, x_lens, y, prune_range=3)
        modified = tiny(x, x_lens, y, prune_range=3, rnnt_type="modified")
    for r, m in zip(regular[:2], modified[:2], strict=True):
        assert torch.isfinite(m) and m.item() > 0
        # one symbol per frame removes paths, so the modified loss is a different number
        assert abs(r.item() - m.item()) > 1e-3
    with pytest.raises(ValueError, match="rnnt_type must be one of"):
        tiny(x, x_lens, y, rnnt_type="bursty")


def test_context_mask_hides_labels_only_in_training_and_bad_probabilities_are_explained(tiny):
    sos_y = torch.tensor([[0, 5, 6, 7, 8, 9, 10, 11]] * 64)
    tiny.train()
    torch.manual_seed(0)
    masked = tiny.mask_context(sos_y, 0.5)
    assert (masked[:, 0] == 0).all(), "the start symbol is never hidden"
    hidden = (masked[:, 1:] == -1).float().mean().item()
    assert 0.4 < hidden < 0.6, hidden
    kept = masked[:, 1:] != -1
    assert (masked[:, 1:][kept] == sos_y[:, 1:][kept]).all()
    tiny.eval()
    assert torch.equal(tiny.mask_context(sos_y, 0.5), sos_y), "decoding sees the real context"
    with pytest.raises(ValueError, match=r"context_mask_prob must be in \[0, 1\)"):
        tiny.mask_context(sos_y, 1.0)


def test_context_mask_changes_the_training_loss(tiny):
    tiny.train()
    x, x_lens, y = _batch()
    with torch.no_grad():
        torch.manual_seed(1)
        plain = tiny(x, x_lens, y, prune_range=3)
        torch.manual_seed(1)
        masked = tiny(x, x_lens, y, prune_range=3, context_mask_prob=0.9)
    assert abs(plain[0].item() - masked[0].item()) > 1e-3  # the simple loss reads the context
