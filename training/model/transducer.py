"""`Transducer`: front end + Zipformer2 encoder + stateless decoder + joiner, with the pruned
RNN-T training loss and an optional CTC head. Module names match icefall's `AsrModel`."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from training.model.config import ZipformerConfig
from training.model.decoder import Decoder
from training.model.joiner import Joiner
from training.model.scaling import ScheduledFloat, scaled_linear
from training.model.subsampling import Conv2dSubsampling
from training.model.zipformer import Zipformer2


def make_pad_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """(N, T) bool, True at padded positions."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device).unsqueeze(0) >= lengths.unsqueeze(1)


class Transducer(nn.Module):
    """Streaming Zipformer2 transducer; `state_dict()` keys are icefall's `AsrModel` keys.

    Submodules: `encoder_embed` (Conv2dSubsampling), `encoder` (Zipformer2), `decoder`,
    `joiner`, `simple_am_proj`, `simple_lm_proj` and, with `use_ctc`, `ctc_output`.
    """

    def __init__(self, config: ZipformerConfig):
        super().__init__()
        self.config = config
        c = config
        self.encoder_embed = Conv2dSubsampling(
            c.feature_dim,
            c.per_stack("encoder_dim")[0],
            dropout=ScheduledFloat((0.0, 0.3), (20000.0, 0.1)),
        )
        self.encoder = Zipformer2(
            output_downsampling_factor=2,
            downsampling_factor=c.downsampling_factor,
            num_encoder_layers=c.num_encoder_layers,
            encoder_dim=c.encoder_dim,
            encoder_unmasked_dim=c.encoder_unmasked_dim,
            query_head_dim=c.query_head_dim,
            pos_head_dim=c.pos_head_dim,
            value_head_dim=c.value_head_dim,
            pos_dim=c.pos_dim,
            num_heads=c.num_heads,
            feedforward_dim=c.feedforward_dim,
            cnn_module_kernel=c.cnn_module_kernel,
            dropout=ScheduledFloat((0.0, 0.3), (20000.0, 0.1)),
            warmup_batches=4000.0,
            causal=c.causal,
            chunk_size=c.chunk_size,
            left_context_frames=c.left_context_frames,
        )
        enc_dim = c.encoder_output_dim
        self.decoder = Decoder(c.vocab_size, c.decoder_dim, c.blank_id, c.context_size)
        self.joiner = Joiner(enc_dim, c.decoder_dim, c.joiner_dim, c.vocab_size)
        self.simple_am_proj = scaled_linear(enc_dim, c.vocab_size, initial_scale=0.25)
        self.simple_lm_proj = scaled_linear(c.decoder_dim, c.vocab_size, initial_scale=0.25)
        self.use_ctc = c.use_ctc
        if c.use_ctc:
            self.ctc_output = nn.Sequential(
                nn.Dropout(p=0.1), nn.Linear(enc_dim, c.vocab_size), nn.LogSoftmax(dim=-1)
            )

    # ---- encoder ----

    def forward_encoder(
        self,
        x: Tensor,
        x_lens: Tensor,
        chunk_size: int | None = None,
        left_context_frames: int | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Masked ("simulated streaming") encoder forward.

        x: (N, T, feature_dim) fbank at 100 Hz; returns ((N, T', C) at 25 Hz, lengths).
        For a causal model, chunk_size / left_context_frames (50 Hz frames) default to a
        random choice from the config's lists in training and to their first entries in eval;
        -1 means full context.
        """
        x, x_lens = self.encoder_embed(x, x_lens)
        pad_mask = make_pad_mask(x_lens, x.shape[1])
        out, out_lens = self.encoder(
            x.permute(1, 0, 2),
            x_lens,
            pad_mask,
            chunk_size=chunk_size,
            left_context_frames=left_context_frames,
        )
        return out.permute(1, 0, 2), out_lens

    def get_init_states(
        self,
        batch_size: int = 1,
        device: torch.device | str = "cpu",
        left_context_frames: int | None = None,
    ) -> list[Tensor]:
        """Streaming states in icefall's order: 6 per encoder layer (cached_key,
        cached_nonlin_attn, cached_val1, cached_val2, cached_conv1, cached_conv2), then the
        front-end cache (embed_states), then processed_lens (int64, frames at 50 Hz)."""
        states = self.encoder.get_init_states(batch_size, device, left_context_frames)
        states.append(self.encoder_embed.get_init_states(batch_size, device))
        states.append(torch.zeros(batch_size, dtype=torch.int64, device=device))
        return states

    def streaming_forward_encoder(
        self,
        x: Tensor,
        x_lens: Tensor,
        states: list[Tensor],
        chunk_size: int,
        left_context_frames: int,
    ) -> tuple[Tensor, Tensor, list[Tensor]]:
        """One streaming step, as icefall's streaming_decode.streaming_forward.

        x: (N, 2 * chunk_size + 13, feature_dim) fbank frames (the chunk plus the 13 frames of
        front-end context/look-ahead); returns (N, chunk_size // 2, C), lengths, new states.
        """
        if not self.encoder.causal:
            raise ValueError("streaming needs a causal model (config.causal=True)")
        x, x_lens, embed_cache = self.encoder_embed.streaming_forward(x, x_lens, states[-2])
        if x.shape[1] != chunk_size:
            raise ValueError(
                f"the feature window gave {x.shape[1]} frames after the front end, expected "
                f"chunk_size={chunk_size}; feed 2 * chunk_size + 13 feature frames"
            )
        processed_lens = states[-1]
        # Left-context slots not yet filled with real frames are masked.
        slots = torch.arange(left_context_frames, device=x.device).expand(
            x.shape[0], left_context_frames
        )
        processed_mask = (processed_lens.unsqueeze(1) <= slots).flip(1)
        pad_mask = torch.cat([processed_mask, make_pad_mask(x_lens, x.shape[1])], dim=1)
        out, out_lens, enc_states = self.encoder.streaming_forward(
            x.permute(1, 0, 2),
            x_lens,
            states[:-2],
            pad_mask,
            left_context_frames=left_context_frames,
        )
        new_states = enc_states + [embed_cache, processed_lens + x_lens]
        return out.permute(1, 0, 2), out_lens, new_states

    # ---- training loss ----

    def forward(
        self, x: Tensor, x_lens: Tensor, y: list[list[int]], **loss_options: Any
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Losses summed over the batch: (simple_loss, pruned_loss, ctc_loss or None).

        y: token ids per utterance (no blank, no sos). ``loss_options`` are those of
        :meth:`losses` (prune_range, am_scale, lm_scale, rnnt_type, context_mask_prob).
        """
        if x.ndim != 3 or x_lens.ndim != 1 or len(y) != x.shape[0] or x_lens.shape[0] != x.shape[0]:
            raise ValueError(
                f"expected x (N, T, F), x_lens (N,) and N label lists; got {tuple(x.shape)}, "
                f"{tuple(x_lens.shape)} and {len(y)} lists"
            )
        encoder_out, encoder_out_lens = self.forward_encoder(x, x_lens)
        return self.losses(encoder_out, encoder_out_lens, y, **loss_options)

    def mask_context(self, sos_y: Tensor, prob: float) -> Tensor:
        """In training, replace each label of ``sos_y`` (N, U+1) after the start symbol by -1
        (the decoder's zero "no context" embedding) with probability ``prob``."""
        if not 0.0 <= prob < 1.0:
            raise ValueError(f"context_mask_prob must be in [0, 1), got {prob}")
        if prob == 0.0 or not self.training:
            return sos_y
        masked = torch.rand(sos_y.shape, device=sos_y.device) < prob
        masked[:, 0] = False
        return sos_y.masked_fill(masked, -1)

    def _label_side(
        self, y: list[list[int]], encoder_out_lens: Tensor, context_mask_prob: float
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Padded labels (N, U), prediction-network output for [blank, *labels] (N, U+1, D)
        with context masking applied, and the loss boundary (N, 4)."""
        device = encoder_out_lens.device
        blank = self.decoder.blank_id
        n = len(y)
        y_lens = torch.tensor([len(s) for s in y], dtype=torch.int64, device=device)
        u = int(y_lens.max()) if n else 0
        y_padded = torch.zeros(n, u, dtype=torch.int64)
        sos_y = torch.full((n, u + 1), blank, dtype=torch.int64)
        for i, seq in enumerate(y):
            if seq:
                t = torch.as_tensor(seq, dtype=torch.int64)
                y_padded[i, : len(seq)] = t
                sos_y[i, 1 : len(seq) + 1] = t
        sos_y = self.mask_context(sos_y, context_mask_prob)
        decoder_out = self.decoder(sos_y.to(device))
        boundary = torch.zeros(n, 4, dtype=torch.int64, device=device)
        boundary[:, 2] = y_lens
        boundary[:, 3] = encoder_out_lens
        return y_padded.to(device), decoder_out, boundary

    def lattice_logits(
        self,
        encoder_out: Tensor,
        encoder_out_lens: Tensor,
        y: list[list[int]],
        context_mask_prob: float = 0.0,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Joiner logits on every (frame, label) pair (N, T, U+1, V), with the padded labels
        and the loss boundary: the whole lattice, so for short utterances only (diagnostics,
        probes), not for training."""
        y_padded, decoder_out, boundary = self._label_side(y, encoder_out_lens, context_mask_prob)
        logits = self.joiner(
            self.joiner.encoder_proj(encoder_out).unsqueeze(2),
            self.joiner.decoder_proj(decoder_out).unsqueeze(1),
            project_input=False,
        )
        return logits, y_padded, boundary

    def full_loss(
        self,
        encoder_out: Tensor,
        encoder_out_lens: Tensor,
        y: list[list[int]],
        rnnt_type: str = "regular",
        context_mask_prob: float = 0.0,
    ) -> Tensor:
        """The unpruned RNN-T loss over :meth:`lattice_logits`, summed over the batch."""
        from training.loss import rnnt

        logits, y_padded, boundary = self.lattice_logits(
            encoder_out, encoder_out_lens, y, context_mask_prob
        )
        return rnnt.rnnt_loss(
            logits.float(), y_padded, self.decoder.blank_id, boundary, rnnt_type=rnnt_type
        )

    def losses(
        self,
        encoder_out: Tensor,
        encoder_out_lens: Tensor,
        y: list[list[int]],
        prune_range: int = 5,
        am_scale: float = 0.0,
        lm_scale: float = 0.25,
        rnnt_type: str = "regular",
        context_mask_prob: float = 0.0,
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """``forward``'s losses from encoder output (N, T, C) already computed (e.g. cached
        for a frozen encoder).

        rnnt_type: "regular" (any number of symbols per frame, icefall's default), "modified"
        (at most one per frame, as the served one-symbol search decodes) or "constrained" (see
        ``training.loss.rnnt``). context_mask_prob: see :meth:`mask_context`.
        """
        from training.loss import rnnt

        device = encoder_out.device
        blank = self.decoder.blank_id
        y_padded, decoder_out, boundary = self._label_side(y, encoder_out_lens, context_mask_prob)

        lm = self.simple_lm_proj(decoder_out)
        am = self.simple_am_proj(encoder_out)
        # The losses are computed in float32 even under autocast, as icefall does.
        with torch.autocast(device_type=device.type, enabled=False):
            simple_loss, (px_grad, py_grad) = rnnt.rnnt_loss_smoothed(
                lm=lm.float(),
                am=am.float(),
                symbols=y_padded,
                termination_symbol=blank,
                lm_only_scale=lm_scale,
                am_only_scale=am_scale,
                boundary=boundary,
                reduction="sum",
                return_grad=True,
                rnnt_type=rnnt_type,
            )
        ranges = rnnt.get_rnnt_prune_ranges(
            px_grad=px_grad, py_grad=py_grad, boundary=boundary, s_range=prune_range
        )
        am_pruned, lm_pruned = rnnt.do_rnnt_pruning(
            am=self.joiner.encoder_proj(encoder_out),
            lm=self.joiner.decoder_proj(decoder_out),
            ranges=ranges,
        )
        logits = self.joiner(am_pruned, lm_pruned, project_input=False)
        with torch.autocast(device_type=device.type, enabled=False):
            pruned_loss = rnnt.rnnt_loss_pruned(
                logits=logits.float(),
                symbols=y_padded,
                ranges=ranges,
                termination_symbol=blank,
                boundary=boundary,
                reduction="sum",
                rnnt_type=rnnt_type,
            )

        ctc_loss = None
        if self.use_ctc:
            log_probs = self.ctc_output(encoder_out).float()
            targets = torch.tensor([t for s in y for t in s], dtype=torch.int64)
            ctc_loss = nn.functional.ctc_loss(
                log_probs=log_probs.permute(1, 0, 2),
                targets=targets,
                input_lengths=encoder_out_lens.cpu(),
                target_lengths=boundary[:, 2].cpu(),
                blank=blank,
                reduction="sum",
            )
        return simple_loss, pruned_loss, ctc_loss
