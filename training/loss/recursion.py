"""The monotonic-alignment recursion behind every RNN-T loss here (k2's
``mutual_information_recursion``), in plain PyTorch.

For ``px`` (B, S, T1) and ``py`` (B, S+1, T), with T1 = T+1 ("regular" moves: a
symbol keeps the frame) or T1 = T ("modified" moves: a symbol also advances the frame)::

    p[b, s_begin, t_begin] = 0
    p[b, s, t] = logaddexp(p[b, s-1, t-k] + px[b, s-1, t-k],   # k = 0 regular, 1 modified
                           p[b, s, t-1] + py[b, s, t-1])
    result[b] = p[b, s_end, t_end]

The DP runs over anti-diagonals ``d = s + t`` with all ``s`` of a diagonal (and the
batch) in one vectorised step, so the Python loop has S + T iterations. A forward-
backward pass gives the occupation probabilities ``d result / d px`` and
``d result / d py``, used both as the autograd gradient and for pruning.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["mutual_information_recursion"]

NEG_INF = float("-inf")


def _skew(x: Tensor, num_diags: int) -> Tensor:
    """(B, R, T') -> (num_diags, B, R) with ``out[d, b, r] = x[b, r, d - r]`` (-inf outside)."""
    B, R, Tx = x.shape
    d = torch.arange(num_diags, device=x.device).view(1, num_diags)
    t = d - torch.arange(R, device=x.device).view(R, 1)  # (R, D)
    valid = (t >= 0) & (t < Tx)
    out = torch.gather(x, 2, t.clamp(0, max(Tx - 1, 0)).expand(B, R, num_diags))
    out = out.masked_fill(~valid, NEG_INF)
    return out.permute(2, 0, 1).contiguous()


def _unskew(x: Tensor, width: int) -> Tensor:
    """Inverse of ``_skew``: (D, B, R) -> (B, R, width) with ``out[b, r, t] = x[r + t, b, r]``."""
    D, B, R = x.shape
    t = torch.arange(width, device=x.device).view(1, width)
    d = (t + torch.arange(R, device=x.device).view(R, 1)).clamp(max=D - 1)
    return torch.gather(x.permute(1, 2, 0), 2, d.expand(B, R, width))


def _check_boundary(boundary: Tensor | None, B: int, S: int, T: int) -> list[list[int]]:
    if boundary is None:
        return [[0, 0, S, T]] * B
    if boundary.shape != (B, 4) or boundary.dtype != torch.int64:
        raise ValueError(
            f"boundary must be an int64 tensor of shape ({B}, 4) holding "
            f"[s_begin, t_begin, s_end, t_end]; got {tuple(boundary.shape)} {boundary.dtype}"
        )
    rows = boundary.tolist()
    for b, (sb, tb, se, te) in enumerate(rows):
        if not (0 <= sb <= se <= S and 0 <= tb <= te <= T):
            raise ValueError(
                f"boundary[{b}] = {[sb, tb, se, te]} is out of range: need "
                f"0 <= s_begin <= s_end <= S={S} and 0 <= t_begin <= t_end <= T={T}"
            )
    return rows


def _forward(pxs: Tensor, pys: Tensor, kx: int, starts: dict[int, list[tuple[int, int]]]) -> Tensor:
    """alpha in skewed layout, (D, B, S+1)."""
    D, B, S1 = pys.shape
    alpha = torch.full((D, B, S1), NEG_INF, dtype=pys.dtype, device=pys.device)
    for d in range(D):
        if d >= 1:
            y = alpha[d - 1] + pys[d - 1]
            alpha[d, :, 0] = y[:, 0]
            if d >= kx and S1 > 1:
                x = alpha[d - kx, :, :-1] + pxs[d - kx]
                alpha[d, :, 1:] = torch.logaddexp(y[:, 1:], x)
            else:
                alpha[d, :, 1:] = y[:, 1:]
        for b, s in starts.get(d, ()):
            alpha[d, b, s] = 0.0
    return alpha


def _backward(pxs: Tensor, pys: Tensor, kx: int, ends: dict[int, list[tuple[int, int]]]) -> Tensor:
    """beta in skewed layout: log-sum of the paths from (s, t) to the end."""
    D, B, S1 = pys.shape
    beta = torch.full((D, B, S1), NEG_INF, dtype=pys.dtype, device=pys.device)
    for d in range(D - 1, -1, -1):
        if d + 1 < D:
            y = pys[d] + beta[d + 1]
            if d + kx < D and S1 > 1:
                beta[d, :, :-1] = torch.logaddexp(y[:, :-1], pxs[d] + beta[d + kx, :, 1:])
                beta[d, :, -1] = y[:, -1]
            else:
                beta[d] = y
        for b, s in ends.get(d, ()):
            beta[d, b, s] = 0.0
    return beta


class _Recursion(torch.autograd.Function):
    @staticmethod
    def forward(ctx, px: Tensor, py: Tensor, rows: list[list[int]], grads: list):
        B, S, T1 = px.shape
        T = py.shape[2]
        kx = 1 if T1 == T + 1 else 2
        D = S + T + 1
        pxs = _skew(px.detach(), D)
        pys = _skew(py.detach(), D)
        starts: dict[int, list[tuple[int, int]]] = {}
        ends: dict[int, list[tuple[int, int]]] = {}
        for b, (sb, tb, se, te) in enumerate(rows):
            starts.setdefault(sb + tb, []).append((b, sb))
            ends.setdefault(se + te, []).append((b, se))
        alpha = _forward(pxs, pys, kx, starts)
        end_d = torch.tensor([se + te for _, _, se, te in rows], device=px.device)
        end_s = torch.tensor([se for _, _, se, _ in rows], device=px.device)
        total = alpha[end_d, torch.arange(B, device=px.device), end_s]

        if grads is not None:
            beta = _backward(pxs, pys, kx, ends)
            finite = torch.isfinite(total)
            norm = torch.where(finite, total, torch.zeros_like(total)).view(1, B, 1)
            occ_y = torch.full_like(alpha, NEG_INF)
            occ_y[:-1] = alpha[:-1] + pys[:-1] + beta[1:]
            occ_x = torch.full_like(pxs, NEG_INF)
            if D > kx and S > 0:
                occ_x[:-kx] = alpha[:-kx, :, :-1] + pxs[:-kx] + beta[kx:, :, 1:]
            keep = finite.view(1, B, 1)
            occ_y = torch.where(keep, (occ_y - norm).exp(), torch.zeros_like(occ_y))
            occ_x = torch.where(keep, (occ_x - norm).exp(), torch.zeros_like(occ_x))
            px_grad = _unskew(occ_x, T1).to(px.dtype)
            py_grad = _unskew(occ_y, T).to(py.dtype)
            ctx.save_for_backward(px_grad, py_grad)
            grads[:] = [px_grad, py_grad]
        return total

    @staticmethod
    def backward(ctx, total_grad: Tensor):
        if not ctx.saved_tensors:
            raise RuntimeError("occupation probabilities were not computed in the forward pass")
        px_grad, py_grad = ctx.saved_tensors
        scale = total_grad.view(-1, 1, 1)
        return px_grad * scale, py_grad * scale, None, None


def mutual_information_recursion(
    px: Tensor,
    py: Tensor,
    boundary: Tensor | None = None,
    return_grad: bool = False,
) -> Tensor | tuple[Tensor, tuple[Tensor, Tensor]]:
    """Log-sum over all monotonic alignments, per sequence (shape (B,)).

    Args:
      px: (B, S, T+1) for regular transducers, (B, S, T) for modified ones.
      py: (B, S+1, T).
      boundary: optional int64 (B, 4) rows ``[s_begin, t_begin, s_end, t_end]``
        (default ``[0, 0, S, T]``).
      return_grad: also return the occupation probabilities ``(px_grad, py_grad)``,
        i.e. the gradients of ``result.sum()`` with respect to ``px`` and ``py``.
    """
    if px.ndim != 3 or py.ndim != 3:
        raise ValueError(f"px and py must be 3-D; got {tuple(px.shape)} and {tuple(py.shape)}")
    B, S, T1 = px.shape
    T = py.shape[2]
    if py.shape != (B, S + 1, T) or T1 not in (T, T + 1):
        raise ValueError(
            f"expected px (B, S, T+1) or (B, S, T) and py (B, S+1, T); got px "
            f"{tuple(px.shape)}, py {tuple(py.shape)}"
        )
    if px.dtype != py.dtype:
        raise ValueError(f"px and py must share a dtype; got {px.dtype} and {py.dtype}")
    rows = _check_boundary(boundary, B, S, T)
    want_grad = return_grad or (torch.is_grad_enabled() and (px.requires_grad or py.requires_grad))
    grads: list | None = [] if want_grad else None
    total = _Recursion.apply(px, py, rows, grads)
    if return_grad:
        assert grads
        return total, (grads[0].detach(), grads[1].detach())
    return total
