"""On-the-fly audio augmentation for training: silence around the speech, telephone channel,
additive noise, gain.

Works on float32 mono waveforms in [-1, 1]. The telephone channel comes from
:mod:`training.synth.channel` (band-limiting, codec, 8 kHz); its output is resampled back to the
input rate so the features stay 16 kHz fbank as everywhere else (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class AugmentOptions:
    """Probabilities and ranges of each augmentation (each applied independently)."""

    # digital silence put before and after the speech (each side drawn from silence_s), ahead
    # of the channel and noise: a call opens, and a sentence ends, in seconds of silence that
    # the trimmed corpus utterances (0.06-0.15 s at the median) never show: 0.3 s of leading
    # zeros take the default from 7.8 to 15.5 % CER on call sentences, 1 s to 21.2 %
    # (recipes/zipformer_synth/RESULTS.md, eighteenth session)
    silence_prob: float = 0.0
    silence_s: tuple[float, float] = (0.1, 1.5)
    telephone_prob: float = 0.8
    noise_prob: float = 0.5
    snr_db: tuple[float, float] = (5.0, 30.0)
    # Spectral tilt of the noise: 0 white, 1 pink, 2 brown; drawn uniformly in this range.
    noise_color: tuple[float, float] = (0.0, 2.0)
    gain_prob: float = 0.5
    gain_db: tuple[float, float] = (-10.0, 6.0)

    @classmethod
    def from_dict(cls, d: dict | None) -> AugmentOptions:
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"unknown augmentation option(s) {sorted(unknown)}; "
                f"known: {sorted(cls.__dataclass_fields__)}"
            )
        for k in ("silence_s", "snr_db", "noise_color", "gain_db"):
            if k in d:
                d[k] = tuple(float(x) for x in d[k])
        return cls(**d)


def pad_silence(
    samples: np.ndarray, sr: int, seconds: tuple[float, float], rng: np.random.Generator
) -> np.ndarray:
    """``samples`` with digital silence before and after, each side uniform in ``seconds``."""
    lead, trail = (int(rng.uniform(*seconds) * sr) for _ in range(2))
    return np.pad(np.asarray(samples, dtype=np.float32), (lead, trail))


def colored_noise(n: int, color: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise whose power falls as ``1/f**color`` (shaped white noise in the FFT domain)."""
    if n <= 0:
        return np.zeros(0, dtype=np.float32)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.shape[0], dtype=np.float64)
    f[0] = 1.0
    spec /= f ** (color / 2.0)
    x = np.fft.irfft(spec, n=n)
    rms = float(np.sqrt(np.mean(x**2))) or 1.0
    return (x / rms).astype(np.float32)


def add_noise(
    samples: np.ndarray, snr_db: float, color: float, rng: np.random.Generator
) -> np.ndarray:
    """``samples`` plus colored noise at the given signal-to-noise ratio (dB)."""
    power = float(np.mean(samples.astype(np.float64) ** 2))
    if power <= 0.0:
        return samples
    noise = colored_noise(samples.shape[-1], color, rng)
    scale = np.sqrt(power / (10.0 ** (snr_db / 10.0)))
    return (samples + scale * noise).astype(np.float32)


def telephone(samples: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Pass through a randomly drawn telephone channel and resample back to ``sr``."""
    from serving.audio import resample
    from training.synth.channel import sample_channel

    out, out_sr = sample_channel(rng, babble=False).apply(samples, sr, rng)
    if out_sr != sr:
        out = resample(out, out_sr, sr)
    n = samples.shape[-1]
    out = np.asarray(out, dtype=np.float32)
    if out.shape[-1] >= n:
        return out[..., :n]
    return np.pad(out, (0, n - out.shape[-1]))


class AudioAugmentor:
    """Callable ``(samples, sr, rng) -> samples`` applying silence, telephone, noise and gain at
    random (the output is longer than the input when silence is added)."""

    def __init__(self, options: AugmentOptions | None = None) -> None:
        self.options = options or AugmentOptions()

    def __call__(self, samples: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
        o = self.options
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim == 2:  # lhotse gives (channels, samples); keep the first channel
            x = x[0]
        if o.silence_prob > 0 and rng.random() < o.silence_prob:
            x = pad_silence(x, sr, o.silence_s, rng)
        if o.telephone_prob > 0 and rng.random() < o.telephone_prob:
            x = telephone(x, sr, rng)
        if o.noise_prob > 0 and rng.random() < o.noise_prob:
            x = add_noise(x, rng.uniform(*o.snr_db), rng.uniform(*o.noise_color), rng)
        if o.gain_prob > 0 and rng.random() < o.gain_prob:
            x = x * np.float32(10.0 ** (rng.uniform(*o.gain_db) / 20.0))
        return np.clip(x, -1.0, 1.0).astype(np.float32)
