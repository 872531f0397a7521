"""80-dim log-mel filterbank features, the same in training and in serving (kaldi-native-fbank).

The options are those sherpa-onnx's ``FeatureExtractor`` sets on ``knf::FbankOptions`` (and
lhotse's ``Fbank`` defaults that icefall trains with): 16 kHz, 25 ms frames every 10 ms,
``dither = 0``, ``snip_edges = False``, povey window, pre-emphasis 0.97, DC offset removed,
80 mel bins from 20 Hz to Nyquist - 400 Hz (7600 Hz), log power, no energy term.

Input scaling: samples are floats in [-1, 1] (sherpa-onnx's ``normalize_samples = true``,
lhotse's ``Recording.load_audio()``). int16 arrays are divided by 32768. Float input whose
peak is above 2 is rejected, because it almost certainly is int16-scaled audio, which would
shift every log-mel value by log(32768^2) ~ 20.8.

Audio at another rate is first resampled to 16 kHz with :func:`serving.audio.resample`
(streaming: :class:`serving.audio.StreamingResampler`, which gives the same samples).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import kaldi_native_fbank as knf
import numpy as np

from serving.audio import StreamingResampler, resample

__all__ = ["LOG_EPS", "FbankConfig", "StreamingFbank", "compute_fbank", "to_float_samples"]

LOG_EPS = math.log(1e-10)
"""Padding value for features (log of a tiny energy), as in icefall."""

_MAX_FLOAT_PEAK = 2.0


@dataclass(frozen=True)
class FbankConfig:
    """Filterbank options; the defaults are the model's contract, change them only with care."""

    sample_rate: int = 16000
    num_bins: int = 80
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    dither: float = 0.0
    snip_edges: bool = False
    low_freq: float = 20.0
    high_freq: float = -400.0  # negative: offset from Nyquist
    preemph_coeff: float = 0.97
    remove_dc_offset: bool = True
    window_type: str = "povey"

    @property
    def frame_shift(self) -> float:
        """Frame shift in seconds."""
        return self.frame_shift_ms / 1000.0

    def to_knf(self) -> knf.FbankOptions:
        opts = knf.FbankOptions()
        fo = opts.frame_opts
        fo.samp_freq = float(self.sample_rate)
        fo.frame_length_ms = self.frame_length_ms
        fo.frame_shift_ms = self.frame_shift_ms
        fo.dither = self.dither
        fo.snip_edges = self.snip_edges
        fo.preemph_coeff = self.preemph_coeff
        fo.remove_dc_offset = self.remove_dc_offset
        fo.window_type = self.window_type
        mo = opts.mel_opts
        mo.num_bins = self.num_bins
        mo.low_freq = self.low_freq
        mo.high_freq = self.high_freq
        opts.use_energy = False
        opts.use_log_fbank = True
        opts.use_power = True
        return opts


def to_float_samples(samples: np.ndarray) -> np.ndarray:
    """Return a 1-D float32 array in [-1, 1]; int16 input is divided by 32768."""
    x = np.asarray(samples)
    if x.ndim == 2 and 1 in x.shape:
        x = x.reshape(-1)
    if x.ndim != 1:
        raise ValueError(
            f"expected mono samples (1-D), got shape {x.shape}; mix or pick a channel first"
        )
    if x.dtype == np.int16:
        return x.astype(np.float32) / 32768.0
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"samples must be float in [-1, 1] or int16, got dtype {x.dtype}")
    x = x.astype(np.float32, copy=False)
    if x.size:
        peak = float(np.max(np.abs(x)))
        if not math.isfinite(peak):
            raise ValueError("samples contain NaN or infinity")
        if peak > _MAX_FLOAT_PEAK:
            raise ValueError(
                f"float samples peak at {peak:.1f}; expected [-1, 1]. "
                "If this is int16-scaled audio, divide it by 32768"
            )
    return x


def _read_frames(fbank: knf.OnlineFbank, start: int, n: int, dim: int) -> np.ndarray:
    out = np.empty((n, dim), dtype=np.float32)
    for i in range(n):
        out[i] = fbank.get_frame(start + i)
    return out


def compute_fbank(
    samples: np.ndarray, sample_rate: int, config: FbankConfig | None = None
) -> np.ndarray:
    """Features of a whole signal: ``(num_frames, num_bins)`` float32.

    ``num_frames = round(num_samples_16k / 160)`` (``snip_edges=False``).
    """
    config = config or FbankConfig()
    x = to_float_samples(samples)
    if sample_rate != config.sample_rate:
        x = resample(x, sample_rate, config.sample_rate)
    fbank = knf.OnlineFbank(config.to_knf())
    fbank.accept_waveform(config.sample_rate, x)
    fbank.input_finished()
    return _read_frames(fbank, 0, fbank.num_frames_ready, config.num_bins)


class StreamingFbank:
    """Online features for a stream (a call), frame for frame equal to :func:`compute_fbank`
    on the whole signal once :meth:`input_finished` has been called.

    Frames are kept until :meth:`pop` drops them, so ``get_frames`` may look back.
    """

    def __init__(self, config: FbankConfig | None = None) -> None:
        self.config = config or FbankConfig()
        self._fbank = knf.OnlineFbank(self.config.to_knf())
        self._resampler: StreamingResampler | None = None
        self._finished = False

    @property
    def dim(self) -> int:
        return self.config.num_bins

    @property
    def num_frames_ready(self) -> int:
        return self._fbank.num_frames_ready

    @property
    def finished(self) -> bool:
        return self._finished

    def accept_waveform(self, sample_rate: int, samples: np.ndarray) -> None:
        """Add samples (float in [-1, 1] or int16). The rate must stay the same for a stream."""
        if self._finished:
            raise RuntimeError("accept_waveform() after input_finished(); start a new stream")
        x = to_float_samples(samples)
        if self._resampler is None:
            self._resampler = StreamingResampler(sample_rate, self.config.sample_rate)
        elif sample_rate != self._resampler.sr_in:
            raise ValueError(
                f"this stream is at {self._resampler.sr_in} Hz, got a chunk at {sample_rate} Hz"
            )
        y = self._resampler.accept(x)
        if y.size:
            self._fbank.accept_waveform(self.config.sample_rate, y)

    def input_finished(self) -> None:
        """No more audio: flush the resampler and the last frames (``snip_edges=False``)."""
        if self._finished:
            return
        if self._resampler is not None:
            y = self._resampler.flush()
            if y.size:
                self._fbank.accept_waveform(self.config.sample_rate, y)
        self._fbank.input_finished()
        self._finished = True

    def is_last_frame(self, frame: int) -> bool:
        return self._fbank.is_last_frame(frame)

    def get_frames(self, start: int, n: int) -> np.ndarray:
        """Frames ``start .. start+n-1`` as ``(n, num_bins)`` float32."""
        ready = self.num_frames_ready
        if start < 0 or n < 0 or start + n > ready:
            raise IndexError(f"frames {start}..{start + n - 1} requested, {ready} ready")
        return _read_frames(self._fbank, start, n, self.dim)

    def pop(self, n: int) -> None:
        """Forget the oldest ``n`` frames (indices of the others do not change)."""
        self._fbank.pop(n)
