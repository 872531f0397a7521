"""The tiny model overfits five real utterances: the training loss falls clearly."""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback

torch.set_num_threads(1)


class LossLog(Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(trainer.callback_metrics["train/loss"]))


def test_tiny_model_overfits_five_utterances(neural_voice: Path, tmp_path: Path):
    from training.lightning.smoke import make_smoke_corpus, write_smoke_recipe
    from training.train import train

    corpus = make_smoke_corpus(neural_voice / "train", neural_voice / "dev", tmp_path / "c", 5, 1)
    recipe = write_smoke_recipe(
        tmp_path / "recipe",
        corpus,
        {
            "data": {"dev_cuts": [], "max_duration": 60},
            "checkpoint": {"every_n_steps": 1000, "average_last": 0},
        },
    )
    log = LossLog()
    result = train(recipe, ["trainer.max_steps=30"], extra_callbacks=[log])
    assert result.global_step == 30 and result.skipped_batches == 0
    first, last = sum(log.losses[:3]) / 3, sum(log.losses[-3:]) / 3
    print(f"train loss {first:.2f} -> {last:.2f} over {len(log.losses)} steps")
    assert last < 0.5 * first, f"loss went {first:.2f} -> {last:.2f}: {log.losses}"


class PoisonBatch(Callback):
    """Turns the features of one batch into NaN, as a corrupt feature file would."""

    def __init__(self, batch_idx: int) -> None:
        self.batch_idx = batch_idx
        self.poisoned = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.current_epoch == 0 and batch_idx == self.batch_idx:
            batch["features"][:] = float("nan")
            self.poisoned += 1


def test_nan_batch_is_skipped_not_applied(neural_voice: Path, tmp_path: Path):
    from training.lightning.smoke import make_smoke_corpus, write_smoke_recipe
    from training.train import train

    corpus = make_smoke_corpus(neural_voice / "train", neural_voice / "dev", tmp_path / "c", 4, 1)
    recipe = write_smoke_recipe(
        tmp_path / "recipe", corpus, {"data": {"dev_cuts": [], "max_duration": 4}}
    )
    poison = PoisonBatch(batch_idx=1)
    result = train(recipe, ["trainer.max_steps=3"], extra_callbacks=[poison])
    assert poison.poisoned == 1
    assert result.skipped_batches == 1 and result.global_step == 3
    ckpt = torch.load(result.last_checkpoint, map_location="cpu", weights_only=False)
    assert all(
        torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point()
    )


def test_trained_model_decodes_the_utterances_it_memorised(neural_voice: Path, tmp_path: Path):
    """A falling loss is not enough: a model that learns only which characters occur (and
    emits one constant hypothesis) also lowers it. After enough full-batch steps the tiny
    model must decode its few training utterances, through the whole Lightning path."""
    from training.evaluate import EvalOptions, evaluate
    from training.lightning.smoke import make_smoke_corpus, write_smoke_recipe
    from training.train import train

    corpus = make_smoke_corpus(neural_voice / "train", neural_voice / "dev", tmp_path / "c", 4, 1)
    recipe = write_smoke_recipe(
        tmp_path / "recipe",
        corpus,
        {
            "model": {"preset": "tiny", "chunk_size": [-1], "left_context_frames": [64]},
            "data": {"dev_cuts": [], "max_duration": 60},
            "checkpoint": {"every_n_steps": 1000, "average_last": 0},
        },
    )
    result = train(recipe, ["trainer.max_steps=200"])
    res = evaluate(result.final, corpus.train_cuts, EvalOptions(chunk_size=-1))
    pairs = [(h["ref"], h["hyp"]) for h in res.hypotheses]
    print(f"CER {100 * res.cer:.1f} % on the 4 training utterances after 200 steps: {pairs}")
    assert res.cer < 0.5, pairs
    assert len({hyp for _, hyp in pairs}) > 1, f"one constant hypothesis for all: {pairs}"
