"""`hotline-asr average`: the checkpoint average `train` writes, and other windows after a run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

torch.set_num_threads(1)

from hotline_asr.cli import app  # noqa: E402


@pytest.fixture(scope="module")
def run(neural_voice: Path, tmp_path_factory) -> Path:
    """A tiny run with a checkpoint at every step 2, 4, 6, 8 (all kept), averaging the last 2."""
    from training.lightning.smoke import make_smoke_corpus, write_smoke_recipe
    from training.train import train

    root = tmp_path_factory.mktemp("avg")
    corpus = make_smoke_corpus(neural_voice / "train", neural_voice / "dev", root / "c", 4, 2)
    recipe = write_smoke_recipe(
        root / "recipe",
        corpus,
        {"data": {"dev_cuts": [], "max_duration": 8}, "checkpoint": {"keep_last": 4}},
    )
    result = train(recipe, ["trainer.max_steps=8"])
    assert result.global_step == 8
    return result.exp_dir


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def _ckpt_model(path: Path) -> dict[str, torch.Tensor]:
    return {k[6:]: v for k, v in _weights(path).items() if k.startswith("model.")}


def _average(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["average", *args])
    return result.exit_code, result.output


def test_last_n_reproduces_what_train_wrote(run: Path, tmp_path: Path):
    assert sorted(p.name for p in run.glob("step-*.ckpt")) == [
        f"step-{s:08d}.ckpt" for s in (2, 4, 6, 8)
    ]
    code, out = _average(str(run), str(tmp_path / "avg.pt"), "--last", "2")
    assert code == 0, out
    assert "step-00000006.ckpt, step-00000008.ckpt" in out
    mine, trains = _weights(tmp_path / "avg.pt"), _weights(run / "averaged.pt")
    assert mine.keys() == trains.keys()
    assert all(torch.equal(mine[k], trains[k]) for k in mine)


def test_given_steps_are_averaged_weight_by_weight(run: Path, tmp_path: Path):
    code, out = _average(str(run), str(tmp_path / "a.pt"), "--steps", "2,6")
    assert code == 0, out
    got = _weights(tmp_path / "a.pt")
    a, b = _ckpt_model(run / "step-00000002.ckpt"), _ckpt_model(run / "step-00000006.ckpt")
    moved = [k for k in got if got[k].is_floating_point() and not torch.equal(a[k], b[k])]
    assert moved, "the two checkpoints should differ after 4 training steps"
    for k in moved:
        want = ((a[k].double() + b[k].double()) / 2).float()
        assert torch.allclose(got[k], want, atol=1e-7), k
    # the model file loads as a model, like train's averaged.pt
    from training.model.checkpoint import load_model

    model, config, tokens = load_model(tmp_path / "a.pt")
    assert config.vocab_size == len(tokens)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--steps", "2,5"], "no checkpoint for step(s) [5]"),
        (["--steps", "2,x"], "--steps takes step numbers"),
        (["--last", "5"], "cannot average the last 5 of 4 checkpoints"),
        (["--last", "0"], "give 1 to 4"),
        ([], "give either the number of last checkpoints or a list of steps"),
        (["--last", "2", "--steps", "2,4"], "give either"),
    ],
)
def test_bad_choices_say_what_is_there(run: Path, tmp_path: Path, args, message):
    out_file = tmp_path / "x.pt"
    code, out = _average(str(run), str(out_file), *args)
    assert code == 1 and message in out, out
    assert not out_file.exists()


def test_a_folder_without_checkpoints_is_refused(tmp_path: Path):
    code, out = _average(str(tmp_path), str(tmp_path / "x.pt"), "--last", "1")
    assert code == 1 and "holds no step-*.ckpt files" in out
    code, out = _average(str(tmp_path / "nope"), str(tmp_path / "x.pt"), "--last", "1")
    assert code == 1 and "is not a folder" in out
