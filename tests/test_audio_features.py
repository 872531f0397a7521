from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from serving.audio import (
    AudioError,
    StreamingResampler,
    audio_info,
    load_audio,
    resample,
)
from serving.features import FbankConfig, StreamingFbank, compute_fbank


def _tone(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _speechlike(sr: int, seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = sum(_tone(f, sr, seconds, 0.1) for f in (180, 440, 1250, 2600))
    x = x + 0.02 * rng.standard_normal(len(x)).astype(np.float32)
    return x.astype(np.float32)


def _feed_in_chunks(stream: StreamingFbank, sr: int, x: np.ndarray, seed: int) -> None:
    rng = np.random.default_rng(seed)
    i = 0
    while i < len(x):
        n = int(rng.integers(1, 2500))
        stream.accept_waveform(sr, x[i : i + n])
        i += n


def test_load_wav_and_flac_as_float_in_unit_range(tmp_path: Path) -> None:
    x = _tone(300, 8000, 0.5)
    for ext, subtype in (("wav", "PCM_16"), ("flac", "PCM_16")):
        p = tmp_path / f"a.{ext}"
        sf.write(p, x, 8000, subtype=subtype)
        y, sr = load_audio(p)
        assert sr == 8000 and y.dtype == np.float32 and y.shape == x.shape
        assert np.abs(y - x).max() < 1.0 / 32768 + 1e-6
        info = audio_info(p)
        assert (info.sample_rate, info.num_samples, info.num_channels) == (8000, 4000, 1)
        assert info.duration == pytest.approx(0.5)


def test_stereo_is_mixed_or_one_channel_is_picked(tmp_path: Path) -> None:
    left = _tone(300, 8000, 0.2, 0.5)
    right = _tone(700, 8000, 0.2, 0.25)
    p = tmp_path / "call.wav"
    sf.write(p, np.stack([left, right], axis=1), 8000, subtype="FLOAT")
    mixed, _ = load_audio(p)
    np.testing.assert_allclose(mixed, (left + right) / 2, atol=1e-6)
    np.testing.assert_allclose(load_audio(p, channel=1)[0], right, atol=1e-7)
    with pytest.raises(AudioError, match="2 channel"):
        load_audio(p, channel=2)


def test_load_audio_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="no such audio file"):
        load_audio(tmp_path / "missing.wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00 this is not audio")
    with pytest.raises(AudioError, match="bad.wav: cannot decode"):
        load_audio(bad)
    ok = tmp_path / "ok.wav"
    sf.write(ok, _tone(300, 8000, 0.1), 8000)
    with pytest.raises(AudioError, match="8000 Hz, expected 16000 Hz"):
        load_audio(ok, expected_sr=16000)


def test_resample_keeps_a_tone_and_the_length() -> None:
    x = _tone(1000, 8000, 1.0)
    y = resample(x, 8000, 16000)
    assert len(y) == 16000 and y.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(y[2000:14000] * np.hanning(12000)))
    peak_hz = np.argmax(spectrum) * 16000 / 12000
    assert abs(peak_hz - 1000) < 3
    back = resample(y, 16000, 8000)
    assert len(back) == len(x)
    np.testing.assert_allclose(back[200:-200], x[200:-200], atol=2e-3)
    assert len(resample(np.ones(5, dtype=np.float32), 44100, 16000)) == 2  # ceil(5*160/441)


@pytest.mark.parametrize("sr_in,sr_out", [(8000, 16000), (16000, 8000), (44100, 16000)])
def test_streaming_resampler_equals_batch(sr_in: int, sr_out: int) -> None:
    x = _speechlike(sr_in, 0.7)
    r = StreamingResampler(sr_in, sr_out)
    rng = np.random.default_rng(1)
    pieces, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 700))
        pieces.append(r.accept(x[i : i + n]))
        i += n
    pieces.append(r.flush())
    np.testing.assert_allclose(np.concatenate(pieces), resample(x, sr_in, sr_out), atol=1e-6)


def test_fbank_shape_and_options_follow_sherpa_onnx() -> None:
    opts = FbankConfig().to_knf()
    assert opts.frame_opts.dither == 0.0 and not opts.frame_opts.snip_edges
    assert opts.mel_opts.num_bins == 80 and opts.mel_opts.high_freq == -400.0
    x = _speechlike(16000, 1.234)
    f = compute_fbank(x, 16000)
    assert f.shape == (round(len(x) / 160), 80) and f.dtype == np.float32
    assert np.isfinite(f).all()
    # 8 kHz input is resampled to 16 kHz first: same number of frames per second.
    f8 = compute_fbank(resample(x, 16000, 8000), 8000)
    assert f8.shape == f.shape


def test_fbank_matches_lhotse_fbank_used_by_icefall_training() -> None:
    import torch
    from lhotse.features import Fbank
    from lhotse.features import FbankConfig as LhotseFbankConfig

    torch.set_num_threads(1)
    x = _speechlike(16000, 1.0, seed=3)
    ours = compute_fbank(x, 16000)
    ref = Fbank(LhotseFbankConfig(num_mel_bins=80)).extract(x, 16000)
    assert ref.shape == ours.shape
    assert np.abs(ref - ours).max() < 5e-3


def test_fbank_input_scaling() -> None:
    x = _speechlike(16000, 0.3)
    as_int16 = np.round(x * 32768).astype(np.int16)
    np.testing.assert_allclose(compute_fbank(as_int16, 16000), compute_fbank(x, 16000), atol=1e-2)
    with pytest.raises(ValueError, match="divide it by 32768"):
        compute_fbank(x * 32768, 16000)


@pytest.mark.parametrize("sr", [16000, 8000])
def test_streaming_fbank_equals_whole_file(sr: int) -> None:
    x = _speechlike(sr, 2.05, seed=sr)
    whole = compute_fbank(x, sr)
    stream = StreamingFbank()
    _feed_in_chunks(stream, sr, x, seed=7)
    before_end = stream.num_frames_ready
    stream.input_finished()
    assert before_end < stream.num_frames_ready == len(whole)
    got = stream.get_frames(0, stream.num_frames_ready)
    np.testing.assert_array_equal(got, whole)
    assert stream.is_last_frame(len(whole) - 1)
    with pytest.raises(RuntimeError):
        stream.accept_waveform(sr, x[:10])


def test_streaming_fbank_frames_are_available_early_and_rate_is_fixed() -> None:
    x = _speechlike(8000, 1.0)
    stream = StreamingFbank()
    stream.accept_waveform(8000, x[:4000])  # 0.5 s
    assert 45 <= stream.num_frames_ready <= 50
    first = stream.get_frames(0, 10)
    stream.pop(10)
    assert stream.get_frames(10, 5).shape == (5, 80)
    with pytest.raises(ValueError, match="8000 Hz"):
        stream.accept_waveform(16000, x[:100])
    with pytest.raises(IndexError):
        stream.get_frames(0, 10_000)
    np.testing.assert_array_equal(first, compute_fbank(x, 8000)[:10])


def test_serving_audio_and_features_do_not_import_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "import serving.audio, serving.features\n"
        "serving.features.compute_fbank(np.zeros(4000, dtype=np.float32), 8000)\n"
        "s = serving.features.StreamingFbank(); s.accept_waveform(8000, np.zeros(800)); "
        "s.input_finished()\n"
        "bad = [m for m in ('torch', 'lightning', 'mlflow', 'lhotse') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
