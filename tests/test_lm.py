"""Character n-gram LM: Kneser-Ney counts written as ARPA (training.lm), read back over a token
table (serving.lm), and fused into both beam searches (ONNX engine and torch eval)."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hotline_asr.cli import app
from serving.lm import BOS, EOS, LmFusion, NgramLM
from serving.text.desensitize import desensitize
from serving.tokens import TokenTable
from training.lm import build_arpa, kneser_ney, texts_from

TEXTS = ["我要投诉噪音", "我要投诉工地", "我想问一下社保卡", "社保卡丢了怎么办", "噪音太大了"]


@pytest.fixture(scope="module")
def table() -> TokenTable:
    chars = sorted({c for t in TEXTS for c in t} | set("上鱼水"))
    return TokenTable(["<blk>", "<sos/eos>", "<unk>", *chars])


@pytest.fixture(scope="module")
def arpa(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lm") / "lm.arpa"
    build_arpa(TEXTS, out, order=3)
    return out


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_probabilities_sum_to_one_for_every_history(table, tmp_path, order):
    path = tmp_path / "lm.arpa"
    stats = build_arpa(TEXTS, path, order=order)
    assert stats.order == order and len(stats.ngrams) == order and stats.sentences == 5
    lm = NgramLM.from_arpa(path, table)
    vocab = [*range(3, len(table)), EOS, table.unk_id]
    ids = [table[c] for c in "我要投诉"]
    histories = [(), (BOS,), (BOS, ids[0]), tuple(ids[:3]), (table["水"], table["鱼"])]
    for hist in histories:
        total = sum(math.exp(lm.logp(hist, w)) for w in vocab)
        # 上鱼水 are in the table but not in the text: they share <unk>'s mass
        unseen = sum(math.exp(lm.logp(hist, table[c])) for c in "上鱼水")
        assert total - unseen == pytest.approx(1.0, abs=1e-4), hist


def test_context_raises_what_followed_it_in_the_text(table, arpa):
    lm = NgramLM.from_arpa(arpa, table)
    hist = lm.history((-1, 0, table["我"], table["要"], table["投"]))
    assert hist == (table["要"], table["投"])
    assert lm.gain(hist, table["诉"]) > 1.0  # seen after 要投 every time
    assert lm.gain(hist, table["卡"]) < 0.0
    assert lm.history((-1, 0)) == (BOS,)
    assert lm.history((-1, 0, table["我"])) == (BOS, table["我"])


def test_kneser_ney_discounts_and_counts():
    table, discounts, sentences, chars = kneser_ney(TEXTS, order=2)
    assert sentences == 5 and chars == sum(len(t) for t in TEXTS)
    assert all(0.1 <= d <= 0.9 for d in discounts)
    assert ("<s>",) in table[0] and table[0][("<s>",)][0] == -99.0
    assert ("我", "要") in table[1]


def test_texts_from_manifests_skips_word_lists_and_placeholders(tmp_path):
    sups = [
        {"text": "我要投诉噪音", "custom": {"template_id": "T1"}},
        {"text": "脸上谴责勺子", "custom": {"template_id": "W"}},
        {"text": "我姓王电话是<手机号>", "custom": {"template_id": "T2"}},
    ]
    manifest = tmp_path / "sups.jsonl.gz"
    with gzip.open(manifest, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(s, ensure_ascii=False) + "\n" for s in sups)
    cuts = tmp_path / "cuts.jsonl"
    cuts.write_text(json.dumps({"supervisions": [{"text": "社保卡"}]}) + "\n", encoding="utf-8")
    kaldi = tmp_path / "text"
    kaldi.write_text("utt1 噪音太大了\nutt2\n", encoding="utf-8")
    got = list(texts_from([manifest, cuts, kaldi], skip_templates=["W"], kaldi_text=True))
    assert got == ["我要投诉噪音", "社保卡", "噪音太大了"]

    # with a seed, the phone number comes back as a random one that desensitizes to the same
    # placeholder; an e-mail has no stand-in and stays out; the same seed, the same numbers
    (tmp_path / "more").write_text("我的邮箱是<邮箱>\n车牌<车牌号>\n", encoding="utf-8")
    filled = list(texts_from([manifest, tmp_path / "more"], skip_templates=["W"], fill_seed=3))
    assert len(filled) == 3 and filled[0] == "我要投诉噪音"
    assert filled[1].startswith("我姓王电话是幺") and len(filled[1]) == len("我姓王电话是") + 11
    assert desensitize(filled[1]).text == "我姓王电话是<手机号>"
    assert desensitize(filled[2]).text == "车牌<车牌号>"
    assert filled == list(texts_from([manifest, tmp_path / "more"], ["W"], fill_seed=3))
    assert filled != list(texts_from([manifest, tmp_path / "more"], ["W"], fill_seed=4))


def test_bad_inputs_say_what_is_wrong(tmp_path, table):
    with pytest.raises(FileNotFoundError, match="no text source"):
        list(texts_from([tmp_path / "missing.txt"]))
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        list(texts_from([bad]))
    with pytest.raises(ValueError, match="no text"):
        build_arpa([], tmp_path / "empty.arpa")
    assert not (tmp_path / "empty.arpa").exists()
    with pytest.raises(FileNotFoundError, match="hotline-asr lm build"):
        NgramLM.from_arpa(tmp_path / "none.arpa", table)
    plain = tmp_path / "plain.arpa"
    plain.write_text("hello world\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not an ARPA file"):
        NgramLM.from_arpa(plain, table)
    latin = tmp_path / "latin.arpa"
    build_arpa(["ABC"], latin, order=2)
    with pytest.raises(ValueError, match="no n-grams over this token table"):
        NgramLM.from_arpa(latin, TokenTable(["<blk>", "<sos/eos>", "<unk>", "我"]))
    with pytest.raises(ValueError, match="scale"):
        LmFusion(NgramLM.from_arpa(latin, TokenTable(["<blk>", "<sos/eos>", "<unk>", "A"])), -1)


def test_fusion_reranks_candidates_but_not_blank(table, arpa):
    lm = NgramLM.from_arpa(arpa, table)
    vocab = len(table)
    scores = np.full((2, vocab), -20.0)
    su, ka = table["诉"], table["卡"]
    scores[0, 0] = -0.5  # blank
    scores[0, su] = scores[0, ka] = -1.0  # a tie the LM has to break
    scores[1, 0] = -0.4
    ys = [(-1, 0, table["要"], table["投"]), (-1, 0, table["我"])]
    plain_scores, plain = LmFusion(lm, scale=0.0).top(scores, ys, 3, frozenset({0, 2}))
    assert plain_scores == sorted(plain_scores, reverse=True) and plain[0] == vocab  # blank, hyp 1
    fused_scores, fused = LmFusion(lm, scale=1.0).top(scores, ys, 3, frozenset({0, 2}))
    assert fused.index(su) < fused.index(ka) if ka in fused else su in fused
    assert fused_scores[fused.index(vocab)] == pytest.approx(-0.4)  # blank keeps its score


def _run(rec, x) -> str:
    s = rec.create_stream()
    s.accept_waveform(16000, x)
    s.input_finished()
    while rec.is_ready(s):
        rec.decode_streams([s])
    return "".join(rec.get_result(s).tokens)


def test_engine_fusion_pulls_towards_the_lm(icefall_fixture, tmp_path):
    """The fixture model (random weights) says 上 and 鱼 but rarely 上鱼; an LM that has only
    ever seen 上鱼 makes the engine's beam search say it more; scale 0 changes nothing."""
    from serving.engine.recognizer import Recognizer

    arpa = tmp_path / "lm.arpa"
    build_arpa(["上鱼" * 8] * 20 + ["水"], arpa, order=2)
    rng = np.random.default_rng(7)
    xs = [
        (rng.standard_normal(16000) * rng.uniform(0.02, 0.3)).astype(np.float32) for _ in range(6)
    ]
    beam = Recognizer.from_folder(icefall_fixture, decoding_method="modified_beam_search")
    plain = [_run(beam, x) for x in xs]
    zero = Recognizer.from_folder(
        icefall_fixture, decoding_method="modified_beam_search", lm=arpa, lm_scale=0.0
    )
    assert [_run(zero, x) for x in xs] == plain
    fused = Recognizer.from_folder(
        icefall_fixture, decoding_method="modified_beam_search", lm=arpa, lm_scale=2.0
    )
    n_plain = sum(t.count("上鱼") for t in plain)
    n_fused = sum(_run(fused, x).count("上鱼") for x in xs)
    assert n_fused >= n_plain + 3, (n_plain, n_fused)
    with pytest.raises(ValueError, match="modified_beam_search"):
        Recognizer.from_folder(icefall_fixture, lm=arpa)


def test_lm_build_and_eval_commands(icefall_fixture, neural_voice, tmp_path):
    text = tmp_path / "text"
    text.write_text("utt1 我要投诉噪音\nutt2 社保卡丢了\n", encoding="utf-8")
    arpa = tmp_path / "lm.arpa"
    runner = CliRunner()
    built = runner.invoke(
        app, ["lm", "build", str(text), "--kaldi-text", "--out", str(arpa), "--order", "3"]
    )
    assert built.exit_code == 0, built.output
    assert json.loads(built.output)["ngrams"][0] > 0 and arpa.is_file()

    # two dev utterances, torch checkpoint: scale 0 decodes exactly as plain beam search
    dev = tmp_path / "dev"
    (dev / "wav").mkdir(parents=True)
    src = neural_voice / "dev"
    lines = (src / "wav.scp").read_text(encoding="utf-8").splitlines()[:2]
    ids = [line.split()[0] for line in lines]
    for u in ids:
        (dev / "wav" / f"{u}.flac").write_bytes((src / "wav" / f"{u}.flac").read_bytes())
    (dev / "wav.scp").write_text("".join(f"{u} wav/{u}.flac\n" for u in ids), encoding="utf-8")
    texts = dict(
        line.split(maxsplit=1) for line in (src / "text").read_text(encoding="utf-8").splitlines()
    )
    (dev / "text").write_text("".join(f"{u} {texts[u]}\n" for u in ids), encoding="utf-8")
    model = str(icefall_fixture / "epoch-99.pt")
    args = ["eval", "--model", model, "--data", str(dev), "--method", "beam", "--json"]
    plain = runner.invoke(app, args)
    zero = runner.invoke(app, [*args, "--lm", str(arpa), "--lm-scale", "0"])
    assert plain.exit_code == 0 and zero.exit_code == 0, plain.output + zero.output
    hyps = [[h["hyp"] for h in json.loads(r.output)["hypotheses"]] for r in (plain, zero)]
    assert hyps[0] == hyps[1]
    assert json.loads(zero.output)["options"]["lm"] == str(arpa)

    greedy = runner.invoke(app, ["eval", "--model", model, "--data", str(dev), "--lm", str(arpa)])
    assert greedy.exit_code == 1 and "--method beam" in greedy.output
    missing = runner.invoke(
        app, ["eval", "--model", model, "--data", str(dev), "--method", "beam", "--lm", "no.arpa"]
    )
    assert missing.exit_code == 1 and "lm build" in missing.output
    bad = runner.invoke(app, ["lm", "build", str(tmp_path / "nothing.txt"), "--out", str(arpa)])
    assert bad.exit_code == 1 and "no text source" in bad.output


def test_transcribe_command_takes_an_lm(icefall_fixture, tmp_path):
    import soundfile as sf

    arpa = tmp_path / "lm.arpa"
    build_arpa(TEXTS, arpa, order=2)
    wav = tmp_path / "a.wav"
    rng = np.random.default_rng(3)
    sf.write(wav, (rng.standard_normal(16000) * 0.1).astype(np.float32), 16000)
    base = ["transcribe", "--model", str(icefall_fixture), "--lm", str(arpa)]
    ok = CliRunner().invoke(app, [*base, "--decoding-method", "modified_beam_search", str(wav)])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["file"] == str(wav)
    greedy = CliRunner().invoke(app, [*base, str(wav)])
    assert greedy.exit_code != 0 and "modified_beam_search" in greedy.output
    missing = CliRunner().invoke(
        app,
        [
            "transcribe",
            "--model",
            str(icefall_fixture),
            "--lm",
            str(tmp_path / "no.arpa"),
            "--decoding-method",
            "modified_beam_search",
            str(wav),
        ],
    )
    assert missing.exit_code != 0 and "lm build" in missing.output


def test_lm_build_fill_placeholders_counts_the_desensitized_transcripts(tmp_path):
    text = tmp_path / "text"
    text.write_text("我要投诉噪音\n我姓王电话是<手机号>\n", encoding="utf-8")
    stats = {}
    for flag in ("--no-fill-placeholders", "--fill-placeholders"):
        res = CliRunner().invoke(
            app, ["lm", "build", str(text), "--out", str(tmp_path / f"{flag}.arpa"), flag]
        )
        assert res.exit_code == 0, res.output
        stats[flag] = json.loads(res.output)
    assert stats["--no-fill-placeholders"]["sentences"] == 1
    assert stats["--fill-placeholders"]["sentences"] == 2
    assert "幺" in (tmp_path / "--fill-placeholders.arpa").read_text(encoding="utf-8")
