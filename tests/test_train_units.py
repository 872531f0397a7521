"""Fast checks of the training pieces: config, loss schedule, tokens, pinyin targets, batches,
vocabulary mapping, freezing and checkpoint discovery."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

from training.lightning.config import load_recipe  # noqa: E402
from training.lightning.module import LossOptions, loss_scales  # noqa: E402
from training.lightning.pinyin import PinyinTargets  # noqa: E402


@pytest.fixture(scope="module")
def corpus(neural_voice: Path, tmp_path_factory):
    from training.lightning.smoke import make_smoke_corpus

    return make_smoke_corpus(
        neural_voice / "train", neural_voice / "dev", tmp_path_factory.mktemp("smoke"), 6, 3
    )


def test_loss_scales_follow_icefall_warmup():
    o = LossOptions(simple_loss_scale=0.5, warm_step=2000)
    assert loss_scales(0, o) == (1.0, 0.1)
    s, p = loss_scales(1000, o)
    assert s == pytest.approx(0.75) and p == pytest.approx(0.55)
    assert loss_scales(2000, o) == (0.5, 1.0)
    assert loss_scales(10**6, o) == (0.5, 1.0)


def test_recipes_parse_and_overrides_apply():
    root = Path(__file__).resolve().parents[1]
    cfg = load_recipe(root / "recipes" / "zipformer_synth", ["trainer.max_steps=7", "data.x=1"][:1])
    assert cfg.trainer.max_steps == 7
    assert cfg.model.preset == "xsmall"
    assert cfg.data.train_cuts == ["data/fbank/synth_cuts_train.jsonl.gz"]
    ft = load_recipe(root / "recipes" / "zipformer_finetune_voice")
    assert ft.data.train_weights == [0.7, 0.3]
    assert ft.init.checkpoint == "models/default/model.pt"
    # the fine-tune trains as the baseline's stage 2 did (RESULTS.md)
    assert (ft.loss.rnnt_type, ft.loss.context_mask_prob) == ("modified", 0.1)
    # validation decodes with the first chunk size and left context: the served ones
    from training.evaluate import EvalOptions
    from training.export import ExportOptions

    served = (ExportOptions().chunk_size, ExportOptions().left_context)
    assert (EvalOptions().chunk_size, EvalOptions().left_context) == served
    for recipe in (cfg, ft):
        assert (recipe.model.chunk_size[0], recipe.model.left_context_frames[0]) == served
    # the fine-tune's stages all build, and each decodes its validation at the served chunk
    from training.stages import check_stages, parse_stages, stage_overrides

    ft_dir = root / "recipes" / "zipformer_finetune_voice"
    stages = parse_stages(ft.stages)
    assert [s.name for s in stages] == ["adapt", "chunk16", "joiner"]
    check_stages(ft_dir, stages, ft_dir / "exp", [])
    for st in stages:
        sc = load_recipe(ft_dir, stage_overrides(st, ft_dir / "exp", [], None))
        assert (sc.model.chunk_size[0], sc.model.left_context_frames[0]) == served
    # the baseline's history, as stages: each builds; the last two end with the joiner rewrite
    synth_dir = root / "recipes" / "zipformer_synth"
    synth = parse_stages(cfg.stages)
    assert [s.name for s in synth] == ["ctc", "modified", "ctc_joiner", "cooldown"]
    assert [s.rewrite_joiner_from_ctc for s in synth] == [None, None, 0.2, 0.2]
    check_stages(synth_dir, synth, synth_dir / "exp", [])
    last = load_recipe(synth_dir, stage_overrides(synth[-1], synth_dir / "exp", [], None))
    assert last.init.checkpoint == str(synth_dir / "exp" / "ctc_joiner" / "averaged.pt")
    assert (last.optim.base_lr, last.trainer.max_steps) == (0.008, 2194)
    stage2 = load_recipe(
        root / "recipes" / "zipformer_synth",
        ["init.joiner_from_ctc=0.2", "loss.context_mask_prob=0.1", "loss.rnnt_type=modified"],
    )
    assert stage2.init.joiner_from_ctc == 0.2 and stage2.loss.context_mask_prob == 0.1
    assert cfg.init.joiner_from_ctc is None and cfg.model.overrides == {"use_ctc": True}
    with pytest.raises(ValueError, match="unknown key"):
        load_recipe(root / "recipes" / "zipformer_synth", ["trainer.max_stepz=1"])
    with pytest.raises(ValueError, match="key=value"):
        load_recipe(root / "recipes" / "zipformer_synth", ["trainer.max_steps"])


def test_pinyin_targets_split_syllable_and_tone():
    p = PinyinTargets()
    ids = p.encode("我要投诉了")
    assert p.decode(ids) == ["wo", "3", "yao", "4", "tou", "2", "su", "4", "le", "5"]
    assert p.encode("ABC，") == []
    assert 400 < p.vocab_size < 450 and p.units[0] == "<blk>"


def test_token_table_has_corpus_and_common_chars(corpus, tmp_path: Path):
    from serving.tokens import TokenTable
    from training.lightning.tokens import build_token_table

    out = tmp_path / "tokens.txt"
    tokens = build_token_table([corpus.train_cuts], out, common_chars=100)
    table = TokenTable.load(out)
    assert table.tokens[:3] == ["<blk>", "<sos/eos>", "<unk>"] and table.tokens == tokens
    from lhotse import CutSet

    text = "".join(c.supervisions[0].text for c in CutSet.from_file(corpus.train_cuts))
    assert all(ch in table for ch in text)
    assert "的" in table and "是" in table  # from the common characters
    assert len(tokens) >= 100


def test_batch_padding_targets_and_customs(corpus):
    from serving.tokens import TokenTable
    from training.lightning.datamodule import (
        LOG_EPS,
        AugmentSection,
        DataOptions,
        SpecAugmentOptions,
        TransducerDataModule,
    )

    table = TokenTable.load(corpus.tokens)
    dm = TransducerDataModule(
        DataOptions(train_cuts=[str(corpus.train_cuts)], max_duration=100),
        AugmentSection(specaug=SpecAugmentOptions(enabled=False)),
        table.encode,
        PinyinTargets().encode,
    )
    batch = next(iter(dm.train_dataloader(epoch=0)))
    x, lens = batch["features"], batch["feature_lens"]
    assert x.shape[0] == len(batch["tokens"]) == len(batch["cut_ids"]) == 6
    assert x.shape[2] == 80 and int(lens.max()) == x.shape[1]
    i = int(lens.argmin())
    assert torch.all(x[i, int(lens[i]) :] == LOG_EPS)
    assert batch["tokens"][0] == table.encode(batch["texts"][0])
    assert len(batch["pinyin"][0]) == 2 * len(batch["texts"][0])
    assert batch["customs"][0]["domain"]
    # Curriculum epoch: cuts in shortest-first order across the batches.
    dm2 = TransducerDataModule(
        DataOptions(train_cuts=[str(corpus.train_cuts)], max_duration=4.0),
        AugmentSection(specaug=SpecAugmentOptions(enabled=False)),
        table.encode,
    )
    firsts = [b["feature_lens"].max().item() for b in dm2.train_dataloader(epoch=0)]
    assert firsts == sorted(firsts)


def test_specaugment_masks_features(corpus):
    from serving.tokens import TokenTable
    from training.lightning.datamodule import SpecAugmentOptions, TransducerDataset, load_cuts

    cuts = load_cuts([corpus.train_cuts])
    table = TokenTable.load(corpus.tokens)
    plain = TransducerDataset(table.encode)[cuts]
    masked = TransducerDataset(
        table.encode, specaug=SpecAugmentOptions(num_frame_masks=2, frames_mask_size=20, p=1.0)
    )[cuts]
    assert plain["features"].shape == masked["features"].shape
    assert not torch.equal(plain["features"], masked["features"])


def test_on_the_fly_features_match_shape(corpus):
    from serving.tokens import TokenTable
    from training.augment import AudioAugmentor, AugmentOptions
    from training.lightning.datamodule import TransducerDataset, load_cuts

    cuts = load_cuts([corpus.train_cuts]).subset(first=2)
    table = TokenTable.load(corpus.tokens)
    ds = TransducerDataset(
        table.encode,
        on_the_fly=True,
        speed_perturb=[1.0],
        audio_augment=AudioAugmentor(AugmentOptions(telephone_prob=1.0)),
    )
    batch = ds[cuts]
    pre = TransducerDataset(table.encode)[cuts]
    # Same frame counts as the precomputed features (no speed change), different values.
    assert torch.equal(batch["feature_lens"], pre["feature_lens"])
    assert not torch.allclose(batch["features"], pre["features"])


def test_mixing_weights_take_share_of_second_corpus(corpus):
    from training.lightning.datamodule import AugmentSection, DataOptions, TransducerDataModule

    dm = TransducerDataModule(
        DataOptions(
            train_cuts=[str(corpus.train_cuts), str(corpus.dev_cuts)], train_weights=[0.6, 0.4]
        ),
        AugmentSection(),
        lambda t: [],
    )
    ids = [c.id for c in dm.train_cuts]
    assert sum("-train-" in i for i in ids) == 6
    assert sum("-dev-" in i for i in ids) == 4  # 6 * 0.4 / 0.6 = 4 > 3 available: repeats
    assert len(ids) == 10 and len(set(ids)) == 10


def test_mixed_in_share_is_drawn_anew_each_epoch_and_the_same_on_a_rerun(corpus):
    from training.lightning.datamodule import (
        AugmentSection,
        DataOptions,
        TransducerDataModule,
        load_cuts,
    )

    def module():
        return TransducerDataModule(
            DataOptions(
                train_cuts=[str(corpus.dev_cuts), str(corpus.train_cuts)], train_weights=[0.5, 0.5]
            ),
            AugmentSection(),
            lambda t: [],
        )

    dm = module()
    base = {c.id for c in load_cuts([corpus.train_cuts])}
    draws = [{c.id for c in dm.train_cuts_for_epoch(e) if c.id in base} for e in range(6)]
    assert all(len(d) == 3 for d in draws)  # 3 dev cuts whole, 3 of the 6 train cuts
    assert len(set(map(frozenset, draws))) > 1  # the base share changes between epochs
    assert set().union(*draws) != draws[0]
    # a rerun (a resume, another rank) draws the same cuts for the same epoch
    again = module()
    assert [
        {c.id for c in again.train_cuts_for_epoch(e) if c.id in base} for e in range(6)
    ] == draws
    # the loader of an epoch reads that epoch's cuts
    loader = dm.train_dataloader(epoch=3)
    seen = {c.id for batch in loader.sampler for c in batch}
    assert {i for i in seen if i in base} == draws[3]


def test_map_vocabulary_copies_rows_by_token_string():
    from training.model.config import preset
    from training.model.transducer import Transducer
    from training.train import map_vocabulary

    torch.manual_seed(0)
    old_tokens = ["<blk>", "<sos/eos>", "<unk>", "我", "要", "投"]
    new_tokens = ["<blk>", "<sos/eos>", "<unk>", "投", "诉", "我"]
    old = Transducer(preset("tiny", vocab_size=len(old_tokens))).state_dict()
    new = Transducer(preset("tiny", vocab_size=len(new_tokens))).state_dict()
    sd, copied = map_vocabulary(old, old_tokens, new, new_tokens)
    assert copied == 5
    for name in ("decoder.embedding.weight", "joiner.output_linear.weight", "simple_am_proj.bias"):
        assert torch.equal(sd[name][3], old[name][5])  # 投
        assert torch.equal(sd[name][5], old[name][3])  # 我
        assert torch.equal(sd[name][4], new[name][4])  # 诉: new row kept
    assert sd["joiner.encoder_proj.weight"] is old["joiner.encoder_proj.weight"]


def test_freeze_encoder_stacks():
    from training.model.config import preset
    from training.model.transducer import Transducer
    from training.train import freeze_encoder_stacks

    m = Transducer(preset("tiny", vocab_size=10))
    n = freeze_encoder_stacks(m, 2)
    assert n > 0
    assert not any(p.requires_grad for p in m.encoder_embed.parameters())
    assert not any(p.requires_grad for p in m.encoder.encoders[1].parameters())
    assert all(p.requires_grad for p in m.encoder.encoders[2].parameters())
    assert all(p.requires_grad for p in m.joiner.parameters())
    with pytest.raises(ValueError, match="stacks"):
        freeze_encoder_stacks(m, 7)


def test_find_resume_checkpoint_skips_truncated(tmp_path: Path):
    from training.train import find_resume_checkpoint

    assert find_resume_checkpoint(tmp_path) is None
    torch.save({"global_step": 4}, tmp_path / "step-00000004.ckpt")
    torch.save({"global_step": 6}, tmp_path / "step-00000006.ckpt")
    full = (tmp_path / "step-00000006.ckpt").read_bytes()
    (tmp_path / "last.ckpt").write_bytes(full[: len(full) // 2])  # cut off mid-write
    assert find_resume_checkpoint(tmp_path) == tmp_path / "step-00000006.ckpt"
    assert math.isfinite(float(torch.load(tmp_path / "step-00000004.ckpt")["global_step"]))


def test_desensitized_cuts_are_left_out_of_training(tmp_path: Path):
    from lhotse import CutSet, MonoCut, SupervisionSegment

    from training.lightning.datamodule import is_desensitized, load_cuts

    def cut(cid: str, custom: dict | None) -> MonoCut:
        sup = SupervisionSegment(id=cid, recording_id=cid, start=0, duration=1, text="你好")
        sup.custom = custom
        return MonoCut(id=cid, start=0, duration=1, channel=0, supervisions=[sup])

    cuts = CutSet.from_cuts(
        [
            cut("a", None),
            cut("b", {"desensitized": {"mobile": 1}}),
            cut("c", {"role": "agent"}),
            cut("d", {"invented_numbers": {"mobile": 1}}),  # data import --keep-numbers
        ]
    )
    path = tmp_path / "cuts.jsonl.gz"
    cuts.to_file(path)
    assert [is_desensitized(c) for c in cuts] == [False, True, False, False]
    assert sorted(c.id for c in load_cuts([path])) == ["a", "c", "d"]


def test_embedded_default_model_loads_with_the_shipped_token_table():
    from serving.tokens import TokenTable
    from training.model.checkpoint import load_model

    root = Path(__file__).resolve().parents[1] / "models" / "default"
    model, config, tokens = load_model(root / "model.pt")
    assert tokens == list(TokenTable.load(root / "tokens.txt").tokens)
    assert config.vocab_size == len(tokens) and tokens[0] == "<blk>"
    assert model.joiner.output_linear.out_features == len(tokens)
    assert 5e6 < sum(p.numel() for p in model.parameters()) < 2e7


def test_schedule_batch_count_scales_with_ref_duration_and_start(corpus, tmp_path: Path):
    """The Zipformer's ScheduledFloats see start + steps * max_duration / ref_duration."""
    from lightning.pytorch.callbacks import Callback

    from training.lightning.smoke import write_smoke_recipe
    from training.model.scaling import ScheduledFloat
    from training.train import train

    class Probe(Callback):
        counts: list[float] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            m = next(m for m in pl_module.model.modules() if isinstance(m, ScheduledFloat))
            self.counts.append(m.batch_count)

    recipe = write_smoke_recipe(
        tmp_path / "recipe",
        corpus,
        {"data": {"dev_cuts": [], "max_duration": 8}, "checkpoint": {"every_n_steps": 100}},
    )
    probe = Probe()
    overrides = ["trainer.max_steps=11", "optim.ref_duration=2", "optim.batch_count_start=100"]
    train(recipe, overrides, extra_callbacks=[probe])
    # updated every 10 steps: step 0 -> 100, step 10 -> 100 + 10 * 8 / 2
    assert probe.counts[0] == 100.0 and probe.counts[10] == 140.0


def test_progress_bar_follows_config_then_env_then_terminal(monkeypatch):
    import sys

    from training.train import _progress_bar

    monkeypatch.delenv("HOTLINE_PROGRESS", raising=False)
    assert _progress_bar(True) is True and _progress_bar(False) is False
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert _progress_bar(None) is True
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert _progress_bar(None) is False
    monkeypatch.setenv("HOTLINE_PROGRESS", "1")
    assert _progress_bar(None) is True and _progress_bar(False) is False
