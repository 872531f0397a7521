"""Checkpoint I/O: icefall checkpoints with config from a sibling JSON or given explicitly,
our own save/load round trip, and clear errors for mismatches."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

torch.set_num_threads(1)

from training.model.checkpoint import (  # noqa: E402
    load_icefall_checkpoint,
    load_model,
    save_model,
)
from training.model.config import ZipformerConfig, preset  # noqa: E402
from training.model.transducer import Transducer  # noqa: E402


def test_icefall_checkpoint_with_explicit_params(icefall_fixture):
    params = json.loads((icefall_fixture / "hyper-params.json").read_text())["params"]
    model, cfg = load_icefall_checkpoint(icefall_fixture / "epoch-99.pt", config=params)
    assert cfg.vocab_size == 500 and cfg.decoder_dim == 256
    sd = torch.load(icefall_fixture / "epoch-99.pt", weights_only=True)["model"]
    own = model.state_dict()
    assert set(own) == set(sd)
    assert all(torch.equal(own[k], sd[k]) for k in sd)


def test_icefall_checkpoint_needs_hyper_parameters(icefall_fixture, tmp_path):
    shutil.copy(icefall_fixture / "epoch-99.pt", tmp_path / "epoch-99.pt")
    with pytest.raises(FileNotFoundError, match="hyper-parameters"):
        load_icefall_checkpoint(tmp_path / "epoch-99.pt")


def test_icefall_checkpoint_wrong_config_is_explained(icefall_fixture):
    with pytest.raises(ValueError, match="does not fit"):
        load_icefall_checkpoint(icefall_fixture / "epoch-99.pt", config=preset("tiny"))


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = Transducer(preset("tiny", vocab_size=30)).eval()
    tokens = ["<blk>", "<sos/eos>", "<unk>"] + [chr(0x4E00 + i) for i in range(27)]
    path = tmp_path / "m" / "model.pt"
    save_model(path, model, tokens=tokens, extra={"epoch": 3})
    loaded, cfg, toks = load_model(path)
    assert cfg == model.config
    assert toks == tokens
    x = torch.randn(1, 90, 80)
    with torch.no_grad():
        a, _ = model.forward_encoder(x, torch.tensor([90]))
        b, _ = loaded.forward_encoder(x, torch.tensor([90]))
    assert torch.equal(a, b)


def test_load_model_rejects_icefall_file(icefall_fixture):
    with pytest.raises(ValueError, match="load_icefall_checkpoint"):
        load_model(icefall_fixture / "epoch-99.pt")


def test_config_from_icefall_strings_and_dict_round_trip():
    cfg = ZipformerConfig.from_icefall_params(
        {"encoder_dim": "64,96", "downsampling_factor": "1,2", "num_encoder_layers": "1",
         "feedforward_dim": "128", "num_heads": "4", "encoder_unmasked_dim": "64",
         "cnn_module_kernel": "31", "causal": "True", "chunk_size": "16,-1",
         "left_context_frames": "64,-1", "vocab_size": 77, "some_other_arg": 1}
    )  # fmt: skip
    assert cfg.encoder_dim == (64, 96) and cfg.causal and cfg.chunk_size == (16, -1)
    assert cfg.extra == {"some_other_arg": 1}
    assert ZipformerConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="one per stack"):
        ZipformerConfig(encoder_dim=(64, 96, 128), downsampling_factor=(1, 2))
