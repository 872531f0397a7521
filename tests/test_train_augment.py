from __future__ import annotations

import numpy as np
import pytest

from training.augment import AudioAugmentor, AugmentOptions, add_noise, colored_noise, telephone


def _tone_mix(sr: int = 16000, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.2 * np.sin(2 * np.pi * 1000 * t) + 0.2 * np.sin(2 * np.pi * 6000 * t)).astype(
        np.float32
    )


def _band_energy(x: np.ndarray, sr: int, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(x.size, 1 / sr)
    return float(spec[(f >= lo) & (f < hi)].sum())


def test_add_noise_hits_requested_snr():
    rng = np.random.default_rng(0)
    x = _tone_mix()
    y = add_noise(x, 10.0, 1.0, rng)
    n = y - x
    snr = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(n.astype(np.float64) ** 2))
    assert snr == pytest.approx(10.0, abs=0.01)


def test_colored_noise_tilts_spectrum():
    rng = np.random.default_rng(1)
    white = colored_noise(16000, 0.0, rng)
    brown = colored_noise(16000, 2.0, rng)
    assert np.sqrt(np.mean(white**2)) == pytest.approx(1.0, rel=1e-3)
    ratio_white = _band_energy(white, 16000, 0, 500) / _band_energy(white, 16000, 4000, 8000)
    ratio_brown = _band_energy(brown, 16000, 0, 500) / _band_energy(brown, 16000, 4000, 8000)
    assert ratio_brown > 100 * ratio_white


def test_telephone_keeps_length_and_removes_high_band():
    rng = np.random.default_rng(2)
    x = _tone_mix()
    y = telephone(x, 16000, rng)
    assert y.shape == x.shape and y.dtype == np.float32
    # The 6 kHz tone is far above the 3.4 kHz telephone band; the 1 kHz tone passes.
    assert _band_energy(y, 16000, 5500, 6500) < 1e-3 * _band_energy(y, 16000, 900, 1100)


def test_augmentor_is_deterministic_per_rng_and_bounded():
    aug = AudioAugmentor(AugmentOptions(telephone_prob=1.0, noise_prob=1.0, gain_prob=1.0))
    x = _tone_mix()
    a = aug(x, 16000, np.random.default_rng(5))
    b = aug(x, 16000, np.random.default_rng(5))
    c = aug(x, 16000, np.random.default_rng(6))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == x.shape and np.abs(a).max() <= 1.0


def test_options_reject_unknown_keys():
    with pytest.raises(ValueError, match="snr"):
        AugmentOptions.from_dict({"snr": [1, 2]})
    assert AugmentOptions.from_dict({"snr_db": [3, 4]}).snr_db == (3.0, 4.0)


def test_silence_pads_both_sides_with_zeros_before_the_channel():
    x = _tone_mix() + np.float32(0.01)  # no zero sample at either end
    o = AugmentOptions(silence_prob=1.0, silence_s=(0.5, 1.0), telephone_prob=0, noise_prob=0)
    o.gain_prob = 0
    y = AudioAugmentor(o)(x, 16000, np.random.default_rng(3))
    lead = int(np.flatnonzero(y)[0])
    trail = y.size - 1 - int(np.flatnonzero(y)[-1])
    assert 8000 <= lead <= 16000 and 8000 <= trail <= 16000
    assert y.size == x.size + lead + trail
    np.testing.assert_array_equal(y[lead : lead + x.size], x)
    # with the channel after it, the silence carries line noise, and the length holds
    o.telephone_prob = 1.0
    z = AudioAugmentor(o)(x, 16000, np.random.default_rng(3))
    assert z.size == y.size
    assert AugmentOptions.from_dict({"silence_s": [0, 2]}).silence_s == (0.0, 2.0)
