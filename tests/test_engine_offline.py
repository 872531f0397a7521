"""Offline transcription (VAD + batched streams) and the ``transcribe`` command, on the fixture
ONNX model (random weights: the text is arbitrary, but deterministic)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from serving.engine.offline import Transcriber, transcribe_file
from serving.engine.recognizer import Recognizer

SR = 8000


def burst(n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SR
    return 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) + (
        rng.standard_normal(n) * 0.05
    )


def call(spans_per_leg, total_s: float, seed: int = 0) -> np.ndarray:
    """(samples, legs) with speech-like bursts at the given spans on each leg."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((int(total_s * SR), len(spans_per_leg))) * 0.0005
    for leg, spans in enumerate(spans_per_leg):
        for a, b in spans:
            i, n = int(a * SR), int((b - a) * SR)
            x[i : i + n, leg] += burst(n, rng)
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def rec(icefall_fixture) -> Recognizer:
    return Recognizer.from_folder(icefall_fixture)


def decode_alone(rec: Recognizer, x: np.ndarray) -> str:
    s = rec.create_stream()
    s.accept_waveform(SR, x)
    s.input_finished()
    while rec.decode_streams([s]):
        pass
    return rec.get_result(s).text


def test_stereo_call_gives_sentences_of_both_legs_in_time_order(rec, tmp_path):
    agent = [(0.3, 1.3), (3.6, 4.4)]
    caller = [(1.6, 3.2)]
    path = tmp_path / "call.wav"
    sf.write(path, call([agent, caller], 5.0), SR, subtype="PCM_16")
    result = Transcriber(rec).transcribe_file(path)

    assert result.num_channels == 2
    assert result.duration_s == pytest.approx(5.0)
    assert [s.leg for s in result.sentences] == [0, 1, 0]
    truth = [agent[0], caller[0], agent[1]]
    for s, (a, b) in zip(result.sentences, truth, strict=True):
        assert abs(s.start_ms - a * 1000) <= 40 and abs(s.end_ms - b * 1000) <= 40
        assert s.text
        # token times are absolute (recording start), ordered, and inside the decoded span,
        # which the VAD pads by well under a second on each side
        assert len(s.token_ms) == len(s.tokens) > 0
        assert s.token_ms == sorted(s.token_ms)
        assert s.start_ms - 1000 <= s.token_ms[0] and s.token_ms[-1] <= s.end_ms + 1000
    assert result.text == "".join(s.text for s in result.sentences)
    assert result.rtf > 0 and result.processing_s > 0


def test_segment_text_equals_decoding_that_segment_alone(rec):
    x = call([[(0.3, 1.0), (1.8, 2.9), (3.5, 3.9), (4.5, 6.0)]], 6.5)[:, 0]
    t = Transcriber(rec)
    segs = t.segments(x, SR)
    assert len(segs) == 4
    batched = t.decode_segments(x, SR, segs)
    alone = [decode_alone(rec, x[s.pad_start : s.pad_end]) for s in segs]
    assert batched == alone
    assert all(batched)


def test_small_batches_refill_and_give_the_same_texts(icefall_fixture, rec):
    x = call([[(0.3 + i, 0.75 + i) for i in range(7)]], 7.5)[:, 0]  # 0.55 s pauses
    small = Recognizer.from_folder(icefall_fixture, max_batch_size=2)
    a, b = Transcriber(rec), Transcriber(small)
    segs = a.segments(x, SR)
    assert len(segs) == 7
    assert a.decode_segments(x, SR, segs) == b.decode_segments(x, SR, segs)


def test_transcribe_file_needs_a_model(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, np.zeros(SR, np.float32), SR)
    with pytest.raises(ValueError, match="model_dir"):
        transcribe_file(path)


def test_silent_file_has_no_sentences(rec, tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(SR * 2, np.float32), SR)
    result = transcribe_file(path, recognizer=rec)
    assert result.sentences == [] and result.text == ""
    assert result.to_dict()["duration_s"] == 2.0


def test_transcribe_command_prints_one_json_line_per_file(icefall_fixture, tmp_path):
    from typer.testing import CliRunner

    from hotline_asr.cli import app

    mono = tmp_path / "mono.wav"
    stereo = tmp_path / "stereo.wav"
    sf.write(mono, call([[(0.3, 1.2)]], 1.6)[:, 0], SR)
    sf.write(stereo, call([[(0.3, 1.2)], [(1.5, 2.2)]], 2.5), SR)
    out = CliRunner().invoke(
        app, ["transcribe", "--model", str(icefall_fixture), str(mono), str(stereo)]
    )
    assert out.exit_code == 0, out.output
    lines = [json.loads(line) for line in out.output.strip().splitlines()]
    assert [d["file"] for d in lines] == [str(mono), str(stereo)]
    for d in lines:
        assert set(d) == {"file", "text", "sentences", "duration_s", "rtf"}
        assert d["text"] == "".join(s["text"] for s in d["sentences"])
        for s in d["sentences"]:
            assert set(s) == {"leg", "start_ms", "end_ms", "text", "tokens", "token_ms"}
            assert len(s["tokens"]) == len(s["token_ms"])
    assert [s["leg"] for s in lines[1]["sentences"]] == [0, 1]

    bad = CliRunner().invoke(
        app, ["transcribe", "--model", str(icefall_fixture), "--hotword", "上鱼", str(mono)]
    )
    assert bad.exit_code != 0 and "modified_beam_search" in bad.output


def test_transcribe_text_format_names_legs_and_times(icefall_fixture, tmp_path):
    from typer.testing import CliRunner

    from hotline_asr.cli import app

    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, call([[(0.3, 1.2)], [(1.5, 2.2)]], 2.5), SR)
    args = ["transcribe", "--model", str(icefall_fixture), str(stereo)]
    out = CliRunner().invoke(app, [*args, "--format", "text"])
    assert out.exit_code == 0, out.output
    lines = out.output.strip().splitlines()
    assert lines[0].startswith(str(stereo)) and lines[-1].strip().startswith("RTF ")
    assert "[坐席 agent] 00:00." in lines[1] and "[市民 caller] 00:01." in lines[2]
    bad = CliRunner().invoke(app, [*args, "--format", "xml"])
    assert bad.exit_code != 0 and "json or text" in bad.output
