"""Parity check of an export: the torch model in streaming mode against the ONNX files on the same
random features, chunk by chunk, from zero states; greedy transcripts on both sides."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from training.decode.search import GreedySearcher
from training.export import OnnxDecoder
from training.export_runtime import OnnxTransducer


@dataclass
class ExportReport:
    """Max absolute differences torch vs ONNX, and whether greedy search agrees."""

    out_dir: str
    batch_size: int
    num_chunks: int
    encoder_out_max_abs_diff: float
    state_max_abs_diff: float
    worst_state: str
    decoder_max_abs_diff: float
    joiner_max_abs_diff: float
    torch_hyps: list[list[int]]
    onnx_hyps: list[list[int]]
    int8_encoder_out_max_abs_diff: float | None = None
    int8_hyps: list[list[int]] | None = None
    tolerance: float = 1e-4

    @property
    def transcripts_agree(self) -> bool:
        return self.torch_hyps == self.onnx_hyps

    @property
    def int8_transcripts_agree(self) -> bool | None:
        return None if self.int8_hyps is None else self.int8_hyps == self.torch_hyps

    @property
    def int8_token_error_rate(self) -> float | None:
        """Token edit distance of int8 against torch greedy output, over the torch token count."""
        if self.int8_hyps is None:
            return None
        errors = sum(
            _edit_distance(a, b) for a, b in zip(self.torch_hyps, self.int8_hyps, strict=True)
        )
        return errors / max(1, sum(len(h) for h in self.torch_hyps))

    @property
    def ok(self) -> bool:
        """fp32 ONNX within ``tolerance`` everywhere and the same greedy transcripts
        (int8 is reported, not judged: its error depends on the weights)."""
        diffs = (
            self.encoder_out_max_abs_diff,
            self.state_max_abs_diff,
            self.decoder_max_abs_diff,
            self.joiner_max_abs_diff,
        )
        return all(d <= self.tolerance for d in diffs) and self.transcripts_agree

    def table(self) -> str:
        def yes(b: bool | None) -> str:
            return "-" if b is None else ("yes" if b else "NO")

        n_tokens = ", ".join(str(len(h)) for h in self.torch_hyps)
        rows = [
            ("check", "value"),
            ("model dir", self.out_dir),
            ("batch x chunks", f"{self.batch_size} x {self.num_chunks}"),
            ("encoder_out max |torch - onnx|", f"{self.encoder_out_max_abs_diff:.3g}"),
            (f"states max |torch - onnx| ({self.worst_state})", f"{self.state_max_abs_diff:.3g}"),
            ("decoder_out max |torch - onnx|", f"{self.decoder_max_abs_diff:.3g}"),
            ("logit max |torch - onnx|", f"{self.joiner_max_abs_diff:.3g}"),
            ("greedy tokens per utterance (torch)", n_tokens),
            ("greedy transcripts agree (fp32)", yes(self.transcripts_agree)),
        ]
        if self.int8_encoder_out_max_abs_diff is not None:
            rows += [
                (
                    "int8 encoder_out max |torch - onnx|",
                    f"{self.int8_encoder_out_max_abs_diff:.3g}",
                ),
                ("greedy transcripts agree (int8)", yes(self.int8_transcripts_agree)),
                ("int8 token error rate vs torch", f"{self.int8_token_error_rate:.1%}"),
            ]
        rows.append((f"passed (tolerance {self.tolerance:g})", yes(self.ok)))
        width = max(len(r[0]) for r in rows)
        lines = [f"{a:<{width}}  {b}" for a, b in rows]
        lines.insert(1, "-" * (width + 2 + max(len(r[1]) for r in rows)))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def torch_greedy_search(model: nn.Module, encoder_out: torch.Tensor) -> list[int]:
    """Greedy search on one utterance's *projected* encoder output (frames, joiner_dim) with
    :class:`training.decode.search.GreedySearcher`: the same rule as the engine's search used by
    :meth:`OnnxTransducer.greedy_search`, so the two can be compared token for token."""
    searcher = GreedySearcher(model, batch_size=1)
    searcher.step(encoder_out[None])
    return searcher.results()[0].tokens


@torch.no_grad()
def torch_stream(
    model: nn.Module, features: torch.Tensor, window: int, shift: int, chunk: int, left: int
) -> tuple[torch.Tensor, list[torch.Tensor], int]:
    """The torch side of the check: ``streaming_forward_encoder`` on the same windows the ONNX
    driver uses, then ``encoder_proj``. Returns (projected output, final states, chunks)."""
    n = features.shape[0]
    states = model.get_init_states(n, features.device, left)
    outs = []
    k = 0
    while k * shift + window <= features.shape[1]:
        x = features[:, k * shift : k * shift + window]
        lens = torch.full((n,), window, dtype=torch.int64)
        out, _, states = model.streaming_forward_encoder(x, lens, states, chunk, left)
        outs.append(model.joiner.encoder_proj(out))
        k += 1
    return torch.cat(outs, dim=1), states, k


def _edit_distance(a: list[int], b: list[int]) -> int:
    """Token edits between two id sequences, via the project's scorer (ids as code points)."""
    from training.scoring import align

    return sum(op.op != "ok" for op in align("".join(map(chr, a)), "".join(map(chr, b))))


def _max_abs(a, b) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise RuntimeError(f"shape mismatch torch {a.shape} vs onnx {b.shape}")
    return float(np.abs(a - b).max()) if a.size else 0.0


@torch.no_grad()
def check_export(
    model: nn.Module,
    out_dir: str | Path,
    num_chunks: int = 6,
    batch_size: int = 2,
    seed: int = 0,
    tolerance: float = 1e-4,
) -> ExportReport:
    """Compare ``model`` (eval mode, torch streaming) with the files in ``out_dir`` on random
    features (N(0, 1), ``seed``) long enough for ``num_chunks`` windows. int8 files, if present,
    are run too and reported."""
    model = model.eval()
    onnx_model = OnnxTransducer.from_dir(out_dir)
    meta = onnx_model.encoder_meta
    chunk = int(meta["decode_chunk_len"]) // 2
    ds = model.encoder.downsampling_factor
    left = int(meta["left_context_len"].split(",")[0]) * ds[0]
    window, shift = onnx_model.window, onnx_model.shift
    gen = torch.Generator().manual_seed(seed)
    frames = (num_chunks - 1) * shift + window
    feats = torch.randn(batch_size, frames, _feature_dim(onnx_model), generator=gen)

    t_out, t_states, k = torch_stream(model, feats, window, shift, chunk, left)
    run = onnx_model.stream_encoder(feats.numpy())
    enc_diff = _max_abs(t_out, run.encoder_out)
    state_diffs = {
        name: _max_abs(t.float(), o.astype(np.float32))
        for name, t, o in zip(onnx_model.state_names, t_states, run.states.values(), strict=True)
    }
    worst = max(state_diffs, key=state_diffs.get)

    ctx = model.decoder.context_size
    vocab = model.decoder.vocab_size
    y = torch.randint(0, vocab, (4, ctx), generator=gen)
    y[0] = torch.tensor([-1] * (ctx - 1) + [model.decoder.blank_id])
    dec_t = OnnxDecoder(model.decoder, model.joiner.decoder_proj)(y)
    dec_diff = _max_abs(dec_t, onnx_model.run_decoder(y.numpy()))
    e = torch.randn(4, dec_t.shape[1], generator=gen)
    logit_t = model.joiner(e, dec_t, project_input=False)
    join_diff = _max_abs(logit_t, onnx_model.run_joiner(e.numpy(), dec_t.numpy()))

    torch_hyps = [torch_greedy_search(model, t_out[i]) for i in range(batch_size)]
    unk = getattr(model, "unk_id", None)
    onnx_hyps = [
        onnx_model.greedy_search(run.encoder_out[i], unk_id=unk) for i in range(batch_size)
    ]

    report = ExportReport(
        out_dir=str(out_dir),
        batch_size=batch_size,
        num_chunks=k,
        encoder_out_max_abs_diff=enc_diff,
        state_max_abs_diff=state_diffs[worst],
        worst_state=worst,
        decoder_max_abs_diff=dec_diff,
        joiner_max_abs_diff=join_diff,
        torch_hyps=torch_hyps,
        onnx_hyps=onnx_hyps,
        tolerance=tolerance,
    )
    if (Path(out_dir) / "encoder.int8.onnx").is_file():
        q = OnnxTransducer.from_dir(out_dir, int8=True)
        q_run = q.stream_encoder(feats.numpy())
        report.int8_encoder_out_max_abs_diff = _max_abs(t_out, q_run.encoder_out)
        report.int8_hyps = [
            q.greedy_search(q_run.encoder_out[i], unk_id=unk) for i in range(batch_size)
        ]
    return report


def _feature_dim(onnx_model: OnnxTransducer) -> int:
    return int(onnx_model.encoder.get_inputs()[0].shape[2])
