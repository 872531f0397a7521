"""Pruned RNN-T loss with k2's function names and signatures, in plain PyTorch.

Training recipe (as icefall's transducer ``forward``)::

    simple_loss, (px_grad, py_grad) = rnnt_loss_smoothed(
        lm, am, symbols, blank, lm_only_scale, am_only_scale, boundary, return_grad=True)
    ranges = get_rnnt_prune_ranges(px_grad, py_grad, boundary, s_range=5)
    am_pruned, lm_pruned = do_rnnt_pruning(enc_proj, dec_proj, ranges)
    logits = joiner(am_pruned, lm_pruned, project_input=False)   # (B, T, s_range, C)
    pruned_loss = rnnt_loss_pruned(logits, symbols, ranges, blank, boundary)

Shapes: ``lm`` (B, S+1, C) from the decoder on ``[blank] + symbols``, ``am`` (B, T, C),
``symbols`` (B, S) int64, ``boundary`` (B, 4) int64 rows ``[0, 0, S_b, T_b]``.
Every loss is the negated log-probability of the label sequence; ``reduction`` is
``"sum"`` (default here, what icefall passes), ``"mean"`` or ``"none"``.

``rnnt_type``: ``"regular"`` (a symbol keeps the frame), ``"modified"`` (a symbol also
advances the frame) or ``"constrained"`` (modified, plus the blank of the next context
on the same frame is charged).
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from training.loss.recursion import mutual_information_recursion

__all__ = [
    "do_rnnt_pruning",
    "get_rnnt_logprobs",
    "get_rnnt_logprobs_joint",
    "get_rnnt_logprobs_pruned",
    "get_rnnt_logprobs_smoothed",
    "get_rnnt_prune_ranges",
    "mutual_information_recursion",
    "rnnt_loss",
    "rnnt_loss_pruned",
    "rnnt_loss_simple",
    "rnnt_loss_smoothed",
]

log = logging.getLogger(__name__)
RNNT_TYPES = ("regular", "modified", "constrained")


def _check_type(rnnt_type: str, S: int, T: int, boundary: Tensor | None) -> None:
    if rnnt_type not in RNNT_TYPES:
        raise ValueError(f"rnnt_type must be one of {RNNT_TYPES}; got {rnnt_type!r}")
    if rnnt_type == "regular":
        return
    if boundary is None:
        short = T < S
    else:
        short = bool((boundary[:, 3] < boundary[:, 2]).any())
    if short:
        raise ValueError(
            f"{rnnt_type} transducers emit at most one symbol per frame, so they need "
            "T >= S for every sequence; use rnnt_type='regular' or drop these utterances"
        )


def _finish(
    px: Tensor, py: Tensor, rnnt_type: str, boundary: Tensor | None
) -> tuple[Tensor, Tensor]:
    """px (B, S, T), py (B, S+1, T) -> the recursion's inputs for ``rnnt_type``."""
    B, S, T = px.shape
    if rnnt_type == "regular":
        # no symbol can be emitted on the one-past-the-last frame
        px = torch.cat([px, px.new_full((B, S, 1), float("-inf"))], dim=2)
        if boundary is not None:
            t = torch.arange(T + 1, device=px.device).view(1, 1, T + 1)
            px = px.masked_fill(t == boundary[:, 3].view(B, 1, 1), float("-inf"))
    elif rnnt_type == "constrained":
        px = px + py[:, 1:, :]
    return px, py


def _delay(px: Tensor, delay_penalty: float, rnnt_type: str, boundary: Tensor | None) -> Tensor:
    """Reward early symbols / penalise late ones by ``delay_penalty`` per frame from the middle."""
    if delay_penalty <= 0.0:
        return px
    B, S, T1 = px.shape
    T = T1 - 1 if rnnt_type == "regular" else T1
    if boundary is None:
        mid = torch.full((B,), (T - 1) / 2, device=px.device)
    else:
        mid = (boundary[:, 3] - 1).to(torch.float64) / 2
    penalty = mid.view(B, 1, 1) - torch.arange(T1, device=px.device).view(1, 1, T1)
    return px + (penalty * delay_penalty).to(px.dtype)


def _reduce(neg_loss: Tensor, reduction: str | None) -> Tensor:
    if reduction == "none" or reduction is None:
        return -neg_loss
    if reduction == "mean":
        return -neg_loss.mean()
    if reduction == "sum":
        return -neg_loss.sum()
    raise ValueError(f"reduction must be 'none', 'mean' or 'sum'; got {reduction!r}")


def _check_symbols(symbols: Tensor, B: int, S: int) -> None:
    if symbols.shape != (B, S) or symbols.dtype != torch.int64:
        raise ValueError(
            f"symbols must be int64 of shape (B={B}, S={S}) (lm has S+1 positions); "
            f"got {tuple(symbols.shape)} {symbols.dtype}"
        )


def _joint_normalizers(lm: Tensor, am: Tensor) -> Tensor:
    """log sum_c exp(lm[b, s, c] + am[b, t, c]) -> (B, S+1, T), via one matmul."""
    lm_max = lm.amax(dim=2, keepdim=True)
    am_max = am.amax(dim=2, keepdim=True)
    prod = torch.matmul((lm - lm_max).exp(), (am - am_max).exp().transpose(1, 2))
    return (prod + torch.finfo(prod.dtype).tiny).log() + lm_max + am_max.transpose(1, 2)


def _check_lm_am(lm: Tensor, am: Tensor, symbols: Tensor) -> tuple[int, int, int, int]:
    if lm.ndim != 3 or am.ndim != 3 or lm.shape[0] != am.shape[0] or lm.shape[2] != am.shape[2]:
        raise ValueError(
            f"expected lm (B, S+1, C) and am (B, T, C); got {tuple(lm.shape)} and {tuple(am.shape)}"
        )
    B, T, C = am.shape
    S = lm.shape[1] - 1
    _check_symbols(symbols, B, S)
    return B, S, T, C


def get_rnnt_logprobs(
    lm: Tensor,
    am: Tensor,
    symbols: Tensor,
    termination_symbol: int,
    rnnt_type: str = "regular",
    boundary: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """(px, py) for the "trivial joiner" ``log_softmax(lm[s] + am[t])``."""
    B, S, T, C = _check_lm_am(lm, am, symbols)
    _check_type(rnnt_type, S, T, boundary)
    norm = _joint_normalizers(lm, am)  # (B, S+1, T)
    am_sym = torch.gather(am, 2, symbols.unsqueeze(1).expand(B, T, S)).transpose(1, 2)
    lm_sym = torch.gather(lm[:, :S], 2, symbols.unsqueeze(2))  # (B, S, 1)
    px = am_sym + lm_sym - norm[:, :S]
    py = am[:, :, termination_symbol].unsqueeze(1) + lm[:, :, termination_symbol].unsqueeze(2)
    return _finish(px, py - norm, rnnt_type, boundary)


def rnnt_loss_simple(
    lm: Tensor,
    am: Tensor,
    symbols: Tensor,
    termination_symbol: int,
    boundary: Tensor | None = None,
    rnnt_type: str = "regular",
    delay_penalty: float = 0.0,
    reduction: str | None = "sum",
    return_grad: bool = False,
) -> Tensor | tuple[Tensor, tuple[Tensor, Tensor]]:
    """RNN-T loss of the trivial joiner ``lm + am``.

    With ``return_grad`` returns ``(loss, (px_grad, py_grad))``: the occupation
    probabilities that ``get_rnnt_prune_ranges`` needs.
    """
    px, py = get_rnnt_logprobs(lm, am, symbols, termination_symbol, rnnt_type, boundary)
    px = _delay(px, delay_penalty, rnnt_type, boundary)
    out = mutual_information_recursion(px, py, boundary, return_grad)
    if return_grad:
        return _reduce(out[0], reduction), out[1]
    return _reduce(out, reduction)


def get_rnnt_logprobs_smoothed(
    lm: Tensor,
    am: Tensor,
    symbols: Tensor,
    termination_symbol: int,
    lm_only_scale: float = 0.1,
    am_only_scale: float = 0.1,
    boundary: Tensor | None = None,
    rnnt_type: str = "regular",
) -> tuple[Tensor, Tensor]:
    """(px, py) interpolating, in log space, the trivial joiner with an LM-only model
    (``log_softmax(lm)``) and an AM-only model (``am`` with the batch-averaged unigram
    of ``softmax(lm)`` as its LM), weighted ``1 - l - a``, ``l``, ``a``."""
    B, S, T, C = _check_lm_am(lm, am, symbols)
    _check_type(rnnt_type, S, T, boundary)
    tiny = torch.finfo(lm.dtype).tiny
    lm_max = lm.amax(dim=2, keepdim=True)
    am_max = am.amax(dim=2, keepdim=True)
    lm_probs = (lm - lm_max).exp()
    am_probs = (am - am_max).exp()
    norm = _joint_normalizers(lm, am)  # (B, S+1, T)
    lm_sum = lm_probs.sum(dim=2, keepdim=True)
    unigram = (lm_probs / lm_sum).mean(dim=(0, 1)) + tiny  # (C,)
    am_norm = (torch.matmul(am_probs, unigram).unsqueeze(2).log() + am_max).transpose(1, 2)
    lm_norm = lm_sum.log() + lm_max  # (B, S+1, 1)
    log_unigram = unigram.log()

    am_sym = torch.gather(am, 2, symbols.unsqueeze(1).expand(B, T, S)).transpose(1, 2)
    lm_sym = torch.gather(lm[:, :S], 2, symbols.unsqueeze(2))  # (B, S, 1)
    am_blank = am[:, :, termination_symbol].unsqueeze(1)  # (B, 1, T)
    lm_blank = lm[:, :, termination_symbol].unsqueeze(2)  # (B, S+1, 1)

    parts = [
        (1.0 - lm_only_scale - am_only_scale, am_sym + lm_sym - norm[:, :S], am_blank + lm_blank - norm),
        (lm_only_scale, (lm_sym - lm_norm[:, :S]).expand(B, S, T), (lm_blank - lm_norm).expand(B, S + 1, T)),
        (am_only_scale, am_sym + log_unigram[symbols].unsqueeze(2) - am_norm, am_blank + log_unigram[termination_symbol] - am_norm),
    ]  # fmt: skip
    px = sum(w * x for w, x, _ in parts if w != 0.0)
    py = sum(w * y for w, _, y in parts if w != 0.0)
    return _finish(px, py, rnnt_type, boundary)


def rnnt_loss_smoothed(
    lm: Tensor,
    am: Tensor,
    symbols: Tensor,
    termination_symbol: int,
    lm_only_scale: float = 0.1,
    am_only_scale: float = 0.1,
    boundary: Tensor | None = None,
    rnnt_type: str = "regular",
    delay_penalty: float = 0.0,
    reduction: str | None = "sum",
    return_grad: bool = False,
) -> Tensor | tuple[Tensor, tuple[Tensor, Tensor]]:
    """The simple loss smoothed with LM-only and AM-only terms (k2's ``rnnt_loss_smoothed``).

    With both scales 0 it equals ``rnnt_loss_simple``.
    """
    px, py = get_rnnt_logprobs_smoothed(
        lm, am, symbols, termination_symbol, lm_only_scale, am_only_scale, boundary, rnnt_type
    )
    px = _delay(px, delay_penalty, rnnt_type, boundary)
    out = mutual_information_recursion(px, py, boundary, return_grad)
    if return_grad:
        return _reduce(out[0], reduction), out[1]
    return _reduce(out, reduction)


def get_rnnt_logprobs_joint(
    logits: Tensor,
    symbols: Tensor,
    termination_symbol: int,
    rnnt_type: str = "regular",
    boundary: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """(px, py) from full joiner logits (B, T, S+1, C)."""
    if logits.ndim != 4:
        raise ValueError(f"logits must be (B, T, S+1, C); got {tuple(logits.shape)}")
    B, T, S1, C = logits.shape
    S = S1 - 1
    _check_symbols(symbols, B, S)
    _check_type(rnnt_type, S, T, boundary)
    norm = torch.logsumexp(logits, dim=3)  # (B, T, S+1)
    px = torch.gather(logits[:, :, :S], 3, symbols.view(B, 1, S, 1).expand(B, T, S, 1))
    px = (px.squeeze(3) - norm[:, :, :S]).transpose(1, 2)
    py = (logits[..., termination_symbol] - norm).transpose(1, 2)
    return _finish(px, py, rnnt_type, boundary)


def rnnt_loss(
    logits: Tensor,
    symbols: Tensor,
    termination_symbol: int,
    boundary: Tensor | None = None,
    reduction: str | None = "sum",
    rnnt_type: str = "regular",
    delay_penalty: float = 0.0,
) -> Tensor:
    """Full (unpruned) RNN-T loss from joiner logits (B, T, S+1, C)."""
    px, py = get_rnnt_logprobs_joint(logits, symbols, termination_symbol, rnnt_type, boundary)
    px = _delay(px, delay_penalty, rnnt_type, boundary)
    return _reduce(mutual_information_recursion(px, py, boundary), reduction)


def _monotone_lower_bound(x: Tensor) -> Tensor:
    """Largest non-decreasing sequence (last dim) that is elementwise <= x."""
    return x.flip(-1).cummin(dim=-1).values.flip(-1)


def _constrain_begins(s_begin: Tensor, max_step: int) -> Tensor:
    """Make begins start at 0, never decrease, and rise by at most ``max_step - 1`` per
    frame (so no symbol is skipped), changing them as little as possible."""
    T = s_begin.shape[-1]
    ramp = (max_step - 1) * torch.arange(T, device=s_begin.device)
    s = _monotone_lower_bound(s_begin)
    # s[t+1] - s[t] <= max_step - 1  <=>  ramp[t] - s[t] is non-decreasing
    slack = _monotone_lower_bound(ramp - s).clamp(min=0)
    return ramp - slack


def get_rnnt_prune_ranges(
    px_grad: Tensor, py_grad: Tensor, boundary: Tensor, s_range: int
) -> Tensor:
    """Symbol positions kept per frame, (B, T, s_range), from the simple loss's occupations.

    For each frame the window of ``s_range`` consecutive positions holding the most
    occupation is chosen; the window starts are then made monotone, start at 0, skip no
    symbol, and end on ``S_b`` at the last frame (pruned RNN-T paper, sec. 3.2).
    """
    B, S, T1 = px_grad.shape
    T = py_grad.shape[2]
    if py_grad.shape != (B, S + 1, T) or T1 not in (T, T + 1):
        raise ValueError(
            f"expected px_grad (B, S, T+1|T) and py_grad (B, S+1, T); got "
            f"{tuple(px_grad.shape)}, {tuple(py_grad.shape)}"
        )
    if boundary is None or boundary.shape != (B, 4):
        raise ValueError(f"boundary (B={B}, 4) rows [0, 0, S_b, T_b] is required")
    regular = T1 == T + 1
    if regular:
        # a frame can take at most s_range - 1 symbols, so all S_b must fit in T_b frames
        need = int(((boundary[:, 2] - 1) // boundary[:, 3].clamp(min=1) + 2).max())
        if s_range < need:
            log.warning("s_range=%d cannot cover S/T of this batch; using %d", s_range, need)
            s_range = need
    s_range = min(s_range, S + 1)
    if s_range < (2 if regular else 1):
        raise ValueError(f"s_range must be >= {2 if regular else 1}; got {s_range}")

    windows = py_grad.unfold(1, s_range, 1).sum(dim=-1)  # (B, S+2-R, T)
    # a path that enters the window's first row by a symbol on this frame did not
    # occupy the frame inside the window
    entering = torch.cat([px_grad.new_zeros(B, 1, T1), px_grad], dim=1)[:, : S + 2 - s_range, :T]
    s_begin = torch.argmax(windows - entering, dim=1)  # (B, T)

    t = torch.arange(T, device=px_grad.device).view(1, T)
    last = (boundary[:, 2] - s_range + 1).clamp(min=0).view(B, 1)
    s_begin = torch.where(t < boundary[:, 3].view(B, 1) - 1, s_begin, last)
    s_begin = _constrain_begins(s_begin, s_range if regular else 2)
    return s_begin.unsqueeze(2) + torch.arange(s_range, device=px_grad.device)


def do_rnnt_pruning(am: Tensor, lm: Tensor, ranges: Tensor) -> tuple[Tensor, Tensor]:
    """Expand encoder (B, T, D) and gather decoder (B, S+1, D') outputs to (B, T, s_range, .)."""
    B, T, R = ranges.shape
    if am.shape[:2] != (B, T) or lm.shape[0] != B:
        raise ValueError(
            f"am (B, T, D) and lm (B, S+1, D') must match ranges (B={B}, T={T}, R={R}); got "
            f"{tuple(am.shape)}, {tuple(lm.shape)}"
        )
    D = lm.shape[2]
    am_pruned = am.unsqueeze(2).expand(B, T, R, am.shape[2])
    lm_pruned = torch.gather(lm, 1, ranges.reshape(B, T * R, 1).expand(B, T * R, D))
    return am_pruned, lm_pruned.reshape(B, T, R, D)


def get_rnnt_logprobs_pruned(
    logits: Tensor,
    symbols: Tensor,
    ranges: Tensor,
    termination_symbol: int,
    boundary: Tensor | None,
    rnnt_type: str = "regular",
) -> tuple[Tensor, Tensor]:
    """(px, py) from pruned joiner logits (B, T, s_range, C); positions outside the
    ranges get -inf."""
    if logits.ndim != 4 or ranges.shape != logits.shape[:3]:
        raise ValueError(
            f"expected logits (B, T, R, C) and ranges (B, T, R); got {tuple(logits.shape)}, "
            f"{tuple(ranges.shape)}"
        )
    B, T, R, C = logits.shape
    S = symbols.shape[1]
    _check_symbols(symbols, B, S)
    _check_type(rnnt_type, S, T, boundary)
    norm = torch.logsumexp(logits, dim=3)  # (B, T, R)
    padded = torch.cat([symbols, symbols.new_full((B, 1), termination_symbol)], dim=1)
    kept = torch.gather(padded.unsqueeze(1).expand(B, T, S + 1), 2, ranges)  # (B, T, R)
    px_kept = torch.gather(logits, 3, kept.unsqueeze(3)).squeeze(3) - norm
    py_kept = logits[..., termination_symbol] - norm
    empty = logits.new_full((B, T, S + 1), float("-inf"))
    px = empty.scatter(2, ranges, px_kept)[:, :, :S].transpose(1, 2)
    py = empty.scatter(2, ranges, py_kept).transpose(1, 2)
    return _finish(px, py, rnnt_type, boundary)


def rnnt_loss_pruned(
    logits: Tensor,
    symbols: Tensor,
    ranges: Tensor,
    termination_symbol: int,
    boundary: Tensor | None = None,
    rnnt_type: str = "regular",
    delay_penalty: float = 0.0,
    reduction: str | None = "sum",
) -> Tensor:
    """RNN-T loss over the pruned lattice: only the ``ranges`` positions of each frame."""
    px, py = get_rnnt_logprobs_pruned(
        logits, symbols, ranges, termination_symbol, boundary, rnnt_type
    )
    px = _delay(px, delay_penalty, rnnt_type, boundary)
    return _reduce(mutual_information_recursion(px, py, boundary), reduction)
