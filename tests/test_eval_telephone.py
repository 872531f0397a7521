"""`eval --telephone-seed`: clean test audio scored the way the hotline hears it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from training.evaluate import EvalOptions, evaluate, read_kaldi_dir


def _band_energy(x: np.ndarray, sr: int, low: float, high: float) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / sr)
    return float(spec[(freqs >= low) & (freqs < high)].sum())


def test_the_channel_band_limits_and_is_fixed_by_seed_and_utterance(neural_voice: Path):
    items = read_kaldi_dir(neural_voice / "dev")[:2]
    clean, sr = items[0].samples()
    for it in items:
        it.telephone_seed = 7
    phone, sr2 = items[0].samples()
    assert sr2 == sr and phone.shape == clean.shape and phone.dtype == np.float32
    # above the telephone band (3.6-7 kHz) almost nothing is left; the clean voice has energy there
    ratio_clean = _band_energy(clean, sr, 3600, 7000) / _band_energy(clean, sr, 300, 3400)
    ratio_phone = _band_energy(phone, sr, 3600, 7000) / _band_energy(phone, sr, 300, 3400)
    assert ratio_phone < 0.1 * ratio_clean
    # the same seed and utterance give the same channel, in any order; another seed another one
    again, _ = items[0].samples()
    np.testing.assert_array_equal(phone, again)
    items[0].telephone_seed = 8
    assert not np.array_equal(items[0].samples()[0], phone)
    # features are computed from the channelled audio
    items[0].telephone_seed = 7
    assert not np.allclose(items[0].features(), read_kaldi_dir(neural_voice / "dev")[0].features())


def test_eval_with_the_channel_is_reproducible_and_checks_its_seed(
    neural_voice: Path, icefall_fixture: Path, tmp_path: Path
):
    from hotline_asr.cli import app

    model = str(icefall_fixture / "epoch-99.pt")
    args = ["eval", "--model", model, "--data", str(neural_voice / "dev"), "--max-utts", "2"]
    runs = [CliRunner().invoke(app, [*args, "--telephone-seed", "3", "--json"]) for _ in range(2)]
    assert all(r.exit_code == 0 for r in runs), runs[0].output
    first, second = (json.loads(r.output) for r in runs)
    assert first["options"]["telephone_seed"] == 3
    assert first["hypotheses"] == second["hypotheses"]
    with pytest.raises(ValueError, match="0 or more"):
        evaluate(model, neural_voice / "dev", EvalOptions(max_utts=1, telephone_seed=-1))


def test_lead_silence_puts_zeros_before_the_audio_and_the_channel(neural_voice: Path):
    items = read_kaldi_dir(neural_voice / "dev")[:1]
    clean, sr = items[0].samples()
    items[0].lead_silence = 0.5
    padded, _ = items[0].samples()
    lead = int(0.5 * sr)
    assert padded.shape[0] == clean.shape[0] + lead and not padded[:lead].any()
    np.testing.assert_array_equal(padded[lead:], clean)
    assert (
        items[0].features().shape[0] > read_kaldi_dir(neural_voice / "dev")[0].features().shape[0]
    )
    items[0].telephone_seed = 7  # the line's noise falls on the silence too
    assert items[0].samples()[0][:lead].any()


def test_eval_lead_silence_reaches_the_decoder_and_is_checked(
    neural_voice: Path, icefall_fixture: Path
):
    # the random fixture emits a character on almost every frame: 1 s more audio, more output
    model = str(icefall_fixture / "epoch-99.pt")
    data = neural_voice / "dev"
    plain = evaluate(model, data, EvalOptions(max_utts=2))
    padded = evaluate(model, data, EvalOptions(max_utts=2, lead_silence=1.0))
    assert sum(len(h["hyp"]) for h in padded.hypotheses) > sum(
        len(h["hyp"]) for h in plain.hypotheses
    )
    assert padded.to_dict()["options"]["lead_silence"] == 1.0
    with pytest.raises(ValueError, match="between 0 and 60"):
        evaluate(model, data, EvalOptions(max_utts=1, lead_silence=-1))
