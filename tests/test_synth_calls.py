from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from training.synth.calls import CHANNEL_OF, render_call, write_call

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng missing")


@pytest.fixture(scope="module")
def call():
    return render_call(21, "c21", overlap_prob=0.5)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def test_shapes_and_timestamps_fit_the_audio(call):
    assert call.sample_rate == 8000
    assert call.stereo.ndim == 2 and call.stereo.shape[1] == 2
    assert call.mono.shape[0] == call.stereo.shape[0]
    assert np.max(np.abs(call.mono)) <= 0.95 + 1e-3
    assert len(call.turns) >= 8
    for t in call.turns:
        assert 0.0 < t.start < t.end <= call.duration
    assert call.duration - max(t.end for t in call.turns) < 1.0
    for spk in CHANNEL_OF:  # one leg never overlaps itself
        mine = [t for t in call.turns if t.speaker == spk]
        assert all(b.start >= a.end for a, b in zip(mine, mine[1:], strict=False))


def test_each_turn_is_heard_on_its_own_channel(call):
    sr = call.sample_rate
    agent = call.stereo[:, 0]
    inside = np.zeros(len(agent), bool)
    for t in call.turns:
        seg = call.stereo[int(t.start * sr) : int(t.end * sr), CHANNEL_OF[t.speaker]]
        assert _rms(seg) > 0.005, t
        if t.speaker == "agent":
            inside[int(t.start * sr) : int(t.end * sr)] = True
    # the agent leg (SNR 40 dB) is near silent outside agent turns (0.15 s margins excluded)
    margin = int(0.2 * sr)
    grown = np.convolve(inside, np.ones(2 * margin + 1), mode="same") > 0
    assert _rms(agent[~grown]) < 0.2 * _rms(agent[inside])


def test_turns_overlap_sometimes(call):
    ts = sorted(call.turns, key=lambda t: t.start)
    overlaps = [b for a, b in zip(ts, ts[1:], strict=False) if b.start < a.end]
    assert overlaps and all(
        o.speaker != p.speaker for p, o in zip(ts, ts[1:], strict=False) if o.start < p.end
    )


def test_written_files_agree(call, tmp_path):
    paths = write_call(call, tmp_path)
    stereo, sr = sf.read(paths["stereo"])
    mono, sr2 = sf.read(paths["mono"])
    assert sr == sr2 == 8000 and stereo.shape == call.stereo.shape and mono.ndim == 1
    rttm = paths["rttm"].read_text().splitlines()
    assert len(rttm) == len(call.turns)
    first = rttm[0].split()
    assert first[0] == "SPEAKER" and first[1] == "c21" and first[7] in ("agent", "caller")
    meta = json.loads(paths["json"].read_text())
    assert meta["stereo_channels"] == {"0": "agent", "1": "caller"}
    assert [t["text"] for t in meta["turns"]] == [t.text for t in call.turns]
    for line, t in zip(rttm, sorted(call.turns, key=lambda t: t.start), strict=True):
        start, dur = float(line.split()[3]), float(line.split()[4])
        assert abs(start - t.start) < 1e-3 and abs(start + dur - t.end) < 2e-3


def test_same_seed_same_call():
    a, b = render_call(3), render_call(3)
    assert np.array_equal(a.stereo, b.stereo) and a.turns == b.turns
