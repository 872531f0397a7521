from __future__ import annotations

import time
import warnings

import numpy as np
import pytest

from training.synth.channel import (
    TelephoneChannel,
    add_noise,
    alaw_decode,
    alaw_encode,
    apply_gain,
    bandpass,
    mulaw_decode,
    mulaw_encode,
    pink_noise,
    sample_channel,
    snr_db,
)

ALL16 = np.arange(-32768, 32768, dtype=np.int16)


def _band_db(y: np.ndarray, sr: int, lo: float, hi: float, ref: float) -> float:
    f = np.fft.rfftfreq(len(y), 1 / sr)
    p = np.abs(np.fft.rfft(y)) ** 2
    return float(10 * np.log10(p[(f >= lo) & (f < hi)].mean() / ref))


def test_telephone_band_is_kept_and_outside_strongly_attenuated():
    rng = np.random.default_rng(0)
    x = 0.1 * rng.standard_normal(16000 * 4).astype(np.float32)
    y, sr = TelephoneChannel(codec="none", snr_db=None).apply(x, 16000, rng)
    assert sr == 8000 and len(y) == len(x) // 2
    f = np.fft.rfftfreq(len(y), 1 / sr)
    p = np.abs(np.fft.rfft(y)) ** 2
    ref = p[(f >= 500) & (f < 3000)].mean()
    assert _band_db(y, sr, 0, 150, ref) < -35
    assert _band_db(y, sr, 3700, 4000, ref) < -35
    assert abs(_band_db(y, sr, 400, 1000, ref)) < 2  # passband is flat
    assert abs(_band_db(y, sr, 2500, 3200, ref)) < 2


def test_bandpass_refuses_band_above_nyquist():
    with pytest.raises(ValueError, match="Nyquist"):
        bandpass(np.zeros(100, np.float32), 8000, 300, 4200)


def test_g711_known_codes_and_bounded_round_trip_error():
    assert mulaw_encode(np.array([0.0]))[0] == 0xFF
    assert alaw_encode(np.array([0.0]))[0] == 0xD5
    x = ALL16 / 32768.0
    for enc, dec in ((mulaw_encode, mulaw_decode), (alaw_encode, alaw_decode)):
        y = dec(enc(x))
        err = np.abs(y - x)
        # segment step is 1/16 of the segment's size: error <= 1/32 relative plus a small floor
        assert np.all(err <= np.abs(x) / 16 + 40 / 32768)
        assert np.all(np.sign(y[np.abs(x) > 0.01]) == np.sign(x[np.abs(x) > 0.01]))
        codes = np.arange(256, dtype=np.uint8)
        same = enc(dec(codes)) == codes  # decode then encode is identity ...
        assert set(np.flatnonzero(~same)) <= {0x7F}  # ... but for mu-law's "negative zero"


def test_g711_matches_the_reference_codec_bit_exactly():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    x = ALL16 / 32768.0
    assert np.array_equal(
        mulaw_encode(x), np.frombuffer(audioop.lin2ulaw(ALL16.tobytes(), 2), np.uint8)
    )
    assert np.array_equal(
        alaw_encode(x), np.frombuffer(audioop.lin2alaw(ALL16.tobytes(), 2), np.uint8)
    )
    codes = np.arange(256, dtype=np.uint8)
    ref_mu = np.frombuffer(audioop.ulaw2lin(codes.tobytes(), 2), np.int16)
    ref_a = np.frombuffer(audioop.alaw2lin(codes.tobytes(), 2), np.int16)
    assert np.array_equal(np.round(mulaw_decode(codes) * 32768).astype(np.int16), ref_mu)
    assert np.array_equal(np.round(alaw_decode(codes) * 32768).astype(np.int16), ref_a)


@pytest.mark.parametrize("snr", [0.0, 10.0, 25.0])
def test_measured_snr_matches_request(snr):
    rng = np.random.default_rng(1)
    t = np.arange(8000 * 3) / 8000
    x = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for noise in (rng.standard_normal(x.size).astype(np.float32), pink_noise(x.size, rng)):
        y = add_noise(x, noise, snr)
        assert abs(snr_db(x, y) - snr) < 0.1


def test_gain_never_clips():
    rng = np.random.default_rng(2)
    x = 0.5 * rng.standard_normal(8000).astype(np.float32)
    y = apply_gain(x, 20.0, peak=0.95)
    assert np.max(np.abs(y)) <= 0.95 + 1e-6
    quiet = apply_gain(0.01 * x, -6.0)
    assert np.allclose(quiet, 0.01 * x * 10 ** (-6 / 20), atol=1e-7)
    loud, _ = TelephoneChannel(gain_db=30.0, snr_db=5.0).apply(x, 8000, rng)
    assert np.max(np.abs(loud)) <= 0.96  # after the codec, still well under full scale


def test_babble_needs_speech_and_uses_it():
    rng = np.random.default_rng(3)
    x = 0.1 * rng.standard_normal(8000).astype(np.float32)
    ch = TelephoneChannel(noise="babble", snr_db=10.0, codec="none")
    with pytest.raises(ValueError, match="other speech"):
        ch.apply(x, 8000, rng)
    talkers = [0.2 * rng.standard_normal(5000).astype(np.float32) for _ in range(3)]
    y, _ = ch.apply(x, 8000, rng, speech=talkers)
    clean, _ = TelephoneChannel(snr_db=None, codec="none").apply(x, 8000, rng)
    assert 7.0 < snr_db(clean, y) < 13.0


def test_sample_channel_is_seeded_and_fast():
    a = [sample_channel(np.random.default_rng(5)).to_dict() for _ in range(2)]
    assert a[0] == a[1]
    rng = np.random.default_rng(6)
    chans = [sample_channel(rng) for _ in range(40)]
    assert {c.codec for c in chans} >= {"mulaw", "alaw"}
    x = 0.1 * rng.standard_normal(16000 * 4).astype(np.float32)
    talkers = [x[:8000]]
    t0 = time.perf_counter()
    for c in chans[:20]:
        y, sr = c.apply(x, 16000, rng, speech=talkers)
        assert sr == 8000 and y.dtype == np.float32 and np.all(np.isfinite(y))
    assert (time.perf_counter() - t0) / 20 < 0.25  # 4 s of audio per call; ~5 ms when idle
