"""Transducer search over encoder output: batched greedy and modified beam search (one
symbol per frame), with optional hot-word biasing through a ``ContextGraph``.

icefall's conventions: the decoder starts from the context ``[-1] * (context_size - 1) +
[blank]`` (a negative id embeds to zeros), blank (and ``model.unk_id`` if the model has
one) emits nothing, beam search keeps ``beam`` hypotheses per utterance, merges equal
token sequences with log-add, and picks the best by log-probability / length.

The searchers keep their hypotheses between calls, so the streaming decoder feeds them
chunk after chunk; ``greedy_search`` / ``modified_beam_search`` are one call over a whole
batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from serving.context_graph import ContextGraph, ContextState
from serving.lm import LmFusion

__all__ = [
    "BeamSearcher",
    "DecodeResult",
    "GreedySearcher",
    "Hypothesis",
    "greedy_search",
    "modified_beam_search",
]


@dataclass
class DecodeResult:
    """One utterance: token ids and, for each, the encoder frame (after subsampling,
    25 Hz for Zipformer2) on which it was emitted."""

    tokens: list[int]
    timestamps: list[int]
    score: float = 0.0


@dataclass
class Hypothesis:
    ys: tuple[int, ...]  # the start context followed by the emitted tokens
    log_prob: float
    timestamps: tuple[int, ...] = ()
    context_state: ContextState | None = None


def _log_add(a: float, b: float) -> float:
    hi, lo = max(a, b), min(a, b)
    return hi + math.log1p(math.exp(lo - hi)) if lo > -math.inf else hi


def _start_context(model: nn.Module) -> list[int]:
    c = model.decoder.context_size
    return [-1] * (c - 1) + [model.decoder.blank_id]


def _silent_ids(model: nn.Module) -> set[int]:
    blank = model.decoder.blank_id
    return {blank, getattr(model, "unk_id", blank)}


def _decoder_proj(
    model: nn.Module, contexts: list[list[int]] | list[tuple[int, ...]], device
) -> Tensor:
    """Projected decoder output (n, joiner_dim) for n token contexts."""
    y = torch.tensor(contexts, dtype=torch.int64, device=device)
    return model.joiner.decoder_proj(model.decoder(y, need_pad=False)).squeeze(1)


def _check_encoder(encoder_out: Tensor, encoder_out_lens: Tensor | None) -> Tensor:
    if encoder_out.ndim != 3:
        raise ValueError(f"encoder_out must be (N, T, C); got {tuple(encoder_out.shape)}")
    N, T, _ = encoder_out.shape
    if encoder_out_lens is None:
        return torch.full((N,), T, dtype=torch.int64)
    lens = encoder_out_lens.detach().to("cpu", torch.int64)
    if lens.shape != (N,) or (N and (int(lens.max()) > T or int(lens.min()) < 0)):
        raise ValueError(
            f"encoder_out_lens must be (N={N},) with values in [0, T={T}]; got {lens.tolist()}"
        )
    return lens


class GreedySearcher:
    """Greedy search state for ``batch_size`` streams."""

    def __init__(
        self,
        model: nn.Module,
        batch_size: int,
        max_sym_per_frame: int = 1,
        blank_penalty: float = 0.0,
    ) -> None:
        if max_sym_per_frame < 1:
            raise ValueError(f"max_sym_per_frame must be >= 1; got {max_sym_per_frame}")
        self.model = model
        self.max_sym_per_frame = max_sym_per_frame
        self.blank_penalty = blank_penalty
        self.context_size = model.decoder.context_size
        self.blank = model.decoder.blank_id
        self.silent = _silent_ids(model)
        self.device = next(model.parameters()).device
        start = _start_context(model)
        self.hyps = [list(start) for _ in range(batch_size)]
        self.timestamps: list[list[int]] = [[] for _ in range(batch_size)]
        self.frames = [0] * batch_size  # frames consumed per stream
        self.decoder_out: Tensor | None = None

    @torch.no_grad()
    def step(self, encoder_proj: Tensor, lens: Tensor | None = None) -> None:
        """Consume projected encoder frames (N, T, joiner_dim); row n uses its first lens[n]."""
        lens = _check_encoder(encoder_proj, lens)
        c = self.context_size
        if self.decoder_out is None:
            self.decoder_out = _decoder_proj(self.model, [h[-c:] for h in self.hyps], self.device)
        for t in range(encoder_proj.shape[1]):
            active = (lens > t).nonzero().flatten().tolist()
            for _ in range(self.max_sym_per_frame):
                if not active:
                    break
                idx = torch.tensor(active, device=self.device)
                logits = self.model.joiner(
                    encoder_proj[idx, t], self.decoder_out[idx], project_input=False
                )
                if self.blank_penalty:
                    logits[:, self.blank] -= self.blank_penalty
                best = logits.argmax(dim=-1).tolist()
                emitted = [n for n, y in zip(active, best, strict=True) if y not in self.silent]
                for n, y in zip(active, best, strict=True):
                    if y not in self.silent:
                        self.hyps[n].append(y)
                        self.timestamps[n].append(self.frames[n] + t)
                if emitted:
                    new = _decoder_proj(
                        self.model, [self.hyps[n][-c:] for n in emitted], self.device
                    )
                    self.decoder_out[torch.tensor(emitted, device=self.device)] = new
                active = emitted
        for n, length in enumerate(lens.tolist()):
            self.frames[n] += length

    def results(self) -> list[DecodeResult]:
        c = self.context_size
        return [
            DecodeResult(h[c:], list(ts)) for h, ts in zip(self.hyps, self.timestamps, strict=True)
        ]


class BeamSearcher:
    """Modified beam search state (one symbol per frame) for ``batch_size`` streams.

    With a ``context_graph``, each hypothesis carries a graph state; every emitted token adds
    the graph's score change to the hypothesis score, and ``results(final=True)`` applies
    ``finalize`` so unfinished phrase matches lose their running bonus. ``strict_mode=True``
    is sherpa-onnx's (and this project's ONNX engine's) matching; icefall's
    ``modified_beam_search`` uses ``False`` (a match restarts at the root). With ``lm``, each
    hypothesis' best few tokens are rescored with the n-gram's gain (``serving.lm.LmFusion``).
    """

    def __init__(
        self,
        model: nn.Module,
        batch_size: int,
        beam: int = 4,
        context_graph: ContextGraph | None = None,
        blank_penalty: float = 0.0,
        temperature: float = 1.0,
        strict_mode: bool = True,
        lm: LmFusion | None = None,
    ) -> None:
        if beam < 1:
            raise ValueError(f"beam must be >= 1; got {beam}")
        self.model = model
        self.lm = lm
        self.beam = beam
        self.graph = context_graph
        self.blank_penalty = blank_penalty
        self.temperature = temperature
        self.strict_mode = strict_mode
        self.context_size = model.decoder.context_size
        self.blank = model.decoder.blank_id
        self.silent = _silent_ids(model)
        self.device = next(model.parameters()).device
        root = None if context_graph is None else context_graph.root
        start = tuple(_start_context(model))
        self.beams: list[list[Hypothesis]] = [
            [Hypothesis(start, 0.0, (), root)] for _ in range(batch_size)
        ]
        self.frames = [0] * batch_size

    @torch.no_grad()
    def step(self, encoder_proj: Tensor, lens: Tensor | None = None) -> None:
        """Consume projected encoder frames (N, T, joiner_dim); row n uses its first lens[n]."""
        lens = _check_encoder(encoder_proj, lens)
        c = self.context_size
        for t in range(encoder_proj.shape[1]):
            active = (lens > t).nonzero().flatten().tolist()
            if not active:
                break
            flat = [h for n in active for h in self.beams[n]]
            rows = torch.tensor(
                [n for n in active for _ in self.beams[n]], device=self.device, dtype=torch.int64
            )
            dec = _decoder_proj(self.model, [h.ys[-c:] for h in flat], self.device)
            logits = self.model.joiner(encoder_proj[rows, t], dec, project_input=False)
            if self.blank_penalty:
                logits[:, self.blank] -= self.blank_penalty
            log_probs = (logits / self.temperature).log_softmax(dim=-1)
            prior = torch.tensor([h.log_prob for h in flat], dtype=log_probs.dtype)
            log_probs += prior.to(self.device).unsqueeze(1)
            V = log_probs.shape[1]
            start = 0
            for n in active:
                k = len(self.beams[n])
                hyps = flat[start : start + k]
                if self.lm is not None:
                    rows = log_probs[start : start + k].float().cpu().numpy()
                    top, index = self.lm.top(rows, [h.ys for h in hyps], self.beam, self.silent)
                else:
                    scores = log_probs[start : start + k].reshape(-1)
                    best, where = scores.topk(min(self.beam, scores.numel()))
                    top, index = best.tolist(), where.tolist()
                self.beams[n] = self._expand(hyps, top, index, V, self.frames[n] + t)
                start += k
        for n, length in enumerate(lens.tolist()):
            self.frames[n] += length

    def _expand(
        self, hyps: list[Hypothesis], top: list[float], index: list[int], V: int, frame: int
    ) -> list[Hypothesis]:
        merged: dict[tuple[int, ...], Hypothesis] = {}
        for score, i in zip(top, index, strict=True):
            hyp, token = hyps[i // V], i % V
            if token in self.silent:
                new = Hypothesis(hyp.ys, score, hyp.timestamps, hyp.context_state)
            else:
                bonus, state = 0.0, hyp.context_state
                if self.graph is not None:
                    bonus, state, _ = self.graph.forward_one_step(state, token, self.strict_mode)
                new = Hypothesis(hyp.ys + (token,), score + bonus, hyp.timestamps + (frame,), state)
            old = merged.get(new.ys)
            if old is None:
                merged[new.ys] = new
            else:
                old.log_prob = _log_add(old.log_prob, new.log_prob)
        return list(merged.values())

    def best(self, n: int, final: bool = True) -> Hypothesis:
        """The best hypothesis of stream n by log-probability per token (context included)."""
        hyps = self.beams[n]
        if final and self.graph is not None:
            hyps = [
                Hypothesis(h.ys, h.log_prob + self.graph.finalize(h.context_state)[0], h.timestamps)
                for h in hyps
            ]
        return max(hyps, key=lambda h: h.log_prob / len(h.ys))

    def results(self, final: bool = True) -> list[DecodeResult]:
        c = self.context_size
        out = []
        for n in range(len(self.beams)):
            h = self.best(n, final)
            out.append(DecodeResult(list(h.ys[c:]), list(h.timestamps), h.log_prob))
        return out


def _tokens_or_results(results: list[DecodeResult], return_timestamps: bool):
    return results if return_timestamps else [r.tokens for r in results]


@torch.no_grad()
def greedy_search(
    model: nn.Module,
    encoder_out: Tensor,
    encoder_out_lens: Tensor | None = None,
    max_sym_per_frame: int = 1,
    blank_penalty: float = 0.0,
    return_timestamps: bool = False,
) -> list[list[int]] | list[DecodeResult]:
    """Batched greedy search over encoder output (N, T, C) (before ``encoder_proj``).

    Returns token ids per utterance, or ``DecodeResult``s with ``return_timestamps``.
    """
    lens = _check_encoder(encoder_out, encoder_out_lens)
    searcher = GreedySearcher(model, encoder_out.shape[0], max_sym_per_frame, blank_penalty)
    searcher.step(model.joiner.encoder_proj(encoder_out), lens)
    return _tokens_or_results(searcher.results(), return_timestamps)


@torch.no_grad()
def modified_beam_search(
    model: nn.Module,
    encoder_out: Tensor,
    encoder_out_lens: Tensor | None = None,
    beam: int = 4,
    context_graph: ContextGraph | None = None,
    blank_penalty: float = 0.0,
    temperature: float = 1.0,
    return_timestamps: bool = False,
    strict_mode: bool = True,
    lm: LmFusion | None = None,
) -> list[list[int]] | list[DecodeResult]:
    """Batched modified beam search (one symbol per frame) over encoder output (N, T, C),
    optionally biased toward the phrases of ``context_graph`` and fused with an n-gram ``lm``
    (see ``BeamSearcher``)."""
    lens = _check_encoder(encoder_out, encoder_out_lens)
    searcher = BeamSearcher(
        model,
        encoder_out.shape[0],
        beam,
        context_graph,
        blank_penalty,
        temperature,
        strict_mode,
        lm=lm,
    )
    searcher.step(model.joiner.encoder_proj(encoder_out), lens)
    return _tokens_or_results(searcher.results(final=True), return_timestamps)
