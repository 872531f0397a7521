"""Energy-based speech segmentation for long recordings (numpy only).

Frame energies in dBFS are compared with a threshold set from the recording itself: a noise
floor (a low percentile of the frame energies) plus a margin, capped below the loud frames so
that a recording that is nearly all speech still splits at its pauses. Hysteresis (a lower
threshold to stay in speech), a minimum speech length, a minimum pause length and a maximum
segment length (long segments are cut at their quietest frame) shape the segments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SpeechSegment", "VadOptions", "detect_speech", "frame_energies_db"]


@dataclass(frozen=True)
class VadOptions:
    """Segmentation options (durations in seconds, levels in dB)."""

    frame_s: float = 0.025  # analysis window
    hop_s: float = 0.010  # frame step
    margin_db: float = 12.0  # speech starts this far above the noise floor ...
    min_margin_db: float = 6.0  # ... but never less than this far
    loud_gap_db: float = 20.0  # ... and at most this far below the loud (95th pct) frames
    hysteresis_db: float = 4.0  # speech continues down to threshold - hysteresis
    absolute_floor_db: float = -55.0  # frames quieter than this are always silence
    noise_percentile: float = 10.0
    min_speech_s: float = 0.20
    min_silence_s: float = 0.40
    max_segment_s: float = 20.0
    pad_s: float = 0.20  # context kept on both sides of a segment (not over neighbours)


@dataclass(frozen=True)
class SpeechSegment:
    """A speech region in samples: ``[start, end)`` is speech, ``[pad_start, pad_end)`` is what
    to decode (speech plus context)."""

    start: int
    end: int
    pad_start: int
    pad_end: int
    sample_rate: int

    @property
    def start_s(self) -> float:
        return self.start / self.sample_rate

    @property
    def end_s(self) -> float:
        return self.end / self.sample_rate


def frame_energies_db(samples: np.ndarray, sample_rate: int, frame_s: float, hop_s: float):
    """Mean-square energy per frame in dBFS (full-scale sine ~ -3 dB); frame ``i`` starts at
    sample ``i * hop``."""
    hop = max(1, int(round(hop_s * sample_rate)))
    win = max(hop, int(round(frame_s * sample_rate)))
    x = np.asarray(samples, dtype=np.float64)
    n = max(1, -(-len(x) // hop))
    padded = np.zeros((n - 1) * hop + win)
    padded[: len(x)] = x
    c = np.concatenate([[0.0], np.cumsum(padded**2)])
    starts = np.arange(n) * hop
    energy = (c[starts + win] - c[starts]) / win
    return 10.0 * np.log10(energy + 1e-12), hop


def _threshold(db: np.ndarray, o: VadOptions) -> float:
    noise = float(np.percentile(db, o.noise_percentile))
    loud = float(np.percentile(db, 95.0))
    on = min(noise + o.margin_db, loud - o.loud_gap_db)
    on = max(on, noise + o.min_margin_db)
    return max(on, o.absolute_floor_db)


def _runs(db: np.ndarray, on: float, off: float, min_silence: int) -> list[list[int]]:
    """Hysteresis state machine over frames -> [start, end) frame runs of speech."""
    runs: list[list[int]] = []
    in_speech = False
    start = quiet = 0
    for i, v in enumerate(db.tolist()):
        if not in_speech:
            if v > on:
                in_speech, start, quiet = True, i, 0
        elif v > off:
            quiet = 0
        else:
            quiet += 1
            if quiet >= min_silence:
                runs.append([start, i - quiet + 1])
                in_speech = False
    if in_speech:
        runs.append([start, len(db) - quiet])
    return runs


def _split_long(run: list[int], db: np.ndarray, max_len: int) -> list[list[int]]:
    out = []
    start, end = run
    while end - start > max_len:
        lo, hi = start + max_len // 2, start + max_len
        cut = lo + int(np.argmin(db[lo:hi]))
        out.append([start, cut])
        start = cut
    out.append([start, end])
    return out


def detect_speech(
    samples: np.ndarray, sample_rate: int, options: VadOptions | None = None
) -> list[SpeechSegment]:
    """Speech segments of a mono recording, in time order."""
    o = options or VadOptions()
    x = np.asarray(samples)
    if x.ndim != 1:
        raise ValueError(f"detect_speech() takes mono samples, got shape {x.shape}")
    if len(x) == 0:
        return []
    db, hop = frame_energies_db(x, sample_rate, o.frame_s, o.hop_s)
    on = _threshold(db, o)
    off = on - o.hysteresis_db
    frames = lambda s: max(1, int(round(s * sample_rate / hop)))  # noqa: E731
    runs = _runs(db, on, off, frames(o.min_silence_s))
    runs = [r for r in runs if r[1] - r[0] >= frames(o.min_speech_s)]
    pieces = [p for r in runs for p in _split_long(r, db, frames(o.max_segment_s))]
    pad = int(round(o.pad_s * sample_rate))
    bounds = [(min(a * hop, len(x)), min(b * hop, len(x))) for a, b in pieces]
    segments = []
    for i, (a, b) in enumerate(bounds):
        prev_end = bounds[i - 1][1] if i else 0
        next_start = bounds[i + 1][0] if i + 1 < len(bounds) else len(x)
        pad_start = max(a - pad, (prev_end + a) // 2 if i else 0)
        pad_end = min(b + pad, (b + next_start) // 2 if i + 1 < len(bounds) else len(x))
        segments.append(SpeechSegment(a, b, pad_start, pad_end, sample_rate))
    return segments
