"""Transducer search over a batch of streams, one encoder chunk at a time (numpy).

``GreedySearch`` and ``ModifiedBeamSearch`` follow sherpa-onnx's online decoders: the token
history starts with ``context_size`` entries ``[-1, ..., -1, 0]`` (-1 embeds to zeros), the
unknown token is treated like blank, at most one token is emitted per encoder frame, and
``num_trailing_blanks`` counts blank frames since the last token (for endpointing).
Hot words bias the beam search through a per-stream :class:`~serving.context_graph.ContextGraph`,
scored as in icefall's ``modified_beam_search`` (``forward_one_step`` on every emitted token,
``finalize`` when choosing the best hypothesis).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from serving.context_graph import ContextGraph, ContextState
from serving.lm import LmFusion

from .model import OnlineTransducerModel

__all__ = [
    "BeamState",
    "GreedySearch",
    "GreedyState",
    "Hypothesis",
    "ModifiedBeamSearch",
    "SearchResult",
    "log_softmax",
    "top_k",
]


def log_softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax (float32 in, float32 out)."""
    m = x.max(axis=-1, keepdims=True)
    z = x - m
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def top_k(rows: np.ndarray, k: int) -> tuple[list[float], list[int]]:
    """The ``k`` best (score, flat index) of ``rows`` (H, V), best first (ties: lower index)."""
    block = rows.reshape(-1)
    k = min(k, block.size)
    idx = np.argpartition(-block, k - 1)[:k]
    idx = idx[np.argsort(-block[idx], kind="stable")]
    return block[idx].tolist(), idx.tolist()


@dataclass
class SearchResult:
    """Best path of one stream's current segment (leading context stripped)."""

    tokens: list[int]
    frames: list[int]  # encoder frame index (since the segment start) of each token
    num_trailing_blanks: int
    frame_offset: int  # encoder frames decoded in this segment


@dataclass
class GreedyState:
    """Greedy search state of one stream."""

    tokens: list[int]  # context_size leading entries, then emitted tokens
    frames: list[int] = field(default_factory=list)
    num_trailing_blanks: int = 0
    frame_offset: int = 0
    decoder_out: np.ndarray | None = None  # (joiner_dim,) for tokens[-context_size:]


class GreedySearch:
    """Batched greedy search (one joiner call per encoder frame for the whole batch)."""

    def __init__(
        self, model: OnlineTransducerModel, unk_id: int | None = None, blank_penalty: float = 0.0
    ) -> None:
        self.model = model
        self.unk_id = -1 if unk_id is None else unk_id
        self.blank_penalty = blank_penalty

    def empty(self, context_graph: ContextGraph | None = None) -> GreedyState:
        c = self.model.context_size
        return GreedyState(tokens=[-1] * (c - 1) + [0])

    def decode(
        self,
        encoder_out: np.ndarray,
        states: list[GreedyState],
    ) -> None:
        """Advance each state over its row of ``encoder_out`` (N, T, C), in place."""
        model, c = self.model, self.model.context_size
        num_frames = encoder_out.shape[1]
        missing = [i for i, s in enumerate(states) if s.decoder_out is None]
        if missing:
            ctx = np.array([states[i].tokens[-c:] for i in missing], dtype=np.int64)
            for i, row in zip(missing, model.run_decoder(ctx), strict=True):
                states[i].decoder_out = row
        dec = np.stack([s.decoder_out for s in states])
        for t in range(num_frames):
            logits = model.run_joiner(np.ascontiguousarray(encoder_out[:, t]), dec)
            if self.blank_penalty > 0:
                logits[:, 0] -= self.blank_penalty
            best = logits.argmax(axis=1)
            emitted = []
            for i, y in enumerate(best.tolist()):
                s = states[i]
                if y != 0 and y != self.unk_id:
                    s.tokens.append(y)
                    s.frames.append(s.frame_offset + t)
                    s.num_trailing_blanks = 0
                    emitted.append(i)
                else:
                    s.num_trailing_blanks += 1
            if emitted:
                ctx = np.array([states[i].tokens[-c:] for i in emitted], dtype=np.int64)
                dec[emitted] = model.run_decoder(ctx)  # dec is our own stacked copy
        for i, s in enumerate(states):
            s.decoder_out = dec[i].copy()
            s.frame_offset += num_frames

    def result(self, state: GreedyState) -> SearchResult:
        c = self.model.context_size
        return SearchResult(
            tokens=state.tokens[c:],
            frames=list(state.frames),
            num_trailing_blanks=state.num_trailing_blanks,
            frame_offset=state.frame_offset,
        )

    def new_segment(
        self, state: GreedyState, context_graph: ContextGraph | None = None
    ) -> GreedyState:
        """State for the next sentence: keeps the last ``context_size`` tokens as context."""
        c = self.model.context_size
        if len(state.tokens) > c:
            return GreedyState(tokens=state.tokens[-c:], decoder_out=state.decoder_out)
        return self.empty()

    def set_context_graph(self, state: GreedyState, context_graph: ContextGraph | None) -> None:
        if context_graph is not None:
            raise ValueError(
                "hot words need decoding_method='modified_beam_search'; greedy search ignores them"
            )


@dataclass
class Hypothesis:
    """One beam entry."""

    ys: tuple[int, ...]  # context_size leading entries, then emitted tokens
    log_prob: float
    frames: tuple[int, ...] = ()
    context_state: ContextState | None = None
    num_trailing_blanks: int = 0
    decoder_out: np.ndarray | None = None  # for ys[-context_size:], shared with the parent


@dataclass
class BeamState:
    """Beam search state of one stream: hypotheses keyed by their token sequence."""

    hyps: dict[tuple[int, ...], Hypothesis]
    context_graph: ContextGraph | None = None
    frame_offset: int = 0


def _add(hyps: dict[tuple[int, ...], Hypothesis], hyp: Hypothesis) -> None:
    old = hyps.get(hyp.ys)
    if old is None:
        hyps[hyp.ys] = hyp
    else:
        old.log_prob = float(np.logaddexp(old.log_prob, hyp.log_prob))


class ModifiedBeamSearch:
    """Batched modified beam search (at most one token per frame, ``beam`` active paths)."""

    def __init__(
        self,
        model: OnlineTransducerModel,
        beam: int = 4,
        unk_id: int | None = None,
        blank_penalty: float = 0.0,
        lm: LmFusion | None = None,
    ) -> None:
        if beam < 1:
            raise ValueError(f"beam must be >= 1, got {beam}")
        self.model = model
        self.beam = beam
        self.unk_id = -1 if unk_id is None else unk_id
        self.blank_penalty = blank_penalty
        self.lm = lm
        self._skip = frozenset({0, self.unk_id})

    def empty(self, context_graph: ContextGraph | None = None) -> BeamState:
        c = self.model.context_size
        ys = tuple([-1] * (c - 1) + [0])
        root = context_graph.root if context_graph is not None else None
        return BeamState({ys: Hypothesis(ys, 0.0, context_state=root)}, context_graph)

    def _fill_decoder_out(self, hyps: list[Hypothesis]) -> None:
        c = self.model.context_size
        missing = [h for h in hyps if h.decoder_out is None]
        if missing:
            ctx = np.array([h.ys[-c:] for h in missing], dtype=np.int64)
            for h, row in zip(missing, self.model.run_decoder(ctx), strict=True):
                h.decoder_out = row

    def decode(
        self,
        encoder_out: np.ndarray,
        states: list[BeamState],
    ) -> None:
        """Advance each state over its row of ``encoder_out`` (N, T, C), in place."""
        num_frames = encoder_out.shape[1]
        vocab = self.model.vocab_size
        for t in range(num_frames):
            per_stream = [list(s.hyps.values()) for s in states]
            flat = [h for hyps in per_stream for h in hyps]
            self._fill_decoder_out(flat)
            counts = [len(h) for h in per_stream]
            enc = np.repeat(encoder_out[:, t], counts, axis=0)
            dec = np.stack([h.decoder_out for h in flat])
            logits = self.model.run_joiner(enc, dec)
            if self.blank_penalty > 0:
                logits[:, 0] -= self.blank_penalty
            logp = log_softmax(logits).astype(np.float64)
            logp += np.array([h.log_prob for h in flat])[:, None]
            start = 0
            for b, hyps in enumerate(per_stream):
                state = states[b]
                rows = logp[start : start + len(hyps)]
                start += len(hyps)
                if self.lm is not None:
                    scores, top = self.lm.top(rows, [h.ys for h in hyps], self.beam, self._skip)
                else:
                    scores, top = top_k(rows, self.beam)
                new: dict[tuple[int, ...], Hypothesis] = {}
                for idx, score in zip(top, scores, strict=True):
                    parent = hyps[idx // vocab]
                    token = idx % vocab
                    if token == 0 or token == self.unk_id:
                        hyp = Hypothesis(
                            parent.ys,
                            score,
                            parent.frames,
                            parent.context_state,
                            parent.num_trailing_blanks + 1,
                            parent.decoder_out,
                        )
                    else:
                        ctx_state = parent.context_state
                        if state.context_graph is not None and ctx_state is not None:
                            bonus, ctx_state, _ = state.context_graph.forward_one_step(
                                ctx_state, token
                            )
                            score += bonus
                        hyp = Hypothesis(
                            parent.ys + (token,),
                            score,
                            parent.frames + (state.frame_offset + t,),
                            ctx_state,
                            0,
                            None,
                        )
                    _add(new, hyp)
                state.hyps = new
        for s in states:
            s.frame_offset += num_frames

    def best(self, state: BeamState) -> Hypothesis:
        """Most probable hypothesis (length-normalised; hot-word partial matches finalized)."""
        graph = state.context_graph

        def score(h: Hypothesis) -> float:
            total = h.log_prob
            if graph is not None and h.context_state is not None:
                total += graph.finalize(h.context_state)[0]
            return total / len(h.ys)

        return max(state.hyps.values(), key=score)

    def result(self, state: BeamState) -> SearchResult:
        c = self.model.context_size
        h = self.best(state)
        return SearchResult(
            tokens=list(h.ys[c:]),
            frames=list(h.frames),
            num_trailing_blanks=h.num_trailing_blanks,
            frame_offset=state.frame_offset,
        )

    def new_segment(self, state: BeamState, context_graph: ContextGraph | None = None) -> BeamState:
        """State for the next sentence, as sherpa-onnx builds it: the blank start context with
        score 0, plus every old hypothesis' last ``context_size`` tokens with its old score.
        The old scores lie far below 0, so in practice the beam restarts from the blank
        context (the way training sentences start); hot-word matching restarts at the root."""
        c = self.model.context_size
        graph = context_graph if context_graph is not None else state.context_graph
        if len(self.best(state).ys) <= c:
            return self.empty(graph)
        fresh = self.empty(graph)
        root = graph.root if graph is not None else None
        hyps = fresh.hyps
        for h in state.hyps.values():
            _add(hyps, Hypothesis(h.ys[-c:], h.log_prob, (), root, 0, h.decoder_out))
        return BeamState(hyps, graph)

    def set_context_graph(self, state: BeamState, context_graph: ContextGraph | None) -> None:
        """Switch hot words; all hypotheses restart matching at the new graph's root."""
        state.context_graph = context_graph
        root = context_graph.root if context_graph is not None else None
        for h in state.hyps.values():
            h.context_state = root
