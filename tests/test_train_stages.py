"""Recipes in stages: one call trains the stages in order, each from the one before; a stage cut
off mid-way resumes on the next call while finished stages are skipped; a bad stage is an error
before anything trains."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback

torch.set_num_threads(1)


class StopInFit(Callback):
    """Stops the ``nth`` call of trainer.fit after its first batch (as a time limit would)."""

    def __init__(self, nth: int) -> None:
        self.nth = nth
        self.fits = 0

    def on_train_start(self, trainer, pl_module) -> None:
        self.fits += 1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.fits == self.nth:
            trainer.should_stop = True


@pytest.fixture(scope="module")
def corpus(neural_voice: Path, tmp_path_factory):
    from training.lightning.smoke import make_smoke_corpus

    return make_smoke_corpus(
        neural_voice / "train", neural_voice / "dev", tmp_path_factory.mktemp("smoke"), 4, 2
    )


STAGES = [
    {"name": "a", "set": {"trainer.max_steps": 2}},
    {
        "name": "b",
        "resume_from": "a",
        "set": {"trainer.max_steps": 4, "model.chunk_size": [16]},
    },
    {
        "name": "c",
        "init_from": "b",
        "set": {"trainer.max_steps": 2, "init.joiner_from_ctc": 0.2, "optim.base_lr": 0.01},
    },
]


def _recipe(tmp_path: Path, corpus, stages) -> Path:
    from training.lightning.smoke import write_smoke_recipe

    return write_smoke_recipe(
        tmp_path / "recipe",
        corpus,
        {
            "model": {
                "preset": "tiny",
                "overrides": {"use_ctc": True, "joiner_dim": 96},
                "chunk_size": [16, -1],
                "left_context_frames": [64],
            },
            "data": {"max_duration": 8},
            "stages": stages,
        },
    )


def test_stages_run_in_order_and_resume(corpus, tmp_path: Path):
    from training.stages import DONE_FILE, train_recipe
    from training.train import read_init_checkpoint

    recipe = _recipe(tmp_path, corpus, STAGES)
    exp = recipe / "exp"

    # First call: c is cut off after one step (the third fit of this call).
    first = train_recipe(recipe, extra_callbacks=[StopInFit(3)])
    assert [s.name for s in first.stages] == ["a", "b", "c"]
    assert first.averaged is None and first.stopped and "stage c" in first.stopped
    a, b, c = (s.result for s in first.stages)
    assert a.global_step == 2 and a.completed
    # b carried on a's run: its step count continues and it started from a's last checkpoint
    assert b.global_step == 4 and b.completed
    assert b.resumed_from == exp / "b" / "last.ckpt"
    assert read_init_checkpoint(exp / "b" / "averaged.pt").config.chunk_size == (16,)
    assert c.global_step == 1 and not c.completed
    assert (exp / "a" / DONE_FILE).is_file() and (exp / "b" / DONE_FILE).is_file()
    assert not (exp / "c" / DONE_FILE).exists() and not (exp / "averaged.pt").exists()
    c_cfg = yaml.safe_load((exp / "c" / "config.yaml").read_text())
    assert c_cfg["init"]["checkpoint"] == str(exp / "b" / "averaged.pt")
    assert c_cfg["init"]["joiner_from_ctc"] == 0.2 and c_cfg["optim"]["base_lr"] == 0.01
    assert c_cfg["stages"] == []

    # Second call: a and b are skipped, c resumes from its own step 1 and finishes.
    second = train_recipe(recipe)
    assert [(s.name, s.skipped) for s in second.stages] == [("a", True), ("b", True), ("c", False)]
    c2 = second.stages[-1].result
    assert c2.completed and c2.global_step == 2 and c2.resumed_from is not None
    assert second.averaged == exp / "averaged.pt"
    assert (exp / "averaged.pt").read_bytes() == (exp / "c" / "averaged.pt").read_bytes()
    assert (exp / "c" / DONE_FILE).is_file()


@pytest.mark.parametrize(
    "stages, message",
    [
        ([{"name": "a"}, {"name": "a"}], "used twice"),
        ([{"name": "a", "init_from": "b"}, {"name": "b"}], "not an earlier stage"),
        ([{"name": "a"}, {"name": "b", "init_from": "a", "resume_from": "a"}], "not both"),
        ([{"name": "../x"}], "folder-safe"),
        ([{"name": "a", "sett": {}}], "unknown key"),
        ([{"name": "a", "rewrite_joiner_from_ctc": "yes"}], "a positive number"),
        ([{"name": "a", "rewrite_joiner_from_ctc": 0}], "a positive number"),
        ([{"name": "a"}, {"name": "b", "set": {"optim.base_lrr": 0.1}}], "stage 'b'"),
        (
            [
                {"name": "a", "set": {"trainer.max_epochs": 5}},
                {"name": "b", "resume_from": "a", "set": {"trainer.max_epochs": 5}},
            ],
            "must exceed",
        ),
    ],
)
def test_bad_stages_fail_before_training(corpus, tmp_path: Path, stages, message):
    from training.stages import train_recipe

    recipe = _recipe(tmp_path, corpus, stages)
    with pytest.raises(ValueError, match=message):
        train_recipe(recipe)
    assert not (recipe / "exp" / "a").exists()


def test_train_refuses_a_staged_recipe(corpus, tmp_path: Path):
    from training.train import train

    recipe = _recipe(tmp_path, corpus, STAGES)
    with pytest.raises(ValueError, match="has stages"):
        train(recipe)


def test_cli_reports_each_stage(corpus, tmp_path: Path):
    """`hotline-asr train` on a staged recipe says what each stage did and where the model is."""
    from typer.testing import CliRunner

    from hotline_asr.cli import app

    stages = [
        {"name": "one", "set": {"trainer.max_steps": 1}},
        {"name": "two", "init_from": "one", "set": {"trainer.max_steps": 1}},
    ]
    recipe = _recipe(tmp_path, corpus, stages)
    first = CliRunner().invoke(app, ["train", "--recipe", str(recipe)])
    assert first.exit_code == 0, first.output
    assert "one: step 1 in " in first.output and "two: step 1 in " in first.output
    assert f"recipe done: {recipe / 'exp' / 'averaged.pt'}" in first.output
    again = CliRunner().invoke(app, ["train", "--recipe", str(recipe)])
    assert again.exit_code == 0, again.output
    assert "one: done earlier" in again.output and "two: done earlier" in again.output

    bad = _recipe(tmp_path / "bad", corpus, [{"name": "x", "init_from": "y"}])
    out = CliRunner().invoke(app, ["train", "--recipe", str(bad)])
    assert out.exit_code == 1 and "not an earlier stage" in out.output


def test_a_stage_can_end_by_rewriting_its_joiner_from_the_ctc_head(corpus, tmp_path: Path):
    """As the baseline's last stage: the stage's model is its trained average with the joiner
    rewritten from the CTC head; the trained average is kept beside it."""
    from training.model.ctc_joiner import rewrite_model_file
    from training.stages import train_recipe

    stages = [
        {"name": "a", "set": {"trainer.max_steps": 2}},
        {
            "name": "b",
            "init_from": "a",
            "set": {"trainer.max_steps": 2},
            "rewrite_joiner_from_ctc": 0.2,
        },
    ]
    recipe = _recipe(tmp_path, corpus, stages)
    exp = recipe / "exp"
    result = train_recipe(recipe)
    assert result.averaged == exp / "averaged.pt"
    trained = exp / "b" / "averaged-trained.pt"
    assert trained.is_file() and not (exp / "a" / "averaged-trained.pt").exists()
    want = rewrite_model_file(trained, tmp_path / "want.pt", 0.2)

    def weights(p: Path) -> dict:
        return torch.load(p, map_location="cpu", weights_only=False)["state_dict"]

    got, ref, before = weights(exp / "averaged.pt"), weights(want), weights(trained)
    assert got.keys() == ref.keys()
    assert all(torch.equal(got[k], ref[k]) for k in got)
    joiner = [k for k in got if k.startswith("joiner.")]
    assert joiner and any(not torch.equal(got[k], before[k]) for k in joiner)
    assert all(torch.equal(got[k], before[k]) for k in got if k.startswith("encoder."))
