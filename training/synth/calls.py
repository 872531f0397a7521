"""Two-party hotline calls: agent and caller turns from :func:`textgen.call_script`, spoken by two
espeak-ng voices, placed on a timeline with gaps and occasional overlap, each leg through its own
telephone channel.

Output at 8 kHz: a stereo array with **channel 0 = agent, channel 1 = caller** (one leg per
channel, as call-centre recorders store them), a mono mix, and turn timestamps (speech start and
end, without the silence kept around each utterance) written as RTTM and JSON.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .channel import TelephoneChannel, apply_gain, sample_channel
from .espeak import FEMALE_VARIANTS, MALE_VARIANTS, OUTPUT_RATE, VoiceSettings, synthesize
from .textgen import Sentence, call_script

CHANNEL_OF = {"agent": 0, "caller": 1}
KEEP_SILENCE_S = 0.15


@dataclass
class Turn:
    speaker: str  # "agent" | "caller"
    start: float  # seconds, speech start
    end: float  # seconds, speech end
    text: str
    domain: str = ""
    template_id: str = ""


@dataclass
class RenderedCall:
    """A rendered call: ``stereo`` is (samples, 2) float32 with channel 0 the agent and channel 1
    the caller; ``mono`` is their peak-limited sum."""

    call_id: str
    stereo: np.ndarray
    mono: np.ndarray
    sample_rate: int
    turns: list[Turn]
    voices: dict[str, dict] = field(default_factory=dict)
    channels: dict[str, dict] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.mono.shape[0] / self.sample_rate

    def rttm(self) -> str:
        """RTTM lines for the mono file (channel 1), one per turn, in start order."""
        lines = [
            f"SPEAKER {self.call_id} 1 {t.start:.3f} {t.end - t.start:.3f} <NA> <NA> "
            f"{t.speaker} <NA> <NA>"
            for t in sorted(self.turns, key=lambda t: t.start)
        ]
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict:
        return {
            "call_id": self.call_id,
            "sample_rate": self.sample_rate,
            "duration": round(self.duration, 3),
            "stereo_channels": {"0": "agent", "1": "caller"},
            "voices": self.voices,
            "channels": self.channels,
            "turns": [asdict(t) for t in self.turns],
        }


def _pick_voices(rng: random.Random) -> tuple[VoiceSettings, VoiceSettings]:
    agent_pool = FEMALE_VARIANTS if rng.random() < 0.7 else MALE_VARIANTS
    agent = VoiceSettings(rng.choice(agent_pool), rng.randint(150, 185), rng.randint(40, 60))
    caller_variant = rng.choice([v for v in FEMALE_VARIANTS + MALE_VARIANTS if v != agent.variant])
    caller = VoiceSettings(caller_variant, rng.randint(120, 200), rng.randint(30, 70))
    return agent, caller


def render_call(
    seed: int,
    call_id: str = "call",
    sentences: list[Sentence] | None = None,
    overlap_prob: float = 0.2,
    gap_range: tuple[float, float] = (0.2, 0.9),
    agent_channel: TelephoneChannel | None = None,
    caller_channel: TelephoneChannel | None = None,
) -> RenderedCall:
    """Render one call. ``sentences`` defaults to a :func:`call_script` for ``seed``; a turn
    overlaps the previous other-speaker turn with probability ``overlap_prob`` (by 0.1-0.6 s),
    else follows it after a gap drawn from ``gap_range`` seconds."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    script = sentences if sentences is not None else call_script(rng)
    agent_voice, caller_voice = _pick_voices(rng)
    voice_of = {"agent": agent_voice, "caller": caller_voice}
    agent_channel = agent_channel or TelephoneChannel(
        codec=str(nrng.choice(["mulaw", "alaw"])), noise="white", snr_db=40.0
    )
    caller_channel = caller_channel or sample_channel(nrng, babble=False)

    sr = OUTPUT_RATE
    keep = KEEP_SILENCE_S
    clips: list[tuple[str, int, np.ndarray]] = []
    turns: list[Turn] = []
    speech_end = {"agent": 0.0, "caller": 0.0}
    prev: Turn | None = None
    t = 0.3
    for s in script:
        if s.role not in CHANNEL_OF:
            raise ValueError(f"turn role must be 'agent' or 'caller', got {s.role!r}")
        audio = synthesize(s.text, voice_of[s.role], keep_silence_s=keep, sample_rate=sr)
        dur = len(audio) / sr - 2 * keep
        if prev is None:
            start = t
        elif prev.speaker != s.role and rng.random() < overlap_prob:
            start = prev.end - rng.uniform(0.1, min(0.6, 0.5 * (prev.end - prev.start)))
        else:
            start = prev.end + rng.uniform(*gap_range)
        start = max(start, speech_end[s.role] + 2 * keep + 0.05)  # a leg never overlaps itself
        offset = int(round((start - keep) * sr))
        start = offset / sr + keep
        turn = Turn(s.role, round(start, 3), round(start + dur, 3), s.text, s.domain, s.template_id)
        turns.append(turn)
        clips.append((s.role, offset, audio))
        speech_end[s.role] = turn.end
        prev = turn if prev is None or turn.end >= prev.end else prev

    total = max(off + len(a) for _, off, a in clips) + int(0.3 * sr)
    legs = {role: np.zeros(total, dtype=np.float32) for role in CHANNEL_OF}
    for role, off, audio in clips:
        legs[role][off : off + len(audio)] += audio
    agent8, rate = agent_channel.apply(legs["agent"], sr, nrng)
    caller8, _ = caller_channel.apply(legs["caller"], sr, nrng)
    n = min(len(agent8), len(caller8))
    stereo = np.stack([agent8[:n], caller8[:n]], axis=1).astype(np.float32)
    mono = apply_gain(stereo.sum(axis=1), 0.0, peak=0.95)
    return RenderedCall(
        call_id=call_id,
        stereo=stereo,
        mono=mono,
        sample_rate=rate,
        turns=turns,
        voices={k: asdict(v) for k, v in voice_of.items()},
        channels={"agent": agent_channel.to_dict(), "caller": caller_channel.to_dict()},
    )


def write_call(call: RenderedCall, out_dir: str | Path) -> dict[str, Path]:
    """Write ``<id>.stereo.wav``, ``<id>.mono.wav`` (16-bit PCM, 8 kHz), ``<id>.rttm`` and
    ``<id>.json`` into ``out_dir``; returns the paths by kind."""
    import soundfile as sf

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "stereo": out / f"{call.call_id}.stereo.wav",
        "mono": out / f"{call.call_id}.mono.wav",
        "rttm": out / f"{call.call_id}.rttm",
        "json": out / f"{call.call_id}.json",
    }
    sf.write(paths["stereo"], call.stereo, call.sample_rate, subtype="PCM_16")
    sf.write(paths["mono"], call.mono, call.sample_rate, subtype="PCM_16")
    paths["rttm"].write_text(call.rttm(), encoding="utf-8")
    paths["json"].write_text(
        json.dumps(call.to_json(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    return paths
