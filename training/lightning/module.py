"""LightningModule around the Zipformer2 transducer, with icefall's training schedule.

- Loss: ``simple_scale * simple + pruned_scale * pruned (+ ctc_scale * ctc)``, the simple-loss
  scale falling from 1.0 to ``simple_loss_scale`` and the pruned scale rising from 0.1 to 1.0 over
  ``warm_step`` batches (icefall ``compute_loss``). Losses are summed over the batch; logs are
  per output frame.
- Optional pinyin CTC head (toneless syllable + tone units, see :mod:`training.lightning.pinyin`)
  on the encoder output; it lives outside ``self.model`` so it never enters exported checkpoints.
- ScaledAdam + Eden stepped per batch (manual optimization); batches with inf/nan loss are
  skipped on every rank.
- Validation: dev loss and dev CER by greedy search on a capped number of utterances.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from serving.features import FbankConfig

FRAME_SHIFT_S = FbankConfig().frame_shift  # seconds per feature frame


@dataclass
class LossOptions:
    simple_loss_scale: float = 0.5
    warm_step: int = 2000
    prune_range: int = 5
    am_scale: float = 0.0
    lm_scale: float = 0.25
    ctc_loss_scale: float = 0.2  # used when the model has a CTC head (model.use_ctc)
    pinyin_ctc_scale: float = 0.0  # > 0 adds the pinyin auxiliary CTC head
    # "regular" lets one frame emit several symbols; "modified" allows at most one, matching
    # the one-symbol-per-frame search that icefall and sherpa-onnx serve with
    rnnt_type: str = "regular"
    # probability that each context label of the prediction network is hidden in training
    # (see Transducer.mask_context); > 0 weakens the learnt text prior
    context_mask_prob: float = 0.0


@dataclass
class OptimOptions:
    base_lr: float = 0.045
    lr_batches: float = 7500.0
    lr_epochs: float = 3.5
    warmup_batches: float = 500.0
    warmup_start: float = 0.5
    clipping_scale: float = 2.0
    # The Zipformer's regularisation schedules (layer skipping, dropout, balancer limits) run on
    # a batch count that icefall scales by (max_duration * world) / ref_duration, i.e. by audio
    # seen in units of ref_duration seconds: most of them relax over the first 4,000-20,000.
    # icefall's 600 s suits 1,000 s batches and 100,000s of steps; small CPU batches need a
    # small ref_duration, or the layers stay half-skipped for the whole run.
    ref_duration: float = 600.0
    # added to that count: a fine-tune of a trained model starts past the warm-up schedules
    batch_count_start: float = 0.0


@dataclass
class ValidOptions:
    cer_max_utts: int = 100  # utterances decoded for dev CER per validation


@dataclass
class LossParts:
    total: torch.Tensor
    simple: torch.Tensor
    pruned: torch.Tensor
    ctc: torch.Tensor | None
    pinyin: torch.Tensor | None
    frames: float


def loss_scales(step: int, opts: LossOptions) -> tuple[float, float]:
    """(simple, pruned) scales at batch ``step`` (icefall's warm-up of the pruned loss)."""
    if step >= opts.warm_step:
        return opts.simple_loss_scale, 1.0
    frac = step / max(1, opts.warm_step)
    return 1.0 - frac * (1.0 - opts.simple_loss_scale), 0.1 + 0.9 * frac


class TransducerModule(pl.LightningModule):
    """Trains ``model`` (a ``training.model`` Transducer).

    ``model_config`` (a dict) and ``tokens`` (list of token strings, id order) are saved in the
    Lightning checkpoint so it can be turned into our own checkpoint format without the recipe.
    """

    def __init__(
        self,
        model: nn.Module,
        model_config: dict[str, Any],
        tokens: list[str],
        loss: LossOptions | None = None,
        optim: OptimOptions | None = None,
        valid: ValidOptions | None = None,
        batch_duration: float = 60.0,
        pinyin_vocab_size: int = 0,
    ) -> None:
        super().__init__()
        self.model = model
        self.model_config = model_config
        self.tokens = tokens
        self.loss_opts = loss or LossOptions()
        self.optim_opts = optim or OptimOptions()
        self.valid_opts = valid or ValidOptions()
        self.batch_duration = batch_duration
        self.automatic_optimization = False
        self.pinyin_head: nn.Module | None = None
        if self.loss_opts.pinyin_ctc_scale > 0:
            if pinyin_vocab_size <= 0:
                raise ValueError("loss.pinyin_ctc_scale > 0 needs pinyin_vocab_size > 0")
            self.pinyin_head = nn.Sequential(
                nn.Dropout(0.1), nn.Linear(encoder_out_dim(model), pinyin_vocab_size)
            )
        self.scheduler = None
        self._pending_scheduler_state: dict | None = None
        self.skipped_batches = 0
        self._epoch_batches = 0
        self._resume_position: dict[str, int] | None = None
        self._position_epoch = 0
        self._val_errors = 0
        self._val_chars = 0
        self._val_ctc_errors = 0
        self._val_decoded = 0
        self._val_examples: list[tuple[str, str]] = []
        # training wall time of the run's earlier sessions (from the resumed checkpoint) and
        # when this session's training started
        self._wall_before = 0.0
        self._wall_start: float | None = None
        # throughput: seconds of audio trained per wall second (smoothed over recent steps)
        self._last_step_end: float | None = None
        self.audio_per_sec = 0.0
        self.last_loss = float("nan")

    def wall_seconds(self) -> float:
        """Training wall time of the whole run: earlier (resumed) sessions plus this one."""
        here = time.monotonic() - self._wall_start if self._wall_start is not None else 0.0
        return self._wall_before + here

    def on_train_start(self) -> None:
        self._wall_start = time.monotonic()
        self._last_step_end = None

    def _update_throughput(self, batch: dict[str, Any]) -> None:
        """Seconds of audio per wall second, all processes together; the time of a step runs
        from the previous step's end, so data loading counts."""
        now = time.monotonic()
        if self._last_step_end is not None and now > self._last_step_end:
            world = self.trainer.world_size if self._trainer is not None else 1
            audio = float(batch["feature_lens"].sum()) * FRAME_SHIFT_S * world
            rate = audio / (now - self._last_step_end)
            self.audio_per_sec = (
                rate if self.audio_per_sec == 0 else 0.9 * self.audio_per_sec + 0.1 * rate
            )
            self.log("train/audio_per_sec", self.audio_per_sec, prog_bar=True)
        self._last_step_end = now

    # ----------------------------------------------------------------- losses
    def compute_losses(self, batch: dict[str, Any], step: int) -> LossParts:
        x = batch["features"]
        x_lens = batch["feature_lens"]
        y = batch["tokens"]
        want_pinyin = self.pinyin_head is not None and "pinyin" in batch
        captured: dict[str, torch.Tensor] = {}
        hook = None
        if want_pinyin:
            # The transducer runs its encoder once; the pinyin head reads that output.
            def grab(_module, _inputs, output):
                captured["out"], captured["lens"] = output[0], output[1]

            hook = self.model.encoder.register_forward_hook(grab)
        try:
            simple, pruned, ctc = self.model(
                x,
                x_lens,
                y,
                prune_range=self.loss_opts.prune_range,
                am_scale=self.loss_opts.am_scale,
                lm_scale=self.loss_opts.lm_scale,
                rnnt_type=self.loss_opts.rnnt_type,
                context_mask_prob=self.loss_opts.context_mask_prob,
            )
        finally:
            if hook is not None:
                hook.remove()
        s_scale, p_scale = loss_scales(step, self.loss_opts)
        total = s_scale * simple + p_scale * pruned
        if ctc is not None:
            total = total + self.loss_opts.ctc_loss_scale * ctc
        pinyin = None
        if want_pinyin:
            enc_out = captured["out"].permute(1, 0, 2)  # Zipformer2 works in (T, N, C)
            pinyin = self._pinyin_ctc(enc_out, captured["lens"], batch["pinyin"])
            total = total + self.loss_opts.pinyin_ctc_scale * pinyin
        frames = float((x_lens // 4).sum())  # icefall normalises by subsampled frames
        return LossParts(total, simple, pruned, ctc, pinyin, frames)

    def _pinyin_ctc(
        self, enc_out: torch.Tensor, enc_lens: torch.Tensor, targets: list[list[int]]
    ) -> torch.Tensor:
        logp = self.pinyin_head(enc_out.float()).log_softmax(-1)  # (N, T, V)
        flat = torch.tensor([t for seq in targets for t in seq], dtype=torch.int64)
        lens = torch.tensor([len(seq) for seq in targets], dtype=torch.int64)
        return nn.functional.ctc_loss(
            logp.transpose(0, 1),
            flat,
            enc_lens.to(torch.int64),
            lens,
            blank=0,
            reduction="sum",
            zero_infinity=True,
        )

    # --------------------------------------------------------------- training
    def _adjusted_batch_count(self) -> float:
        world = self.trainer.world_size if self._trainer is not None else 1
        seen = self.global_step * self.batch_duration * world / self.optim_opts.ref_duration
        return self.optim_opts.batch_count_start + seen

    def _all_finite(self, value: torch.Tensor) -> bool:
        flag = torch.tensor(1.0 if bool(torch.isfinite(value)) else 0.0)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
        return bool(flag.item() > 0)

    def training_step(self, batch: dict[str, Any], batch_idx: int):
        from training.model.scaling import set_batch_count

        opt = self.optimizers()
        step = self.global_step
        self._epoch_batches += 1
        if step % 10 == 0:
            set_batch_count(self.model, self._adjusted_batch_count())
        parts = self.compute_losses(batch, step)
        if not self._all_finite(parts.total.detach()):
            self.skipped_batches += 1
            opt.zero_grad(set_to_none=True)
            self.log("train/skipped_batches", float(self.skipped_batches), prog_bar=False)
            return None
        self.manual_backward(parts.total)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if self.scheduler is not None:
            self.scheduler.step_batch(self.global_step)
        self.last_loss = self._log_parts("train", parts, len(batch["tokens"]))
        self.log("train/lr", float(opt.param_groups[0]["lr"]), prog_bar=False)
        self._update_throughput(batch)
        return parts.total.detach()

    def _log_parts(self, stage: str, parts: LossParts, batch_size: int) -> float:
        """Log the batch's losses per frame; returns the total."""
        f = max(parts.frames, 1.0)
        on_step = stage == "train"
        kw = dict(on_step=on_step, on_epoch=not on_step, batch_size=batch_size, sync_dist=True)
        loss = float(parts.total.detach()) / f
        self.log(f"{stage}/loss", loss, prog_bar=True, **kw)
        self.log(f"{stage}/simple_loss", float(parts.simple.detach()) / f, **kw)
        self.log(f"{stage}/pruned_loss", float(parts.pruned.detach()) / f, **kw)
        if parts.ctc is not None:
            self.log(f"{stage}/ctc_loss", float(parts.ctc.detach()) / f, **kw)
        if parts.pinyin is not None:
            self.log(f"{stage}/pinyin_ctc_loss", float(parts.pinyin.detach()) / f, **kw)
        return loss

    def batches_to_skip(self, epoch: int) -> int:
        """Batches of ``epoch`` already trained before the run was cut off (0 unless resuming
        mid-epoch): the data module skips them so the epoch is not replayed from its start."""
        pos = self._resume_position
        return int(pos["batches"]) if pos and int(pos["epoch"]) == epoch else 0

    def on_train_epoch_start(self) -> None:
        self._epoch_batches = self.batches_to_skip(self.current_epoch)
        self._position_epoch = self.current_epoch
        self._resume_position = None
        if self.scheduler is not None:
            self.scheduler.step_epoch(self.current_epoch)

    def on_train_epoch_end(self) -> None:
        if self._epoch_batches == 0:
            raise RuntimeError(
                f"epoch {self.current_epoch} gave no training batches: the train cuts are empty "
                "or all longer than data.max_cut_duration; check data.train_cuts"
            )

    # ------------------------------------------------------------- validation
    def on_validation_epoch_start(self) -> None:
        self._val_errors = 0
        self._val_chars = 0
        self._val_ctc_errors = 0
        self._val_decoded = 0
        self._val_examples = []

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        # Full pruned loss scale on dev so epochs are comparable.
        parts = self.compute_losses(batch, self.loss_opts.warm_step)
        if math.isfinite(float(parts.total)):
            self._log_parts("dev", parts, len(batch["tokens"]))
        if self._val_decoded < self.valid_opts.cer_max_utts:
            n = min(len(batch["texts"]), self.valid_opts.cer_max_utts - self._val_decoded)
            from training.scoring import ErrorCounts, align

            hyps, ctc_hyps = self.greedy_texts(batch["features"][:n], batch["feature_lens"][:n])
            for ref, hyp in zip(batch["texts"][:n], hyps, strict=True):
                counts = ErrorCounts.from_ops(align(ref, hyp))
                self._val_errors += counts.errors
                self._val_chars += counts.ref_chars
                if len(self._val_examples) < 3:
                    self._val_examples.append((ref, hyp))
            if ctc_hyps is not None:
                for ref, hyp in zip(batch["texts"][:n], ctc_hyps, strict=True):
                    self._val_ctc_errors += ErrorCounts.from_ops(align(ref, hyp)).errors
            self._val_decoded += n

    @torch.no_grad()
    def greedy_texts(
        self, x: torch.Tensor, x_lens: torch.Tensor
    ) -> tuple[list[str], list[str] | None]:
        """Greedy transducer texts and, for a model with a character CTC head, the head's
        greedy texts from the same encoder output (eval mode: the config's first chunk size
        and left context)."""
        from serving.tokens import TokenTable
        from training.decode.search import greedy_search
        from training.evaluate import ctc_greedy_ids

        if getattr(self, "_table", None) is None:
            self._table = TokenTable(self.tokens)
        # As icefall's decode.py for causal models: 30 LOG_EPS frames flush the last chunk.
        tail = torch.full((x.shape[0], 30, x.shape[2]), math.log(1e-10), dtype=x.dtype)
        x = torch.cat([x, tail.to(x.device)], dim=1)
        for i, n in enumerate(x_lens.tolist()):
            x[i, n:] = math.log(1e-10)
        enc_out, enc_lens = self.model.forward_encoder(x, x_lens + 30)
        hyps = [self._table.decode(h) for h in greedy_search(self.model, enc_out, enc_lens)]
        if not getattr(self.model, "use_ctc", False):
            return hyps, None
        ctc = [self._table.decode(h) for h in ctc_greedy_ids(self.model, enc_out, enc_lens)]
        return hyps, ctc

    def on_validation_epoch_end(self) -> None:
        counts = torch.tensor(
            [float(self._val_errors), float(self._val_chars), float(self._val_ctc_errors)]
        )
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(counts)
        if counts[1] > 0:  # already summed over ranks: sync_dist averages equal values
            self.log("dev/cer", float(counts[0] / counts[1]), prog_bar=True, sync_dist=True)
            self.log("dev/cer_chars", float(counts[1]), sync_dist=True)
            if getattr(self.model, "use_ctc", False):
                self.log("dev/ctc_cer", float(counts[2] / counts[1]), sync_dist=True)

    # ------------------------------------------------------------- optimizer
    def configure_optimizers(self):
        from training.optim import Eden, ScaledAdam

        o = self.optim_opts
        params = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        optimizer = ScaledAdam(params, lr=o.base_lr, clipping_scale=o.clipping_scale)
        self.scheduler = Eden(
            optimizer,
            o.lr_batches,
            o.lr_epochs,
            warmup_batches=o.warmup_batches,
            warmup_start=o.warmup_start,
        )
        if self._pending_scheduler_state is not None:
            self.scheduler.load_state_dict(self._pending_scheduler_state)
            self._pending_scheduler_state = None
        return optimizer

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.scheduler is not None:
            checkpoint["eden"] = self.scheduler.state_dict()
        checkpoint["hotline"] = {
            "model_config": self.model_config,
            "tokens": self.tokens,
            "skipped_batches": self.skipped_batches,
            # the epoch the batch count belongs to (current_epoch moves on at an epoch's end)
            "epoch_position": {"epoch": self._position_epoch, "batches": self._epoch_batches},
            "wall_seconds": self.wall_seconds(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._pending_scheduler_state = checkpoint.get("eden")
        if self.scheduler is not None and self._pending_scheduler_state is not None:
            self.scheduler.load_state_dict(self._pending_scheduler_state)
            self._pending_scheduler_state = None
        meta = checkpoint.get("hotline", {})
        self.skipped_batches = int(meta.get("skipped_batches", 0))
        self._resume_position = meta.get("epoch_position")
        self._wall_before = float(meta.get("wall_seconds", 0.0))


def encoder_out_dim(model: nn.Module) -> int:
    """Width of the encoder output (icefall: ``max(encoder_dim)``)."""
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "encoder_output_dim"):
        return int(config.encoder_output_dim)
    for name in ("encoder_out_dim", "encoder_dim"):
        v = getattr(model, name, None)
        if isinstance(v, int):
            return v
    return int(model.joiner.encoder_proj.in_features)
