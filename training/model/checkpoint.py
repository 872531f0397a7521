"""Load icefall Zipformer2 checkpoints; save and load this project's model files.

Our own format is one `torch.save` dict readable with `weights_only=True`:
`{"format": FORMAT, "config": {...}, "tokens": [...] | None, "state_dict": {...}}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from training.model.config import ZipformerConfig
from training.model.transducer import Transducer

FORMAT = "hotline-asr/zipformer2-transducer/1"
_PARAMS_FILES = ("hyper-params.json", "params.json")


def _state_dict_of(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        for key in ("model", "state_dict"):
            if key in obj and isinstance(obj[key], Mapping):
                return dict(obj[key])
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
    raise ValueError(f"{path}: no state dict found (expected {{'model': state_dict}})")


def _load_strict(model: Transducer, state_dict: Mapping[str, torch.Tensor], path: Path) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    wrong = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state_dict.items()
        if k in own and own[k].shape != v.shape
    ]
    if missing or unexpected or wrong:
        raise ValueError(
            f"{path} does not fit the configured model "
            f"(missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}, "
            f"shape mismatches {wrong[:5]}). Check the hyper-parameters (config) for this checkpoint."
        )
    model.load_state_dict(state_dict, strict=True)


def load_icefall_checkpoint(
    path: str | Path,
    config: ZipformerConfig | Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
) -> tuple[Transducer, ZipformerConfig]:
    """Build a `Transducer` from an icefall checkpoint (`{"model": state_dict, ...}`, as
    written by icefall's save_checkpoint or export.py).

    The hyper-parameters come from `config` (a `ZipformerConfig` or icefall params dict) or,
    if None, from a `hyper-params.json` / `params.json` next to the checkpoint.
    The model is returned in eval mode.
    """
    path = Path(path)
    if config is None:
        for name in _PARAMS_FILES:
            if (path.parent / name).is_file():
                config = ZipformerConfig.from_json(path.parent / name)
                break
        else:
            raise FileNotFoundError(
                f"no hyper-parameters for {path}: pass config= or put one of "
                f"{_PARAMS_FILES} next to the checkpoint"
            )
    elif not isinstance(config, ZipformerConfig):
        config = ZipformerConfig.from_icefall_params(config)
    state_dict = _state_dict_of(torch.load(path, map_location="cpu", weights_only=True), path)
    model = Transducer(config)
    _load_strict(model, state_dict, path)
    return model.to(device).eval(), config


def save_model(
    path: str | Path,
    model: Transducer,
    tokens: list[str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write config, token list and weights to one file."""
    payload = {
        "format": FORMAT,
        "config": model.config.to_dict(),
        "tokens": list(tokens) if tokens is not None else None,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": dict(extra or {}),
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)


def load_model(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[Transducer, ZipformerConfig, list[str] | None]:
    """Read a file written by `save_model`; returns (model in eval mode, config, tokens)."""
    path = Path(path)
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, Mapping) or payload.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not a {FORMAT} file; for icefall checkpoints use load_icefall_checkpoint"
        )
    config = ZipformerConfig.from_dict(payload["config"])
    model = Transducer(config)
    _load_strict(model, payload["state_dict"], path)
    return model.to(device).eval(), config, payload.get("tokens")
