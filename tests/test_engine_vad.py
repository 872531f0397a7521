"""Energy VAD on synthetic recordings with known speech spans."""

from __future__ import annotations

import numpy as np
import pytest

from serving.engine.vad import VadOptions, detect_speech, frame_energies_db

SR = 8000


def voiced(n: int, rng: np.random.Generator, level: float) -> np.ndarray:
    """A speech-like burst: a 200 Hz tone with syllable-rate amplitude modulation."""
    t = np.arange(n) / SR
    return level * np.sin(2 * np.pi * 200 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))


def recording(spans, total_s, level=0.2, noise=0.001, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(int(total_s * SR)) * noise
    for a, b in spans:
        i, n = int(a * SR), int((b - a) * SR)
        x[i : i + n] += voiced(n, rng, level)
    return x.astype(np.float32)


def spans_of(segments):
    return [(s.start_s, s.end_s) for s in segments]


def test_finds_speech_spans_within_a_frame_or_two():
    x = recording([(0.5, 1.5), (2.5, 4.0)], 5.0)
    got = spans_of(detect_speech(x, SR))
    assert len(got) == 2
    for (a, b), (ga, gb) in zip([(0.5, 1.5), (2.5, 4.0)], got, strict=True):
        assert abs(ga - a) <= 0.03 and abs(gb - b) <= 0.03


def test_short_pauses_merge_and_clicks_are_dropped():
    x = recording([(0.5, 1.5), (1.7, 2.5), (3.5, 3.55)], 4.5)  # 0.2 s pause, 50 ms click
    got = spans_of(detect_speech(x, SR))
    assert len(got) == 1
    assert got[0][0] == pytest.approx(0.5, abs=0.03) and got[0][1] == pytest.approx(2.5, abs=0.03)
    # With a shorter minimum pause the two parts separate.
    got = spans_of(detect_speech(x, SR, VadOptions(min_silence_s=0.1)))
    assert len(got) == 2


def test_long_speech_is_cut_below_max_segment_length():
    x = recording([(0.5, 50.0)], 51.0)
    segs = detect_speech(x, SR, VadOptions(max_segment_s=20.0))
    assert 3 <= len(segs) <= 5  # each cut falls at the quietest frame 10-20 s into the rest
    assert all(s.end_s - s.start_s <= 20.0 + 1e-9 for s in segs)
    assert all(s.end_s - s.start_s >= 10.0 for s in segs[:-1])
    assert segs[0].start_s == pytest.approx(0.5, abs=0.03)
    assert segs[-1].end_s == pytest.approx(50.0, abs=0.03)
    for a, b in zip(segs, segs[1:], strict=False):
        assert a.end == b.start  # contiguous cuts, nothing lost


def test_padding_stays_within_the_gap_between_segments():
    x = recording([(0.5, 1.5), (2.0, 3.0)], 3.1)
    segs = detect_speech(x, SR, VadOptions(pad_s=0.4))
    assert len(segs) == 2
    assert segs[0].pad_start == segs[0].start - int(0.4 * SR)
    # The 0.5 s gap is shorter than two pads: they meet in the middle instead of overlapping.
    middle = (segs[0].end + segs[1].start) // 2
    assert segs[0].pad_end == middle == segs[1].pad_start
    assert segs[1].pad_end == len(x)  # clipped at the end of the recording


def test_quiet_and_loud_recordings_alike():
    """The threshold follows the recording: the same call 30 dB quieter segments the same."""
    loud = recording([(0.5, 1.5), (2.5, 4.0)], 5.0, level=0.3, noise=0.003)
    quiet = loud * 10 ** (-30 / 20)
    assert len(detect_speech(quiet, SR)) == 2
    assert spans_of(detect_speech(quiet, SR)) == spans_of(detect_speech(loud, SR))


def test_silence_and_empty_input_give_no_segments():
    assert detect_speech(np.zeros(SR * 3, np.float32), SR) == []
    assert detect_speech(np.zeros(0, np.float32), SR) == []
    rng = np.random.default_rng(1)
    assert detect_speech((rng.standard_normal(SR * 3) * 0.001).astype(np.float32), SR) == []


def test_frame_energy_of_a_full_scale_sine_is_minus_3_db():
    t = np.arange(SR) / SR
    db, hop = frame_energies_db(np.sin(2 * np.pi * 440 * t), SR, 0.025, 0.010)
    assert hop == 80
    assert np.median(db) == pytest.approx(-3.01, abs=0.1)


def test_rejects_multichannel_input():
    with pytest.raises(ValueError, match="mono"):
        detect_speech(np.zeros((2, 100), np.float32), SR)
