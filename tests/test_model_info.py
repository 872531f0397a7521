"""Parameter counts by part (what RESULTS.md quotes) and `hotline-asr info`."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from typer.testing import CliRunner

torch.set_num_threads(1)

from hotline_asr.cli import app  # noqa: E402


def _info(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["info", *args])
    return result.exit_code, result.output


def test_count_parameters_splits_every_parameter_once(icefall_fixture: Path):
    from training.model.config import ZipformerConfig
    from training.model.size import count_parameters
    from training.model.transducer import Transducer
    from training.train import freeze_encoder_stacks

    config = ZipformerConfig.from_json(icefall_fixture / "hyper-params.json")
    config.use_ctc = True
    model = Transducer(config)
    size = count_parameters(model)
    assert size.total == sum(p.numel() for p in model.parameters())
    assert size.other == 0 and size.trainable == size.total
    assert size.ctc_head == sum(p.numel() for p in model.ctc_output.parameters()) > 0
    served = sum(
        p.numel()
        for part in (model.encoder_embed, model.encoder, model.decoder, model.joiner)
        for p in part.parameters()
    )
    assert size.served == served == size.total - size.simple_proj - size.ctc_head
    d = size.to_dict()
    assert d["total"] == size.total and d["served"] == served

    frozen = freeze_encoder_stacks(model, 2)
    assert frozen > 0 and count_parameters(model).trainable == size.total - frozen


def test_info_on_icefall_checkpoint(icefall_fixture: Path):
    ckpt = icefall_fixture / "epoch-99.pt"
    code, out = _info(str(ckpt), "--json")
    assert code == 0, out
    report = json.loads(out)
    # the count covers exactly the weights in the checkpoint file
    weights = torch.load(ckpt, map_location="cpu", weights_only=False)["model"]
    hp = json.loads((icefall_fixture / "hyper-params.json").read_text())
    from training.model.config import ZipformerConfig
    from training.model.transducer import Transducer

    names = {
        n
        for n, _ in Transducer(
            ZipformerConfig.from_json(icefall_fixture / "hyper-params.json")
        ).named_parameters()
    }
    assert names <= set(weights)
    assert report["parameters"]["total"] == sum(weights[n].numel() for n in names)
    assert report["config"]["vocab_size"] == hp["params"]["vocab_size"] == 500

    code, out = _info(str(ckpt))
    assert code == 0, out
    assert "encoder:" in out and "served" in out and f"{report['parameters']['total']:,}" in out


def test_info_errors_name_the_problem(tmp_path: Path):
    code, out = _info(str(tmp_path / "missing.pt"))
    assert code == 1 and "no such file" in out
    code, out = _info(str(tmp_path))
    assert code == 1 and "is a folder" in out
    bad = tmp_path / "notes.pt"
    torch.save({"something": 1}, bad)
    code, out = _info(str(bad))
    assert code == 1 and "neither our model file" in out
