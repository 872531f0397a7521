"""Streaming recognizer on icefall's fixture ONNX model (random weights: arbitrary but
deterministic text), checked against sherpa-onnx, against itself in batches, and at 8 kHz."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from serving.audio import resample
from serving.engine.endpoint import EndpointConfig, EndpointRule
from serving.engine.recognizer import Recognizer

ENCODER = "encoder-chunk-16-left-64.onnx"
DECODER = "decoder-chunk-16-left-64.onnx"
JOINER = "joiner-chunk-16-left-64.onnx"


@pytest.fixture(scope="module")
def rec(icefall_fixture) -> Recognizer:
    return Recognizer.from_folder(icefall_fixture, num_threads=1)


@pytest.fixture(scope="module")
def symbol_ids(icefall_fixture) -> dict[str, int]:
    table = {}
    for line in (icefall_fixture / "tokens.txt").read_text("utf-8").splitlines():
        sym, idx = line.rsplit(maxsplit=1)
        table[sym] = int(idx)
    return table


def sherpa(icefall_fixture, **kw):
    sherpa_onnx = pytest.importorskip("sherpa_onnx")
    return sherpa_onnx.OnlineRecognizer.from_transducer(
        tokens=str(icefall_fixture / "tokens.txt"),
        encoder=str(icefall_fixture / ENCODER),
        decoder=str(icefall_fixture / DECODER),
        joiner=str(icefall_fixture / JOINER),
        num_threads=1,
        sample_rate=16000,
        feature_dim=80,
        decoding_method="greedy_search",
        **kw,
    )


def decode_ours(rec: Recognizer, x: np.ndarray, sr: int, pieces: int = 1):
    s = rec.create_stream()
    for part in np.array_split(x, pieces):
        s.accept_waveform(sr, part)
        while rec.is_ready(s):
            rec.decode_streams([s])
    s.input_finished()
    while rec.is_ready(s):
        rec.decode_streams([s])
    return rec.get_result(s)


def decode_sherpa(recognizer, x: np.ndarray, sr: int, tail: bool = True):
    s = recognizer.create_stream()
    s.accept_waveform(sr, x)
    if tail:  # what sherpa-onnx's Python examples do before input_finished()
        s.accept_waveform(sr, np.zeros(int(0.66 * sr), dtype=np.float32))
    s.input_finished()
    while recognizer.is_ready(s):
        recognizer.decode_stream(s)
    return recognizer.get_result_all(s)


def make_inputs(tmp_path, neural_voice=None) -> list[np.ndarray]:
    """Noise bursts of several lengths and levels, silence, espeak-ng speech if installed, and
    one neural-TTS utterance from ../shared if present."""
    rng = np.random.default_rng(1234)
    xs = [
        (rng.standard_normal(16000) * 0.1).astype(np.float32),  # the README's sherpa check
        (rng.standard_normal(3000) * 0.3).astype(np.float32),  # shorter than one chunk
        np.concatenate([np.zeros(8000), rng.standard_normal(20000) * 0.05]).astype(np.float32),
        (np.sin(np.arange(40000) * 0.05) * 0.2 + rng.standard_normal(40000) * 0.01).astype(
            np.float32
        ),
    ]
    espeak = shutil.which("espeak-ng")
    if espeak:
        wav = tmp_path / "speech.wav"
        subprocess.run(
            [espeak, "-v", "cmn", "-w", str(wav), "市民服务热线您好"],
            check=True,
            capture_output=True,
        )
        y, sr = sf.read(wav, dtype="float32")
        xs.append(resample(y, sr, 16000) * 0.5)
    flac = None if neural_voice is None else neural_voice / "dev" / "wav" / "nvzh-f01-dev-0001.flac"
    if flac is not None and flac.is_file():
        y, sr = sf.read(flac, dtype="float32")
        xs.append(resample(y, sr, 16000) if sr != 16000 else y)
    return xs


def test_greedy_matches_sherpa_onnx(rec, icefall_fixture, symbol_ids, tmp_path, shared_dir):
    theirs = sherpa(icefall_fixture)
    xs = make_inputs(tmp_path, shared_dir / "datasets" / "neural-voice-zh")
    assert len(xs) >= 4
    for i, x in enumerate(xs):
        ours = decode_ours(rec, x, 16000, pieces=1 + i)  # also fed in pieces
        ref = decode_sherpa(theirs, x, 16000)
        ref_ids = [symbol_ids[t] for t in ref.tokens]
        assert ours.token_ids == ref_ids, f"input {i}"
        assert "".join(ours.tokens) == ref.text
        np.testing.assert_allclose(ours.timestamps, ref.timestamps, atol=1e-4)
        assert ours.is_final
        assert len(ref_ids) > 0


def test_readme_sherpa_check_reproduced(rec, icefall_fixture):
    """The fixture README's sherpa-onnx check: 1 s of N(0, 0.1^2) noise (seed 1234)."""
    import json

    expected = json.loads((icefall_fixture / "onnx-io.json").read_text())["sherpa_onnx_check"]
    x = (np.random.default_rng(1234).standard_normal(16000) * 0.1).astype(np.float32)
    r = decode_ours(rec, x, 16000)
    # sherpa-onnx joins every symbol but <unk>; our text also drops <sos/eos>.
    assert "".join(r.tokens) == expected["result_text"]
    assert r.text == expected["result_text"].replace("<sos/eos>", "")


def test_8k_stream_equals_resampled_16k_decoding(rec, icefall_fixture):
    """An 8 kHz stream is resampled on the fly; the same samples resampled at once and fed to
    sherpa-onnx at 16 kHz give the same tokens (sherpa's own 8 kHz resampler differs)."""
    theirs = sherpa(icefall_fixture)
    rng = np.random.default_rng(8)
    for n in (4000, 13000):
        x8 = (rng.standard_normal(n) * 0.1).astype(np.float32)
        ours = decode_ours(rec, x8, 8000, pieces=5)
        padded = np.concatenate([x8, np.zeros(int(round(0.66 * 8000)), np.float32)])
        ref = decode_sherpa(theirs, resample(padded, 8000, 16000), 16000, tail=False)
        assert ours.tokens == list(ref.tokens) and len(ours.tokens) > 0
        assert ours.text == decode_ours(rec, x8, 8000, pieces=1).text


def test_batch_of_streams_equals_each_alone(rec):
    rng = np.random.default_rng(5)
    lengths = [5000, 16000, 30000, 12000, 45000]
    sigs = [(rng.standard_normal(n) * 0.1).astype(np.float32) for n in lengths]
    rates = [16000, 16000, 8000, 16000, 16000]
    alone = [decode_ours(rec, x, sr) for x, sr in zip(sigs, rates, strict=True)]

    streams = [rec.create_stream() for _ in sigs]
    pos = [0] * len(sigs)
    batch_sizes = []
    while True:
        fed = False
        for i, (s, x) in enumerate(zip(streams, sigs, strict=True)):
            if pos[i] < len(x):
                n = int(rng.integers(300, 5000))
                s.accept_waveform(rates[i], x[pos[i] : pos[i] + n])
                pos[i] += n
                fed = True
                if pos[i] >= len(x):
                    s.input_finished()
        batch_sizes.append(rec.decode_streams(streams))
        if not fed and not any(rec.is_ready(s) for s in streams):
            break
    assert max(batch_sizes) >= 3  # really batched
    for a, s in zip(alone, streams, strict=True):
        b = rec.get_result(s)
        assert b.token_ids == a.token_ids
        assert b.timestamps == a.timestamps
        assert b.is_final


def test_reset_at_endpoints_matches_sherpa_onnx(icefall_fixture, symbol_ids):
    """The random model never emits blanks, so only rule3 (utterance length) can fire; with it
    at 1 s both engines cut the same segments and keep the same decoder context."""
    endpoint = EndpointConfig(
        rule1=EndpointRule(False, 99.0),
        rule2=EndpointRule(True, 99.0),
        rule3=EndpointRule(False, 0.0, 1.0),
    )
    ours = Recognizer.from_folder(icefall_fixture, endpoint=endpoint)
    theirs = sherpa(
        icefall_fixture,
        enable_endpoint_detection=True,
        rule1_min_trailing_silence=99.0,
        rule2_min_trailing_silence=99.0,
        rule3_min_utterance_length=1.0,
    )
    x = (np.random.default_rng(11).standard_normal(16000 * 4) * 0.1).astype(np.float32)
    a, b = ours.create_stream(), theirs.create_stream()
    segs_a, segs_b = [], []
    for part in np.array_split(x, 13):
        a.accept_waveform(16000, part)
        b.accept_waveform(16000, part)
        while ours.is_ready(a):
            ours.decode_streams([a])
            if ours.is_endpoint(a):
                r = ours.get_result(a)
                assert r.is_final
                segs_a.append((r.segment, r.start_time, r.token_ids))
                ours.reset(a)
        while theirs.is_ready(b):
            theirs.decode_stream(b)
            if theirs.is_endpoint(b):
                r = theirs.get_result_all(b)
                segs_b.append((r.segment, r.start_time, [symbol_ids[t] for t in r.tokens]))
                theirs.reset(b)
    assert len(segs_a) >= 3
    assert [s[0] for s in segs_a] == list(range(len(segs_a)))
    assert [(s, pytest.approx(t), ids) for s, t, ids in segs_b] == segs_a


def test_stream_errors(rec):
    s = rec.create_stream()
    s.accept_waveform(8000, np.zeros(800, np.float32))
    with pytest.raises(ValueError, match="keep one rate per stream"):
        s.accept_waveform(16000, np.zeros(800, np.float32))
    s.input_finished()
    with pytest.raises(RuntimeError, match="after input_finished"):
        s.accept_waveform(8000, np.zeros(800, np.float32))
    with pytest.raises(ValueError, match="modified_beam_search"):
        rec.create_stream(hotwords=["上鱼"])
    with pytest.raises(ValueError, match="blank_penalty must be 0 or more"):
        Recognizer(rec.model, rec.tokens, blank_penalty=-1.0)


def test_state_stacking_roundtrip(rec):
    m = rec.model
    rng = np.random.default_rng(0)
    per_stream = [[rng.standard_normal(s.shape).astype(s.dtype) for s in m.state_specs]]
    per_stream += [[rng.standard_normal(s.shape).astype(s.dtype) for s in m.state_specs]]
    per_stream += [m.init_states()]
    stacked = m.stack_states(per_stream)
    for spec, value in zip(m.state_specs, stacked, strict=True):
        assert value.shape[spec.batch_axis] == 3
        assert value.shape[: spec.batch_axis] == spec.shape[: spec.batch_axis]
    back = m.unstack_states(stacked, 3)
    for orig, got in zip(per_stream, back, strict=True):
        for o, g in zip(orig, got, strict=True):
            np.testing.assert_array_equal(o, g)
    # Batch axes as the fixture's onnx-io.json says: cached_key (left, N, ...), conv (N, ...).
    axes = {s.name: s.batch_axis for s in m.state_specs}
    assert axes["cached_key_0"] == 1 and axes["cached_nonlin_attn_0"] == 1
    assert axes["cached_conv1_0"] == 0 and axes["embed_states"] == 0
    assert axes["processed_lens"] == 0
    assert m.chunk_size == 45 and m.chunk_shift == 32 and m.subsampling == 4


def test_int8_model_matches_sherpa_onnx_int8(icefall_fixture, symbol_ids, tmp_path_factory):
    """Dynamic int8 quantization of the fixture: our engine picks the *.int8.onnx files and
    still decodes token for token like sherpa-onnx on the same files."""
    import logging
    import shutil as sh

    quantization = pytest.importorskip("onnxruntime.quantization")
    folder = tmp_path_factory.mktemp("int8")
    logging.disable(logging.WARNING)  # quantize_dynamic's "consider pre-processing" advice
    try:
        for name in (ENCODER, DECODER, JOINER):
            quantization.quantize_dynamic(
                str(icefall_fixture / name),
                str(folder / name.replace(".onnx", ".int8.onnx")),
                weight_type=quantization.QuantType.QInt8,
            )
    finally:
        logging.disable(logging.NOTSET)
    sh.copy(icefall_fixture / "tokens.txt", folder / "tokens.txt")
    ours = Recognizer.from_folder(folder, int8=True)
    assert ours.model.files.encoder.name.endswith(".int8.onnx")
    sherpa_onnx = pytest.importorskip("sherpa_onnx")
    theirs = sherpa_onnx.OnlineRecognizer.from_transducer(
        tokens=str(folder / "tokens.txt"),
        encoder=str(folder / ENCODER.replace(".onnx", ".int8.onnx")),
        decoder=str(folder / DECODER.replace(".onnx", ".int8.onnx")),
        joiner=str(folder / JOINER.replace(".onnx", ".int8.onnx")),
        num_threads=1,
        decoding_method="greedy_search",
    )
    rng = np.random.default_rng(3)
    for n in (9000, 30000):
        x = (rng.standard_normal(n) * 0.1).astype(np.float32)
        a, b = decode_ours(ours, x, 16000), decode_sherpa(theirs, x, 16000)
        assert a.token_ids == [symbol_ids[t] for t in b.tokens] and a.token_ids
