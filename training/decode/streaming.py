"""Chunk-by-chunk streaming decoding with the torch model (a simulation of the ONNX engine,
as icefall's ``streaming_decode.py``).

Features (100 Hz fbank) are right-padded with ``LOG_EPS`` (the front end's 13-frame
context plus ``tail_padding_frames``), then fed in windows of ``2 * chunk_size + 13`` frames
that advance by ``2 * chunk_size``; each window yields ``chunk_size // 2`` encoder frames.
Encoder states and search hypotheses are carried from window to window. The result equals
searching the chunk-masked ``forward_encoder`` output of the same padded features.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from serving.context_graph import ContextGraph
from serving.lm import LmFusion
from training.decode.search import BeamSearcher, DecodeResult, GreedySearcher
from training.served import SERVED_CHUNK_SIZE, SERVED_LEFT_CONTEXT

__all__ = ["LOG_EPS", "StreamingDecoder", "pad_for_streaming"]

LOG_EPS = math.log(1e-10)
FRONT_END_CONTEXT = 13  # Conv2dSubsampling's 7 frames plus 2 * 3 for the ConvNeXt look-ahead


def pad_for_streaming(
    features: Tensor, chunk_size: int, tail_padding_frames: int = 30
) -> tuple[Tensor, int]:
    """(T, F) features -> (padded (num_chunks * 2 * chunk_size + 13, F), num_chunks).

    The padded frames are exactly what the streaming decoder feeds, window by window."""
    if features.ndim != 2:
        raise ValueError(f"features must be (T, F); got {tuple(features.shape)}")
    stride = 2 * chunk_size
    total = features.shape[0] + FRONT_END_CONTEXT + tail_padding_frames
    num_chunks = max(1, math.ceil(total / stride))
    length = num_chunks * stride + FRONT_END_CONTEXT
    pad = features.new_full((length - features.shape[0], features.shape[1]), LOG_EPS)
    return torch.cat([features, pad], dim=0), num_chunks


class StreamingDecoder:
    """Decode utterances chunk by chunk with a causal ``Transducer``.

    Args:
      model: the transducer (``streaming_forward_encoder``, ``get_init_states``, ``decoder``,
        ``joiner``); it is put in eval mode.
      chunk_size: chunk in 50 Hz frames (after the front end), e.g. 16 (= 320 ms).
      left_context_frames: attention left context in 50 Hz frames, e.g. 64.
      method: ``"greedy"`` or ``"beam"`` (modified beam search).
      beam, context_graph, blank_penalty, max_sym_per_frame, lm: search options.
      tail_padding_frames: LOG_EPS frames appended after the end, so the last words are
        flushed out (icefall uses 30).
    """

    def __init__(
        self,
        model: nn.Module,
        chunk_size: int = SERVED_CHUNK_SIZE,
        left_context_frames: int = SERVED_LEFT_CONTEXT,
        method: str = "greedy",
        beam: int = 4,
        context_graph: ContextGraph | None = None,
        blank_penalty: float = 0.0,
        max_sym_per_frame: int = 1,
        tail_padding_frames: int = 30,
        lm: LmFusion | None = None,
    ) -> None:
        if method not in ("greedy", "beam"):
            raise ValueError(f"method must be 'greedy' or 'beam'; got {method!r}")
        if context_graph is not None and method != "beam":
            raise ValueError("hot words (context_graph) need method='beam'")
        if lm is not None and method != "beam":
            raise ValueError("language-model fusion (lm) needs method='beam'")
        self.lm = lm
        if chunk_size < 2 or chunk_size % 2:
            raise ValueError(f"chunk_size must be a positive even number; got {chunk_size}")
        self.model = model.eval()
        self.chunk_size = chunk_size
        self.left_context_frames = left_context_frames
        self.method = method
        self.beam = beam
        self.context_graph = context_graph
        self.blank_penalty = blank_penalty
        self.max_sym_per_frame = max_sym_per_frame
        self.tail_padding_frames = tail_padding_frames

    @property
    def window(self) -> int:
        """Feature frames per encoder call."""
        return 2 * self.chunk_size + FRONT_END_CONTEXT

    def _searcher(self, batch_size: int) -> GreedySearcher | BeamSearcher:
        if self.method == "greedy":
            return GreedySearcher(
                self.model, batch_size, self.max_sym_per_frame, self.blank_penalty
            )
        return BeamSearcher(
            self.model, batch_size, self.beam, self.context_graph, self.blank_penalty, lm=self.lm
        )

    @torch.no_grad()
    def iter_chunks(self, features: Sequence[Tensor]) -> Iterator[list[DecodeResult]]:
        """Decode a batch of (T_n, F) feature matrices in lockstep, yielding the partial
        results after every chunk; the last yield is the final result (hot-word matches
        finalized). Streams that have ended are padded and their results left unchanged."""
        if not features:
            return
        padded = [pad_for_streaming(f, self.chunk_size, self.tail_padding_frames) for f in features]
        N = len(padded)
        num_chunks = [n for _, n in padded]
        device = next(self.model.parameters()).device
        longest = max(x.shape[0] for x, _ in padded)
        batch = torch.full((N, longest, features[0].shape[1]), LOG_EPS, device=device)
        for n, (x, _) in enumerate(padded):
            batch[n, : x.shape[0]] = x.to(device)

        states = self.model.get_init_states(N, device, left_context_frames=self.left_context_frames)
        searcher = self._searcher(N)
        stride = 2 * self.chunk_size
        window_lens = torch.full((N,), self.window, dtype=torch.int64, device=device)
        for k in range(max(num_chunks)):
            win = batch[:, k * stride : k * stride + self.window]
            out, out_lens, states = self.model.streaming_forward_encoder(
                win, window_lens, states, self.chunk_size, self.left_context_frames
            )
            live = torch.tensor([k < n for n in num_chunks])
            lens = torch.where(live, out_lens.cpu(), torch.zeros_like(out_lens.cpu()))
            searcher.step(self.model.joiner.encoder_proj(out), lens)
            last = k == max(num_chunks) - 1
            if isinstance(searcher, BeamSearcher):
                yield searcher.results(final=last)
            else:
                yield searcher.results()

    def decode(self, features: Sequence[Tensor] | Tensor) -> list[DecodeResult]:
        """Final results for a batch of (T_n, F) features (or one (T, F) matrix)."""
        if isinstance(features, Tensor) and features.ndim == 2:
            features = [features]
        results: list[DecodeResult] = []
        for partial in self.iter_chunks(list(features)):
            results = partial
        return results
