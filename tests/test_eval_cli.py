"""`hotline-asr eval` on a tiny Kaldi folder and on a cuts manifest, with icefall's reference
checkpoint (random weights: the numbers are garbage, the bookkeeping must be exact)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

torch.set_num_threads(1)

from hotline_asr.cli import app  # noqa: E402


@pytest.fixture(scope="module")
def corpus(neural_voice: Path, tmp_path_factory):
    from training.lightning.smoke import make_smoke_corpus

    return make_smoke_corpus(
        neural_voice / "train", neural_voice / "dev", tmp_path_factory.mktemp("smoke"), 2, 3
    )


def _eval(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["eval", *args])
    return result.exit_code, result.output


def test_eval_kaldi_dir_json(corpus, icefall_fixture: Path):
    code, out = _eval(
        "--model", str(icefall_fixture / "epoch-99.pt"), "--data", str(corpus.kaldi_dev), "--json"
    )
    assert code == 0, out
    report = json.loads(out)
    o = report["overall"]
    refs = {h["id"]: h["ref"] for h in report["hypotheses"]}
    assert o["utts"] == 3 and len(refs) == 3
    assert o["ref_chars"] == sum(len(r) for r in refs.values())
    assert o["errors"] == o["sub"] + o["del"] + o["ins"] > 0
    assert o["cer"] == pytest.approx(o["errors"] / o["ref_chars"], abs=1e-6)
    assert sum(v["utts"] for v in report["slices"]["domain"].values()) == 3
    assert report["options"]["chunk_size"] == 16 and report["audio_seconds"] > 1
    assert "pinyin" not in report


def test_eval_pinyin_scores_syllables_per_slice(corpus, icefall_fixture: Path):
    model = str(icefall_fixture / "epoch-99.pt")
    code, out = _eval("--model", model, "--data", str(corpus.kaldi_dev), "--json", "--pinyin")
    assert code == 0, out
    report = json.loads(out)
    py = report["pinyin"]
    assert py["overall"]["toned"]["utts"] == 3
    # a toneless syllable error is also an error with tone
    assert py["overall"]["toneless"]["errors"] <= py["overall"]["toned"]["errors"]
    assert sum(v["toned"]["utts"] for v in py["slices"]["domain"].values()) == 3
    code, out = _eval("--model", model, "--data", str(corpus.kaldi_dev), "--pinyin")
    assert code == 0 and "pinyin syllable errors" in out and "syl+tone" in out


def test_eval_streaming_and_cuts_manifest(corpus, icefall_fixture: Path):
    model = str(icefall_fixture / "epoch-99.pt")
    code, out = _eval("--model", model, "--data", str(corpus.dev_cuts), "--json", "--streaming")
    assert code == 0, out
    report = json.loads(out)
    assert report["overall"]["utts"] == 3 and report["options"]["streaming"] is True
    # Same utterances as the Kaldi folder, read from precomputed features.
    code, out2 = _eval("--model", model, "--data", str(corpus.kaldi_dev), "--json")
    assert {h["ref"] for h in report["hypotheses"]} == {
        h["ref"] for h in json.loads(out2)["hypotheses"]
    }


def test_eval_beam_hotwords_table_and_mlflow(corpus, icefall_fixture: Path, tmp_path, monkeypatch):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    hot = tmp_path / "hot.txt"
    hot.write_text("电梯\n垃圾\n", encoding="utf-8")
    code, out = _eval(
        "--model",
        str(icefall_fixture / "epoch-99.pt"),
        "--data",
        str(corpus.kaldi_dev),
        "--method",
        "beam",
        "--hotwords",
        str(hot),
        "--mlflow",
        "--experiment",
        "eval-test",
    )
    assert code == 0, out
    assert out.startswith("CER ") and "domain" in out and "RTF" in out

    from registry.tracking import get_client

    client = get_client(store)
    exp = client.get_experiment_by_name("eval-test")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.data.params["method"] == "beam" and run.data.params["hotwords"] == "2"
    assert run.data.metrics["cer"] > 0 and run.data.metrics["ref_chars"] == 28
    m = run.data.metrics
    assert m["cer_low"] <= m["cer"] <= m["cer_high"]  # the 95 % bootstrap interval
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["eval_report.json"]


def test_eval_errors_are_plain(icefall_fixture: Path, tmp_path: Path):
    code, out = _eval("--model", str(icefall_fixture / "epoch-99.pt"), "--data", str(tmp_path))
    assert code == 1 and "wav.scp" in out
    code, out = _eval(
        "--model", str(icefall_fixture / "epoch-99.pt"), "--data", str(tmp_path), "--method", "x"
    )
    assert code == 1 and "greedy, beam or ctc" in out


def test_eval_method_ctc_says_when_the_model_has_no_ctc_head(corpus, icefall_fixture: Path):
    # icefall's fixture was trained without a CTC head; its ONNX export has none either
    for model in (icefall_fixture / "epoch-99.pt", icefall_fixture):
        code, out = _eval("--model", str(model), "--data", str(corpus.kaldi_dev), "--method", "ctc")
        assert code == 1 and "CTC head" in out, out


def test_ctc_greedy_ids_merges_repeats_drops_blanks_and_stops_at_each_length():
    from training.evaluate import ctc_greedy_ids
    from training.model.config import preset
    from training.model.transducer import Transducer

    model = Transducer(preset("tiny", vocab_size=6, use_ctc=True)).eval()
    head = model.ctc_output[1]
    with torch.no_grad():  # frame feature 0 picks token 4 ("b"), feature 1 picks blank
        head.weight.zero_()
        head.bias.zero_()
        head.weight[4, 0] = 10.0
        head.weight[0, 1] = 10.0
    b, k = [1.0, 0.0], [0.0, 1.0]
    enc = torch.zeros(2, 6, model.ctc_output[1].in_features)
    enc[0, :, :2] = torch.tensor([b, b, k, b, k, k])
    enc[1, :, :2] = torch.tensor([k, b, b, b, b, b])
    assert ctc_greedy_ids(model, enc, torch.tensor([6, 2])) == [[4, 4], [4]]


def test_slices_from_synth_metadata():
    from training.evaluate import _slices

    custom = {
        "role": "agent",
        "domain": "road",
        "voice": "Alex",
        "speed": 141,
        "pitch": 46,
        "channel": {"codec": "mulaw", "noise": "pink", "snr_db": 11.4},
        "template_id": "T061",
    }
    assert _slices(custom) == {
        "voice": "Alex",
        "role": "agent",
        "domain": "road",
        "text": "sentences",
        "number": "none",
        "speed": "slow",
        "codec": "mulaw",
        "noise": "pink",
        "snr": "10-20dB",
    }
    assert _slices({"channel": {"codec": "alaw", "snr_db": None}})["snr"] == "clean"
    assert _slices({"domain": "words"})["text"] == "word lists"
    assert _slices({"desensitized": {"mobile": 1}})["number"] == "read out"
    assert "number" not in _slices({"channel": {"codec": "alaw", "snr_db": None}})


def test_eval_onnx_folder_agrees_with_torch_streaming(corpus, icefall_fixture: Path):
    import os

    # The fixture folder holds icefall's ONNX export (encoder*.onnx, tokens.txt): serving.engine.
    code, out = _eval("--model", str(icefall_fixture), "--data", str(corpus.kaldi_dev), "--json")
    assert code == 0, out
    onnx = json.loads(out)["hypotheses"]
    code, out = _eval(
        "--model",
        str(icefall_fixture / "epoch-99.pt"),
        "--data",
        str(corpus.kaldi_dev),
        "--json",
        "--streaming",
    )
    torch_hyps = json.loads(out)["hypotheses"]
    assert [h["id"] for h in onnx] == [h["id"] for h in torch_hyps]
    for a, b in zip(onnx, torch_hyps, strict=True):
        # Same weights, two runtimes: equal output until the differently padded tail.
        shared = os.path.commonprefix([a["hyp"], b["hyp"]])
        assert len(shared) >= 0.8 * min(len(a["hyp"]), len(b["hyp"])) > 0


def test_eval_reads_our_model_file_and_lightning_checkpoint_alike(corpus, tmp_path: Path):
    from training.lightning.smoke import write_smoke_recipe
    from training.train import train

    recipe = write_smoke_recipe(
        tmp_path / "recipe",
        corpus,
        {"data": {"dev_cuts": []}, "checkpoint": {"every_n_steps": 2, "average_last": 1}},
    )
    result = train(recipe, ["trainer.max_steps=2"])
    outs = []
    for model in (result.averaged, result.final, result.last_checkpoint):
        code, out = _eval("--model", str(model), "--data", str(corpus.kaldi_dev), "--json")
        assert code == 0, out
        outs.append([h["hyp"] for h in json.loads(out)["hypotheses"]])
    assert outs[0] == outs[1] == outs[2]


def test_eval_int8_decodes_the_quantized_files_and_says_when_there_are_none(
    corpus, icefall_fixture: Path, tmp_path: Path
):
    import shutil

    from training.export import INT8_OP_TYPES, quantize_int8

    code, out = _eval(
        "--model", str(icefall_fixture / "epoch-99.pt"), "--data", str(corpus.kaldi_dev), "--int8"
    )
    assert code == 1 and "export" in out
    code, out = _eval("--model", str(icefall_fixture), "--data", str(corpus.kaldi_dev), "--int8")
    assert code == 1 and "int8" in out

    folder = tmp_path / "onnx"
    folder.mkdir()
    for kind in ("encoder", "decoder", "joiner"):
        src = icefall_fixture / f"{kind}-chunk-16-left-64.onnx"
        shutil.copy(src, folder / src.name)
        quantize_int8(src, folder / src.name.replace(".onnx", ".int8.onnx"), INT8_OP_TYPES[kind])
    shutil.copy(icefall_fixture / "tokens.txt", folder / "tokens.txt")
    code, fp32 = _eval("--model", str(folder), "--data", str(corpus.kaldi_dev), "--json")
    assert code == 0, fp32
    code, int8 = _eval("--model", str(folder), "--data", str(corpus.kaldi_dev), "--json", "--int8")
    assert code == 0, int8
    a, b = json.loads(fp32)["hypotheses"], json.loads(int8)["hypotheses"]
    assert [h["id"] for h in a] == [h["id"] for h in b] and len(a) == 3
    # random weights: int8 output differs from fp32 somewhere, which shows the int8 files ran
    assert [h["hyp"] for h in a] != [h["hyp"] for h in b]


def test_eval_max_sym_per_frame_is_checked_and_reaches_greedy_search(corpus, icefall_fixture: Path):
    model = str(icefall_fixture / "epoch-99.pt")
    data = str(corpus.kaldi_dev)
    code, out = _eval("--model", model, "--data", data, "--max-sym-per-frame", "0")
    assert code == 1 and "must be >= 1" in out
    code, out = _eval(
        "--model", model, "--data", data, "--method", "beam", "--max-sym-per-frame", "2"
    )
    assert code == 1 and "only with greedy" in out
    code, out = _eval("--model", str(icefall_fixture), "--data", data, "--max-sym-per-frame", "2")
    assert code == 1 and "at most one symbol per frame" in out
    code, out = _eval("--model", model, "--data", data, "--json", "--max-sym-per-frame", "4")
    assert code == 0, out
    assert json.loads(out)["options"]["max_sym_per_frame"] == 4  # greedy_search's own test:
    # tests/test_decode.py (several symbols on one frame)


def test_eval_reports_an_interval_and_compare_pairs_two_reports(
    corpus, icefall_fixture: Path, tmp_path
):
    model = str(icefall_fixture / "epoch-99.pt")
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    code, out = _eval("--model", model, "--data", str(corpus.kaldi_dev), "--output", str(a))
    assert code == 0 and "95 % interval" in out, out
    code, out = _eval(
        "--model", model, "--data", str(corpus.kaldi_dev), "--output", str(b), "--method", "beam"
    )
    assert code == 0, out
    ra, rb = json.loads(a.read_text("utf-8")), json.loads(b.read_text("utf-8"))
    i = ra["interval"]
    assert i["utts"] == 3 and i["low"] <= ra["overall"]["cer"] <= i["high"]

    result = CliRunner().invoke(app, ["compare", str(a), str(b), "--json"])
    assert result.exit_code == 0, result.output
    cmp = json.loads(result.output)
    assert cmp["errors_a"] == ra["overall"]["errors"] and cmp["errors_b"] == rb["overall"]["errors"]
    assert cmp["diff"] == pytest.approx(rb["overall"]["cer"] - ra["overall"]["cer"], abs=1e-5)
    assert cmp["low"] <= cmp["diff"] <= cmp["high"]

    same = CliRunner().invoke(app, ["compare", str(a), str(a)])
    assert same.exit_code == 0 and "+0.00 points" in same.output and "no difference" in same.output

    bad = tmp_path / "bad.json"
    bad.write_text("not json", encoding="utf-8")
    for args, message in (
        ([str(a), str(tmp_path / "none.json")], "not found"),
        ([str(a), str(bad)], "is not JSON"),
    ):
        r = CliRunner().invoke(app, ["compare", *args])
        assert r.exit_code == 1 and message in r.output, r.output


@pytest.fixture(scope="module")
def decoded(corpus, icefall_fixture: Path, tmp_path_factory) -> Path:
    """One greedy eval --output report of the smoke dev set, for the rescoring tests."""
    saved = tmp_path_factory.mktemp("decoded") / "decoded.json"
    model = str(icefall_fixture / "epoch-99.pt")
    code, out = _eval("--model", model, "--data", str(corpus.kaldi_dev), "--output", str(saved))
    assert code == 0, out
    return saved


def test_eval_rescore_scores_a_saved_report_without_decoding(
    corpus, decoded: Path, icefall_fixture: Path, tmp_path: Path
):
    model = str(icefall_fixture / "epoch-99.pt")
    report = json.loads(decoded.read_text("utf-8"))
    # make the first hypothesis right: only the saved hypotheses are scored, nothing is decoded
    first = report["hypotheses"][0]
    errors = {w["id"]: w["errors"] for w in report["worst"]}  # all 3: the report keeps 10
    assert len(errors) == 3 and errors[first["id"]] > 0  # random weights: garbage
    first["hyp"] = first["ref"]
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(report, ensure_ascii=False), "utf-8")
    code, out = _eval(
        "--rescore", str(edited), "--data", str(corpus.kaldi_dev), "--json", "--pinyin"
    )
    assert code == 0, out
    again = json.loads(out)
    assert (
        again["overall"]["utts"] == 3
        and again["overall"]["ref_chars"] == report["overall"]["ref_chars"]
    )
    assert again["model"] == model and again["options"]["chunk_size"] == 16
    assert again["audio_seconds"] == report["audio_seconds"] and "pinyin" in again
    rest = {k: v for k, v in errors.items() if k != first["id"]}
    assert {w["id"]: w["errors"] for w in again["worst"] if w["errors"]} == rest
    assert again["overall"]["errors"] == report["overall"]["errors"] - errors[first["id"]]
    assert sum(v["utts"] for v in again["slices"]["domain"].values()) == 3
    # errors say what to do
    code, out = _eval("--rescore", str(edited), "--data", str(corpus.kaldi_dev), "--model", model)
    assert code == 1 and "leave out --model" in out
    code, out = _eval("--data", str(corpus.kaldi_dev))
    assert code == 1 and "--rescore" in out
    first["id"] = "not-in-the-data"
    edited.write_text(json.dumps(report, ensure_ascii=False), "utf-8")
    code, out = _eval("--rescore", str(edited), "--data", str(corpus.kaldi_dev))
    assert code == 1 and "not-in-the-data" in out and "the report was made on" in out
    code, out = _eval("--rescore", str(tmp_path / "none.json"), "--data", str(corpus.kaldi_dev))
    assert code == 1 and "eval --output" in out


def test_eval_only_scores_one_slice_when_decoding_and_when_rescoring(
    corpus, decoded: Path, icefall_fixture: Path
):
    model = str(icefall_fixture / "epoch-99.pt")
    full = decoded
    report = json.loads(full.read_text("utf-8"))
    domain, counts = next(iter(report["slices"]["domain"].items()))
    assert counts["utts"] < report["overall"]["utts"]  # a true subset of the 3
    code, out = _eval(
        "--model", model, "--data", str(corpus.kaldi_dev), "--only", f"domain={domain}", "--json"
    )
    assert code == 0, out
    one = json.loads(out)
    assert one["overall"]["utts"] == counts["utts"] and one["overall"]["errors"] == counts["errors"]
    assert list(one["slices"]["domain"]) == [domain] and one["options"]["only"] == {
        "domain": domain
    }
    code, out = _eval(
        "--rescore", str(full), "--data", str(corpus.kaldi_dev), "--only", f"domain={domain}",
        "--json",
    )  # fmt: skip
    assert code == 0, out
    again = json.loads(out)
    assert again["overall"] == one["overall"]
    assert again["audio_seconds"] == pytest.approx(one["audio_seconds"], abs=0.01)
    assert again["rtf"] == pytest.approx(report["rtf"], rel=0.01)
    code, out = _eval("--rescore", str(full), "--data", str(corpus.kaldi_dev), "--only", "domain")
    assert code == 1 and "KEY=VALUE" in out
    code, out = _eval("--rescore", str(full), "--data", str(corpus.kaldi_dev), "--only", "domain=x")
    assert code == 1 and domain in out  # names the values there are


def test_eval_blank_penalty_makes_a_trained_model_emit_more_and_is_checked(corpus):
    # The committed baseline emits blanks between characters (the random fixture never does):
    # taking 5 off the blank logit must lengthen its output, in greedy and beam search alike.
    model = str(Path(__file__).resolve().parents[1] / "models" / "default" / "model.pt")
    data = str(corpus.kaldi_dev)

    def chars(*extra: str) -> int:
        code, out = _eval("--model", model, "--data", data, "--json", *extra)
        assert code == 0, out
        report = json.loads(out)
        return sum(len(h["hyp"]) for h in report["hypotheses"])

    for method in ("greedy", "beam"):
        plain = chars("--method", method)
        penalised = chars("--method", method, "--blank-penalty", "5")
        assert penalised > plain, method
    code, out = _eval("--model", model, "--data", data, "--blank-penalty", "-1")
    assert code == 1 and "must be 0 or more" in out
