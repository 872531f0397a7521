"""Autocorrelation pitch of generated speech: how far espeak's tones move (torch-free)."""

from __future__ import annotations

import numpy as np


def f0_track(
    x: np.ndarray, sr: int, frame_s: float = 0.04, hop_s: float = 0.01, min_rms: float = 0.02
) -> np.ndarray:
    """Pitch in Hz (60-400) of each voiced ``frame_s`` frame of ``x``, every ``hop_s``; frames
    quieter than ``min_rms`` are left out. Good enough for one clean synthetic voice, not for
    noisy or breathy speech (octave errors happen; filter them by range)."""
    n, hop = int(frame_s * sr), int(hop_s * sr)
    lo, hi = sr // 400, sr // 60
    out = []
    for s in range(0, len(x) - n, hop):
        fr = x[s : s + n] * np.hanning(n)
        if np.sqrt(np.mean(fr**2)) < min_rms:
            continue
        ac = np.correlate(fr, fr, "full")[n - 1 :]
        out.append(sr / (lo + int(np.argmax(ac[lo:hi]))))
    return np.asarray(out)
