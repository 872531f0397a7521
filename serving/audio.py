"""Reading audio files and changing their sample rate (numpy, soundfile and scipy only).

Samples are always float32 in [-1, 1] (16-bit PCM divided by 32768), the scale that lhotse,
icefall and sherpa-onnx use. Resampling is the same polyphase filter in batch
(:func:`resample`) and in streaming (:class:`StreamingResampler`), so that a telephone call
resampled chunk by chunk gives the same samples as the whole call resampled at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf

__all__ = [
    "AudioError",
    "AudioInfo",
    "StreamingResampler",
    "audio_info",
    "load_audio",
    "resample",
]


class AudioError(ValueError):
    """An audio file is missing, unreadable, or not what the caller said it would be."""


@dataclass(frozen=True)
class AudioInfo:
    """What the header of an audio file says."""

    sample_rate: int
    num_samples: int
    num_channels: int
    format: str

    @property
    def duration(self) -> float:
        return self.num_samples / self.sample_rate


def audio_info(path: str | Path) -> AudioInfo:
    """Read only the header of ``path`` (fast; does not prove the samples decode)."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        raise AudioError(
            f"{path}: cannot read audio header ({e}); is it a WAV or FLAC file?"
        ) from e
    return AudioInfo(
        sample_rate=int(info.samplerate),
        num_samples=int(info.frames),
        num_channels=int(info.channels),
        format=str(info.format),
    )


def load_audio(
    path: str | Path,
    *,
    expected_sr: int | None = None,
    channel: int | None = None,
) -> tuple[np.ndarray, int]:
    """Decode a WAV/FLAC (anything libsndfile reads) into float32 mono samples in [-1, 1].

    Multi-channel files are mixed down by averaging the channels, unless ``channel`` picks one
    (0-based; e.g. the caller or the agent side of a two-channel call recording).
    ``expected_sr``, when given, must equal the file's sample rate; a mismatch raises
    :class:`AudioError` (the file is not resampled silently: call :func:`resample`).
    Returns ``(samples, sample_rate)``.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        raise AudioError(f"{path}: cannot decode audio ({e}); is it a WAV or FLAC file?") from e
    if expected_sr is not None and sr != expected_sr:
        raise AudioError(
            f"{path}: sample rate is {sr} Hz, expected {expected_sr} Hz; "
            "fix the claimed rate or resample the file"
        )
    num_channels = data.shape[1]
    if channel is not None:
        if not 0 <= channel < num_channels:
            raise AudioError(
                f"{path}: has {num_channels} channel(s), cannot pick channel {channel}"
            )
        samples = data[:, channel]
    elif num_channels == 1:
        samples = data[:, 0]
    else:
        samples = data.mean(axis=1)
    return np.ascontiguousarray(samples, dtype=np.float32), int(sr)


def _ratio(sr_in: int, sr_out: int) -> tuple[int, int]:
    if sr_in <= 0 or sr_out <= 0:
        raise ValueError(f"sample rates must be positive, got {sr_in} -> {sr_out}")
    g = math.gcd(int(sr_in), int(sr_out))
    return int(sr_out) // g, int(sr_in) // g


@lru_cache(maxsize=16)
def _lowpass(up: int, down: int) -> np.ndarray:
    """The anti-aliasing FIR filter (odd length, centred, unit DC gain before the ``up`` gain).

    Same design as scipy's ``resample_poly`` default: windowed sinc, Kaiser beta 5,
    cut-off at the lower Nyquist frequency, 10 taps per side per unit of the larger rate.
    """
    from scipy.signal import firwin

    max_rate = max(up, down)
    half_len = 10 * max_rate
    h = firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", 5.0))
    h.setflags(write=False)
    return h


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample a 1-D signal from ``sr_in`` to ``sr_out`` Hz (polyphase, zero-padded edges).

    The output has ``ceil(len(x) * sr_out / sr_in)`` samples, float32.
    """
    from scipy.signal import resample_poly

    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"resample() takes a 1-D signal, got shape {x.shape}")
    up, down = _ratio(sr_in, sr_out)
    if up == down:
        return x.astype(np.float32, copy=True)
    y = resample_poly(x.astype(np.float64), up, down, window=_lowpass(up, down))
    return y.astype(np.float32)


class StreamingResampler:
    """Chunk-by-chunk version of :func:`resample`: feeding a signal in any number of pieces
    and calling :meth:`flush` at the end yields the samples of ``resample(whole, ...)``
    (equal up to float rounding).

    Output sample ``m`` is ``sum_j x[j] * h[m*down + H - j*up] * up`` (``H`` the filter's half
    length), so it can be emitted as soon as input sample ``(m*down + H) // up`` has arrived.
    """

    def __init__(self, sr_in: int, sr_out: int) -> None:
        self.sr_in = int(sr_in)
        self.sr_out = int(sr_out)
        self._up, self._down = _ratio(sr_in, sr_out)
        self._buf = np.zeros(0)  # input samples from absolute index self._buf_start onwards
        self._buf_start = 0
        self._num_in = 0
        self._next_out = 0
        self._finished = False
        if self._up == self._down:
            return
        h = _lowpass(self._up, self._down) * self._up
        self._half = (len(h) - 1) // 2
        # Polyphase layout: phase p uses taps h[p], h[p + up], h[p + 2 up], ...
        self._taps = -(-len(h) // self._up)
        padded = np.zeros(self._taps * self._up)
        padded[: len(h)] = h
        self._phases = padded.reshape(self._taps, self._up).T  # (up, taps)
        self._reversed = np.ascontiguousarray(self._phases[:, ::-1])  # oldest input first

    def _emit(self, last_out: int) -> np.ndarray:
        """Compute outputs ``self._next_out .. last_out - 1`` from the buffer."""
        if last_out <= self._next_out:
            return np.zeros(0, dtype=np.float32)
        # Outputs m with the same residue m % up share one polyphase filter, and their newest
        # inputs advance by ``down`` per step: a strided window view of the buffer times the
        # filter, one matrix-vector product per phase (no per-output gather).
        y = np.empty(last_out - self._next_out)
        m_first = np.arange(self._next_out, self._next_out + min(self._up, len(y)))
        t_first = m_first * self._down + self._half
        newest = t_first // self._up - self._buf_start  # buffer index of each class's first
        count = -(-(last_out - m_first) // self._up)
        need = int((newest + (count - 1) * self._down).max()) + 1
        # taps-1 zeros on the left (before the signal start), zeros on the right (past its end)
        ext = np.concatenate(
            [np.zeros(self._taps - 1), self._buf, np.zeros(max(0, need - len(self._buf)))]
        )
        convolve = self._down <= 4  # few skipped outputs: a full convolution is cheaper
        if not convolve:
            windows = np.lib.stride_tricks.sliding_window_view(ext, self._taps)
        for r, (t0, first, n) in enumerate(zip(t_first, newest, count, strict=True)):
            stop = first + (n - 1) * self._down + 1
            if convolve:
                conv = np.convolve(ext[first : stop + self._taps - 1], self._phases[t0 % self._up])
                y[r :: self._up] = conv[self._taps - 1 : stop - first + self._taps - 1 : self._down]
            else:
                y[r :: self._up] = (
                    windows[first : stop : self._down] @ self._reversed[t0 % self._up]
                )
        self._next_out = last_out
        # Drop input no later output will need.
        oldest_needed = (self._next_out * self._down + self._half) // self._up - self._taps + 1
        drop = min(max(0, oldest_needed - self._buf_start), len(self._buf))
        if drop:
            self._buf = self._buf[drop:]
            self._buf_start += drop
        return y.astype(np.float32)

    def accept(self, x: np.ndarray) -> np.ndarray:
        """Add input samples; return the output samples that are now complete."""
        if self._finished:
            raise RuntimeError("StreamingResampler.accept() after flush(); make a new one")
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if self._up == self._down:
            self._num_in += len(x)
            return x.astype(np.float32)
        self._buf = np.concatenate([self._buf, x])
        self._num_in += len(x)
        # Output m is complete once input (m*down + half)//up < num_in.
        last_out = (self._num_in * self._up - self._half - 1) // self._down + 1
        return self._emit(max(last_out, self._next_out))

    def flush(self) -> np.ndarray:
        """End of input: return the remaining output samples (trailing input taken as zeros)."""
        self._finished = True
        if self._up == self._down:
            return np.zeros(0, dtype=np.float32)
        total = -(-self._num_in * self._up // self._down)
        return self._emit(total)
