"""Recipe configuration: ``recipes/<name>/config.yaml`` read into plain dataclasses.

Unknown keys are errors (a typo must not silently fall back to a default). Overrides are
``dotted.key=value`` strings whose value is parsed as YAML (``trainer.max_steps=100``,
``data.train_cuts=[a.jsonl.gz]``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from training.lightning.datamodule import AugmentSection, DataOptions
from training.lightning.module import LossOptions, OptimOptions, ValidOptions


@dataclass
class ModelSection:
    preset: str = "small"
    overrides: dict[str, Any] = field(default_factory=dict)  # ZipformerConfig fields
    # Streaming training: one chunk size / left context is drawn per batch (-1 = full context).
    chunk_size: list[int] = field(default_factory=lambda: [16, 32, 64, -1])
    # The first chunk size / left context is what eval mode (validation) decodes with: the
    # served setting (training.served).
    left_context_frames: list[int] = field(default_factory=lambda: [128, 64, 256])


@dataclass
class TokensSection:
    file: str = "data/lang/tokens.txt"
    # Used when ``file`` is missing: cut/supervision manifests or text files whose characters,
    # with the ``common_chars`` most common characters, make the table.
    build_from: list[str] = field(default_factory=list)
    common_chars: int = 3500


@dataclass
class TrainerSection:
    max_epochs: int = 30
    max_steps: int = -1
    max_time_minutes: float | None = None
    devices: int = 1
    precision: str = "32-true"  # "bf16-mixed" for bf16 autocast on CPU
    log_every_n_steps: int = 10
    val_every_n_steps: int | None = None  # None: validate at the end of each epoch
    seed: int = 42
    num_threads: int = 0  # torch intra-op threads per process (0: leave torch's default)
    # progress bar with loss, dev CER and audio seconds per second; null: on when stderr is a
    # terminal (HOTLINE_PROGRESS=1/0 decides when set)
    progress_bar: bool | None = None
    # without the bar, a log line (loss, rate, throughput) every N steps; 0: none
    progress_log_every_n_steps: int = 50


@dataclass
class CheckpointSection:
    every_n_steps: int = 200
    every_minutes: float = 10.0
    keep_last: int = 5
    average_last: int = 3


@dataclass
class InitSection:
    checkpoint: str | None = None  # our .pt, a Lightning .ckpt, or an icefall checkpoint
    hyper_params: str | None = None  # icefall hyper-params.json (default: beside the checkpoint)
    freeze_encoder_stacks: int = 0
    # rewrite the joiner from the init model's CTC head with this encoder scale (0.2 suits
    # encoder output of rms ~0.6); see training.model.ctc_joiner. null: keep the joiner
    joiner_from_ctc: float | None = None


@dataclass
class TrackingSection:
    enabled: bool = True
    experiment: str | None = None  # default: the recipe name
    uri: str | None = None  # default: $MLFLOW_TRACKING_URI or sqlite:///<project>/mlflow.db


@dataclass
class RecipeConfig:
    name: str = "recipe"
    model: ModelSection = field(default_factory=ModelSection)
    tokens: TokensSection = field(default_factory=TokensSection)
    data: DataOptions = field(default_factory=DataOptions)
    augment: AugmentSection = field(default_factory=AugmentSection)
    loss: LossOptions = field(default_factory=LossOptions)
    optim: OptimOptions = field(default_factory=OptimOptions)
    valid: ValidOptions = field(default_factory=ValidOptions)
    trainer: TrainerSection = field(default_factory=TrainerSection)
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)
    init: InitSection = field(default_factory=InitSection)
    mlflow: TrackingSection = field(default_factory=TrackingSection)
    # Optional sequence of training stages, each the config above plus its own overrides
    # (training.stages: name, init_from / resume_from an earlier stage, set).
    stages: list[dict[str, Any]] = field(default_factory=list)


def _build(cls, data: Any, where: str):
    if not dataclasses.is_dataclass(cls):
        return data
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise ValueError(f"{where or 'config'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(
            f"unknown key(s) {sorted(unknown)} in {where or 'config'}; known: {sorted(names)}"
        )
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        kwargs[key] = _build(hint, value, f"{where}.{key}" if where else key)
    return cls(**kwargs)


def set_dotted(d: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = d
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ValueError(f"cannot set {key}: {p} is not a section")
    node[parts[-1]] = value


def parse_overrides(overrides: list[str] | None) -> list[tuple[str, Any]]:
    out = []
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not key=value (e.g. trainer.max_steps=100)")
        key, raw = item.split("=", 1)
        out.append((key.strip(), yaml.safe_load(raw)))
    return out


def load_recipe(recipe_dir: Path | str, overrides: list[str] | None = None) -> RecipeConfig:
    """Read ``<recipe_dir>/config.yaml`` and apply ``key=value`` overrides."""
    path = Path(recipe_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: give a recipe folder such as recipes/<name>")
    raw = yaml.safe_load(path.read_text()) or {}
    raw.setdefault("name", Path(recipe_dir).name)
    for key, value in parse_overrides(overrides):
        set_dotted(raw, key, value)
    return _build(RecipeConfig, raw, "")


def to_dict(cfg: RecipeConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)
