"""Run an exported streaming transducer (``encoder.onnx``, ``decoder.onnx``, ``joiner.onnx``) with
onnxruntime, the way sherpa-onnx drives it: zero initial states built from the encoder's input
shapes, fixed windows of ``T`` feature frames advanced by ``decode_chunk_len``, and greedy search.

Used by the export parity check and its tests; it works on icefall's own ONNX files as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}


def _session(path: str | Path, num_threads: int = 1):
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; run `hotline-asr export` first")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = num_threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _metadata(session) -> dict[str, str]:
    return dict(session.get_modelmeta().custom_metadata_map)


@dataclass
class EncoderStream:
    """The result of running the encoder over a whole feature sequence chunk by chunk."""

    encoder_out: np.ndarray  # (N, num_chunks * frames_per_chunk, joiner_dim)
    states: dict[str, np.ndarray]  # state input name -> value after the last chunk
    num_chunks: int


class OnnxTransducer:
    """The three exported models in onnxruntime sessions, with sherpa-onnx's streaming protocol."""

    def __init__(
        self,
        encoder: str | Path,
        decoder: str | Path,
        joiner: str | Path,
        num_threads: int = 1,
    ) -> None:
        self.encoder = _session(encoder, num_threads)
        self.decoder = _session(decoder, num_threads)
        self.joiner = _session(joiner, num_threads)
        meta = _metadata(self.encoder)
        for key in ("T", "decode_chunk_len"):
            if key not in meta:
                raise ValueError(
                    f"{encoder} has no '{key}' in its metadata; it is not a streaming zipformer2 "
                    "encoder exported by `hotline-asr export` or icefall's export-onnx-streaming.py"
                )
        self.encoder_meta = meta
        self.window = int(meta["T"])
        self.shift = int(meta["decode_chunk_len"])
        self.context_size = int(_metadata(self.decoder)["context_size"])
        self.state_names = [i.name for i in self.encoder.get_inputs()[1:]]

    @classmethod
    def from_dir(cls, model_dir: str | Path, int8: bool = False, num_threads: int = 1):
        """Load ``encoder[.int8].onnx`` etc. from a ``hotline-asr export`` output folder."""
        d = Path(model_dir)
        suffix = ".int8.onnx" if int8 else ".onnx"
        return cls(
            d / f"encoder{suffix}", d / f"decoder{suffix}", d / f"joiner{suffix}", num_threads
        )

    def init_states(self, batch_size: int) -> dict[str, np.ndarray]:
        """All-zero states, shaped from the encoder inputs with the symbolic batch axis filled in
        (icefall's ``get_init_states`` is all zeros too, ``processed_lens`` included)."""
        states = {}
        for inp in self.encoder.get_inputs()[1:]:
            shape = [batch_size if isinstance(d, str) or d is None else d for d in inp.shape]
            states[inp.name] = np.zeros(shape, dtype=_ORT_DTYPES[inp.type])
        return states

    def run_encoder(
        self, x: np.ndarray, states: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """One window ``x`` (N, T, 80) -> (encoder_out (N, frames, joiner_dim), new states)."""
        if x.shape[1] != self.window:
            raise ValueError(f"the encoder takes windows of T={self.window} frames, got {x.shape}")
        feeds = {"x": np.ascontiguousarray(x, dtype=np.float32), **states}
        outs = self.encoder.run(None, feeds)
        names = [o.name for o in self.encoder.get_outputs()]
        new = {n.removeprefix("new_"): v for n, v in zip(names[1:], outs[1:], strict=True)}
        return outs[0], new

    def stream_encoder(
        self, features: np.ndarray, states: dict[str, np.ndarray] | None = None
    ) -> EncoderStream:
        """Run ``features`` (N, F, 80) window by window: window k covers frames
        ``[k*shift, k*shift + T)``; trailing frames that do not fill a window are dropped."""
        if features.ndim != 3:
            raise ValueError(f"features must be (N, frames, 80), got shape {features.shape}")
        states = self.init_states(features.shape[0]) if states is None else states
        outs = []
        k = 0
        while k * self.shift + self.window <= features.shape[1]:
            start = k * self.shift
            out, states = self.run_encoder(features[:, start : start + self.window], states)
            outs.append(out)
            k += 1
        if not outs:
            raise ValueError(f"need at least T={self.window} frames, got {features.shape[1]}")
        return EncoderStream(np.concatenate(outs, axis=1), states, k)

    def run_decoder(self, y: np.ndarray) -> np.ndarray:
        return self.decoder.run(None, {"y": np.asarray(y, dtype=np.int64)})[0]

    def run_joiner(self, encoder_out: np.ndarray, decoder_out: np.ndarray) -> np.ndarray:
        feeds = {"encoder_out": encoder_out, "decoder_out": decoder_out}
        return self.joiner.run(None, feeds)[0]

    def greedy_search(
        self, encoder_out: np.ndarray, blank_id: int = 0, unk_id: int | None = None
    ) -> list[int]:
        """Greedy search on one utterance's projected encoder output (frames, joiner_dim): the
        serving engine's :class:`~serving.engine.search.GreedySearch` (at most one symbol per
        frame, start context ``[-1, ..., -1, blank]``; ``unk_id`` is treated like blank)."""
        from serving.engine.search import GreedySearch

        if blank_id != 0:
            raise ValueError(f"the engine's search assumes blank id 0, got {blank_id}")
        search = GreedySearch(self, unk_id=unk_id)  # duck-typed: context_size, run_decoder/joiner
        state = search.empty()
        search.decode(np.ascontiguousarray(encoder_out[None], dtype=np.float32), [state])
        return search.result(state).tokens
