"""A training run is tracked in MLflow: full config, git commit, manifest hashes, losses,
dev CER and artifacts; a resumed run continues the same MLflow run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def corpus(neural_voice: Path, tmp_path_factory):
    from training.lightning.smoke import make_smoke_corpus

    return make_smoke_corpus(
        neural_voice / "train", neural_voice / "dev", tmp_path_factory.mktemp("smoke"), 5, 2
    )


def test_training_run_is_tracked(corpus, tmp_path: Path, caplog):
    import logging

    from registry.tracking import file_sha256, get_client
    from training.lightning.smoke import write_smoke_recipe
    from training.train import train

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    recipe = write_smoke_recipe(
        tmp_path / "recipe",
        corpus,
        {"mlflow": {"enabled": True, "uri": store, "experiment": "smoke-exp"}},
    )
    overrides = ["trainer.max_steps=2", "loss.pinyin_ctc_scale=0.1"]
    # no bar: a progress line per step in the log instead
    overrides += ["trainer.progress_bar=false", "trainer.progress_log_every_n_steps=1"]
    with caplog.at_level(logging.INFO, logger="hotline_asr.train"):
        result = train(recipe, overrides)
    lines = [r.getMessage() for r in caplog.records if " s of audio per s" in r.getMessage()]
    assert [line.split(":")[0].split(" step ")[1] for line in lines] == ["1", "2"]
    client = get_client(store)
    run = client.get_run(result.mlflow_run_id)
    assert client.get_experiment(run.info.experiment_id).name == "smoke-exp"

    params = run.data.params
    assert params["model.preset"] == "tiny"
    assert params["trainer.max_steps"] == "2"
    assert params["loss.pinyin_ctc_scale"] == "0.1"
    assert params["data.train_cuts"] == str([str(corpus.train_cuts)])
    from training.model.checkpoint import load_model

    trained, _, _ = load_model(result.averaged)
    assert int(params["num_params.total"]) == sum(p.numel() for p in trained.parameters())
    assert int(params["num_params.served"]) < int(params["num_params.total"])

    tags = run.data.tags
    assert tags["git_commit"] == "no-git" or len(tags["git_commit"]) >= 40
    assert tags["manifest.smoke_cuts_train.jsonl.gz"] == file_sha256(corpus.train_cuts)
    assert tags["manifest.smoke_cuts_dev.jsonl.gz"] == file_sha256(corpus.dev_cuts)

    metrics = run.data.metrics
    for key in ("train/loss", "train/simple_loss", "train/pruned_loss", "train/pinyin_ctc_loss"):
        assert key in metrics and metrics[key] > 0
    assert 0.0 <= metrics["dev/cer"] <= 10.0 and metrics["dev/loss"] > 0
    assert len(client.get_metric_history(run.info.run_id, "train/loss")) == 2
    # throughput: audio seconds trained per wall second, from the second step on
    (rate,) = client.get_metric_history(run.info.run_id, "train/audio_per_sec")
    assert rate.step == 1 and rate.value > 0
    assert float(lines[-1].split(", ")[-1].split()[0]) == pytest.approx(rate.value, abs=0.06)
    # the run's training wall time, logged once at its end
    (wall,) = client.get_metric_history(run.info.run_id, "train/wall_minutes")
    assert wall.step == result.global_step
    assert wall.value * 60 == pytest.approx(result.run_wall_seconds)
    assert 0 < result.run_wall_seconds <= result.wall_seconds  # a fresh run: this session only

    def artifacts(path: str) -> set[str]:
        return {a.path for a in client.list_artifacts(run.info.run_id, path)}

    assert artifacts("config") == {"config/config.yaml", "config/tokens.txt"}
    assert artifacts("checkpoints") == {"checkpoints/averaged.pt", "checkpoints/final.pt"}

    # Resume: same run, the step count goes on.
    again = train(recipe, ["trainer.max_steps=4", "loss.pinyin_ctc_scale=0.1"])
    assert again.mlflow_run_id == result.mlflow_run_id
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
    assert steps == [0, 1, 2, 3]
