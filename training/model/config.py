"""`ZipformerConfig`: the model hyper-parameters, named as icefall's zipformer `train.py`."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IntTuple = tuple[int, ...]

# Fields that icefall stores as comma-separated strings ("2,2,3,4,3,2").
_TUPLE_FIELDS = (
    "num_encoder_layers",
    "downsampling_factor",
    "feedforward_dim",
    "num_heads",
    "encoder_dim",
    "query_head_dim",
    "value_head_dim",
    "pos_head_dim",
    "encoder_unmasked_dim",
    "cnn_module_kernel",
    "chunk_size",
    "left_context_frames",
)


def _to_int_tuple(value: Any, name: str) -> IntTuple:
    if isinstance(value, int):
        return (value,)
    if isinstance(value, str):
        parts = [p for p in value.replace(" ", "").split(",") if p]
        try:
            return tuple(int(p) for p in parts)
        except ValueError:
            raise ValueError(f"{name}: expected comma-separated integers, got {value!r}") from None
    return tuple(int(v) for v in value)


def _to_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


@dataclass
class ZipformerConfig:
    """Hyper-parameters of the streaming Zipformer2 transducer.

    Per-stack values are tuples (one entry, or one per stack). Chunk size and left context
    are in 50 Hz frames (after the front end); the tuples are the training-time choices,
    -1 meaning full context.
    """

    num_encoder_layers: IntTuple = (2, 2, 3, 4, 3, 2)
    downsampling_factor: IntTuple = (1, 2, 4, 8, 4, 2)
    feedforward_dim: IntTuple = (512, 768, 1024, 1536, 1024, 768)
    num_heads: IntTuple = (4, 4, 4, 8, 4, 4)
    encoder_dim: IntTuple = (192, 256, 384, 512, 384, 256)
    query_head_dim: IntTuple = (32,)
    value_head_dim: IntTuple = (12,)
    pos_head_dim: IntTuple = (4,)
    pos_dim: int = 48
    encoder_unmasked_dim: IntTuple = (192, 192, 256, 256, 256, 192)
    cnn_module_kernel: IntTuple = (31, 31, 15, 15, 15, 31)
    decoder_dim: int = 512
    joiner_dim: int = 512
    causal: bool = True
    chunk_size: IntTuple = (16, 32, 64, -1)
    left_context_frames: IntTuple = (64, 128, 256, -1)
    vocab_size: int = 500
    blank_id: int = 0
    context_size: int = 2
    feature_dim: int = 80
    use_transducer: bool = True
    use_ctc: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for name in _TUPLE_FIELDS:
            setattr(self, name, _to_int_tuple(getattr(self, name), name))
        for name in ("pos_dim", "decoder_dim", "joiner_dim", "vocab_size", "blank_id"):
            setattr(self, name, int(getattr(self, name)))
        self.context_size = int(self.context_size)
        self.feature_dim = int(self.feature_dim)
        self.causal = _to_bool(self.causal)
        self.use_transducer = _to_bool(self.use_transducer)
        self.use_ctc = _to_bool(self.use_ctc)
        n = len(self.downsampling_factor)
        for name in _TUPLE_FIELDS[:10]:
            if len(getattr(self, name)) not in (1, n):
                raise ValueError(
                    f"{name}={getattr(self, name)} must have 1 or {n} entries "
                    f"(one per stack, as downsampling_factor)"
                )
        if not self.use_transducer:
            raise ValueError("use_transducer=False is not supported: this model is a transducer")

    @property
    def encoder_output_dim(self) -> int:
        return max(self.encoder_dim)

    def per_stack(self, name: str) -> IntTuple:
        v = getattr(self, name)
        return v * len(self.downsampling_factor) if len(v) == 1 else v

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ZipformerConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in d.items() if k in names}
        unknown = {k: v for k, v in d.items() if k not in names}
        cfg = cls(**known)
        cfg.extra.update(unknown)
        return cfg

    @classmethod
    def from_icefall_params(cls, params: Mapping[str, Any]) -> ZipformerConfig:
        """From icefall's `params` (train.py arguments plus vocab_size etc.), or from a
        hyper-params.json-style dict that holds them under "params"."""
        if "params" in params and isinstance(params["params"], Mapping):
            params = params["params"]
        if "encoder_dim" not in params:
            raise ValueError(
                "these icefall params have no 'encoder_dim'; pass train.py's params dict "
                "(num_encoder_layers, encoder_dim, ...)"
            )
        return cls.from_dict(params)

    @classmethod
    def from_json(cls, path: str | Path) -> ZipformerConfig:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        return cls.from_icefall_params(d) if "params" in d else cls.from_dict(d)


def _preset(**kw: Any) -> dict[str, Any]:
    return kw


# icefall's librispeech zipformer configurations (RESULTS.md training commands; medium is
# train.py's defaults). Published non-causal sizes with 500 BPE: 23,285,615 / 65,549,011 /
# 148,439,574 parameters.
PRESETS: dict[str, dict[str, Any]] = {
    "medium": _preset(),
    "small": _preset(
        num_encoder_layers=(2, 2, 2, 2, 2, 2),
        feedforward_dim=(512, 768, 768, 768, 768, 768),
        encoder_dim=(192, 256, 256, 256, 256, 256),
        encoder_unmasked_dim=(192, 192, 192, 192, 192, 192),
    ),
    "large": _preset(
        num_encoder_layers=(2, 2, 4, 5, 4, 2),
        feedforward_dim=(512, 768, 1536, 2048, 1536, 768),
        encoder_dim=(192, 256, 512, 768, 512, 256),
        encoder_unmasked_dim=(192, 192, 256, 320, 256, 192),
    ),
    # Our own ~7 M (vocab 500) / ~11 M (vocab 5000) configuration for quick CPU training.
    "xsmall": _preset(
        num_encoder_layers=(2, 2, 2, 2, 2, 2),
        feedforward_dim=(256, 384, 384, 384, 384, 384),
        encoder_dim=(96, 128, 128, 128, 128, 128),
        encoder_unmasked_dim=(96, 96, 96, 96, 96, 96),
        decoder_dim=256,
        joiner_dim=256,
    ),
    # For tests and smoke runs: every code path of the real configs, ~0.5 M parameters.
    "tiny": _preset(
        num_encoder_layers=(1, 1, 1, 1, 1, 1),
        feedforward_dim=(64, 96, 96, 128, 96, 64),
        num_heads=(2, 2, 2, 4, 2, 2),
        encoder_dim=(32, 48, 64, 64, 48, 32),
        query_head_dim=(16,),
        value_head_dim=(8,),
        encoder_unmasked_dim=(32, 32, 48, 48, 48, 32),
        pos_dim=16,
        cnn_module_kernel=(15, 15, 7, 7, 7, 15),
        decoder_dim=64,
        joiner_dim=64,
    ),
    # The shape of the icefall reference fixture (2,557,098 parameters with vocab 500).
    "fixture": _preset(
        num_encoder_layers=(2, 1, 1, 1, 1, 1),
        feedforward_dim=(128, 160, 192, 224, 160, 128),
        encoder_dim=(64, 96, 128, 128, 96, 64),
        encoder_unmasked_dim=(64, 64, 96, 96, 96, 64),
        decoder_dim=256,
        joiner_dim=256,
        chunk_size=(16,),
        left_context_frames=(64,),
    ),
}


def preset(name: str, vocab_size: int = 500, **overrides: Any) -> ZipformerConfig:
    """A named configuration: "tiny", "xsmall", "small", "medium", "large" or "fixture"."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return ZipformerConfig(**{**PRESETS[name], "vocab_size": vocab_size, **overrides})
