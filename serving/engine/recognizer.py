"""Streaming recognizer with sherpa-onnx's Python API shape, in numpy + onnxruntime.

    rec = Recognizer.from_folder("exp/onnx", decoding_method="modified_beam_search")
    s = rec.create_stream(hotwords=["公积金"])
    s.accept_waveform(8000, samples)          # any chunk size, 8 or 16 kHz
    while rec.is_ready(s):
        rec.decode_streams([s])               # many streams: one batched encoder call
    r = rec.get_result(s)
    if rec.is_endpoint(s):
        rec.reset(s)                          # next sentence; decoder context kept

Behaviour matches sherpa-onnx's ``OnlineRecognizer`` for transducers: a chunk is decoded when
more than ``T`` feature frames past the processed ones are ready, ``T`` frames go in and
``decode_chunk_len`` are consumed; ``reset`` keeps encoder states and the last
``context_size`` tokens; result timestamps count from the segment's ``start_time``.
One difference: ``input_finished()`` itself appends ``tail_padding_s`` (0.66 s) of zeros, which
sherpa-onnx leaves to its callers (its Python examples append exactly that), so the last
words are always flushed.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from serving.context_graph import ContextGraph
from serving.features import FbankConfig, StreamingFbank
from serving.lm import DEFAULT_LM_SCALE, LmFusion, NgramLM
from serving.tokens import TokenTable

from .endpoint import EndpointConfig, which_rule
from .model import OnlineTransducerModel, find_model_files
from .search import BeamState, GreedySearch, GreedyState, ModifiedBeamSearch, SearchResult

__all__ = ["EndpointConfig", "Recognizer", "Result", "Stream"]

DECODING_METHODS = ("greedy_search", "modified_beam_search")


@dataclass
class Result:
    """Text of a stream's current segment (sentence)."""

    text: str
    tokens: list[str]
    token_ids: list[int]
    timestamps: list[float]  # seconds from start_time, one per token
    start_time: float  # seconds from the start of the stream
    is_final: bool  # endpoint reached, or input finished and everything decoded
    segment: int  # index of the segment within the stream

    @property
    def end_time(self) -> float:
        """Time of the last token (seconds from the stream start); start_time if none."""
        return self.start_time + (self.timestamps[-1] if self.timestamps else 0.0)


@dataclass
class _SegmentCounters:
    start_frame: int = 0  # absolute feature frame where the segment starts
    processed: int = 0  # feature frames consumed in this segment
    index: int = 0


class Stream:
    """One audio stream (a call leg). Create with :meth:`Recognizer.create_stream`."""

    def __init__(self, recognizer: Recognizer, hotwords: Sequence[str] | None) -> None:
        self._rec = recognizer
        self._fbank = StreamingFbank(recognizer.fbank_config)
        self._sample_rate: int | None = None
        self._finished = False
        self._seg = _SegmentCounters()
        self._popped = 0
        self.context_graph = recognizer._build_graph(hotwords)
        self.encoder_states = recognizer.model.init_states()
        self.search_state: GreedyState | BeamState = recognizer.search.empty(self.context_graph)

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def sample_rate(self) -> int | None:
        return self._sample_rate

    @property
    def num_frames_ready(self) -> int:
        """Feature frames available since the segment start."""
        return self._fbank.num_frames_ready - self._seg.start_frame

    @property
    def num_processed_frames(self) -> int:
        """Feature frames consumed by the encoder since the segment start."""
        return self._seg.processed

    def accept_waveform(self, sample_rate: int, samples: np.ndarray) -> None:
        """Add samples (float32 in [-1, 1] or int16), at any rate (resampled to 16 kHz)."""
        if self._finished:
            raise RuntimeError("accept_waveform() after input_finished(); create a new stream")
        if self._sample_rate is not None and sample_rate != self._sample_rate:
            raise ValueError(
                f"stream started at {self._sample_rate} Hz, got {sample_rate} Hz; "
                "keep one rate per stream"
            )
        self._sample_rate = int(sample_rate)
        self._fbank.accept_waveform(sample_rate, np.asarray(samples))

    def input_finished(self) -> None:
        """No more audio. Appends the recognizer's tail padding so the last chunk is decoded."""
        if self._finished:
            return
        rate = self._sample_rate or self._rec.fbank_config.sample_rate
        pad = int(round(self._rec.tail_padding_s * rate))
        if pad > 0:
            self._fbank.accept_waveform(rate, np.zeros(pad, dtype=np.float32))
        self._fbank.input_finished()
        self._finished = True

    def set_hotwords(self, hotwords: Sequence[str] | None) -> None:
        """Replace this stream's hot words (added to the recognizer's). Best between sentences:
        partial matches in progress restart from the new graph's root."""
        graph = self._rec._build_graph(hotwords)
        self._rec.search.set_context_graph(self.search_state, graph)
        self.context_graph = graph

    def _features(self, n: int) -> np.ndarray:
        start = self._seg.start_frame + self._seg.processed
        return self._fbank.get_frames(start, n)

    def _advance(self, shift: int) -> None:
        self._seg.processed += shift
        done = self._seg.start_frame + self._seg.processed
        if done > self._popped:  # StreamingFbank.pop(n) drops n more of the oldest frames
            self._fbank.pop(done - self._popped)
            self._popped = done


class Recognizer:
    """Streaming transducer recognizer over ONNX files (see the module docstring)."""

    def __init__(
        self,
        model: OnlineTransducerModel,
        tokens: TokenTable,
        decoding_method: str = "greedy_search",
        beam: int = 4,
        hotwords: Sequence[str] | None = None,
        hotwords_score: float = 1.5,
        endpoint: EndpointConfig | None = None,
        tail_padding_s: float = 0.66,
        blank_penalty: float = 0.0,
        max_batch_size: int = 32,
        lm: str | Path | NgramLM | None = None,
        lm_scale: float = DEFAULT_LM_SCALE,
    ) -> None:
        if decoding_method not in DECODING_METHODS:
            raise ValueError(
                f"decoding_method must be one of {DECODING_METHODS}, got {decoding_method!r}"
            )
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if blank_penalty < 0:
            raise ValueError(
                f"blank_penalty must be 0 or more (it is taken off the blank logit), "
                f"got {blank_penalty}"
            )
        if lm is not None and decoding_method != "modified_beam_search":
            raise ValueError(
                "a language model needs decoding_method='modified_beam_search'; greedy search "
                "cannot use it"
            )
        self.model = model
        self.tokens = tokens
        self.decoding_method = decoding_method
        self.hotwords = list(hotwords or [])
        self.hotwords_score = hotwords_score
        self.endpoint = endpoint or EndpointConfig()
        self.tail_padding_s = tail_padding_s
        self.max_batch_size = max_batch_size
        self.fbank_config = FbankConfig(num_bins=model.feature_dim)
        unk = tokens.unk_id
        if decoding_method == "greedy_search":
            self.search: GreedySearch | ModifiedBeamSearch = GreedySearch(
                model, unk_id=unk, blank_penalty=blank_penalty
            )
        else:
            self.search = ModifiedBeamSearch(
                model,
                beam=beam,
                unk_id=unk,
                blank_penalty=blank_penalty,
                lm=self._lm_fusion(lm, lm_scale),
            )
        self._default_graph = self._compile_hotwords(self.hotwords)

    @classmethod
    def from_folder(
        cls,
        folder: str | Path,
        num_threads: int = 1,
        decoding_method: str = "greedy_search",
        beam: int = 4,
        hotwords: Sequence[str] | None = None,
        hotwords_score: float = 1.5,
        endpoint: EndpointConfig | None = None,
        tail_padding_s: float = 0.66,
        blank_penalty: float = 0.0,
        int8: bool = False,
        max_batch_size: int = 32,
        lm: str | Path | NgramLM | None = None,
        lm_scale: float = DEFAULT_LM_SCALE,
    ) -> Recognizer:
        """Load ``encoder*.onnx``, ``decoder*.onnx``, ``joiner*.onnx`` and ``tokens.txt``
        from ``folder`` (the ``*.int8.onnx`` ones with ``int8=True``)."""
        files = find_model_files(folder, int8=int8)
        model = OnlineTransducerModel(files, num_threads=num_threads)
        return cls(
            model,
            TokenTable.load(files.tokens),
            decoding_method=decoding_method,
            beam=beam,
            hotwords=hotwords,
            hotwords_score=hotwords_score,
            endpoint=endpoint,
            tail_padding_s=tail_padding_s,
            blank_penalty=blank_penalty,
            max_batch_size=max_batch_size,
            lm=lm,
            lm_scale=lm_scale,
        )

    def _lm_fusion(self, lm: str | Path | NgramLM | None, scale: float) -> LmFusion | None:
        if lm is None:
            return None
        if isinstance(lm, (str, Path)):
            lm = NgramLM.from_arpa(lm, self.tokens)
        return LmFusion(lm, scale=scale)

    # --- streams ----------------------------------------------------------------------------

    def _build_graph(self, hotwords: Sequence[str] | None) -> ContextGraph | None:
        """The graph for a stream: its hot words plus the recognizer's (the recognizer's own
        graph, shared, when the stream adds none; graphs are read-only during search)."""
        extra = [h for h in hotwords or [] if h.strip()]
        if not extra:
            return self._default_graph
        return self._compile_hotwords([*extra, *self.hotwords])

    def _compile_hotwords(self, phrases: Sequence[str]) -> ContextGraph | None:
        phrases = [h.strip() for h in phrases if h.strip()]
        if not phrases:
            return None
        if self.decoding_method != "modified_beam_search":
            raise ValueError(
                "hot words need decoding_method='modified_beam_search'; greedy search cannot "
                "use them"
            )
        unk = self.tokens.unk_id
        usable = []
        for p in phrases:
            if unk in self.tokens.encode(p):
                warnings.warn(
                    f"hot word {p!r} has characters missing from tokens.txt; skipped",
                    stacklevel=3,
                )
            else:
                usable.append(p)
        if not usable:
            return None
        return ContextGraph.from_texts(usable, self.tokens.encode, score=self.hotwords_score)

    def create_stream(self, hotwords: Sequence[str] | None = None) -> Stream:
        """A new stream; ``hotwords`` are added to the recognizer's own hot words."""
        return Stream(self, hotwords)

    def is_ready(self, stream: Stream) -> bool:
        """True when a full encoder window (T frames, plus one) is available."""
        return stream.num_processed_frames + self.model.chunk_size < stream.num_frames_ready

    # --- decoding ---------------------------------------------------------------------------

    def decode_stream(self, stream: Stream) -> bool:
        return self.decode_streams([stream]) == 1

    def decode_streams(self, streams: Sequence[Stream]) -> int:
        """Decode one chunk of every ready stream (batched: one encoder call per up to
        ``max_batch_size`` streams); streams that are not ready are skipped.
        Returns the number of streams decoded."""
        ready = [s for s in streams if self.is_ready(s)]
        for i in range(0, len(ready), self.max_batch_size):
            self._decode_batch(ready[i : i + self.max_batch_size])
        return len(ready)

    def _decode_batch(self, batch: list[Stream]) -> None:
        model = self.model
        x = np.stack([s._features(model.chunk_size) for s in batch])
        states = model.stack_states([s.encoder_states for s in batch])
        encoder_out, new_states = model.run_encoder(x, states)
        self.search.decode(encoder_out, [s.search_state for s in batch])
        for s, st in zip(batch, model.unstack_states(new_states, len(batch)), strict=True):
            s.encoder_states = st
            s._advance(model.chunk_shift)

    # --- results ----------------------------------------------------------------------------

    def _search_result(self, stream: Stream) -> SearchResult:
        return self.search.result(stream.search_state)

    @property
    def frame_shift_s(self) -> float:
        """Seconds per encoder output frame (feature shift x subsampling)."""
        return self.fbank_config.frame_shift * self.model.subsampling

    def get_result(self, stream: Stream) -> Result:
        r = self._search_result(stream)
        shift = self.frame_shift_s
        is_final = (stream.finished and not self.is_ready(stream)) or self.is_endpoint(stream)
        return Result(
            text=self.tokens.decode(r.tokens),
            tokens=[self.tokens[t] for t in r.tokens],
            token_ids=list(r.tokens),
            timestamps=[round(f * shift, 4) for f in r.frames],
            start_time=round(stream._seg.start_frame * self.fbank_config.frame_shift, 4),
            is_final=is_final,
            segment=stream._seg.index,
        )

    def endpoint_rule(self, stream: Stream) -> int | None:
        """Which endpoint rule (1-3) fires for the stream now, or ``None``."""
        r = self._search_result(stream)
        return which_rule(
            self.endpoint,
            stream.num_processed_frames,
            r.num_trailing_blanks,
            frame_shift_s=self.fbank_config.frame_shift,
            subsampling=self.model.subsampling,
        )

    def is_endpoint(self, stream: Stream) -> bool:
        return self.endpoint_rule(stream) is not None

    def reset(self, stream: Stream) -> None:
        """Start the next segment: counters move on, encoder states and the decoder's
        ``context_size`` last tokens are kept, hot-word matching restarts."""
        if self._search_result(stream).tokens:
            stream._seg.index += 1
        stream.search_state = self.search.new_segment(stream.search_state, stream.context_graph)
        stream._seg.start_frame += stream._seg.processed
        stream._seg.processed = 0
