from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet, RecordingSet, SupervisionSet, load_manifest
from typer.testing import CliRunner

from hotline_asr.cli import app
from serving.text.desensitize import desensitize
from serving.text.normalize import normalize
from training.data.importers import import_corpus
from training.data.manifests import (
    import_report_path,
    raw_cuts_path,
    recordings_path,
    supervisions_path,
)
from training.data.problems import CorpusError

TEXTS = {
    "u1": "您好，我要反映一下噪音问题。",
    "u2": "请问社保卡怎么补办？",
    "u3": "我家住在长宁路一百号三楼",
}
USABLE = re.compile(r"^([\u4e00-\u9fffA-Z ]|<[^>]+>)+$")


def _write_wav(path: Path, seconds: float, sr: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(len(t))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x.astype(np.float32), sr, subtype="PCM_16")


def make_kaldi(folder: Path, texts: dict[str, str] = TEXTS, sr: int = 8000) -> Path:
    """A small Kaldi folder: wav/<id>.wav (relative paths), text, utt2spk, meta.jsonl."""
    folder.mkdir(parents=True, exist_ok=True)
    wav_scp, text, utt2spk, meta = [], [], [], []
    for i, (utt, txt) in enumerate(texts.items()):
        _write_wav(folder / "wav" / f"{utt}.wav", 0.5 + 0.25 * i, sr, seed=i)
        wav_scp.append(f"{utt} wav/{utt}.wav")
        text.append(f"{utt} {txt}")
        spk = "spkA" if i % 2 == 0 else "spkB"
        utt2spk.append(f"{utt} {spk}")
        meta.append(
            json.dumps(
                {
                    "utt_id": utt,
                    "sample_rate": sr,
                    "role": "caller",
                    "domain": "noise",
                    "speed": 1.1,
                },
                ensure_ascii=False,
            )
        )
    for name, lines in (
        ("wav.scp", wav_scp),
        ("text", text),
        ("utt2spk", utt2spk),
        ("meta.jsonl", meta),
    ):
        (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def _replace_line(path: Path, line_no: int, new: str | None) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    if new is None:
        del lines[line_no - 1]
    else:
        lines[line_no - 1] = new
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _append_line(path: Path, new: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(new + "\n")


# Each case breaks utterance u2 (or adds a bad line) and says what the error must name:
# (kind, file name, line, how many utterances survive --skip-bad)
BREAKERS: dict[str, tuple[Callable[[Path], None], str, str, int, int]] = {
    "missing audio": (lambda d: (d / "wav" / "u2.wav").unlink(), "missing-audio", "wav.scp", 2, 2),
    "unreadable audio": (
        lambda d: (d / "wav" / "u2.wav").write_bytes(b"RIFF....WAVEfmt garbage"),
        "unreadable-audio",
        "wav.scp",
        2,
        2,
    ),
    "wrong sample rate": (
        lambda d: _write_wav(d / "wav" / "u2.wav", 0.75, 16000),
        "sample-rate",
        "wav.scp",
        2,
        2,
    ),
    "empty transcript": (
        lambda d: _replace_line(d / "text", 2, "u2"),
        "empty-transcript",
        "text",
        2,
        2,
    ),
    "nothing left after normalization": (
        lambda d: _replace_line(d / "text", 2, "u2 ，。！……"),
        "empty-transcript",
        "text",
        2,
        2,
    ),
    "not chinese or latin": (
        lambda d: _replace_line(d / "text", 2, "u2 안녕하세요"),
        "unusable-transcript",
        "text",
        2,
        2,
    ),
    "duplicate id": (
        lambda d: _append_line(d / "text", "u2 又一句话"),
        "duplicate-id",
        "text",
        4,
        2,
    ),
    "text without audio": (
        lambda d: _append_line(d / "text", "u9 没有音频的一句话"),
        "id-mismatch",
        "text",
        4,
        3,
    ),
    "audio without text": (
        lambda d: _replace_line(d / "text", 2, None),
        "id-mismatch",
        "wav.scp",
        2,
        2,
    ),
    "missing from utt2spk": (
        lambda d: _replace_line(d / "utt2spk", 2, None),
        "id-mismatch",
        "text",
        2,
        2,
    ),
    "ark offset in wav.scp": (
        lambda d: _replace_line(d / "wav.scp", 2, "u2 data/wav.1.ark:1234"),
        "piped-command",
        "wav.scp",
        2,
        2,
    ),
    "no path in wav.scp": (
        lambda d: _replace_line(d / "wav.scp", 2, "u2"),
        "bad-line",
        "wav.scp",
        2,
        2,
    ),
    "meta sample rate not a number": (
        lambda d: _replace_line(d / "meta.jsonl", 2, '{"utt_id": "u2", "sample_rate": "8k"}'),
        "bad-line",
        "meta.jsonl",
        2,
        2,
    ),
    "meta line not json": (  # the utterance stays, without its metadata
        lambda d: _replace_line(d / "meta.jsonl", 2, '{"utt_id": "u2", '),
        "bad-line",
        "meta.jsonl",
        2,
        3,
    ),
    "piped wav.scp": (
        lambda d: _replace_line(d / "wav.scp", 2, "u2 sox wav/u2.wav -t wav - |"),
        "piped-command",
        "wav.scp",
        2,
        2,
    ),
}


@pytest.mark.parametrize("case", sorted(BREAKERS))
def test_bad_input_stops_with_file_and_line(tmp_path: Path, case: str) -> None:
    breaker, kind, fname, line, _ = BREAKERS[case]
    src = make_kaldi(tmp_path / "corpus" / "train")
    breaker(src)
    with pytest.raises(CorpusError) as err:
        import_corpus(tmp_path / "corpus", "tiny", out_dir=tmp_path / "data")
    problem = err.value.problem
    assert problem.kind == kind
    assert Path(problem.path).name == fname and problem.line == line
    assert f"{fname}:{line}" in str(err.value)
    assert not (tmp_path / "data" / "manifests").exists() or not any(
        (tmp_path / "data" / "manifests").iterdir()
    )


@pytest.mark.parametrize("case", sorted(BREAKERS))
def test_skip_bad_lists_the_problem_in_the_report(tmp_path: Path, case: str) -> None:
    breaker, kind, fname, line, survivors = BREAKERS[case]
    src = make_kaldi(tmp_path / "corpus" / "train")
    breaker(src)
    (report,) = import_corpus(tmp_path / "corpus", "tiny", out_dir=tmp_path / "data", skip_bad=True)
    assert report.utterances == survivors
    assert [(p.kind, Path(p.path).name, p.line) for p in report.skipped] == [(kind, fname, line)]
    on_disk = json.loads(
        import_report_path(tmp_path / "data" / "manifests", "tiny", "train").read_text()
    )
    assert on_disk["skipped_count"] == 1
    assert on_disk["skipped"][0]["kind"] == kind and on_disk["skipped"][0]["line"] == line
    sups = load_manifest(supervisions_path(tmp_path / "data" / "manifests", "tiny", "train"))
    assert len(sups) == survivors
    assert "u9" not in {s.id for s in sups}


def test_claimed_sample_rate_option(tmp_path: Path) -> None:
    make_kaldi(tmp_path / "c" / "train", sr=8000)
    with pytest.raises(CorpusError, match="8000 Hz but --sample-rate says 16000 Hz"):
        import_corpus(tmp_path / "c", "tiny", out_dir=tmp_path / "d", sample_rate=16000)
    (rep,) = import_corpus(tmp_path / "c", "tiny", out_dir=tmp_path / "d", sample_rate=8000)
    assert rep.utterances == 3


def test_manifests_round_trip_and_carry_metadata(tmp_path: Path) -> None:
    make_kaldi(tmp_path / "c" / "train")
    make_kaldi(tmp_path / "c" / "dev", {"d1": "我想问一下公积金怎么提取"})
    reports = import_corpus(tmp_path / "c", "tiny", out_dir=tmp_path / "data")
    assert [r.split for r in reports] == ["dev", "train"]
    m = tmp_path / "data" / "manifests"
    recs = RecordingSet.from_file(recordings_path(m, "tiny", "train")).to_eager()
    sups = SupervisionSet.from_file(supervisions_path(m, "tiny", "train")).to_eager()
    cuts = CutSet.from_file(raw_cuts_path(m, "tiny", "train")).to_eager()
    assert len(recs) == len(sups) == len(cuts) == 3
    for name, manifest in (("r", recs), ("s", sups), ("c", cuts)):
        again = tmp_path / f"again_{name}.jsonl.gz"
        manifest.to_file(again)
        assert list(type(manifest).from_file(again)) == list(manifest)
    u2 = next(s for s in sups if s.id == "u2")
    assert u2.text == "请问社保卡怎么补办" and u2.speaker == "spkB" and u2.language == "Chinese"
    assert u2.custom == {"role": "caller", "domain": "noise", "speed": 1.1}
    assert recs["u2"].sampling_rate == 8000 and recs["u2"].duration == pytest.approx(0.75)
    cut = cuts["u2"]
    assert cut.duration == pytest.approx(0.75) and cut.supervisions[0].text == u2.text
    audio = cut.load_audio()
    assert audio.shape == (1, 6000)
    assert not cut.has_features


def test_failed_import_leaves_previous_manifests_untouched(tmp_path: Path) -> None:
    src = make_kaldi(tmp_path / "c" / "train")
    import_corpus(tmp_path / "c", "tiny", out_dir=tmp_path / "data")
    m = tmp_path / "data" / "manifests"
    before = {p.name: p.read_bytes() for p in m.iterdir()}
    assert len(before) == 4
    make_kaldi(tmp_path / "c" / "dev", {"d1": "一句好的话"})
    (src / "wav" / "u3.wav").unlink()  # train breaks; dev alone is fine
    with pytest.raises(CorpusError):
        import_corpus(tmp_path / "c", "tiny", out_dir=tmp_path / "data")
    after = {p.name: p.read_bytes() for p in m.iterdir()}
    assert after == before  # no dev manifests either, and no temporary files


def test_segments_cut_one_recording_into_utterances(tmp_path: Path) -> None:
    d = tmp_path / "seg" / "test"
    _write_wav(d / "call.wav", 3.0, 8000)
    (d / "wav.scp").write_text(f"call {d / 'call.wav'}\n")  # absolute path
    (d / "segments").write_text("s1 call 0.0 1.2\ns2 call 1.5 -1\n")
    (d / "text").write_text("s1 喂你好\ns2 我要投诉\n")
    (rep,) = import_corpus(tmp_path / "seg", "calls", out_dir=tmp_path / "data")
    assert rep.recordings == 1 and rep.utterances == 2
    cuts = load_manifest(raw_cuts_path(tmp_path / "data" / "manifests", "calls", "test"))
    assert cuts["s1"].start == 0.0 and cuts["s1"].duration == pytest.approx(1.2)
    assert cuts["s2"].start == pytest.approx(1.5) and cuts["s2"].duration == pytest.approx(1.5)
    assert cuts["s2"].supervisions[0].start == 0.0
    (d / "segments").write_text("s1 call 0.0 1.2\ns2 call 2.5 4.0\n")
    with pytest.raises(CorpusError, match=r"segments:2: 's2' spans 2.500-4.000 s"):
        import_corpus(tmp_path / "seg", "calls", out_dir=tmp_path / "data")


def test_folder_format(tmp_path: Path) -> None:
    root = tmp_path / "folder" / "train"
    _write_wav(root / "spk1" / "a.wav", 0.5, 8000)
    (root / "spk1" / "a.txt").write_text("我的电话是13812345678\n", encoding="utf-8")
    _write_wav(root / "spk2" / "b.flac", 0.6, 8000)
    (root / "spk2" / "b.txt").write_text("谢谢", encoding="utf-8")
    _write_wav(root / "spk2" / "c.wav", 0.6, 8000)  # no transcript
    with pytest.raises(CorpusError, match=r"c.wav: has no transcript file c.txt"):
        import_corpus(tmp_path / "folder", "fold", fmt="folder", out_dir=tmp_path / "data")
    (rep,) = import_corpus(
        tmp_path / "folder", "fold", fmt="folder", out_dir=tmp_path / "data", skip_bad=True
    )
    assert rep.utterances == 2 and rep.speakers == 2 and rep.desensitized == {"mobile": 1}
    sups = load_manifest(supervisions_path(tmp_path / "data" / "manifests", "fold", "train"))
    assert sups["a"].text == "我的电话是<手机号>" and sups["a"].speaker == "spk1"
    assert sups["a"].custom == {"desensitized": {"mobile": 1}}


def test_lhotse_format_reimports_our_own_manifests(tmp_path: Path) -> None:
    make_kaldi(tmp_path / "c" / "train")
    import_corpus(tmp_path / "c", "tiny", out_dir=tmp_path / "a")
    (rep,) = import_corpus(
        tmp_path / "a" / "manifests", "copy", fmt="lhotse", out_dir=tmp_path / "b"
    )
    assert rep.utterances == 3
    first = load_manifest(supervisions_path(tmp_path / "a" / "manifests", "tiny", "train"))
    second = load_manifest(supervisions_path(tmp_path / "b" / "manifests", "copy", "train"))
    assert [s.to_dict() for s in first] == [s.to_dict() for s in second]
    # A recording whose file changed rate no longer matches its manifest's claim.
    _write_wav(tmp_path / "c" / "train" / "wav" / "u1.wav", 0.5, 16000)
    with pytest.raises(CorpusError, match=r"recordings_train.jsonl.gz:1: .* 16000 Hz but"):
        import_corpus(tmp_path / "a" / "manifests", "copy", fmt="lhotse", out_dir=tmp_path / "b")


def test_cli_import_reports_error_and_skip_bad(tmp_path: Path) -> None:
    src = make_kaldi(tmp_path / "c" / "train")
    _replace_line(src / "wav.scp", 3, "u3 cat wav/u3.wav |")
    runner = CliRunner()
    args = ["data", "import", str(tmp_path / "c"), "--corpus", "tiny", "--out", str(tmp_path / "d")]
    res = runner.invoke(app, args)
    assert res.exit_code == 1
    assert "wav.scp:3" in res.output and "piped command" in res.output
    res = runner.invoke(app, [*args, "--skip-bad", "--splits", "train"])
    assert res.exit_code == 0, res.output
    assert "tiny/train: 2 utterances" in res.output and "1 skipped" in res.output


def test_import_neural_voice(neural_voice: Path, tmp_path: Path) -> None:
    if not neural_voice.is_dir():
        pytest.skip(f"{neural_voice} is missing")
    reports = import_corpus(neural_voice, "nvzh", out_dir=tmp_path / "data")
    by_split = {r.split: r for r in reports}
    assert by_split["train"].utterances == 550 and by_split["dev"].utterances == 100
    assert by_split["train"].hours * 60 == pytest.approx(32.0, abs=0.05)
    assert by_split["dev"].hours * 60 == pytest.approx(5.9, abs=0.05)
    m = tmp_path / "data" / "manifests"
    for split, n in (("train", 550), ("dev", 100)):
        meta = {
            o["utt_id"]: o
            for o in map(json.loads, (neural_voice / split / "meta.jsonl").read_text().splitlines())
        }
        recs = load_manifest(recordings_path(m, "nvzh", split))
        sups = load_manifest(supervisions_path(m, "nvzh", split))
        cuts = load_manifest(raw_cuts_path(m, "nvzh", split))
        assert len(recs) == len(sups) == len(cuts) == n
        for s in sups:
            info = meta[s.id]
            assert recs[s.recording_id].sampling_rate == 16000
            assert s.duration == pytest.approx(info["duration_s"], abs=0.002)
            assert s.text == desensitize(normalize(info["text_punct"])).text
            assert USABLE.match(s.text), s.text
            assert s.speaker == "nvzh-f01"
            assert s.custom["role"] == info["role"] and s.custom["domain"] == info["domain"]
        assert {c.id for c in cuts} == set(meta)


def test_synth_meta_voice_object_is_flattened(tmp_path: Path) -> None:
    src = make_kaldi(tmp_path / "c" / "train", {"s1": "您好"})
    meta = {
        "utt_id": "s1",
        "speaker": "Mike-p3",
        "sample_rate": 8000,
        "role": "agent",
        "voice": {"variant": "Mike", "speed": 146, "pitch": 36},
        "channel": {"codec": "mulaw", "snr_db": 20.5},
    }
    (src / "meta.jsonl").write_text(json.dumps(meta) + "\n")
    (src / "utt2spk").unlink()
    import_corpus(tmp_path / "c", "syn", out_dir=tmp_path / "d")
    (sup,) = load_manifest(supervisions_path(tmp_path / "d" / "manifests", "syn", "train"))
    assert sup.speaker == "Mike-p3"
    assert sup.custom == {
        "role": "agent",
        "voice": "Mike",
        "speed": 146,
        "pitch": 36,
        "channel": {"codec": "mulaw", "snr_db": 20.5},
    }


def test_keep_numbers_only_for_a_generated_corpus(tmp_path: Path) -> None:
    texts = {"u1": "我姓董电话是13812345678", "u2": "谢谢"}
    make_kaldi(tmp_path / "gen" / "train", texts)
    with pytest.raises(ValueError, match="has no synth.json. Real transcripts are always"):
        import_corpus(tmp_path / "gen", "gen", out_dir=tmp_path / "data", keep_numbers=True)
    (tmp_path / "gen" / "synth.json").write_text("{}\n", encoding="utf-8")
    res = CliRunner().invoke(
        app,
        ["data", "import", str(tmp_path / "gen"), "--corpus", "gen", "--out",
         str(tmp_path / "data"), "--keep-numbers"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "desensitized: none; invented numbers kept: mobile 1" in res.output
    sups = load_manifest(supervisions_path(tmp_path / "data" / "manifests", "gen", "train"))
    assert sups["u1"].text == "我姓董电话是幺三八幺二三四五六七八"
    assert sups["u1"].custom["invented_numbers"] == {"mobile": 1}
    assert "invented_numbers" not in sups["u2"].custom
    # without the flag the same corpus is desensitized as any other
    (rep,) = import_corpus(tmp_path / "gen", "gen", out_dir=tmp_path / "plain")
    assert rep.desensitized == {"mobile": 1} and rep.numbers_kept == {}
