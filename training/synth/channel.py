"""Telephone channel simulation on float32 arrays (numpy/scipy only; also usable as an on-the-fly
training augmentation).

Chain in :meth:`TelephoneChannel.apply`: resample to 8 kHz -> additive noise at an SNR -> band-pass
(elliptic, 300-3400 Hz by default) -> gain with a peak limit (never clips) -> G.711 codec round trip
(mu-law or A-law, 8-bit codes as on the wire).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from math import gcd

import numpy as np

PHONE_RATE = 8000

# ---------------------------------------------------------------- G.711 (ITU-T, written from spec)

_MU_BIAS = 0x84  # 16-bit domain (33 in the 14-bit domain the encoder works in)


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(x, dtype=np.float64) * 32768.0), -32768, 32767).astype(
        np.int32
    )


def mulaw_encode(x: np.ndarray) -> np.ndarray:
    """float samples in [-1, 1] -> G.711 mu-law bytes (uint8). Works on the 14-bit sample
    (arithmetic shift, as the reference encoder does), biased by 33, 8 segments of 16 steps."""
    s14 = _to_int16(x) >> 2
    sign = (s14 < 0).astype(np.int32)
    mag = np.minimum(np.where(s14 < 0, -s14, s14), 8158) + 33  # 33 .. 8191
    segment = np.floor(np.log2(mag)).astype(np.int32) - 5  # 0 .. 7
    mantissa = (mag >> (segment + 1)) & 0x0F
    code = (sign << 7) | (segment << 4) | mantissa
    return (~code & 0xFF).astype(np.uint8)


def mulaw_decode(code: np.ndarray) -> np.ndarray:
    """G.711 mu-law bytes -> float32 in [-1, 1]."""
    c = ~np.asarray(code, dtype=np.int32) & 0xFF
    exponent = (c >> 4) & 0x07
    mag = (((c & 0x0F) << 3) + _MU_BIAS) << exponent
    mag = mag - _MU_BIAS
    s = np.where(c & 0x80, -mag, mag)
    return (s / 32768.0).astype(np.float32)


def alaw_encode(x: np.ndarray) -> np.ndarray:
    """float samples in [-1, 1] -> G.711 A-law bytes (uint8, even bits inverted)."""
    s = _to_int16(x)
    positive = (s >= 0).astype(np.int32)
    m = np.where(s >= 0, s, -s - 1) >> 3  # 13-bit magnitude, 0 .. 4095
    small = m < 32
    exponent = np.where(small, 0, np.floor(np.log2(np.maximum(m, 1))).astype(np.int32) - 4)
    mantissa = np.where(small, m >> 1, (m >> np.maximum(exponent, 1)) & 0x0F)
    code = (positive << 7) | (exponent << 4) | mantissa
    return (code ^ 0x55).astype(np.uint8)


def alaw_decode(code: np.ndarray) -> np.ndarray:
    """G.711 A-law bytes -> float32 in [-1, 1]."""
    c = np.asarray(code, dtype=np.int32) ^ 0x55
    exponent = (c >> 4) & 0x07
    mantissa = c & 0x0F
    m13 = np.where(
        exponent == 0,
        (mantissa << 1) | 1,
        (((mantissa | 0x10) << 1) | 1) << np.maximum(exponent - 1, 0),
    )
    s = m13 << 3
    s = np.where(c & 0x80, s, -s)
    return (s / 32768.0).astype(np.float32)


def g711_roundtrip(x: np.ndarray, law: str) -> np.ndarray:
    """Encode and decode with ``law`` ('mulaw' or 'alaw'); 'none' returns the input."""
    if law == "mulaw":
        return mulaw_decode(mulaw_encode(x))
    if law == "alaw":
        return alaw_decode(alaw_encode(x))
    if law == "none":
        return np.asarray(x, dtype=np.float32)
    raise ValueError(f"unknown codec {law!r}: use 'mulaw', 'alaw' or 'none'")


# ---------------------------------------------------------------- filters, noise, gain


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out:
        return np.asarray(x, dtype=np.float32)
    from scipy.signal import resample_poly

    g = gcd(sr_in, sr_out)
    return resample_poly(x, sr_out // g, sr_in // g).astype(np.float32)


@lru_cache(maxsize=64)
def _bandpass_sos(low: float, high: float, sr: int) -> np.ndarray:
    from scipy.signal import ellip

    return ellip(6, 0.5, 60.0, [low, high], btype="bandpass", fs=sr, output="sos")


def bandpass(x: np.ndarray, sr: int, low: float = 300.0, high: float = 3400.0) -> np.ndarray:
    """Causal elliptic band-pass (order 12, 0.5 dB ripple, 60 dB stop band)."""
    from scipy.signal import sosfilt

    if not 0 < low < high < sr / 2:
        raise ValueError(f"band {low}-{high} Hz does not fit under Nyquist ({sr / 2} Hz)")
    return sosfilt(_bandpass_sos(float(low), float(high), int(sr)), x).astype(np.float32)


def white_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(n).astype(np.float32)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """1/f power spectrum, shaped from white noise in the frequency domain."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0
    y = np.fft.irfft(spec / np.sqrt(f), n)
    return (y / (np.std(y) + 1e-12)).astype(np.float32)


def babble_noise(
    n: int, rng: np.random.Generator, speech: list[np.ndarray], talkers: int = 4
) -> np.ndarray:
    """Sum of ``talkers`` randomly offset (and looped) excerpts of other speech."""
    if not speech:
        raise ValueError("babble noise needs other speech: pass a list of float arrays as `speech`")
    out = np.zeros(n, dtype=np.float32)
    for _ in range(talkers):
        src = speech[int(rng.integers(len(speech)))]
        if src.size == 0:
            continue
        start = int(rng.integers(src.size))
        reps = int(np.ceil((n + start) / src.size))
        out += np.tile(src, reps)[start : start + n]
    return out


def add_noise(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``x + noise`` scaled so that power(x) / power(scaled noise) = ``snr_db``."""
    if noise.shape != x.shape:
        raise ValueError(f"noise shape {noise.shape} differs from signal shape {x.shape}")
    px = float(np.mean(np.square(x, dtype=np.float64)))
    pn = float(np.mean(np.square(noise, dtype=np.float64)))
    if px == 0.0 or pn == 0.0:
        return np.asarray(x, dtype=np.float32)
    scale = np.sqrt(px / (pn * 10.0 ** (snr_db / 10.0)))
    return (x + scale * noise).astype(np.float32)


def apply_gain(x: np.ndarray, gain_db: float, peak: float = 0.95) -> np.ndarray:
    """Gain in dB, then scale down (never clip) so that the absolute peak is at most ``peak``."""
    y = np.asarray(x, dtype=np.float32) * np.float32(10.0 ** (gain_db / 20.0))
    top = float(np.max(np.abs(y))) if y.size else 0.0
    if top > peak:
        y = y * np.float32(peak / top)
    return y


def snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    """Measured SNR of ``noisy`` against its ``clean`` part."""
    n = np.asarray(noisy, np.float64) - np.asarray(clean, np.float64)
    return float(10 * np.log10(np.mean(np.square(clean, dtype=np.float64)) / np.mean(n * n)))


# ---------------------------------------------------------------- the channel


@dataclass
class TelephoneChannel:
    """Options of one telephone leg. ``snr_db=None`` adds no noise; ``codec`` is 'mulaw', 'alaw'
    or 'none'; ``noise`` is 'white', 'pink' or 'babble' (babble needs ``speech`` in apply)."""

    low_hz: float = 300.0
    high_hz: float = 3400.0
    codec: str = "mulaw"
    noise: str = "pink"
    snr_db: float | None = 25.0
    gain_db: float = 0.0
    peak: float = 0.95

    def apply(
        self,
        samples: np.ndarray,
        sr: int,
        rng: np.random.Generator,
        speech: list[np.ndarray] | None = None,
        speech_rate: int | None = None,
    ) -> tuple[np.ndarray, int]:
        """Run float32 ``samples`` at ``sr`` through the channel -> (float32 at 8 kHz, 8000).
        ``speech``: other talkers for babble noise, at ``speech_rate`` (default ``sr``)."""
        x = resample(np.asarray(samples, dtype=np.float32), sr, PHONE_RATE)
        if self.snr_db is not None and x.size:
            if self.noise == "white":
                n = white_noise(x.size, rng)
            elif self.noise == "pink":
                n = pink_noise(x.size, rng)
            elif self.noise == "babble":
                rate = speech_rate or sr
                talkers = [resample(s, rate, PHONE_RATE) for s in speech or []]
                n = babble_noise(x.size, rng, talkers)
            else:
                raise ValueError(f"unknown noise {self.noise!r}: use 'white', 'pink' or 'babble'")
            x = add_noise(x, n, self.snr_db)
        x = bandpass(x, PHONE_RATE, self.low_hz, self.high_hz)
        x = apply_gain(x, self.gain_db, self.peak)
        return g711_roundtrip(x, self.codec), PHONE_RATE

    def to_dict(self) -> dict:
        return asdict(self)


def sample_channel(rng: np.random.Generator, babble: bool = True) -> TelephoneChannel:
    """A random but plausible phone leg: mostly mu-law/A-law, SNR 5-35 dB (a fifth noiseless),
    band edges 250-350 / 3200-3500 Hz, gain -12..+6 dB."""
    noises = ["white", "pink", "babble"] if babble else ["white", "pink"]
    weights = np.array([0.3, 0.45, 0.25] if babble else [0.4, 0.6])
    return TelephoneChannel(
        low_hz=float(25 * rng.integers(10, 15)),  # 250..350 Hz in 25 Hz steps (filters cached)
        high_hz=float(25 * rng.integers(128, 141)),  # 3200..3500 Hz
        codec=str(rng.choice(["mulaw", "alaw", "none"], p=[0.55, 0.3, 0.15])),
        noise=str(rng.choice(noises, p=weights / weights.sum())),
        snr_db=None if rng.random() < 0.2 else float(np.round(rng.uniform(5.0, 35.0), 1)),
        gain_db=float(np.round(rng.uniform(-12.0, 6.0), 1)),
    )
