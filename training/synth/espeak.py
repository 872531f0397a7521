"""One utterance through espeak-ng's Mandarin pinyin voice, returned as float32 at 16 kHz.

The voice is always ``cmn-latn-pinyin`` (+ a variant). The plain ``cmn`` voice is never used: it
reads tone-numbered pinyin as English words (``ni3`` -> "nI Tr'i:").
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

VOICE = "cmn-latn-pinyin"
ESPEAK_RATE = 22050
OUTPUT_RATE = 16000

# Variants (files under espeak-ng-data/voices/!v) that sound like a person on cmn-latn-pinyin.
# Left out on purpose: klatt* / robosoft* / UniRobot / anikaRobot / announcer (Klatt or robot
# echo), whisper / whisperf / caleb (unvoiced), Demonic / Tweaky / kaukovalta / RicishayMax*
# (shifted formants, heavy echo), Andy / AnxiousAndy / Lee / Jacky (third formant removed),
# zac (child pitch), croak (shaking), fast (unstable test voice), Storm (pinned to en-us),
# ed / paul (clip even at low amplitude).
FEMALE_VARIANTS = (
    "f1", "f2", "f3", "f4", "f5", "Alicia", "Andrea", "Annie", "aunty", "belinda", "linda",
    "steph", "steph2", "steph3", "anika", "grandma",
)  # fmt: skip
MALE_VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "Alex", "Denis", "Gene", "Michael", "Mike",
    "pedro", "grandpa", "john", "max", "quincy", "travis", "victor", "robert", "gustave",
)  # fmt: skip
VARIANTS = FEMALE_VARIANTS + MALE_VARIANTS
SPEED_RANGE = (120, 200)  # words per minute (espeak -s)
PITCH_RANGE = (30, 70)  # espeak -p, 0-99
# A sentence with all tones and the loudest vowels, used to check variants.
TEST_SENTENCE_FOR_VARIANTS = (
    "nin2 hao3 zhe4 li3 shi4 yao1 er4 san1 si4 wu3 shi4 min2 fu2 wu4 re4 xian4 qing3 wen4 "
    "you3 shen2 me5 wen4 ti2"
)
AMPLITUDE = 40  # espeak -a; the default 100 clips (int16 saturates) for most variants
# espeak's own Mandarin tones move the pitch by only 5-19 Hz, too little to hear a tone out of
# context; an SSML prosody range of 200 % makes that 9-25 Hz (bench/tone_pitch.py). espeak-ng
# caps the range there (300 % = 200 %).
MAX_PITCH_RANGE = 200


@dataclass(frozen=True)
class VoiceSettings:
    """How espeak-ng speaks one utterance."""

    variant: str = "m3"
    speed: int = 160
    pitch: int = 50
    # pitch range in % of the variant's own (SSML prosody range); 100 = espeak's as it is
    pitch_range: int = 100

    def __post_init__(self) -> None:
        if not 0 < self.pitch_range <= MAX_PITCH_RANGE:
            raise ValueError(
                f"pitch_range must be 1-{MAX_PITCH_RANGE} % (espeak-ng caps it there), "
                f"got {self.pitch_range}"
            )

    @property
    def voice(self) -> str:
        return f"{VOICE}+{self.variant}"


def sample_voice(rng, variants: tuple[str, ...] = VARIANTS) -> VoiceSettings:
    """A random variant, speed in SPEED_RANGE and pitch in PITCH_RANGE."""
    return VoiceSettings(
        variant=rng.choice(list(variants)),
        speed=rng.randint(*SPEED_RANGE),
        pitch=rng.randint(*PITCH_RANGE),
    )


@lru_cache(maxsize=1)
def espeak_binary() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise RuntimeError(
            "espeak-ng is not installed: run `apt-get install espeak-ng` (scripts/install.sh does it)"
        )
    return path


def espeak_command(pinyin: str, voice: VoiceSettings) -> list[str]:
    """The espeak-ng command line that writes a WAV of ``pinyin`` to stdout (as SSML when the
    voice widens its pitch range; the pinyin itself is letters, digits and spaces only)."""
    cmd = [espeak_binary(), "-v", voice.voice, "-s", str(voice.speed), "-p", str(voice.pitch)]
    cmd += ["-a", str(AMPLITUDE), "--stdout"]
    if voice.pitch_range == 100:
        return [*cmd, pinyin]
    ssml = f'<speak><prosody range="{voice.pitch_range}%">{pinyin}</prosody></speak>'
    return [*cmd, "-m", ssml]


def phonemes(pinyin: str, voice: VoiceSettings | None = None) -> str:
    """espeak-ng's phoneme mnemonics for ``pinyin`` (``-x -q``): for checking how input is read."""
    v = voice or VoiceSettings()
    cmd = [espeak_binary(), "-v", v.voice, "-x", "-q", pinyin]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()


def _parse_wav(data: bytes) -> tuple[np.ndarray, int]:
    """espeak's --stdout WAV has placeholder chunk sizes; read the PCM after the ``data`` tag."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise RuntimeError(f"espeak-ng did not write a WAV file (got {data[:16]!r})")
    rate = int.from_bytes(data[24:28], "little")
    bits = int.from_bytes(data[34:36], "little")
    at = data.find(b"data", 12)
    if at < 0 or bits != 16:
        raise RuntimeError(f"unexpected espeak-ng WAV header (bits={bits}, data chunk at {at})")
    pcm = data[at + 8 :]
    pcm = pcm[: len(pcm) // 2 * 2]
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0, rate


def synthesize_pinyin(pinyin: str, voice: VoiceSettings) -> tuple[np.ndarray, int]:
    """Raw espeak-ng output for tone-numbered pinyin: (float32 samples, 22050)."""
    proc = subprocess.run(espeak_command(pinyin, voice), capture_output=True, check=False)
    if proc.returncode < 0 and voice.pitch_range > 100:
        # espeak-ng 1.51 crashes (SIGSEGV) on a few sentences at the edge of its pitch table,
        # such as variant Annie at -p 31 and a 198 % range; the same sentence 10 points
        # narrower speaks. The utterance's meta keeps the planned range.
        return synthesize_pinyin(
            pinyin, replace(voice, pitch_range=max(100, voice.pitch_range - 10))
        )
    if proc.returncode != 0:
        raise RuntimeError(
            f"espeak-ng failed for voice {voice.voice!r}: {proc.stderr.decode(errors='replace')}"
        )
    return _parse_wav(proc.stdout)


def trim_silence(
    x: np.ndarray, sr: int, keep_s: float = 0.15, threshold_db: float = -40.0
) -> np.ndarray:
    """Cut leading/trailing silence so that ``keep_s`` seconds remain (zero-padded if espeak left
    less). Silence: 10 ms frames whose RMS is ``threshold_db`` below the loudest frame."""
    hop = max(1, sr // 100)
    n = len(x) // hop
    keep = int(round(keep_s * sr))
    if n == 0:
        return np.zeros(2 * keep, dtype=np.float32)
    rms = np.sqrt(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-20)
    loud = np.flatnonzero(20 * np.log10(rms / rms.max()) > threshold_db)
    if rms.max() < 1e-6 or loud.size == 0:
        return np.zeros(2 * keep, dtype=np.float32)
    start, end = loud[0] * hop, min(len(x), (loud[-1] + 1) * hop)
    lead = max(0, keep - start)
    trail = max(0, keep - (len(x) - end))
    body = x[max(0, start - keep) : min(len(x), end + keep)]
    return np.concatenate(
        [np.zeros(lead, np.float32), body.astype(np.float32), np.zeros(trail, np.float32)]
    )


def synthesize(
    text: str, voice: VoiceSettings, keep_silence_s: float = 0.15, sample_rate: int = OUTPUT_RATE
) -> np.ndarray:
    """Speak Chinese ``text`` (characters only) with ``voice``: float32 mono at ``sample_rate``
    with ``keep_silence_s`` of silence kept at each end."""
    from .channel import resample
    from .pinyin import pinyin_for_espeak

    raw, rate = synthesize_pinyin(pinyin_for_espeak(text), voice)
    if raw.size == 0 or np.max(np.abs(raw)) < 1e-4:
        raise RuntimeError(f"espeak-ng produced silence for {text!r} with voice {voice.voice!r}")
    return trim_silence(resample(raw, rate, sample_rate), sample_rate, keep_silence_s)
