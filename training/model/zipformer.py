"""Zipformer2 encoder (icefall-compatible module tree and numerics), with the chunk-masked
"simulated streaming" forward used in training and a cached chunk-by-chunk streaming forward.

Shapes follow icefall: the encoder works on (time, batch, channels).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from training.model.scaling import (
    ActivationDropoutAndLinear,
    Balancer,
    BiasNorm,
    ChunkCausalDepthwiseConv1d,
    FloatLike,
    ScheduledFloat,
    Whiten,
    convert_num_channels,
    depthwise_conv1d,
    limit_param_value,
    penalize_abs_values_gt,
    scaled_linear,
)

STATES_PER_LAYER = 6  # cached_key, cached_nonlin_attn, cached_val1, cached_val2, conv1, conv2


def _exporting() -> bool:
    return torch.jit.is_scripting() or torch.jit.is_tracing()


def _whitening_schedule(x: float, ratio: float = 2.0) -> ScheduledFloat:
    return ScheduledFloat((0.0, x), (20000.0, ratio * x), default=x)


# --------------------------------------------------------------------------------------
# Positional encoding and attention weights
# --------------------------------------------------------------------------------------


class CompactRelPositionalEncoding(nn.Module):
    """Relative positional embeddings that stay informative for large offsets.

    Offsets are compressed logarithmically, mapped into (-pi/2, pi/2) with atan, and then
    expanded into cos/sin features; the last channel is a constant 1 (a bias term).
    `forward(x, left)` returns (1, left + 2T - 1, dim) for offsets -(T + left - 1) .. T - 1.
    """

    def __init__(self, embed_dim: int, dropout_rate: FloatLike, length_factor: float = 1.0):
        super().__init__()
        if embed_dim % 2 != 0:
            raise ValueError(f"pos_dim must be even, got {embed_dim}")
        if length_factor < 1.0:
            raise ValueError(f"length_factor must be >= 1, got {length_factor}")
        self.embed_dim = embed_dim
        self.length_factor = length_factor
        self.dropout_rate = dropout_rate
        self._table: Tensor | None = None  # rows for offsets -R .. R; not a buffer
        self._extend(1000)

    def _extend(self, max_offset: int, device: torch.device | None = None) -> None:
        r = torch.arange(-max_offset, max_offset + 1, device=device).to(torch.float32).unsqueeze(1)
        freqs = 1 + torch.arange(self.embed_dim // 2, device=device)
        c = self.embed_dim**0.5
        compressed = c * r.sign() * ((r.abs() + c).log() - math.log(c))
        length_scale = self.length_factor * self.embed_dim / (2.0 * math.pi)
        angle = (compressed / length_scale).atan()
        table = torch.empty(r.shape[0], self.embed_dim, device=device)
        table[:, 0::2] = (angle * freqs).cos()
        table[:, 1::2] = (angle * freqs).sin()
        table[:, -1] = 1.0
        self._table = table

    def forward(self, x: Tensor, left_context_len: int = 0) -> Tensor:
        t = x.shape[0]
        need = t + left_context_len - 1
        table = self._table
        if table is None or (table.shape[0] - 1) // 2 < need or table.device != x.device:
            self._extend(max(need, 1000), x.device)
            table = self._table
        center = (table.shape[0] - 1) // 2
        pos = table[center - need : center + t].to(x.dtype).unsqueeze(0)
        p = float(self.dropout_rate)
        if self.training and p > 0.0:
            pos = nn.functional.dropout(pos, p=p)
        return pos


def _rel_to_abs(pos_scores: Tensor, k_len: int) -> Tensor:
    """(H, B, T, T + k_len - 1) scores indexed by relative offset -> (H, B, T, k_len) indexed by
    key position: out[..., i, j] = pos_scores[..., i, T - 1 - i + j]."""
    h, b, t, n = pos_scores.shape
    if torch.jit.is_tracing():
        rows = torch.arange(t - 1, -1, -1, device=pos_scores.device).unsqueeze(1)
        idx = rows + torch.arange(k_len, device=pos_scores.device)
        return pos_scores.gather(-1, idx.expand(h, b, t, k_len))
    s0, s1, s2, s3 = pos_scores.stride()
    return pos_scores.as_strided(
        (h, b, t, k_len),
        (s0, s1, s2 - s3, s3),
        storage_offset=pos_scores.storage_offset() + s3 * (t - 1),
    )


class RelPositionMultiheadAttentionWeights(nn.Module):
    """Multi-head attention weights with relative-position scores; the weights are shared
    by two SelfAttention modules and the NonlinAttention module of a layer."""

    def __init__(
        self,
        embed_dim: int,
        pos_dim: int,
        num_heads: int,
        query_head_dim: int,
        pos_head_dim: int,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.query_head_dim = query_head_dim
        self.pos_head_dim = pos_head_dim
        self.dropout = dropout
        self.pos_emb_skip_rate = ScheduledFloat((0.0, 0.5), (4000.0, 0.0))
        in_proj_dim = (2 * query_head_dim + pos_head_dim) * num_heads
        # The query/key scale folds in the usual head_dim ** -0.5 factor, split between q and k.
        self.in_proj = scaled_linear(embed_dim, in_proj_dim, initial_scale=query_head_dim**-0.25)
        self.whiten_keys = Whiten(
            num_groups=num_heads,
            whitening_limit=_whitening_schedule(3.0),
            prob=(0.025, 0.25),
            grad_scale=0.025,
        )
        self.balance_keys = Balancer(
            query_head_dim * num_heads,
            channel_dim=-1,
            min_positive=0.4,
            max_positive=0.6,
            min_abs=0.0,
            max_abs=100.0,
            prob=0.025,
        )
        self.linear_pos = scaled_linear(
            pos_dim, num_heads * pos_head_dim, bias=False, initial_scale=0.05
        )

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        qd = self.query_head_dim * self.num_heads
        return x[..., :qd], x[..., qd : 2 * qd], x[..., 2 * qd :]

    def _scores(self, q: Tensor, k: Tensor, p: Tensor, pos_emb: Tensor, use_pos: bool) -> Tensor:
        """q, p: (T, B, .); k: (Tk, B, .); pos_emb: (1 or B, T + Tk - 1, pos_dim)."""
        t, b, _ = q.shape
        k_len = k.shape[0]
        h = self.num_heads
        q = q.reshape(t, b, h, self.query_head_dim).permute(2, 1, 0, 3)
        k = k.reshape(k_len, b, h, self.query_head_dim).permute(2, 1, 3, 0)
        scores = torch.matmul(q, k)  # (H, B, T, Tk)
        if use_pos:
            p = p.reshape(t, b, h, self.pos_head_dim).permute(2, 1, 0, 3)
            pos = self.linear_pos(pos_emb)
            pos = pos.reshape(-1, pos.shape[1], h, self.pos_head_dim).permute(2, 0, 3, 1)
            scores = scores + _rel_to_abs(torch.matmul(p, pos), k_len)
        return scores

    def forward(
        self,
        x: Tensor,
        pos_emb: Tensor,
        key_padding_mask: Tensor | None = None,
        attn_mask: Tensor | None = None,
    ) -> Tensor:
        """x: (T, B, C) -> attention weights (H, B, T, T). Masks: True = masked."""
        q, k, p = self._split(self.in_proj(x))
        training = self.training and not _exporting()
        if training:
            k = self.whiten_keys(self.balance_keys(k))
        use_pos = not training or random.random() >= float(self.pos_emb_skip_rate)
        scores = self._scores(q, k, p, pos_emb, use_pos)
        if training and scores.requires_grad and random.random() < 0.1:
            scores = penalize_abs_values_gt(scores, limit=25.0, penalty=1.0e-4)
        # -1000 rather than -inf: rows that are fully masked stay finite.
        if attn_mask is not None:
            scores = scores.masked_fill(attn_mask, -1000.0)
        if key_padding_mask is not None:
            scores = scores.masked_fill(key_padding_mask.unsqueeze(1), -1000.0)
        weights = scores.softmax(dim=-1)
        if training and self.dropout > 0.0:
            weights = nn.functional.dropout(weights, p=self.dropout)
        return weights

    def streaming_forward(
        self,
        x: Tensor,
        pos_emb: Tensor,
        cached_key: Tensor,
        left_context_len: int,
        key_padding_mask: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """x: (T, B, C); cached_key: (left, B, H * query_head_dim);
        key_padding_mask: (B, left + T). Returns weights (H, B, T, left + T) and the new key cache."""
        q, k, p = self._split(self.in_proj(x))
        if cached_key.shape[0] != left_context_len:
            raise ValueError(
                f"cached_key has {cached_key.shape[0]} frames, expected {left_context_len}"
            )
        k = torch.cat([cached_key, k], dim=0)
        scores = self._scores(q, k, p, pos_emb, use_pos=True)
        scores = scores.masked_fill(key_padding_mask.unsqueeze(1), -1000.0)
        return scores.softmax(dim=-1), k[k.shape[0] - left_context_len :]


class SelfAttention(nn.Module):
    """Applies precomputed attention weights to a value projection of x."""

    def __init__(self, embed_dim: int, num_heads: int, value_head_dim: int):
        super().__init__()
        self.in_proj = nn.Linear(embed_dim, num_heads * value_head_dim)
        self.out_proj = scaled_linear(num_heads * value_head_dim, embed_dim, initial_scale=0.05)
        self.whiten = Whiten(
            num_groups=1,
            whitening_limit=_whitening_schedule(7.5, ratio=3.0),
            prob=(0.025, 0.25),
            grad_scale=0.01,
        )

    def _attend(self, v: Tensor, attn_weights: Tensor, t: int) -> Tensor:
        v_len, b, _ = v.shape
        h = attn_weights.shape[0]
        v = v.reshape(v_len, b, h, -1).permute(2, 1, 0, 3)
        out = torch.matmul(attn_weights, v)  # (H, B, T, dv)
        return self.out_proj(out.permute(2, 1, 0, 3).reshape(t, b, -1))

    def forward(self, x: Tensor, attn_weights: Tensor) -> Tensor:
        out = self._attend(self.in_proj(x), attn_weights, x.shape[0])
        return self.whiten(out) if self.training else out

    def streaming_forward(
        self, x: Tensor, attn_weights: Tensor, cached_val: Tensor, left_context_len: int
    ) -> tuple[Tensor, Tensor]:
        v = torch.cat([cached_val, self.in_proj(x)], dim=0)
        return self._attend(v, attn_weights, x.shape[0]), v[v.shape[0] - left_context_len :]


class FeedforwardModule(nn.Module):
    def __init__(self, embed_dim: int, feedforward_dim: int, dropout: FloatLike):
        super().__init__()
        self.in_proj = nn.Linear(embed_dim, feedforward_dim)
        self.hidden_balancer = Balancer(
            feedforward_dim,
            channel_dim=-1,
            min_positive=0.3,
            max_positive=1.0,
            min_abs=0.75,
            max_abs=5.0,
        )
        self.out_proj = ActivationDropoutAndLinear(
            feedforward_dim,
            embed_dim,
            activation="SwooshL",
            dropout_p=dropout,
            dropout_shared_dim=0,
            initial_scale=0.1,
        )
        self.out_whiten = Whiten(
            num_groups=1,
            whitening_limit=_whitening_schedule(7.5),
            prob=(0.025, 0.25),
            grad_scale=0.01,
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self.hidden_balancer(self.in_proj(x))
        return self.out_whiten(self.out_proj(x))


class NonlinAttention(nn.Module):
    """Gated "attention as convolution": tanh-gated x, mixed over time with the first
    head's attention weights, multiplied by a second gate y, then projected."""

    def __init__(self, channels: int, hidden_channels: int):
        super().__init__()
        self.hidden_channels = hidden_channels
        self.in_proj = nn.Linear(channels, hidden_channels * 3)
        self.balancer = Balancer(
            hidden_channels,
            channel_dim=-1,
            min_positive=ScheduledFloat((0.0, 0.25), (20000.0, 0.05)),
            max_positive=ScheduledFloat((0.0, 0.75), (20000.0, 0.95)),
            min_abs=0.5,
            max_abs=5.0,
        )
        self.out_proj = scaled_linear(hidden_channels, channels, initial_scale=0.05)
        self.whiten1 = Whiten(
            num_groups=1,
            whitening_limit=_whitening_schedule(5.0),
            prob=(0.025, 0.25),
            grad_scale=0.01,
        )
        self.whiten2 = Whiten(
            num_groups=1,
            whitening_limit=_whitening_schedule(5.0, ratio=3.0),
            prob=(0.025, 0.25),
            grad_scale=0.01,
        )

    def _gate(self, x: Tensor) -> tuple[Tensor, Tensor]:
        s, v, y = self.in_proj(x).chunk(3, dim=2)
        if self.training:
            s = self.balancer(s)
            v = self.whiten1(v)
        return v * torch.tanh(s), y

    @staticmethod
    def _mix(v: Tensor, attn_weights: Tensor) -> Tensor:
        # v: (H', B, Tk, d); weights: (H', B, T, Tk) -> (T, B, H' * d)
        out = torch.matmul(attn_weights, v)
        return out.permute(2, 1, 0, 3).reshape(out.shape[2], out.shape[1], -1)

    def forward(self, x: Tensor, attn_weights: Tensor) -> Tensor:
        t, b, _ = x.shape
        v, y = self._gate(x)
        h = attn_weights.shape[0]
        v = v.reshape(t, b, h, -1).permute(2, 1, 0, 3)
        out = self.out_proj(self._mix(v, attn_weights) * y)
        return self.whiten2(out) if self.training else out

    def streaming_forward(
        self, x: Tensor, attn_weights: Tensor, cached_x: Tensor, left_context_len: int
    ) -> tuple[Tensor, Tensor]:
        t, b, _ = x.shape
        v, y = self._gate(x)
        h = attn_weights.shape[0]
        v = v.reshape(t, b, h, -1).permute(2, 1, 0, 3)
        v = torch.cat([cached_x, v], dim=2)
        out = self.out_proj(self._mix(v, attn_weights) * y)
        return out, v[:, :, v.shape[2] - left_context_len :]


class ConvolutionModule(nn.Module):
    """GLU, depthwise conv (chunk-causal if `causal`), SwooshR, projection."""

    def __init__(self, channels: int, kernel_size: int, causal: bool):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"cnn_module_kernel must be odd, got {kernel_size}")
        self.causal = causal
        self.in_proj = nn.Linear(channels, 2 * channels)
        self.balancer1 = Balancer(
            channels,
            channel_dim=-1,
            min_positive=ScheduledFloat((0.0, 0.05), (8000.0, 0.025)),
            max_positive=1.0,
            min_abs=1.5,
            max_abs=ScheduledFloat((0.0, 5.0), (8000.0, 10.0), default=1.0),
        )
        if causal:
            self.depthwise_conv = ChunkCausalDepthwiseConv1d(channels, kernel_size)
        else:
            self.depthwise_conv = nn.Conv1d(
                channels, channels, kernel_size, padding=kernel_size // 2, groups=channels
            )
        self.balancer2 = Balancer(
            channels,
            channel_dim=1,
            min_positive=ScheduledFloat((0.0, 0.1), (8000.0, 0.05)),
            max_positive=1.0,
            min_abs=ScheduledFloat((0.0, 0.2), (20000.0, 0.5)),
            max_abs=10.0,
        )
        self.whiten = Whiten(
            num_groups=1,
            whitening_limit=_whitening_schedule(7.5),
            prob=(0.025, 0.25),
            grad_scale=0.01,
        )
        self.out_proj = ActivationDropoutAndLinear(
            channels, channels, activation="SwooshR", dropout_p=0.0, initial_scale=0.05
        )

    def _glu(self, x: Tensor, pad_mask: Tensor | None) -> Tensor:
        x, s = self.in_proj(x).chunk(2, dim=2)
        if self.training:
            s = self.balancer1(s)
        x = (x * torch.sigmoid(s)).permute(1, 2, 0)  # (B, C, T)
        if pad_mask is not None:
            x = x.masked_fill(pad_mask.unsqueeze(1), 0.0)
        return x

    def forward(
        self, x: Tensor, src_key_padding_mask: Tensor | None = None, chunk_size: int = -1
    ) -> Tensor:
        """x: (T, B, C); src_key_padding_mask: (B, T), True = padding."""
        x = self._glu(x, src_key_padding_mask)
        if self.causal:
            x = self.depthwise_conv(x, chunk_size=chunk_size)
        else:
            if chunk_size >= 0:
                raise ValueError("chunk_size needs a causal model (built with causal=True)")
            x = depthwise_conv1d(x, self.depthwise_conv, fast=self.training and not _exporting())
        if self.training:
            x = self.whiten(self.balancer2(x).permute(2, 0, 1))
        else:
            x = x.permute(2, 0, 1)
        return self.out_proj(x)

    def streaming_forward(
        self, x: Tensor, cache: Tensor, src_key_padding_mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        x = self._glu(x, src_key_padding_mask)
        x, cache = self.depthwise_conv.streaming_forward(x, cache=cache)
        return self.out_proj(x.permute(2, 0, 1)), cache


class BypassModule(nn.Module):
    """out = src_orig + (src - src_orig) * bypass_scale, with a learned per-channel scale.

    In training the scale is kept within [scale_min, scale_max] and, per sequence, set to 0
    with probability `skip_rate` (layer skipping)."""

    def __init__(
        self,
        embed_dim: int,
        skip_rate: FloatLike = 0.0,
        straight_through_rate: FloatLike = 0.0,
        scale_min: FloatLike | None = None,
        scale_max: FloatLike = 1.0,
    ):
        super().__init__()
        self.bypass_scale = nn.Parameter(torch.full((embed_dim,), 0.5))
        self.skip_rate = skip_rate
        self.straight_through_rate = straight_through_rate
        self.scale_min = (
            ScheduledFloat((0.0, 0.9), (20000.0, 0.2), default=0.0)
            if scale_min is None
            else scale_min
        )
        self.scale_max = scale_max

    def _scale(self, batch_size: int) -> Tensor:
        if not self.training or _exporting():
            return self.bypass_scale
        scale = limit_param_value(
            self.bypass_scale, min=float(self.scale_min), max=float(self.scale_max)
        )
        skip = float(self.skip_rate)
        if skip != 0.0:
            keep = torch.rand((batch_size, 1), device=scale.device) > skip
            scale = scale * keep
        st = float(self.straight_through_rate)
        if st != 0.0:
            through = torch.rand((batch_size, 1), device=scale.device) < st
            scale = torch.maximum(scale, through.to(scale.dtype))
        return scale

    def forward(self, src_orig: Tensor, src: Tensor) -> Tensor:
        return src_orig + (src - src_orig) * self._scale(src.shape[1])


# --------------------------------------------------------------------------------------
# Encoder layer and stacks
# --------------------------------------------------------------------------------------


class Zipformer2EncoderLayer(nn.Module):
    """One Zipformer2 block: ff1, nonlin-attn, self-attn1, conv1, ff2, mid bypass,
    self-attn2, conv2, ff3, BiasNorm, bypass."""

    def __init__(
        self,
        embed_dim: int,
        pos_dim: int,
        num_heads: int,
        query_head_dim: int,
        pos_head_dim: int,
        value_head_dim: int,
        feedforward_dim: int,
        dropout: FloatLike = 0.1,
        cnn_module_kernel: int = 31,
        causal: bool = False,
    ):
        super().__init__()
        self.embed_dim = embed_dim
        self.bypass = BypassModule(
            embed_dim, skip_rate=ScheduledFloat((0.0, 0.5), (4000.0, 0.02), default=0.0)
        )
        self.bypass_mid = BypassModule(embed_dim)
        self.attention_skip_rate = ScheduledFloat(
            (0.0, 0.2), (4000.0, 0.05), (16000.0, 0.0), default=0.0
        )
        self.conv_skip_rate = ScheduledFloat(
            (0.0, 0.2), (4000.0, 0.05), (16000.0, 0.0), default=0.0
        )
        self.const_attention_rate = ScheduledFloat((0.0, 0.25), (4000.0, 0.025), default=0.0)
        self.ff2_skip_rate = ScheduledFloat((0.0, 0.1), (4000.0, 0.01), (50000.0, 0.0))
        self.ff3_skip_rate = ScheduledFloat((0.0, 0.1), (4000.0, 0.01), (50000.0, 0.0))

        self.self_attn_weights = RelPositionMultiheadAttentionWeights(
            embed_dim, pos_dim, num_heads, query_head_dim, pos_head_dim, dropout=0.0
        )
        self.self_attn1 = SelfAttention(embed_dim, num_heads, value_head_dim)
        self.self_attn2 = SelfAttention(embed_dim, num_heads, value_head_dim)
        self.feed_forward1 = FeedforwardModule(embed_dim, (feedforward_dim * 3) // 4, dropout)
        self.feed_forward2 = FeedforwardModule(embed_dim, feedforward_dim, dropout)
        self.feed_forward3 = FeedforwardModule(embed_dim, (feedforward_dim * 5) // 4, dropout)
        self.nonlin_attention = NonlinAttention(embed_dim, hidden_channels=3 * embed_dim // 4)
        self.conv_module1 = ConvolutionModule(embed_dim, cnn_module_kernel, causal=causal)
        self.conv_module2 = ConvolutionModule(embed_dim, cnn_module_kernel, causal=causal)
        # Unused by the computation; kept because icefall checkpoints carry it.
        self.bypass_scale = nn.Parameter(torch.full((embed_dim,), 0.5))
        self.norm = BiasNorm(embed_dim)

        self.balancer1 = Balancer(
            embed_dim,
            channel_dim=-1,
            min_positive=0.45,
            max_positive=0.55,
            min_abs=0.2,
            max_abs=4.0,
        )
        self.balancer_na = Balancer(
            embed_dim,
            channel_dim=-1,
            min_positive=0.3,
            max_positive=0.7,
            min_abs=ScheduledFloat((0.0, 0.004), (4000.0, 0.02)),
            prob=0.05,
        )
        self.balancer_ff2 = Balancer(
            embed_dim,
            channel_dim=-1,
            min_positive=0.3,
            max_positive=0.7,
            min_abs=ScheduledFloat((0.0, 0.0), (4000.0, 0.1), default=0.0),
            max_abs=2.0,
            prob=0.05,
        )
        self.balancer_ff3 = Balancer(
            embed_dim,
            channel_dim=-1,
            min_positive=0.3,
            max_positive=0.7,
            min_abs=ScheduledFloat((0.0, 0.0), (4000.0, 0.2), default=0.0),
            max_abs=4.0,
            prob=0.05,
        )
        self.whiten = Whiten(
            num_groups=1,
            whitening_limit=_whitening_schedule(4.0, ratio=3.0),
            prob=(0.025, 0.25),
            grad_scale=0.01,
        )
        self.balancer2 = Balancer(
            embed_dim,
            channel_dim=-1,
            min_positive=0.45,
            max_positive=0.55,
            min_abs=0.1,
            max_abs=4.0,
        )

    def _sequence_mask(self, x: Tensor, rate: float) -> Tensor | None:
        """Per-sequence keep mask (B, 1) for module dropout in training, else None."""
        if rate == 0.0 or not self.training or _exporting():
            return None
        return (torch.rand(x.shape[1], 1, device=x.device) > rate).to(x.dtype)

    @staticmethod
    def _masked(x: Tensor, mask: Tensor | None) -> Tensor:
        return x if mask is None else x * mask

    def forward(
        self,
        src: Tensor,
        pos_emb: Tensor,
        chunk_size: int = -1,
        attn_mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None,
    ) -> Tensor:
        """src: (T, B, C); pos_emb: (1, 2T - 1, pos_dim)."""
        src_orig = src
        training = self.training and not _exporting()
        attn_weights = self.self_attn_weights(
            src, pos_emb=pos_emb, attn_mask=attn_mask, key_padding_mask=src_key_padding_mask
        )
        src = src + self.feed_forward1(src)

        attn_drop = self._sequence_mask(src, float(self.attention_skip_rate) if training else 0.0)
        head0 = attn_weights[0:1]
        if training and random.random() < float(self.const_attention_rate):
            # Uniform weights over the unmasked keys: pushes nonlin-attn towards averaging.
            allowed = (head0 > 0.0).to(head0.dtype)
            head0 = allowed * (1.0 / allowed.sum(dim=-1, keepdim=True))
        na = self.balancer_na(self.nonlin_attention(src, head0))
        src = src + self._masked(na, attn_drop)
        src = src + self._masked(self.self_attn1(src, attn_weights), attn_drop)

        conv_rate = float(self.conv_skip_rate) if training else 0.0
        conv = self.conv_module1(
            src, chunk_size=chunk_size, src_key_padding_mask=src_key_padding_mask
        )
        src = src + self._masked(conv, self._sequence_mask(src, conv_rate))
        ff2_rate = float(self.ff2_skip_rate) if training else 0.0
        ff2 = self.balancer_ff2(self.feed_forward2(src))
        src = src + self._masked(ff2, self._sequence_mask(src, ff2_rate))

        src = self.bypass_mid(src_orig, src)

        src = src + self._masked(self.self_attn2(src, attn_weights), attn_drop)
        conv = self.conv_module2(
            src, chunk_size=chunk_size, src_key_padding_mask=src_key_padding_mask
        )
        src = src + self._masked(conv, self._sequence_mask(src, conv_rate))
        ff3_rate = float(self.ff3_skip_rate) if training else 0.0
        ff3 = self.balancer_ff3(self.feed_forward3(src))
        src = src + self._masked(ff3, self._sequence_mask(src, ff3_rate))

        src = self.norm(self.balancer1(src))
        src = self.bypass(src_orig, src)
        return self.whiten(self.balancer2(src))

    def streaming_forward(
        self,
        src: Tensor,
        pos_emb: Tensor,
        cached_key: Tensor,
        cached_nonlin_attn: Tensor,
        cached_val1: Tensor,
        cached_val2: Tensor,
        cached_conv1: Tensor,
        cached_conv2: Tensor,
        left_context_len: int,
        src_key_padding_mask: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """One chunk. src_key_padding_mask: (B, left + T). Returns output and the 6 new caches."""
        src_orig = src
        attn_weights, cached_key = self.self_attn_weights.streaming_forward(
            src, pos_emb, cached_key, left_context_len, src_key_padding_mask
        )
        src = src + self.feed_forward1(src)
        na, cached_nonlin_attn = self.nonlin_attention.streaming_forward(
            src, attn_weights[0:1], cached_nonlin_attn, left_context_len
        )
        src = src + na
        sa, cached_val1 = self.self_attn1.streaming_forward(
            src, attn_weights, cached_val1, left_context_len
        )
        src = src + sa
        chunk_mask = src_key_padding_mask[:, left_context_len:]
        conv, cached_conv1 = self.conv_module1.streaming_forward(src, cached_conv1, chunk_mask)
        src = src + conv
        src = src + self.feed_forward2(src)
        src = self.bypass_mid(src_orig, src)
        sa, cached_val2 = self.self_attn2.streaming_forward(
            src, attn_weights, cached_val2, left_context_len
        )
        src = src + sa
        conv, cached_conv2 = self.conv_module2.streaming_forward(src, cached_conv2, chunk_mask)
        src = src + conv
        src = src + self.feed_forward3(src)
        src = self.bypass(src_orig, self.norm(src))
        return (
            src,
            cached_key,
            cached_nonlin_attn,
            cached_val1,
            cached_val2,
            cached_conv1,
            cached_conv2,
        )


class Zipformer2Encoder(nn.Module):
    """A stack of Zipformer2EncoderLayer at one frame rate, sharing a positional encoding."""

    def __init__(
        self,
        layers: Sequence[Zipformer2EncoderLayer],
        pos_dim: int,
        warmup_begin: float,
        warmup_end: float,
        initial_layerdrop_rate: float = 0.5,
        final_layerdrop_rate: float = 0.05,
    ):
        super().__init__()
        if not 0 <= warmup_begin <= warmup_end:
            raise ValueError(f"bad warmup range {warmup_begin}..{warmup_end}")
        self.encoder_pos = CompactRelPositionalEncoding(pos_dim, dropout_rate=0.15)
        self.layers = nn.ModuleList(layers)
        self.num_layers = len(layers)
        # Layers are warmed up one after another: each starts with a high skip rate.
        step = (warmup_end - warmup_begin) / self.num_layers
        for i, layer in enumerate(self.layers):
            begin = warmup_begin + i * step
            layer.bypass.skip_rate = ScheduledFloat(
                (begin, initial_layerdrop_rate), (begin + step, final_layerdrop_rate), default=0.0
            )

    def forward(
        self,
        src: Tensor,
        chunk_size: int = -1,
        feature_mask: Tensor | float = 1.0,
        attn_mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None,
    ) -> Tensor:
        pos_emb = self.encoder_pos(src)
        use_mask = isinstance(feature_mask, Tensor)
        out = src * feature_mask if use_mask else src
        for layer in self.layers:
            out = layer(
                out,
                pos_emb,
                chunk_size=chunk_size,
                attn_mask=attn_mask,
                src_key_padding_mask=src_key_padding_mask,
            )
            if use_mask:
                out = out * feature_mask
        return out

    def streaming_forward(
        self,
        src: Tensor,
        states: list[Tensor],
        left_context_len: int,
        src_key_padding_mask: Tensor,
    ) -> tuple[Tensor, list[Tensor]]:
        pos_emb = self.encoder_pos(src, left_context_len)
        out = src
        new_states: list[Tensor] = []
        for i, layer in enumerate(self.layers):
            caches = states[i * STATES_PER_LAYER : (i + 1) * STATES_PER_LAYER]
            out, *new = layer.streaming_forward(
                out,
                pos_emb,
                *caches,
                left_context_len=left_context_len,
                src_key_padding_mask=src_key_padding_mask,
            )
            new_states.extend(new)
        return out, new_states


class SimpleDownsample(nn.Module):
    """Downsample time by `downsample` with a learned softmax-weighted average of each group
    of frames; the input is right-padded by repeating its last frame."""

    def __init__(self, channels: int, downsample: int, dropout: FloatLike, causal: bool):
        super().__init__()
        self.causal = causal
        self.downsample = downsample
        self.bias = nn.Parameter(torch.zeros(downsample))
        self.dropout = dropout

    def forward(self, src: Tensor) -> Tensor:
        t, b, c = src.shape
        ds = self.downsample
        d_len = (t + ds - 1) // ds
        pad = d_len * ds - t
        # A traced causal export always sees whole chunks, so it needs no padding branch.
        if pad > 0 and not (self.causal and torch.jit.is_tracing()):
            src = torch.cat((src, src[t - 1 :].expand(pad, b, c)), dim=0)
        weights = self.bias.softmax(dim=0).unsqueeze(-1).unsqueeze(-1)
        return (src.reshape(d_len, ds, b, c) * weights).sum(dim=1)


class SimpleUpsample(nn.Module):
    """Repeat each frame `upsample` times."""

    def __init__(self, num_channels: int, upsample: int):
        super().__init__()
        self.upsample = upsample

    def forward(self, src: Tensor) -> Tensor:
        t, b, c = src.shape
        return src.unsqueeze(1).expand(t, self.upsample, b, c).reshape(t * self.upsample, b, c)


class DownsampledZipformer2Encoder(nn.Module):
    """Runs a Zipformer2Encoder at 1/downsample of the frame rate and combines its upsampled
    output with the input through a learned bypass."""

    def __init__(
        self,
        encoder: Zipformer2Encoder,
        dim: int,
        downsample: int,
        dropout: FloatLike,
        causal: bool,
    ):
        super().__init__()
        self.downsample_factor = downsample
        self.downsample = SimpleDownsample(dim, downsample, dropout, causal)
        self.num_layers = encoder.num_layers
        self.encoder = encoder
        self.upsample = SimpleUpsample(dim, downsample)
        self.out_combiner = BypassModule(dim)

    def forward(
        self,
        src: Tensor,
        chunk_size: int = -1,
        feature_mask: Tensor | float = 1.0,
        attn_mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None,
    ) -> Tensor:
        src_orig = src
        ds = self.downsample_factor
        if attn_mask is not None:
            attn_mask = attn_mask[::ds, ::ds]
        src = self.encoder(
            self.downsample(src),
            chunk_size=chunk_size // ds,
            feature_mask=feature_mask,
            attn_mask=attn_mask,
            src_key_padding_mask=src_key_padding_mask,
        )
        src = self.upsample(src)[: src_orig.shape[0]]
        return self.out_combiner(src_orig, src)

    def streaming_forward(
        self,
        src: Tensor,
        states: list[Tensor],
        left_context_len: int,
        src_key_padding_mask: Tensor,
    ) -> tuple[Tensor, list[Tensor]]:
        src_orig = src
        src, new_states = self.encoder.streaming_forward(
            self.downsample(src),
            states=states,
            left_context_len=left_context_len,
            src_key_padding_mask=src_key_padding_mask,
        )
        src = self.upsample(src)[: src_orig.shape[0]]
        return self.out_combiner(src_orig, src), new_states


def _per_stack(value: int | Sequence[int], n: int, name: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * n
    value = tuple(int(v) for v in value)
    if len(value) == 1:
        return value * n
    if len(value) != n:
        raise ValueError(f"{name} has {len(value)} values, expected 1 or {n} (one per stack)")
    return value


class Zipformer2(nn.Module):
    """The Zipformer2 encoder: stacks at different frame rates (downsampling_factor, on top
    of the 2x of the front end), combined and downsampled 2x at the output.

    `chunk_size` and `left_context_frames` (in 50 Hz frames) are the choices a causal model
    samples from in training; in eval the first entries are used. Values of -1 mean full
    context.
    """

    def __init__(
        self,
        output_downsampling_factor: int = 2,
        downsampling_factor: Sequence[int] = (2, 4),
        encoder_dim: int | Sequence[int] = 384,
        num_encoder_layers: int | Sequence[int] = 4,
        encoder_unmasked_dim: int | Sequence[int] = 256,
        query_head_dim: int | Sequence[int] = 24,
        pos_head_dim: int | Sequence[int] = 4,
        value_head_dim: int | Sequence[int] = 12,
        num_heads: int | Sequence[int] = 8,
        feedforward_dim: int | Sequence[int] = 1536,
        cnn_module_kernel: int | Sequence[int] = 31,
        pos_dim: int = 192,
        dropout: FloatLike | None = None,
        warmup_batches: float = 4000.0,
        causal: bool = False,
        chunk_size: Sequence[int] = (-1,),
        left_context_frames: Sequence[int] = (-1,),
    ):
        super().__init__()
        if output_downsampling_factor != 2:
            raise ValueError("output_downsampling_factor must be 2 (as in icefall)")
        if dropout is None:
            dropout = ScheduledFloat((0.0, 0.3), (20000.0, 0.1))
        n = len(downsampling_factor)
        self.output_downsampling_factor = output_downsampling_factor
        self.downsampling_factor = tuple(int(d) for d in downsampling_factor)
        self.encoder_dim = _per_stack(encoder_dim, n, "encoder_dim")
        self.encoder_unmasked_dim = _per_stack(encoder_unmasked_dim, n, "encoder_unmasked_dim")
        self.num_encoder_layers = _per_stack(num_encoder_layers, n, "num_encoder_layers")
        self.query_head_dim = _per_stack(query_head_dim, n, "query_head_dim")
        self.value_head_dim = _per_stack(value_head_dim, n, "value_head_dim")
        self.pos_head_dim = _per_stack(pos_head_dim, n, "pos_head_dim")
        self.num_heads = _per_stack(num_heads, n, "num_heads")
        self.feedforward_dim = _per_stack(feedforward_dim, n, "feedforward_dim")
        self.cnn_module_kernel = _per_stack(cnn_module_kernel, n, "cnn_module_kernel")
        self.causal = causal
        self.chunk_size = tuple(chunk_size)
        self.left_context_frames = tuple(left_context_frames)
        for u, d in zip(self.encoder_unmasked_dim, self.encoder_dim, strict=True):
            if u > d:
                raise ValueError(f"encoder_unmasked_dim {u} exceeds encoder_dim {d}")

        encoders = []
        for i in range(n):
            layers = [
                Zipformer2EncoderLayer(
                    embed_dim=self.encoder_dim[i],
                    pos_dim=pos_dim,
                    num_heads=self.num_heads[i],
                    query_head_dim=self.query_head_dim[i],
                    pos_head_dim=self.pos_head_dim[i],
                    value_head_dim=self.value_head_dim[i],
                    feedforward_dim=self.feedforward_dim[i],
                    dropout=dropout,
                    cnn_module_kernel=self.cnn_module_kernel[i],
                    causal=causal,
                )
                for _ in range(self.num_encoder_layers[i])
            ]
            encoder: nn.Module = Zipformer2Encoder(
                layers,
                pos_dim=pos_dim,
                warmup_begin=warmup_batches * (i + 1) / (n + 1),
                warmup_end=warmup_batches * (i + 2) / (n + 1),
                final_layerdrop_rate=0.035 * (self.downsampling_factor[i] ** 0.5),
            )
            if self.downsampling_factor[i] != 1:
                encoder = DownsampledZipformer2Encoder(
                    encoder,
                    dim=self.encoder_dim[i],
                    downsample=self.downsampling_factor[i],
                    dropout=dropout,
                    causal=causal,
                )
            encoders.append(encoder)
        self.encoders = nn.ModuleList(encoders)
        self.downsample_output = SimpleDownsample(
            max(self.encoder_dim),
            downsample=output_downsampling_factor,
            dropout=dropout,
            causal=causal,
        )

    @property
    def output_dim(self) -> int:
        return max(self.encoder_dim)

    # ---- training-time helpers ----

    def get_feature_masks(self, x: Tensor) -> list[Tensor] | list[float]:
        """Per-stack channel masks: on ~12.5% / ~25% of sequences, zero the upper half /
        the rest of the channels above encoder_unmasked_dim (training only)."""
        n = len(self.encoder_dim)
        if not self.training or _exporting():
            return [1.0] * n
        _, batch, _ = x.shape
        p = 0.125
        keep1 = (torch.rand(1, batch, 1, device=x.device) > p).to(x.dtype)
        keep2 = keep1 * (torch.rand(1, batch, 1, device=x.device) > p).to(x.dtype)
        masks = []
        for dim, unmasked in zip(self.encoder_dim, self.encoder_unmasked_dim, strict=True):
            mask = torch.ones(1, batch, dim, dtype=x.dtype, device=x.device)
            mid = unmasked + (dim - unmasked) // 2
            mask[:, :, unmasked:mid] *= keep1
            mask[:, :, mid:] *= keep2
            masks.append(mask)
        return masks

    def get_chunk_info(
        self, chunk_size: int | None = None, left_context_frames: int | None = None
    ) -> tuple[int, int]:
        """(chunk_size, left_context_chunks); -1 means unlimited. Random choice in training."""
        if not self.causal:
            return -1, -1
        pick = random.choice if (self.training and not _exporting()) else (lambda s: s[0])
        if chunk_size is None:
            chunk_size = pick(self.chunk_size)
        if chunk_size == -1:
            return -1, -1
        if left_context_frames is None:
            left_context_frames = pick(self.left_context_frames)
        if left_context_frames < 0:
            return chunk_size, -1
        return chunk_size, max(left_context_frames // chunk_size, 1)

    def _attn_mask(self, seq_len: int, chunk_size: int, left_chunks: int, device) -> Tensor | None:
        """(T, T) bool, True = masked: each frame sees its own chunk and `left_chunks` before."""
        if chunk_size <= 0:
            return None
        if any(chunk_size % d for d in self.downsampling_factor):
            raise ValueError(
                f"chunk_size {chunk_size} must be divisible by every downsampling factor "
                f"{self.downsampling_factor}"
            )
        if left_chunks >= 0:
            for k, d in zip(self.cnn_module_kernel, self.downsampling_factor, strict=True):
                if chunk_size * left_chunks < (k // 2) * d:
                    raise ValueError(
                        f"left context {chunk_size * left_chunks} frames is shorter than the "
                        f"conv kernel reach {(k // 2) * d}; use a longer left context"
                    )
        else:
            left_chunks = 1_000_000
        c = torch.div(torch.arange(seq_len, device=device), chunk_size, rounding_mode="floor")
        src_c, tgt_c = c.unsqueeze(0), c.unsqueeze(1)
        return (src_c > tgt_c) | (src_c < tgt_c - left_chunks)

    def _full_dim_output(self, outputs: list[Tensor]) -> Tensor:
        """Concatenate, for each channel range, the most recent stack output that has it."""
        pieces = [outputs[-1]]
        cur = self.encoder_dim[-1]
        for i in range(len(outputs) - 2, -1, -1):
            d = self.encoder_dim[i]
            if d > cur:
                pieces.append(outputs[i][..., cur:d])
                cur = d
        return torch.cat(pieces, dim=-1) if len(pieces) > 1 else pieces[0]

    def forward(
        self,
        x: Tensor,
        x_lens: Tensor,
        src_key_padding_mask: Tensor | None = None,
        chunk_size: int | None = None,
        left_context_frames: int | None = None,
    ) -> tuple[Tensor, Tensor]:
        """x: (T, B, encoder_dim[0]) at 50 Hz -> ((ceil(T/2), B, max(encoder_dim)), lens)."""
        feature_masks = self.get_feature_masks(x)
        chunk, left_chunks = self.get_chunk_info(chunk_size, left_context_frames)
        attn_mask = None
        if not _exporting():
            attn_mask = self._attn_mask(x.shape[0], chunk, left_chunks, x.device)
        outputs = []
        for i, module in enumerate(self.encoders):
            ds = self.downsampling_factor[i]
            x = convert_num_channels(x, self.encoder_dim[i])
            x = module(
                x,
                chunk_size=chunk,
                feature_mask=feature_masks[i],
                src_key_padding_mask=None
                if src_key_padding_mask is None
                else src_key_padding_mask[..., ::ds],
                attn_mask=attn_mask,
            )
            outputs.append(x)
        x = self.downsample_output(self._full_dim_output(outputs))
        return x, torch.div(x_lens + 1, 2, rounding_mode="floor")

    def streaming_forward(
        self,
        x: Tensor,
        x_lens: Tensor,
        states: list[Tensor],
        src_key_padding_mask: Tensor,
        left_context_frames: int | None = None,
    ) -> tuple[Tensor, Tensor, list[Tensor]]:
        """One chunk: x (chunk, B, C); src_key_padding_mask (B, left + chunk);
        states as from get_init_states (7 * 6 tensors for a 7-layer encoder)."""
        left = self.left_context_frames[0] if left_context_frames is None else left_context_frames
        outputs = []
        new_states: list[Tensor] = []
        offset = 0
        for i, module in enumerate(self.encoders):
            n_layers = module.num_layers
            ds = self.downsampling_factor[i]
            x = convert_num_channels(x, self.encoder_dim[i])
            x, layer_states = module.streaming_forward(
                x,
                states=states[offset * STATES_PER_LAYER : (offset + n_layers) * STATES_PER_LAYER],
                left_context_len=left // ds,
                src_key_padding_mask=src_key_padding_mask[..., ::ds],
            )
            offset += n_layers
            outputs.append(x)
            new_states.extend(layer_states)
        x = self.downsample_output(self._full_dim_output(outputs))
        return x, torch.div(x_lens + 1, 2, rounding_mode="floor"), new_states

    def get_init_states(
        self,
        batch_size: int = 1,
        device: torch.device | str = "cpu",
        left_context_frames: int | None = None,
    ) -> list[Tensor]:
        """Zero caches, per layer in order: cached_key (left/ds, B, H*dq),
        cached_nonlin_attn (1, B, left/ds, 3C/4), cached_val1 and cached_val2 (left/ds, B, H*dv),
        cached_conv1 and cached_conv2 (B, C, kernel//2)."""
        left = self.left_context_frames[0] if left_context_frames is None else left_context_frames
        if left < 0:
            raise ValueError("streaming needs a non-negative left context (left_context_frames)")
        states: list[Tensor] = []
        for i in range(len(self.encoders)):
            dim, ds, heads = self.encoder_dim[i], self.downsampling_factor[i], self.num_heads[i]
            n_left = left // ds
            for _ in range(self.num_encoder_layers[i]):
                states += [
                    torch.zeros(n_left, batch_size, self.query_head_dim[i] * heads, device=device),
                    torch.zeros(1, batch_size, n_left, 3 * dim // 4, device=device),
                    torch.zeros(n_left, batch_size, self.value_head_dim[i] * heads, device=device),
                    torch.zeros(n_left, batch_size, self.value_head_dim[i] * heads, device=device),
                    torch.zeros(batch_size, dim, self.cnn_module_kernel[i] // 2, device=device),
                    torch.zeros(batch_size, dim, self.cnn_module_kernel[i] // 2, device=device),
                ]
        return states
