"""ONNX export of a streaming Zipformer2 transducer in icefall's / sherpa-onnx's ``zipformer2`` form.

Writes ``encoder.onnx`` (one streaming window in, every cached state in and out, output already
through ``joiner.encoder_proj``), ``decoder.onnx`` (context -> ``decoder_proj`` output),
``joiner.onnx`` (``output_linear(tanh(enc + dec))``), ``tokens.txt`` and, optionally, dynamically
quantized ``*.int8.onnx`` copies. Names, state order, dynamic batch axes and ``metadata_props``
follow icefall's ``zipformer/export-onnx-streaming.py``, so sherpa-onnx loads the files unchanged.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from training.served import SERVED_CHUNK_SIZE, SERVED_LEFT_CONTEXT

# How icefall names the six cached tensors of each encoder layer, in order.
LAYER_STATE_KINDS = ("key", "nonlin_attn", "val1", "val2", "conv1", "conv2")
# Frames the front end consumes beyond 2 * chunk: 7 for the convs, 2 * 3 for ConvNeXt look-ahead.
EMBED_PAD = 7 + 2 * 3


@dataclass
class ExportOptions:
    """What to export. ``chunk_size`` and ``left_context`` are in 50 Hz frames (after
    ``encoder_embed``), as icefall's ``--chunk-size`` and ``--left-context-frames``."""

    chunk_size: int = SERVED_CHUNK_SIZE
    left_context: int = SERVED_LEFT_CONTEXT
    int8: bool = True
    opset: int = 13


@dataclass
class ExportedModel:
    """Paths written by :func:`export_transducer` and the metadata stored in them."""

    out_dir: Path
    encoder: Path
    decoder: Path
    joiner: Path
    tokens: Path
    int8: dict[str, Path] = field(default_factory=dict)  # "encoder" -> encoder.int8.onnx ...
    encoder_metadata: dict[str, str] = field(default_factory=dict)
    decoder_metadata: dict[str, str] = field(default_factory=dict)
    joiner_metadata: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def state_names(num_layers: int) -> list[str]:
    """icefall's encoder state input names: 6 per layer, then ``embed_states``, ``processed_lens``."""
    names = [f"cached_{kind}_{i}" for i in range(num_layers) for kind in LAYER_STATE_KINDS]
    return names + ["embed_states", "processed_lens"]


class OnnxEncoder(nn.Module):
    """One streaming window: ``x`` (N, T, 80) and the flat state list in, ``encoder_proj`` of the
    encoder output and the new states out (icefall's ``OnnxEncoder``)."""

    def __init__(self, model: nn.Module, chunk_size: int, left_context: int):
        super().__init__()
        self.model = model
        self.encoder_proj = model.joiner.encoder_proj
        self.chunk_size = chunk_size
        self.left_context = left_context

    def forward(self, x: Tensor, states: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        # Every window is full; built from x so that the batch axis stays dynamic in the trace.
        x_lens = torch.zeros_like(x[:, 0, 0], dtype=torch.int64) + x.shape[1]
        out, _, new_states = self.model.streaming_forward_encoder(
            x, x_lens, states, self.chunk_size, self.left_context
        )
        return self.encoder_proj(out), new_states


class OnnxDecoder(nn.Module):
    """Stateless decoder on a (N, context_size) context, then ``joiner.decoder_proj``."""

    def __init__(self, decoder: nn.Module, decoder_proj: nn.Module):
        super().__init__()
        self.decoder = decoder
        self.decoder_proj = decoder_proj

    def forward(self, y: Tensor) -> Tensor:
        return self.decoder_proj(self.decoder(y, need_pad=False).squeeze(1))


class OnnxJoiner(nn.Module):
    """``output_linear(tanh(encoder_out + decoder_out))`` on already-projected inputs."""

    def __init__(self, output_linear: nn.Module):
        super().__init__()
        self.output_linear = output_linear

    def forward(self, encoder_out: Tensor, decoder_out: Tensor) -> Tensor:
        return self.output_linear(torch.tanh(encoder_out + decoder_out))


def _join(values) -> str:
    return ",".join(str(int(v)) for v in values)


def _onnx_export(module: nn.Module, args: tuple, path: Path, opset: int, **kwargs) -> None:
    """The TorchScript exporter (``dynamo=False``): torch >= 2.9 defaults to dynamo, which needs
    onnxscript and can freeze the batch dimension."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about Python ints in shape arithmetic
        torch.onnx.export(
            module, args, str(path), opset_version=opset, dynamo=False, verbose=False, **kwargs
        )


def add_metadata(path: Path, metadata: dict[str, str]) -> None:
    """Store ``metadata`` in the model's ``metadata_props`` (sherpa-onnx reads them there)."""
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in metadata.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, str(value)
    onnx.save(model, str(path))


def verify_onnx_io(
    path: Path,
    inputs: dict[str, tuple[list[int | None], int]],
    outputs: dict[str, tuple[list[int | None], int]],
) -> None:
    """Check the file with ``onnx.checker`` and that its inputs/outputs have exactly these names,
    in this order, with these element types and shapes (``None`` = the dynamic batch axis ``N``;
    output dims given as ``-1`` are not checked, the exporter leaves them symbolic)."""
    import onnx

    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    for kind, want, have in (
        ("input", inputs, model.graph.input),
        ("output", outputs, model.graph.output),
    ):
        names = [v.name for v in have]
        if names != list(want):
            raise RuntimeError(f"{path.name}: {kind} names are {names}, expected {list(want)}")
        for v in have:
            shape_want, elem_want = want[v.name]
            tt = v.type.tensor_type
            if tt.elem_type != elem_want:
                raise RuntimeError(
                    f"{path.name}: {kind} {v.name} has element type {tt.elem_type}, "
                    f"expected {elem_want}"
                )
            dims = [d.dim_param if d.dim_param else d.dim_value for d in tt.shape.dim]
            ok = len(dims) == len(shape_want) and all(
                (w is None and d == "N") or w == -1 or d == w
                for d, w in zip(dims, shape_want, strict=False)
            )
            if not ok:
                raise RuntimeError(
                    f"{path.name}: {kind} {v.name} has shape {dims}, expected {shape_want} "
                    "(None = dynamic batch 'N'); the batch axis may have been frozen by the exporter"
                )


def quantize_int8(src: Path, dst: Path, op_types: list[str]) -> Path:
    """Dynamic int8 quantization of the weights of ``op_types`` (QInt8, as icefall and sherpa-onnx
    ship their ``*.int8.onnx``); activations are quantized at run time."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its "consider pre-processing" advice is for static quantization
    try:
        quantize_dynamic(
            model_input=str(src),
            model_output=str(dst),
            op_types_to_quantize=op_types,
            weight_type=QuantType.QInt8,
        )
    finally:
        root.setLevel(level)
    return dst


# icefall's choice: the encoder and joiner quantize MatMul only (their Conv weights stay float);
# the decoder also quantizes its embedding table (Gather).
INT8_OP_TYPES = {
    "encoder": ["MatMul"],
    "decoder": ["MatMul", "Gather"],
    "joiner": ["MatMul"],
}


def _check_options(model: nn.Module, options: ExportOptions) -> None:
    enc = model.encoder
    if not getattr(enc, "causal", False):
        raise ValueError(
            "only a causal (streaming) model can be exported as a streaming zipformer2; "
            "this checkpoint was trained with causal=False"
        )
    step = max(enc.downsampling_factor)
    for name, value in (("chunk_size", options.chunk_size), ("left_context", options.left_context)):
        if value <= 0 or value % step != 0:
            raise ValueError(
                f"{name}={value} must be a positive multiple of the largest downsampling factor "
                f"({step}); icefall's streaming models use chunk 16/32/64 and left context "
                "64/128/256 (50 Hz frames)"
            )


def encoder_metadata(model: nn.Module, options: ExportOptions) -> dict[str, str]:
    """The encoder's ``metadata_props``, key for key as icefall writes them."""
    enc = model.encoder
    decode_chunk_len = options.chunk_size * 2
    return {
        "model_type": "zipformer2",
        "version": "1",
        "model_author": "k2-fsa",
        "comment": "streaming zipformer2",
        "decode_chunk_len": str(decode_chunk_len),
        "T": str(decode_chunk_len + EMBED_PAD),
        "num_encoder_layers": _join(enc.num_encoder_layers),
        "encoder_dims": _join(enc.encoder_dim),
        "cnn_module_kernels": _join(enc.cnn_module_kernel),
        "left_context_len": _join(options.left_context // d for d in enc.downsampling_factor),
        "query_head_dims": _join(enc.query_head_dim),
        "value_head_dims": _join(enc.value_head_dim),
        "num_heads": _join(enc.num_heads),
    }


def _batch_axes(model: nn.Module, left_context: int) -> list[int]:
    """Which axis of each state is the batch axis: the one that changes from batch 1 to 2."""
    one = model.get_init_states(1, "cpu", left_context)
    two = model.get_init_states(2, "cpu", left_context)
    axes = []
    for a, b in zip(one, two, strict=True):
        diff = [i for i, (p, q) in enumerate(zip(a.shape, b.shape, strict=True)) if p != q]
        if len(diff) != 1:
            raise RuntimeError(f"cannot tell the batch axis of a state of shape {tuple(a.shape)}")
        axes.append(diff[0])
    return axes


def export_encoder(model: nn.Module, path: Path, options: ExportOptions) -> dict[str, str]:
    """Trace one streaming window and write ``encoder.onnx``; returns its metadata."""
    import onnx

    meta = encoder_metadata(model, options)
    wrapper = OnnxEncoder(model, options.chunk_size, options.left_context).eval()
    states = model.get_init_states(1, "cpu", options.left_context)
    num_layers = (len(states) - 2) // len(LAYER_STATE_KINDS)
    names = state_names(num_layers)
    if len(names) != len(states):
        raise RuntimeError(
            f"the model returned {len(states)} streaming states; icefall's layout needs "
            f"{len(LAYER_STATE_KINDS)} per layer plus embed_states and processed_lens"
        )
    axes = _batch_axes(model, options.left_context)
    feature_dim = int(model.config.feature_dim)
    x = torch.zeros(1, int(meta["T"]), feature_dim)
    dynamic = {"x": {0: "N"}, "encoder_out": {0: "N"}}
    for name, axis in zip(names, axes, strict=True):
        dynamic[name] = {axis: "N"}
        dynamic[f"new_{name}"] = {axis: "N"}
    with torch.no_grad():
        _onnx_export(
            wrapper,
            (x, states),
            path,
            options.opset,
            input_names=["x", *names],
            output_names=["encoder_out", *(f"new_{n}" for n in names)],
            dynamic_axes=dynamic,
        )
    add_metadata(path, meta)

    def spec(shape, axis):
        return [None if i == axis else int(d) for i, d in enumerate(shape)]

    elem = {torch.float32: onnx.TensorProto.FLOAT, torch.int64: onnx.TensorProto.INT64}
    joiner_dim = model.joiner.encoder_proj.weight.shape[0]
    inputs = {"x": ([None, int(meta["T"]), feature_dim], onnx.TensorProto.FLOAT)}
    outputs = {"encoder_out": ([None, -1, joiner_dim], onnx.TensorProto.FLOAT)}
    for name, s, axis in zip(names, states, axes, strict=True):
        inputs[name] = (spec(s.shape, axis), elem[s.dtype])
        # Output dims other than the batch come out symbolic from the tracer; not checked.
        outputs[f"new_{name}"] = ([None if i == axis else -1 for i in range(s.ndim)], elem[s.dtype])
    verify_onnx_io(path, inputs, outputs)
    return meta


def export_decoder(model: nn.Module, path: Path, options: ExportOptions) -> dict[str, str]:
    """Write ``decoder.onnx``: ``y`` int64 (N, context_size) -> ``decoder_out`` (N, joiner_dim)."""
    import onnx

    dec = model.decoder
    wrapper = OnnxDecoder(dec, model.joiner.decoder_proj).eval()
    y = torch.zeros(1, dec.context_size, dtype=torch.int64)
    with torch.no_grad():
        _onnx_export(
            wrapper,
            (y,),
            path,
            options.opset,
            input_names=["y"],
            output_names=["decoder_out"],
            dynamic_axes={"y": {0: "N"}, "decoder_out": {0: "N"}},
        )
    meta = {"context_size": str(dec.context_size), "vocab_size": str(dec.vocab_size)}
    add_metadata(path, meta)
    joiner_dim = model.joiner.decoder_proj.weight.shape[0]
    verify_onnx_io(
        path,
        {"y": ([None, dec.context_size], onnx.TensorProto.INT64)},
        {"decoder_out": ([None, joiner_dim], onnx.TensorProto.FLOAT)},
    )
    return meta


def export_joiner(model: nn.Module, path: Path, options: ExportOptions) -> dict[str, str]:
    """Write ``joiner.onnx``: projected ``encoder_out``, ``decoder_out`` (N, joiner_dim) -> ``logit``."""
    import onnx

    out = model.joiner.output_linear
    joiner_dim, vocab_size = out.weight.shape[1], out.weight.shape[0]
    wrapper = OnnxJoiner(out).eval()
    e = torch.zeros(1, joiner_dim)
    d = torch.zeros(1, joiner_dim)
    with torch.no_grad():
        _onnx_export(
            wrapper,
            (e, d),
            path,
            options.opset,
            input_names=["encoder_out", "decoder_out"],
            output_names=["logit"],
            dynamic_axes={"encoder_out": {0: "N"}, "decoder_out": {0: "N"}, "logit": {0: "N"}},
        )
    meta = {"joiner_dim": str(joiner_dim)}
    add_metadata(path, meta)
    f = onnx.TensorProto.FLOAT
    verify_onnx_io(
        path,
        {"encoder_out": ([None, joiner_dim], f), "decoder_out": ([None, joiner_dim], f)},
        {"logit": ([None, vocab_size], f)},
    )
    return meta


def write_tokens(tokens: list[str], path: Path, vocab_size: int) -> Path:
    """sherpa-style ``tokens.txt``: ``<symbol> <id>`` per line, ids 0..vocab_size-1."""
    if len(tokens) != vocab_size:
        raise ValueError(
            f"the token table has {len(tokens)} entries but the model's vocab_size is "
            f"{vocab_size}; pass the tokens.txt the model was trained with"
        )
    bad = [t for t in tokens if not t or any(c.isspace() for c in t)]
    if bad:
        raise ValueError(f"tokens must be non-empty and without whitespace, got {bad[:5]}")
    path.write_text("".join(f"{t} {i}\n" for i, t in enumerate(tokens)), encoding="utf-8")
    return path


def read_tokens(path: str | Path) -> list[str]:
    """Read a sherpa-style ``tokens.txt`` into a list indexed by id."""
    table: dict[int, str] = {}
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise ValueError(f"{path}:{n}: expected '<symbol> <id>', got {line!r}")
        table[int(parts[1])] = parts[0]
    ids = sorted(table)
    if ids != list(range(len(ids))):
        raise ValueError(f"{path}: token ids must be 0..{len(ids) - 1} without gaps")
    return [table[i] for i in ids]


def export_transducer(
    model: nn.Module,
    out_dir: str | Path,
    tokens: list[str],
    options: ExportOptions | None = None,
) -> ExportedModel:
    """Export a loaded ``Transducer`` (put in eval mode) to ``out_dir`` (created if needed)."""
    options = options or ExportOptions()
    _check_options(model, options)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    model = model.eval()
    paths = {k: out / f"{k}.onnx" for k in ("encoder", "decoder", "joiner")}
    result = ExportedModel(
        out_dir=out,
        encoder=paths["encoder"],
        decoder=paths["decoder"],
        joiner=paths["joiner"],
        tokens=write_tokens(tokens, out / "tokens.txt", model.decoder.vocab_size),
    )
    result.encoder_metadata = export_encoder(model, paths["encoder"], options)
    result.decoder_metadata = export_decoder(model, paths["decoder"], options)
    result.joiner_metadata = export_joiner(model, paths["joiner"], options)
    if options.int8:
        for kind, src in paths.items():
            result.int8[kind] = quantize_int8(src, out / f"{kind}.int8.onnx", INT8_OP_TYPES[kind])
    result.seconds = time.perf_counter() - start
    return result


def load_for_export(model_path: str | Path, tokens: str | Path | None = None):
    """Load our model file or an icefall ``epoch-*.pt`` (with ``hyper-params.json`` beside it).

    Returns ``(model, tokens)``. The token table comes from ``tokens`` if given, else from our
    model file, else from a ``tokens.txt`` beside the checkpoint.
    """
    from training.model.checkpoint import FORMAT, load_icefall_checkpoint, load_model

    path = Path(model_path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    try:  # peek at the format without reading the weights
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # legacy (non-zip) torch.save files cannot be memory-mapped
        payload = torch.load(path, map_location="cpu", weights_only=True)
    ours = isinstance(payload, dict) and payload.get("format") == FORMAT
    del payload
    table: list[str] | None = None
    if ours:
        model, _, table = load_model(path)
    else:
        model, _ = load_icefall_checkpoint(path)
    if tokens is not None:
        table = read_tokens(tokens)
    elif table is None:
        beside = path.parent / "tokens.txt"
        if not beside.is_file():
            raise FileNotFoundError(
                f"no token table for {path}: it holds none and there is no {beside}; "
                "pass --tokens PATH"
            )
        table = read_tokens(beside)
    return model.eval(), table


def export_checkpoint(
    model_path: str | Path,
    out_dir: str | Path,
    options: ExportOptions | None = None,
    tokens: str | Path | None = None,
) -> ExportedModel:
    """Load ``model_path`` (see :func:`load_for_export`) and export it to ``out_dir``."""
    model, table = load_for_export(model_path, tokens)
    return export_transducer(model, out_dir, table, options)
