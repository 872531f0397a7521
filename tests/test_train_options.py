"""Training options that change the step: bf16 autocast on CPU, on-the-fly audio augmentation
(speed perturbation, telephone channel, noise) with SpecAugment, and the pinyin CTC head, which
must stay out of the exported model file."""

from __future__ import annotations

from pathlib import Path

import torch

torch.set_num_threads(1)


def test_bf16_on_the_fly_augmentation_and_pinyin_head(neural_voice: Path, tmp_path: Path):
    from training.lightning.smoke import make_smoke_corpus, write_smoke_recipe
    from training.model.checkpoint import load_model
    from training.train import train

    corpus = make_smoke_corpus(neural_voice / "train", neural_voice / "dev", tmp_path / "c", 4, 1)
    recipe = write_smoke_recipe(
        tmp_path / "recipe",
        corpus,
        {
            "data": {"dev_cuts": [], "max_duration": 5},
            "augment": {
                "on_the_fly": True,
                "speed_perturb": [0.9, 1.0, 1.1],
                "specaug": {"enabled": True, "num_frame_masks": 2, "frames_mask_size": 20},
                "audio": {"telephone_prob": 1.0, "noise_prob": 1.0},
            },
            "loss": {"pinyin_ctc_scale": 0.3},
            "trainer": {"precision": "bf16-mixed"},
        },
    )
    result = train(recipe, ["trainer.max_steps=3"])
    assert result.global_step == 3 and result.skipped_batches == 0
    ckpt = torch.load(result.last_checkpoint, map_location="cpu", weights_only=False)
    assert ckpt["state_dict"]["pinyin_head.1.weight"].shape[0] > 400
    assert all(
        torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point()
    )
    model, _, _ = load_model(result.averaged)  # strict load: no pinyin head in our model file
    assert not any(k.startswith("pinyin") for k in model.state_dict())
