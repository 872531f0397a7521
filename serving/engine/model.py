"""The three ONNX parts of a streaming Zipformer2 transducer, as icefall exports them.

Reads the encoder metadata (``model_type=zipformer2``, ``T``, ``decode_chunk_len``, ...),
builds zero initial states for one stream, and stacks/unstacks per-stream states so that all
ready streams share one batched encoder call. Each state input has exactly one symbolic (batch)
dimension in the ONNX graph; its position differs per state (``cached_key_i`` has it at 1,
``cached_conv1_i`` / ``embed_states`` / ``processed_lens`` at 0), so it is read from the graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

__all__ = ["ModelFiles", "OnlineTransducerModel", "find_model_files"]

_ORT_TO_NUMPY = {
    "tensor(float)": np.float32,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(float16)": np.float16,
}


@dataclass(frozen=True)
class ModelFiles:
    """Paths of one transducer's files in a model folder."""

    encoder: Path
    decoder: Path
    joiner: Path
    tokens: Path


def _pick(folder: Path, part: str, int8: bool) -> Path:
    candidates = sorted(folder.glob(f"{part}*.onnx"))
    quantized = [p for p in candidates if p.name.endswith(".int8.onnx")]
    plain = [p for p in candidates if not p.name.endswith(".int8.onnx")]
    chosen = quantized if (int8 and quantized) else plain
    if int8 and not quantized and part == "encoder":
        raise FileNotFoundError(
            f"int8 was asked for but {folder} has no {part}*.int8.onnx; "
            "quantize the model or pass int8=False"
        )
    if not chosen:
        chosen = quantized
    if not chosen:
        raise FileNotFoundError(
            f"no {part}*.onnx in {folder}; a model folder needs encoder*.onnx, "
            "decoder*.onnx, joiner*.onnx and tokens.txt"
        )
    if len(chosen) > 1:
        names = ", ".join(p.name for p in chosen)
        raise ValueError(
            f"{folder} has several {part} models ({names}); keep one per folder "
            "(plus optionally its .int8.onnx twin)"
        )
    return chosen[0]


def find_model_files(folder: str | Path, int8: bool = False) -> ModelFiles:
    """Locate ``encoder*.onnx``, ``decoder*.onnx``, ``joiner*.onnx`` and ``tokens.txt``.

    With ``int8=True`` the ``*.int8.onnx`` files are used where they exist (the encoder must
    have one); without it they are ignored unless they are the only files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder {folder} does not exist")
    tokens = folder / "tokens.txt"
    if not tokens.is_file():
        raise FileNotFoundError(f"{tokens} is missing; export writes it next to the ONNX files")
    return ModelFiles(
        encoder=_pick(folder, "encoder", int8),
        decoder=_pick(folder, "decoder", int8),
        joiner=_pick(folder, "joiner", int8),
        tokens=tokens,
    )


def _session(path: Path, num_threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = num_threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _ints(meta: dict[str, str], key: str, path: Path) -> list[int]:
    if key not in meta:
        raise ValueError(
            f"{path.name} has no '{key}' metadata; export the encoder with the zipformer2 "
            "streaming exporter (it writes T, decode_chunk_len and the per-stack dims)"
        )
    return [int(v) for v in meta[key].split(",")]


@dataclass(frozen=True)
class StateSpec:
    """One encoder state input: its name, per-stream shape (batch dim = 1), batch axis, dtype."""

    name: str
    shape: tuple[int, ...]
    batch_axis: int
    dtype: type


class OnlineTransducerModel:
    """Encoder, decoder and joiner sessions of a streaming Zipformer2 transducer.

    ``chunk_size`` (metadata ``T``) feature frames go into each encoder call and
    ``chunk_shift`` (``decode_chunk_len``) of them are consumed; the rest is right context.
    """

    def __init__(self, files: ModelFiles, num_threads: int = 1) -> None:
        if num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        self.files = files
        self.encoder = _session(files.encoder, num_threads)
        self.decoder = _session(files.decoder, num_threads)
        self.joiner = _session(files.joiner, num_threads)

        meta = self.encoder.get_modelmeta().custom_metadata_map
        model_type = meta.get("model_type", "")
        if model_type != "zipformer2":
            raise ValueError(
                f"{files.encoder.name} has model_type={model_type!r}; this engine runs "
                "streaming Zipformer2 exports (model_type=zipformer2)"
            )
        self.metadata = dict(meta)
        self.chunk_size = _ints(meta, "T", files.encoder)[0]
        self.chunk_shift = _ints(meta, "decode_chunk_len", files.encoder)[0]
        self.num_encoder_layers = _ints(meta, "num_encoder_layers", files.encoder)

        dmeta = self.decoder.get_modelmeta().custom_metadata_map
        self.context_size = int(dmeta.get("context_size", 2))
        self.vocab_size = int(dmeta["vocab_size"]) if "vocab_size" in dmeta else None

        inputs = self.encoder.get_inputs()
        x = inputs[0]
        self.feature_dim = int(x.shape[2])
        if int(x.shape[1]) != self.chunk_size:
            raise ValueError(
                f"encoder input x has {x.shape[1]} frames but metadata T={self.chunk_size}"
            )
        self._x_name = x.name
        self.state_specs = [self._spec(i) for i in inputs[1:]]
        expected = 6 * sum(self.num_encoder_layers) + 2
        if len(self.state_specs) != expected:
            raise ValueError(
                f"encoder has {len(self.state_specs)} state inputs, expected {expected} "
                f"(6 per layer for {sum(self.num_encoder_layers)} layers + embed_states "
                "+ processed_lens)"
            )
        self._output_names = [o.name for o in self.encoder.get_outputs()]
        self._dec_in = self.decoder.get_inputs()[0].name
        self._dec_out = self.decoder.get_outputs()[0].name
        j_in = self.joiner.get_inputs()
        self._join_enc, self._join_dec = j_in[0].name, j_in[1].name
        self._join_out = self.joiner.get_outputs()[0].name
        self.joiner_dim = int(j_in[0].shape[1])
        if self.vocab_size is None:
            self.vocab_size = int(self.joiner.get_outputs()[0].shape[1])
        # One zero chunk: warms the sessions up and gives the encoder's output frame count.
        x0 = np.zeros((1, self.chunk_size, self.feature_dim), dtype=np.float32)
        out0, _ = self.run_encoder(x0, self.init_states())
        self.encoder_frames_per_chunk = int(out0.shape[1])
        if self.chunk_shift % self.encoder_frames_per_chunk:
            raise ValueError(
                f"decode_chunk_len={self.chunk_shift} is not a multiple of the "
                f"{self.encoder_frames_per_chunk} encoder frames per chunk"
            )
        self.subsampling = self.chunk_shift // self.encoder_frames_per_chunk

    def _spec(self, node: ort.NodeArg) -> StateSpec:
        symbolic = [i for i, d in enumerate(node.shape) if not isinstance(d, int)]
        if len(symbolic) != 1:
            raise ValueError(
                f"encoder state {node.name} has shape {node.shape}; expected exactly one "
                "dynamic (batch) dimension; export with dynamic batch"
            )
        axis = symbolic[0]
        shape = tuple(1 if i == axis else int(d) for i, d in enumerate(node.shape))
        return StateSpec(node.name, shape, axis, _ORT_TO_NUMPY[node.type])

    @classmethod
    def from_folder(
        cls, folder: str | Path, num_threads: int = 1, int8: bool = False
    ) -> OnlineTransducerModel:
        return cls(find_model_files(folder, int8=int8), num_threads=num_threads)

    # --- states -----------------------------------------------------------------------------

    def init_states(self) -> list[np.ndarray]:
        """Zero states of one stream (batch dim 1)."""
        return [np.zeros(s.shape, dtype=s.dtype) for s in self.state_specs]

    def state_bytes(self) -> int:
        """Bytes of encoder state held per stream."""
        return sum(int(np.prod(s.shape)) * np.dtype(s.dtype).itemsize for s in self.state_specs)

    def stack_states(self, states: list[list[np.ndarray]]) -> list[np.ndarray]:
        """Per-stream state lists -> one batched list (concatenated along each batch axis)."""
        if len(states) == 1:
            return states[0]
        return [
            np.concatenate([s[k] for s in states], axis=spec.batch_axis)
            for k, spec in enumerate(self.state_specs)
        ]

    def unstack_states(self, batched: list[np.ndarray], n: int) -> list[list[np.ndarray]]:
        """Inverse of :meth:`stack_states` for ``n`` streams."""
        if n == 1:
            return [batched]
        out: list[list[np.ndarray]] = [[] for _ in range(n)]
        for spec, value in zip(self.state_specs, batched, strict=True):
            lead = (slice(None),) * spec.batch_axis
            for i in range(n):
                # A view: the streams of one batch share its arrays until their next call.
                out[i].append(value[(*lead, slice(i, i + 1))])
        return out

    # --- networks ---------------------------------------------------------------------------

    def run_encoder(
        self, x: np.ndarray, states: list[np.ndarray]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """x: (N, T, feature_dim) float32; returns encoder_out (N, T', joiner_dim) and new states."""
        feeds = {self._x_name: x}
        for spec, value in zip(self.state_specs, states, strict=True):
            feeds[spec.name] = value
        outputs = self.encoder.run(self._output_names, feeds)
        return outputs[0], outputs[1:]

    def run_decoder(self, context: np.ndarray) -> np.ndarray:
        """context: (N, context_size) int64 token ids (-1 = none) -> (N, joiner_dim)."""
        return self.decoder.run([self._dec_out], {self._dec_in: context})[0]

    def run_joiner(self, encoder_out: np.ndarray, decoder_out: np.ndarray) -> np.ndarray:
        """(N, joiner_dim) x2 -> logits (N, vocab_size)."""
        return self.joiner.run(
            [self._join_out], {self._join_enc: encoder_out, self._join_dec: decoder_out}
        )[0]
