"""Fine-tuning from icefall's reference checkpoint: weights load, the vocabulary is mapped by
token string, frozen encoder stacks stay put while the rest trains."""

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


def test_finetune_from_icefall_checkpoint(corpus, icefall_fixture: Path, tmp_path: Path):
    from serving.tokens import TokenTable
    from training.lightning.config import load_recipe
    from training.lightning.smoke import write_smoke_recipe
    from training.train import build_model, train

    ice_ckpt = icefall_fixture / "epoch-99.pt"
    ice = torch.load(ice_ckpt, map_location="cpu", weights_only=True)["model"]
    ice_tokens = TokenTable.load(icefall_fixture / "tokens.txt").tokens
    recipe = write_smoke_recipe(
        tmp_path / "recipe",
        corpus,
        {
            "model": {"chunk_size": [16], "left_context_frames": [64]},
            "data": {"dev_cuts": [], "max_duration": 6},
            "init": {"checkpoint": str(ice_ckpt), "freeze_encoder_stacks": 2},
        },
    )
    ours = TokenTable.load(corpus.tokens).tokens
    shared = [t for t in ours[3:] if t in ice_tokens]
    new = [t for t in ours[3:] if t not in ice_tokens]
    assert shared and new, "the test needs both known and unknown characters"

    # Build: icefall weights in, vocabulary rows moved to our ids.
    cfg = load_recipe(recipe)
    model, mc = build_model(cfg, ours, Path("."))
    assert mc.encoder_dim == (64, 96, 128, 128, 96, 64) and mc.vocab_size == len(ours)
    sd = model.state_dict()
    assert torch.equal(
        sd["encoder.encoders.3.out_combiner.bypass_scale"],
        ice["encoder.encoders.3.out_combiner.bypass_scale"],
    )
    t = shared[0]
    assert torch.equal(
        sd["decoder.embedding.weight"][ours.index(t)],
        ice["decoder.embedding.weight"][ice_tokens.index(t)],
    )
    assert torch.equal(
        sd["joiner.output_linear.weight"][ours.index(t)],
        ice["joiner.output_linear.weight"][ice_tokens.index(t)],
    )
    assert not any(p.requires_grad for p in model.encoder.encoders[1].parameters())

    # Train a few steps.
    result = train(recipe, ["trainer.max_steps=3"])
    assert result.global_step == 3
    last = torch.load(result.last_checkpoint, map_location="cpu", weights_only=False)
    trained = {k[6:]: v for k, v in last["state_dict"].items() if k.startswith("model.")}
    frozen = [
        k
        for k in trained
        if k.startswith(("encoder_embed.", "encoder.encoders.0.", "encoder.encoders.1."))
    ]
    assert frozen and all(torch.equal(trained[k], ice[k]) for k in frozen)
    moving = "encoder.encoders.5.encoder.layers.0.feed_forward1.in_proj.weight"
    assert not torch.equal(trained[moving], ice[moving])
    assert torch.isfinite(trained["joiner.output_linear.weight"]).all()

    # Resume: the run's architecture is the icefall checkpoint's, not the recipe's "tiny" preset,
    # so the resumed run must rebuild it from the checkpoint it resumes (it used to fail with
    # size mismatches), and keep the frozen stacks frozen.
    again = train(recipe, ["trainer.max_steps=5"])
    assert again.resumed_from is not None and again.global_step == 5
    last = torch.load(again.last_checkpoint, map_location="cpu", weights_only=False)
    resumed = {k[6:]: v for k, v in last["state_dict"].items() if k.startswith("model.")}
    assert resumed["encoder.encoders.3.out_combiner.bypass_scale"].shape == (128,)
    assert all(torch.equal(resumed[k], ice[k]) for k in frozen)


def test_init_joiner_from_ctc_rewrites_the_joiner_and_needs_a_ctc_head(
    corpus, icefall_fixture: Path, tmp_path: Path
):
    from serving.tokens import TokenTable
    from training.lightning.config import load_recipe
    from training.lightning.smoke import write_smoke_recipe
    from training.model.checkpoint import save_model
    from training.model.config import preset
    from training.model.transducer import Transducer
    from training.train import build_model

    tokens = TokenTable.load(corpus.tokens).tokens
    torch.manual_seed(0)
    base = Transducer(preset("tiny", vocab_size=len(tokens), use_ctc=True, joiner_dim=96))
    save_model(tmp_path / "base.pt", base, tokens)

    def build(checkpoint: Path):
        recipe = write_smoke_recipe(
            tmp_path / f"recipe-{checkpoint.stem}",
            corpus,
            {"init": {"checkpoint": str(checkpoint), "joiner_from_ctc": 0.1}},
        )
        return build_model(load_recipe(recipe), tokens, Path("."))

    model, _ = build(tmp_path / "base.pt")
    head = base.ctc_output[1]
    assert torch.equal(model.joiner.output_linear.weight[:, :64], head.weight / 0.1)
    assert torch.equal(model.joiner.output_linear.weight[:, 64:], torch.zeros(len(tokens), 32))
    assert torch.equal(model.simple_am_proj.weight, head.weight)
    assert torch.equal(model.encoder_embed.conv[0].weight, base.encoder_embed.conv[0].weight)

    with pytest.raises(ValueError, match="needs a (model with a character )?CTC head"):
        build(icefall_fixture / "epoch-99.pt")
