"""Transducer joiner: project encoder and decoder outputs, add, tanh, output layer."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from training.model.scaling import scaled_linear


class Joiner(nn.Module):
    def __init__(self, encoder_dim: int, decoder_dim: int, joiner_dim: int, vocab_size: int):
        super().__init__()
        self.encoder_proj = scaled_linear(encoder_dim, joiner_dim, initial_scale=0.25)
        self.decoder_proj = scaled_linear(decoder_dim, joiner_dim, initial_scale=0.25)
        self.output_linear = nn.Linear(joiner_dim, vocab_size)

    def forward(
        self, encoder_out: Tensor, decoder_out: Tensor, project_input: bool = True
    ) -> Tensor:
        """Logits (..., vocab_size). With project_input=False the inputs are already
        `encoder_proj` / `decoder_proj` outputs (as in the ONNX joiner and pruned training)."""
        if encoder_out.ndim != decoder_out.ndim:
            raise ValueError(
                f"encoder_out {tuple(encoder_out.shape)} and decoder_out "
                f"{tuple(decoder_out.shape)} must have the same number of dims"
            )
        if project_input:
            logit = self.encoder_proj(encoder_out) + self.decoder_proj(decoder_out)
        else:
            logit = encoder_out + decoder_out
        return self.output_linear(torch.tanh(logit))
