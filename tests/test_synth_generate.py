from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import soundfile as sf
from typer.testing import CliRunner

from hotline_asr.cli import app
from training.synth.generate import (
    SPLITS,
    TEST_VARIANTS,
    SynthOptions,
    plan_corpus,
    split_of_text,
)

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng missing")


def _table(path: Path) -> dict[str, str]:
    rows = [line.split(" ", 1) for line in path.read_text(encoding="utf-8").splitlines()]
    return {k: v for k, v in rows}


def _synth(out: Path, jobs: int = 1, *extra: str, hours: str = "0.002") -> str:
    """`data synth` with seed 9 into ``out``; ``extra`` options appended."""
    res = CliRunner().invoke(
        app,
        ["data", "synth", "--hours", hours, "--seed", "9", "--out", str(out),
         "--jobs", str(jobs), "--no-progress", *extra],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    return res.output


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "corpus"
    _synth(out, jobs=2)
    return out


def test_cli_writes_a_valid_kaldi_folder_per_split(corpus):
    for split in SPLITS:
        d = corpus / split
        wav, text, u2s = _table(d / "wav.scp"), _table(d / "text"), _table(d / "utt2spk")
        assert wav and wav.keys() == text.keys() == u2s.keys()
        assert list(wav) == sorted(wav)
        s2u = {k: v.split() for k, v in _table(d / "spk2utt").items()}
        assert sorted(u for us in s2u.values() for u in us) == sorted(wav)
        metas = [json.loads(line) for line in (d / "meta.jsonl").read_text().splitlines()]
        assert [m["utt_id"] for m in metas] == list(wav)
        for m in metas:
            utt = m["utt_id"]
            assert utt.startswith(u2s[utt] + "-") and m["speaker"] == u2s[utt]
            assert text[utt] == m["text"]
            info = sf.info(str(d / wav[utt]))  # relative to the split folder
            assert info.samplerate == m["sample_rate"] and info.channels == 1
            assert abs(info.frames / info.samplerate - m["duration"]) < 1e-3
            assert m["sample_rate"] == (16000 if m["channel"] is None else 8000)
            assert {"variant", "speed", "pitch"} <= set(m["voice"])
            assert m["role"] in ("caller", "agent") and m["template_id"]
    summary = json.loads((corpus / "synth.json").read_text())
    assert summary["options"]["seed"] == 9


def test_test_split_has_held_out_voices_and_texts(corpus):
    def metas(split):
        return [json.loads(x) for x in (corpus / split / "meta.jsonl").read_text().splitlines()]

    train_dev = metas("train") + metas("dev")
    test = metas("test")
    assert {m["voice"]["variant"] for m in test} <= set(TEST_VARIANTS)
    assert not {m["voice"]["variant"] for m in train_dev} & set(TEST_VARIANTS)
    texts = {s: {m["text"] for m in metas(s)} for s in SPLITS}
    assert not texts["train"] & texts["test"] and not texts["train"] & texts["dev"]


def test_same_seed_same_bytes_any_jobs_and_rerun_resumes(corpus, tmp_path):
    other = tmp_path / "again"
    _synth(other, jobs=1)
    for split in SPLITS:
        a = sorted((corpus / split / "wav").iterdir())
        b = sorted((other / split / "wav").iterdir())
        assert [p.name for p in a] == [p.name for p in b]
        assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b, strict=True))
        assert (corpus / split / "text").read_text() == (other / split / "text").read_text()
    out = _synth(other, jobs=1)
    assert "0 utterances synthesized" in out and "speed:" not in out


def test_plan_is_deterministic_and_splits_text_by_hash():
    a = plan_corpus(SynthOptions(hours=0.02, seed=4))
    b = plan_corpus(SynthOptions(hours=0.02, seed=4))
    assert [(s.utt_id, s.text, s.voice, s.seed) for s in a] == [
        (s.utt_id, s.text, s.voice, s.seed) for s in b
    ]
    shares = SynthOptions(hours=1).split_shares
    assert all(split_of_text(s.text, shares) == s.split for s in a)
    with pytest.raises(ValueError, match="channel must be"):
        plan_corpus(SynthOptions(hours=0.01, channel="radio"))


def test_tone_range_changes_only_the_pitch_range_of_the_plan():
    plain = plan_corpus(SynthOptions(hours=0.05, seed=4))
    wide = plan_corpus(SynthOptions(hours=0.05, seed=4, tone_range=(150, 200)))
    assert [
        (s.utt_id, s.text, s.voice.variant, s.voice.pitch, s.channel, s.seed) for s in plain
    ] == [(s.utt_id, s.text, s.voice.variant, s.voice.pitch, s.channel, s.seed) for s in wide]
    assert {s.voice.pitch_range for s in plain} == {100}
    ranges = [s.voice.pitch_range for s in wide]
    assert min(ranges) >= 150 and max(ranges) <= 200 and len(set(ranges)) > 5
    assert wide[0].meta(8000, 1.0)["voice"]["pitch_range"] == ranges[0]
    for bad in ((0, 100), (150, 250), (180, 150)):
        with pytest.raises(ValueError, match="tone_range"):
            plan_corpus(SynthOptions(hours=0.01, tone_range=bad))


def test_render_call_cli(tmp_path):
    res = CliRunner().invoke(app, ["data", "render-call", "--seed", "2", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["call2.json", "call2.mono.wav", "call2.rttm", "call2.stereo.wav"]
    assert sf.info(str(tmp_path / "call2.stereo.wav")).channels == 2


def test_cli_tone_range_is_written_down_and_bad_values_are_refused(tmp_path):
    out = tmp_path / "wide"
    _synth(out, 1, "--tone-range", "150:200")
    assert json.loads((out / "synth.json").read_text())["options"]["tone_range"] == [150, 200]
    metas = [json.loads(line) for line in (out / "train" / "meta.jsonl").read_text().splitlines()]
    assert all(150 <= m["voice"]["pitch_range"] <= 200 for m in metas)
    for bad, says in (("wide", "LOW:HIGH"), ("50:300", "tone_range")):
        res = CliRunner().invoke(
            app,
            ["data", "synth", "--hours", "0.002", "--out", str(tmp_path / bad.replace(":", "-")),
             "--tone-range", bad],
        )  # fmt: skip
        assert res.exit_code == 1 and says in res.output, res.output


def test_splits_renders_one_split_of_the_same_plan(tmp_path):
    whole = plan_corpus(SynthOptions(hours=0.1, seed=4))
    test_only = plan_corpus(SynthOptions(hours=0.1, seed=4, splits=("test",)))
    assert test_only and [(s.utt_id, s.text, s.voice, s.seed) for s in test_only] == [
        (s.utt_id, s.text, s.voice, s.seed) for s in whole if s.split == "test"
    ]
    out = tmp_path / "more-test"
    _synth(out, 1, "--splits", "test", hours="0.04")
    assert sorted(p.name for p in out.iterdir()) == ["synth.json", "test"]
    assert (out / "test" / "text").read_text().strip()
    res = CliRunner().invoke(
        app, ["data", "synth", "--hours", "0.01", "--out", str(tmp_path / "x"), "--splits", "eval"]
    )
    assert res.exit_code == 1 and "splits must be some of" in res.output, res.output
