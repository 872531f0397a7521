"""Stateless transducer prediction network: embedding + a context-sized grouped conv."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from training.model.scaling import Balancer


class Decoder(nn.Module):
    """Maps the last `context_size` tokens to a `decoder_dim` vector (icefall's decoder).

    Negative token ids give a zero embedding (used as "no context" at the start of greedy
    search).
    """

    def __init__(self, vocab_size: int, decoder_dim: int, blank_id: int, context_size: int):
        super().__init__()
        if context_size < 1:
            raise ValueError(f"context_size must be >= 1, got {context_size}")
        if context_size > 1 and decoder_dim % 4 != 0:
            raise ValueError(f"decoder_dim must be a multiple of 4, got {decoder_dim}")
        self.vocab_size = vocab_size
        self.blank_id = blank_id
        self.context_size = context_size
        self.embedding = nn.Embedding(vocab_size, decoder_dim)
        self.balancer = Balancer(
            decoder_dim, channel_dim=-1, min_positive=0.0, max_positive=1.0,
            min_abs=0.5, max_abs=1.0, prob=0.05,
        )  # fmt: skip
        if context_size > 1:
            self.conv = nn.Conv1d(
                decoder_dim, decoder_dim, context_size, groups=decoder_dim // 4, bias=False
            )
            self.balancer2 = Balancer(
                decoder_dim, channel_dim=-1, min_positive=0.0, max_positive=1.0,
                min_abs=0.5, max_abs=1.0, prob=0.05,
            )  # fmt: skip
        else:
            self.conv = nn.Identity()
            self.balancer2 = nn.Identity()

    def forward(self, y: Tensor, need_pad: bool = True) -> Tensor:
        """y: (N, U) token ids -> (N, U, decoder_dim) with need_pad=True (training: left
        zero-padding), or (N, 1, decoder_dim) from exactly `context_size` ids with
        need_pad=False (inference)."""
        y = y.to(torch.int64)
        emb = self.embedding(y.clamp(min=0)) * (y >= 0).unsqueeze(-1)
        emb = self.balancer(emb)
        if self.context_size == 1:
            return emb
        emb = emb.permute(0, 2, 1)
        if need_pad:
            emb = nn.functional.pad(emb, (self.context_size - 1, 0))
        elif emb.shape[-1] != self.context_size:
            raise ValueError(
                f"need_pad=False expects exactly {self.context_size} tokens per row, "
                f"got {emb.shape[-1]}"
            )
        out = torch.relu(self.conv(emb).permute(0, 2, 1))
        return self.balancer2(out)
