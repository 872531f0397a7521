"""How far espeak-ng's Mandarin tones move the pitch, at its own range and widened by SSML
prosody range (``data synth --tone-range``): one syllable per tone, pitch at the start, middle
and end of its voiced frames, and the lowest/highest (autocorrelation, training.synth.pitch).

    .venv/bin/python bench/tone_pitch.py [--variant m3] [--pitch 50] [--ranges 100,150,200]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.synth.espeak import VoiceSettings, synthesize_pinyin  # noqa: E402
from training.synth.pitch import f0_track  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", default="m3")
    ap.add_argument("--pitch", type=int, default=50)
    ap.add_argument("--ranges", default="100,150,200")
    ap.add_argument("--syllable", default="ma")
    args = ap.parse_args()
    print(f"variant {args.variant}, -p {args.pitch}; Hz, octave errors (> 250 Hz) dropped")
    print(f"{'range':>6}  {'tone':>4}  {'start':>6}  {'middle':>6}  {'end':>6}  {'min':>6}  "
          f"{'max':>6}  {'moves':>6}")  # fmt: skip
    for r in (int(x) for x in args.ranges.split(",")):
        for tone in "1234":
            voice = VoiceSettings(args.variant, 160, args.pitch, pitch_range=r)
            x, sr = synthesize_pinyin(f"{args.syllable}{tone}", voice)
            f0 = f0_track(x, sr)
            f0 = f0[f0 < 250]
            third = max(1, len(f0) // 3)
            start, mid, end = (
                float(np.median(p)) for p in (f0[:third], f0[third:-third], f0[-third:])
            )
            print(
                f"{r:>5}%  {tone:>4}  {start:6.0f}  {mid:6.0f}  {end:6.0f}  {f0.min():6.0f}  "
                f"{f0.max():6.0f}  {f0.max() - f0.min():6.0f}"
            )


if __name__ == "__main__":
    main()
