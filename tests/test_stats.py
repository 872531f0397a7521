from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from hotline_asr.cli import app
from training.data.importers import import_corpus
from training.data.stats import corpus_stats, format_table, read_char_list

TRAIN = {
    "a1": ("spkA", 1.0, "您好我要反映噪音"),
    "a2": ("spkB", 2.5, "请问社保卡怎么补办"),
    "a3": ("spkA", 0.5, "好的"),
}
DEV = {"b1": ("spkC", 1.5, "谢谢您")}


def _split(root: Path, name: str, utts: dict) -> None:
    d = root / name
    d.mkdir(parents=True)
    scp, text, u2s = [], [], []
    for utt, (spk, secs, txt) in utts.items():
        x = 0.1 * np.sin(np.arange(int(secs * 8000)) / 3)
        sf.write(d / f"{utt}.wav", x.astype(np.float32), 8000)
        scp.append(f"{utt} {utt}.wav")
        text.append(f"{utt} {txt}")
        u2s.append(f"{utt} {spk}")
    for fname, lines in (("wav.scp", scp), ("text", text), ("utt2spk", u2s)):
        (d / fname).write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture()
def manifests(tmp_path: Path) -> Path:
    _split(tmp_path / "src", "train", TRAIN)
    _split(tmp_path / "src", "dev", DEV)
    import_corpus(tmp_path / "src", "tiny", out_dir=tmp_path / "data")
    return tmp_path / "data" / "manifests"


def test_numbers_per_split(manifests: Path) -> None:
    dev, train = corpus_stats(manifests, "tiny")
    assert (train.split, dev.split) == ("train", "dev")
    assert train.hours == pytest.approx(4.0 / 3600)
    assert train.utterances == 3 and train.speakers == 2
    assert train.characters == 8 + 9 + 2
    assert train.distinct_characters == len(set("您好我要反映噪音请问社保卡怎么补办的"))
    assert (dev.utterances, dev.speakers, dev.characters, dev.distinct_characters) == (1, 1, 3, 2)
    assert train.text_coverage is None


def test_char_list_coverage(manifests: Path, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("<blk> 0\n<sos/eos> 1\n<unk> 2\n好 3\n您 4\n谢 5\n龘 6\n", encoding="utf-8")
    chars = read_char_list(tokens)
    assert chars == {"好", "您", "谢", "龘"}
    dev, train = corpus_stats(manifests, "tiny", chars)
    assert train.text_coverage == pytest.approx(3 / 19)  # 您 好 好
    assert train.list_coverage == pytest.approx(2 / 4)
    assert train.missing_characters.startswith("我")
    assert dev.text_coverage == pytest.approx(1.0) and dev.list_coverage == pytest.approx(2 / 4)
    table = format_table([dev, train])
    assert "text cov." in table and "15.79%" in table


def test_cli_table_and_json(manifests: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["data", "stats", "--manifests", str(manifests)])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split() == ["corpus", "split", "hours", "utts", "speakers", "chars", "distinct"]
    assert lines[3].split()[:4] == ["tiny", "train", "0.001", "3"]
    res = runner.invoke(
        app, ["data", "stats", "--corpus", "tiny", "--manifests", str(manifests), "--json"]
    )
    tree = json.loads(res.output)
    assert tree["tiny"]["train"]["utterances"] == 3 and tree["tiny"]["dev"]["speakers"] == 1
    assert tree["tiny"]["train"]["hours"] == pytest.approx(4.0 / 3600)
    res = runner.invoke(app, ["data", "stats", "--corpus", "nope", "--manifests", str(manifests)])
    assert res.exit_code == 1 and "run `hotline-asr data import` first" in res.output


def test_placeholder_counts_as_one_character() -> None:
    from lhotse import SupervisionSegment

    from training.data.stats import split_stats

    sups = [
        SupervisionSegment("x1", "x1", 0.0, 2.0, text="电话<手机号>", speaker="s"),
        SupervisionSegment("x2", "x2", 0.0, 1.0, text="OK 好", speaker="s"),
    ]
    st = split_stats(sups, "c", "train")
    assert st.characters == 3 + 3 and st.distinct_characters == 6
    assert st.hours == pytest.approx(3 / 3600) and st.speakers == 1
