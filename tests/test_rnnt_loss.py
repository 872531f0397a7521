from __future__ import annotations

import itertools

import pytest
import torch

from training.loss.recursion import mutual_information_recursion
from training.loss.rnnt import (
    do_rnnt_pruning,
    get_rnnt_prune_ranges,
    rnnt_loss,
    rnnt_loss_pruned,
    rnnt_loss_simple,
    rnnt_loss_smoothed,
)

torch.set_num_threads(1)
BLANK = 0


def brute_force(logp, symbols: list[int], T: int) -> torch.Tensor:
    """-log sum over every alignment, enumerated; ``logp(t, s)`` gives (C,) log-probs."""
    S = len(symbols)
    scores = []
    for pos in itertools.combinations(range(S + T), S):
        s = t = 0
        total = torch.zeros((), dtype=torch.float64)
        ok = True
        for k in range(S + T):
            if t >= T:  # nothing can be emitted past the last frame
                ok = False
                break
            if k in pos:
                total = total + logp(t, s)[symbols[s]]
                s += 1
            else:
                total = total + logp(t, s)[BLANK]
                t += 1
        if ok and s == S and t == T:
            scores.append(total)
    return -torch.logsumexp(torch.stack(scores), 0)


def brute_force_modified(logp, symbols: list[int], T: int) -> torch.Tensor:
    """Modified transducer: on each frame emit exactly one of blank or the next symbol."""
    S = len(symbols)
    scores = []
    for pos in itertools.combinations(range(T), S):
        s = 0
        total = torch.zeros((), dtype=torch.float64)
        for t in range(T):
            if t in pos:
                total = total + logp(t, s)[symbols[s]]
                s += 1
            else:
                total = total + logp(t, s)[BLANK]
        scores.append(total)
    return -torch.logsumexp(torch.stack(scores), 0)


def make_batch(B=3, T=5, S=3, C=6, seed=0, lens=None):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, S + 1, C, generator=g, dtype=torch.float64)
    symbols = torch.randint(1, C, (B, S), generator=g)
    if lens is None:
        lens = [(S, T)] * B
    boundary = torch.tensor([[0, 0, s, t] for s, t in lens], dtype=torch.int64)
    return logits, symbols, boundary


@pytest.mark.parametrize("lens", [None, [(3, 5), (1, 4), (2, 2)], [(0, 3), (3, 1), (2, 5)]])
def test_full_loss_values_and_grads_match_enumeration(lens):
    logits, symbols, boundary = make_batch(lens=lens)
    logits.requires_grad_(True)
    loss = rnnt_loss(logits, symbols, BLANK, boundary, reduction="none")
    (grad,) = torch.autograd.grad(loss.sum(), logits)

    ref_logits = logits.detach().clone().requires_grad_(True)
    refs = []
    for b, (_, _, S_b, T_b) in enumerate(boundary.tolist()):
        lp = ref_logits[b].log_softmax(-1)
        refs.append(brute_force(lambda t, s, lp=lp: lp[t, s], symbols[b, :S_b].tolist(), T_b))
    ref = torch.stack(refs)
    (ref_grad,) = torch.autograd.grad(ref.sum(), ref_logits)
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-9, atol=1e-10)
    assert loss.min() > 0


def test_reductions():
    logits, symbols, boundary = make_batch()
    per = rnnt_loss(logits, symbols, BLANK, boundary, reduction="none")
    assert per.shape == (3,)
    torch.testing.assert_close(rnnt_loss(logits, symbols, BLANK, boundary), per.sum())
    torch.testing.assert_close(
        rnnt_loss(logits, symbols, BLANK, boundary, reduction="mean"), per.mean()
    )
    with pytest.raises(ValueError, match="reduction"):
        rnnt_loss(logits, symbols, BLANK, boundary, reduction="avg")


def test_modified_and_constrained_match_enumeration():
    logits, symbols, _ = make_batch(B=2, T=5, S=3)
    for b in range(2):
        lp = logits[b].log_softmax(-1)
        got = rnnt_loss(logits, symbols, BLANK, reduction="none", rnnt_type="modified")[b]
        ref = brute_force_modified(lambda t, s, lp=lp: lp[t, s], symbols[b].tolist(), 5)
        torch.testing.assert_close(got, ref)

        # constrained: emitting symbol s also charges blank from context s+1 on that frame
        def lp_con(t, s, lp=lp, sym=symbols[b]):
            out = lp[t, s].clone()
            if s < len(sym):
                out[sym[s]] = out[sym[s]] + lp[t, s + 1, BLANK]
            return out

        got = rnnt_loss(logits, symbols, BLANK, reduction="none", rnnt_type="constrained")[b]
        torch.testing.assert_close(got, brute_force_modified(lp_con, symbols[b].tolist(), 5))
    with pytest.raises(ValueError, match="T >= S"):
        rnnt_loss(logits[:, :2], symbols, BLANK, rnnt_type="modified")


def test_recursion_gradcheck_and_occupations():
    g = torch.Generator().manual_seed(3)
    B, S, T = 2, 3, 4
    px = torch.randn(B, S, T + 1, generator=g, dtype=torch.float64, requires_grad=True)
    py = torch.randn(B, S + 1, T, generator=g, dtype=torch.float64, requires_grad=True)
    boundary = torch.tensor([[0, 0, 3, 4], [1, 1, 2, 3]], dtype=torch.int64)
    assert torch.autograd.gradcheck(
        lambda a, b: mutual_information_recursion(a, b, boundary), (px, py)
    )
    px_m = px[:, :, :T].detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: mutual_information_recursion(a, b), (px_m, py))

    # occupations: every path crosses each frame once (by a blank) and emits each symbol once
    _, (px_grad, py_grad) = mutual_information_recursion(
        px.detach(), py.detach(), torch.tensor([[0, 0, 3, 4], [0, 0, 2, 3]]), return_grad=True
    )
    torch.testing.assert_close(py_grad[0].sum(0), torch.ones(4, dtype=torch.float64))
    torch.testing.assert_close(py_grad[1, :, :3].sum(0), torch.ones(3, dtype=torch.float64))
    assert py_grad[1, :, 3].abs().max() == 0 and py_grad[1, 3].abs().max() == 0
    torch.testing.assert_close(px_grad[0].sum(1), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(px_grad[1, :2].sum(1), torch.ones(2, dtype=torch.float64))


def test_simple_loss_is_full_loss_of_trivial_joiner():
    g = torch.Generator().manual_seed(1)
    B, T, S, C = 3, 6, 4, 7
    lm = torch.randn(B, S + 1, C, generator=g, dtype=torch.float64) * 3
    am = torch.randn(B, T, C, generator=g, dtype=torch.float64) * 3
    symbols = torch.randint(1, C, (B, S), generator=g)
    boundary = torch.tensor([[0, 0, 4, 6], [0, 0, 2, 5], [0, 0, 0, 3]], dtype=torch.int64)
    logits = am.unsqueeze(2) + lm.unsqueeze(1)
    full = rnnt_loss(logits, symbols, BLANK, boundary, reduction="none")
    simple = rnnt_loss_simple(lm, am, symbols, BLANK, boundary, reduction="none")
    torch.testing.assert_close(simple, full)
    smoothed = rnnt_loss_smoothed(lm, am, symbols, BLANK, 0.0, 0.0, boundary, reduction="none")
    torch.testing.assert_close(smoothed, full)
    for kind in ("modified", "constrained"):
        torch.testing.assert_close(
            rnnt_loss_simple(lm, am, symbols, BLANK, boundary, rnnt_type=kind, reduction="none"),
            rnnt_loss(logits, symbols, BLANK, boundary, reduction="none", rnnt_type=kind),
        )


def test_smoothed_loss_matches_interpolated_enumeration():
    g = torch.Generator().manual_seed(2)
    B, T, S, C = 2, 4, 2, 5
    lm = torch.randn(B, S + 1, C, generator=g, dtype=torch.float64)
    am = torch.randn(B, T, C, generator=g, dtype=torch.float64)
    symbols = torch.randint(1, C, (B, S), generator=g)
    l_scale, a_scale = 0.25, 0.15
    got = rnnt_loss_smoothed(lm, am, symbols, BLANK, l_scale, a_scale, reduction="none")
    unigram = lm.softmax(-1).mean(dim=(0, 1))
    for b in range(B):

        def logp(t, s, b=b):
            joint = (lm[b, s] + am[b, t]).log_softmax(-1)
            lm_only = lm[b, s].log_softmax(-1)
            am_only = (am[b, t] + unigram.log()).log_softmax(-1)
            return (1 - l_scale - a_scale) * joint + l_scale * lm_only + a_scale * am_only

        torch.testing.assert_close(got[b], brute_force(logp, symbols[b].tolist(), T))


def _pruned_setup(B=3, T=12, S=5, C=8, D=6, seed=4):
    g = torch.Generator().manual_seed(seed)
    enc = torch.randn(B, T, D, generator=g, dtype=torch.float64)
    dec = torch.randn(B, S + 1, D, generator=g, dtype=torch.float64)
    w = torch.randn(D, C, generator=g, dtype=torch.float64)
    symbols = torch.randint(1, C, (B, S), generator=g)
    boundary = torch.tensor([[0, 0, 5, 12], [0, 0, 3, 9], [0, 0, 1, 4]], dtype=torch.int64)

    def joiner(e, d):
        return torch.tanh(e + d) @ w

    return enc, dec, w, symbols, boundary, joiner


def test_pruned_with_full_range_equals_full_loss():
    enc, dec, w, symbols, boundary, joiner = _pruned_setup()
    S = symbols.shape[1]
    _, (px_grad, py_grad) = rnnt_loss_simple(
        dec @ w, enc @ w, symbols, BLANK, boundary, return_grad=True
    )
    ranges = get_rnnt_prune_ranges(px_grad, py_grad, boundary, s_range=S + 3)
    assert ranges.shape == (3, 12, S + 1)
    assert (ranges == torch.arange(S + 1)).all()
    am_p, lm_p = do_rnnt_pruning(enc, dec, ranges)
    pruned = rnnt_loss_pruned(
        joiner(am_p, lm_p), symbols, ranges, BLANK, boundary, reduction="none"
    )
    full = rnnt_loss(
        joiner(enc.unsqueeze(2), dec.unsqueeze(1)), symbols, BLANK, boundary, reduction="none"
    )
    torch.testing.assert_close(pruned, full)


def test_pruned_ranges_monotone_bounded_and_loss_upper_bounds_full():
    enc, dec, w, symbols, boundary, joiner = _pruned_setup()
    lm, am = (dec @ w).requires_grad_(True), (enc @ w).requires_grad_(True)
    simple, (px_grad, py_grad) = rnnt_loss_smoothed(
        lm, am, symbols, BLANK, 0.1, 0.1, boundary, return_grad=True
    )
    simple.backward()
    assert lm.grad is not None and am.grad is not None and torch.isfinite(am.grad).all()
    R = 3
    ranges = get_rnnt_prune_ranges(px_grad, py_grad, boundary, s_range=R)
    assert ranges.shape == (3, 12, R)
    begins = ranges[:, :, 0]
    assert (ranges == begins.unsqueeze(2) + torch.arange(R)).all()
    assert (begins[:, 0] == 0).all()
    steps = begins[:, 1:] - begins[:, :-1]
    assert (steps >= 0).all() and (steps <= R - 1).all()
    assert begins.min() >= 0 and ranges.max() <= symbols.shape[1]
    for b, (_, _, S_b, T_b) in enumerate(boundary.tolist()):
        # the last frame's window reaches the end of the labels
        assert ranges[b, T_b - 1, 0] <= S_b <= ranges[b, T_b - 1, -1]

    am_p, lm_p = do_rnnt_pruning(enc, dec, ranges)
    logits = joiner(am_p, lm_p).requires_grad_(True)
    pruned = rnnt_loss_pruned(logits, symbols, ranges, BLANK, boundary, reduction="none")
    (grad,) = torch.autograd.grad(pruned.sum(), logits)
    assert torch.isfinite(grad).all()
    full = rnnt_loss(
        joiner(enc.unsqueeze(2), dec.unsqueeze(1)), symbols, BLANK, boundary, reduction="none"
    )
    assert torch.isfinite(pruned).all()
    assert (pruned >= full - 1e-9).all()  # fewer paths: never a higher probability


def test_prune_ranges_follow_a_peaked_alignment():
    # occupations concentrated on the diagonal path s = t // 2
    B, S, T = 1, 6, 12
    py_grad = torch.zeros(B, S + 1, T)
    px_grad = torch.zeros(B, S, T + 1)
    for t in range(T):
        py_grad[0, min(t // 2 + 1, S) if t % 2 else t // 2, t] = 1.0
    boundary = torch.tensor([[0, 0, S, T]])
    ranges = get_rnnt_prune_ranges(px_grad, py_grad, boundary, s_range=2)
    occupied = py_grad[0].argmax(0)
    for t in range(T - 1):
        assert ranges[0, t, 0] <= occupied[t] <= ranges[0, t, -1]


def check_begins(ranges: torch.Tensor, max_step: int) -> None:
    begins = ranges[:, :, 0]
    steps = begins[:, 1:] - begins[:, :-1]
    assert (begins[:, 0] == 0).all()
    assert (steps >= 0).all() and (steps <= max_step - 1).all(), begins


def test_prune_ranges_repair_erratic_occupations():
    # occupation peaks that start high, go back and jump: the windows must still start
    # at 0, never go back and never skip a symbol
    B, S, T = 1, 12, 10
    peaks = [3, 3, 0, 5, 5, 11, 6, 7, 12, 12]
    py_grad = torch.zeros(B, S + 1, T)
    py_grad[0, peaks, torch.arange(T)] = 1.0
    px_grad = torch.zeros(B, S, T + 1)
    ranges = get_rnnt_prune_ranges(px_grad, py_grad, torch.tensor([[0, 0, S, T]]), s_range=3)
    check_begins(ranges, 3)
    assert ranges[0, -1, -1] == S
    # modified transducers move at most one symbol per frame
    boundary = torch.tensor([[0, 0, 8, T]])
    ranges = get_rnnt_prune_ranges(px_grad[:, :, :T], py_grad, boundary, s_range=3)
    check_begins(ranges, 2)
    assert ranges[0, -1, -1] == 8


def test_boundary_errors_are_explained():
    logits, symbols, _ = make_batch()
    with pytest.raises(ValueError, match="out of range"):
        rnnt_loss(logits, symbols, BLANK, torch.tensor([[0, 0, 9, 5]] * 3))
    with pytest.raises(ValueError, match="int64"):
        rnnt_loss(logits, symbols, BLANK, torch.zeros(3, 4, dtype=torch.int32))
    with pytest.raises(ValueError, match="symbols must be int64"):
        rnnt_loss(logits, symbols[:, :2], BLANK)


def test_float32_batch_of_realistic_shape_is_finite():
    g = torch.Generator().manual_seed(5)
    B, T, S, C = 4, 60, 15, 50
    lm = torch.randn(B, S + 1, C, generator=g, requires_grad=True)
    am = torch.randn(B, T, C, generator=g, requires_grad=True)
    symbols = torch.randint(1, C, (B, S), generator=g)
    boundary = torch.tensor([[0, 0, 15, 60], [0, 0, 10, 40], [0, 0, 5, 60], [0, 0, 15, 20]])
    loss, (px_grad, py_grad) = rnnt_loss_smoothed(
        lm, am, symbols, BLANK, 0.1, 0.1, boundary, return_grad=True
    )
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(am.grad).all() and torch.isfinite(lm.grad).all()
    ref = rnnt_loss_smoothed(
        lm.double(), am.double(), symbols, BLANK, 0.1, 0.1, boundary, reduction="none"
    )
    torch.testing.assert_close(loss.double(), ref.sum(), rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(py_grad[1, :, :40].sum(0), torch.ones(40), rtol=1e-4, atol=1e-4)
