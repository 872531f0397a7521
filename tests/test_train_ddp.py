"""Two CPU processes (DDP over gloo) train a few steps through the CLI, as a real run would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def _train_two_processes(recipe: Path, *args: str) -> str:
    """``hotline-asr train --recipe RECIPE --devices 2 ARGS`` in a subprocess, as a user runs it;
    returns its output once it has exited cleanly."""
    cli = Path(sys.executable).parent / "hotline-asr"
    proc = subprocess.run(
        [str(cli), "train", "--recipe", str(recipe), "--devices", "2", *args],
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    return out


@pytest.mark.slow
def test_two_process_ddp_run(neural_voice: Path, tmp_path: Path):
    from training.lightning.smoke import make_smoke_corpus, write_smoke_recipe

    corpus = make_smoke_corpus(neural_voice / "train", neural_voice / "dev", tmp_path / "c", 6, 2)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    recipe = write_smoke_recipe(
        tmp_path / "recipe",
        corpus,
        {"data": {"max_duration": 4}, "mlflow": {"enabled": True, "uri": store}},
    )
    out = _train_two_processes(recipe, "--max-steps", "3")
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in out and "distributed_backend=gloo" in out
    last = torch.load(recipe / "exp" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 3
    assert (recipe / "exp" / "averaged.pt").is_file()

    from registry.tracking import get_client

    client = get_client(store)
    run_id = (recipe / "exp" / "mlflow_run_id.txt").read_text().strip()
    run = client.get_run(run_id)
    assert run.data.params["trainer.devices"] == "2"
    assert len(client.get_metric_history(run_id, "train/loss")) == 3


@pytest.mark.slow
def test_two_process_ddp_runs_a_staged_recipe(neural_voice: Path, tmp_path: Path):
    """Both processes walk the stages together: each stage is one DDP run, the second starts
    from the first's average and the third carries on the second's run."""
    from training.lightning.smoke import make_smoke_corpus, write_smoke_recipe

    corpus = make_smoke_corpus(neural_voice / "train", neural_voice / "dev", tmp_path / "c", 6, 2)
    stages = [
        {"name": "a", "set": {"trainer.max_steps": 2}},
        {"name": "b", "init_from": "a", "set": {"trainer.max_steps": 2}},
        {"name": "c", "resume_from": "b", "set": {"trainer.max_steps": 3}},
    ]
    recipe = write_smoke_recipe(
        tmp_path / "recipe", corpus, {"data": {"max_duration": 4}, "stages": stages}
    )
    # with a time budget: the processes agree on the time left before each stage
    out = _train_two_processes(recipe, "--max-time", "30")
    # one process group for the whole recipe; both processes train every stage
    assert out.count("GLOBAL_RANK: 1, MEMBER: 2/2") == 1, out[-3000:]
    for name in "abc":
        assert out.count(f"stage {name}: training in") == 2, out[-3000:]
    assert out.count("recipe done:") == 1  # the worker reports nothing
    exp = recipe / "exp"
    steps = {}
    for name in "abc":
        ck = torch.load(exp / name / "last.ckpt", map_location="cpu", weights_only=False)
        steps[name] = ck["global_step"]
        assert (exp / name / "done.json").is_file()
    assert steps == {"a": 2, "b": 2, "c": 3}
    assert f"recipe done: {exp / 'averaged.pt'}" in out
    assert (exp / "averaged.pt").read_bytes() == (exp / "c" / "averaged.pt").read_bytes()
