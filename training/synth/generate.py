"""Generate a synthetic hotline corpus as Kaldi-style folders ``OUT/{train,dev,test}/``.

Each split folder holds:

* ``wav/<utt>.flac`` (or ``.wav``): 16-bit mono audio, 8 kHz after the telephone channel or
  16 kHz when clean;
* ``wav.scp``: ``<utt> wav/<utt>.flac`` — paths are **relative to the split folder**;
* ``text``, ``utt2spk``, ``spk2utt`` (speaker = ``<variant>-p<pitch // 10>``, the utterance id
  starts with it, so all files sort alike);
* ``meta.jsonl``: one JSON object per utterance: text, role, domain, template_id, voice
  (variant, speed, pitch, pitch_range), channel settings (null when clean), sample_rate,
  duration, seed.

``OUT/synth.json`` records the options and per-split counts and hours.

Held out: a sentence text belongs to exactly one split (chosen from a hash of the text), and the
test split is spoken only by :data:`TEST_VARIANTS`, variants that train and dev never use.
Deterministic: the plan (texts, voices, channels) depends only on the seed and hours, and each
utterance's audio only on its own plan entry, so the same seed gives the same bytes whatever
``jobs`` is; ``splits`` renders only some splits of that same plan (e.g. a larger corpus's test
split alone, for more held-out evidence). Resumable: utterances whose audio file exists are not
synthesized again (files are written under a temporary name and renamed when complete).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .channel import PHONE_RATE, TelephoneChannel, resample, sample_channel
from .espeak import (
    MAX_PITCH_RANGE,
    OUTPUT_RATE,
    PITCH_RANGE,
    SPEED_RANGE,
    VARIANTS,
    VoiceSettings,
    synthesize,
)
from .textgen import TextGenerator

SPLITS = ("train", "dev", "test")
# Voices heard only in the test split (2 female, 3 male).
TEST_VARIANTS = ("f4", "steph2", "m6", "Gene", "quincy")
TRAIN_VARIANTS = tuple(v for v in VARIANTS if v not in TEST_VARIANTS)
CHANNEL_MODES = ("telephone", "clean", "mixed")
TELEPHONE_SHARE_IN_MIXED = 0.85
_SECONDS_PER_SYLLABLE_AT_1WPM = 44.5  # espeak cmn: about 0.28 s per syllable at -s 160


@dataclass
class SynthOptions:
    """What :func:`generate_corpus` makes. ``split_shares``: fraction of hours per split."""

    hours: float
    seed: int = 0
    channel: str = "mixed"
    audio_format: str = "flac"
    word_fraction: float = 0.3
    # (low, high): each utterance's pitch range drawn in this % of espeak's own (VoiceSettings).
    # None keeps espeak's narrow tones and the plan of earlier corpora byte for byte; the draw
    # uses its own random stream, so texts, voices and channels are those of the same seed
    tone_range: tuple[int, int] | None = None
    split_shares: dict[str, float] = field(
        default_factory=lambda: {"train": 0.9, "dev": 0.05, "test": 0.05}
    )
    # the splits to render: the plan is the whole corpus's, so ``splits=("test",)`` is exactly
    # the test split of the same corpus (more held-out evidence without the training audio)
    splits: tuple[str, ...] = SPLITS

    def check(self) -> None:
        if self.hours <= 0:
            raise ValueError(f"hours must be positive, got {self.hours}")
        if self.channel not in CHANNEL_MODES:
            raise ValueError(f"channel must be one of {CHANNEL_MODES}, got {self.channel!r}")
        if self.audio_format not in ("flac", "wav"):
            raise ValueError(f"audio_format must be 'flac' or 'wav', got {self.audio_format!r}")
        if self.tone_range is not None:
            lo, hi = self.tone_range
            if not 0 < lo <= hi <= MAX_PITCH_RANGE:
                raise ValueError(
                    f"tone_range needs 0 < low <= high <= {MAX_PITCH_RANGE} (% of espeak's pitch "
                    f"range), got {self.tone_range}"
                )
        if not self.splits or any(s not in SPLITS for s in self.splits):
            raise ValueError(f"splits must be some of {SPLITS}, got {self.splits}")
        if set(self.split_shares) != set(SPLITS) or abs(sum(self.split_shares.values()) - 1) > 1e-6:
            raise ValueError(f"split_shares needs {SPLITS} summing to 1, got {self.split_shares}")


@dataclass
class UttSpec:
    """Everything needed to make one utterance (a plan entry)."""

    utt_id: str
    speaker: str
    split: str
    index: int
    text: str
    role: str
    domain: str
    template_id: str
    voice: VoiceSettings
    channel: TelephoneChannel | None
    keep_silence_s: float
    seed: int
    audio_format: str = "flac"

    @property
    def rel_path(self) -> str:
        return f"wav/{self.utt_id}.{self.audio_format}"

    def meta(self, sample_rate: int, duration: float) -> dict:
        return {
            "utt_id": self.utt_id,
            "speaker": self.speaker,
            "split": self.split,
            "text": self.text,
            "role": self.role,
            "domain": self.domain,
            "template_id": self.template_id,
            "voice": asdict(self.voice),
            "channel": None if self.channel is None else self.channel.to_dict(),
            "sample_rate": sample_rate,
            "duration": round(duration, 4),
            "keep_silence_s": self.keep_silence_s,
            "seed": self.seed,
            "audio": self.rel_path,
        }


def split_of_text(text: str, shares: dict[str, float]) -> str:
    """The split a sentence text belongs to, from a hash of the text (stable across runs)."""
    h = int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:8], "big") / 2.0**64
    acc = 0.0
    for name in SPLITS:
        acc += shares[name]
        if h < acc:
            return name
    return SPLITS[-1]


def estimate_duration(text: str, voice: VoiceSettings, keep_silence_s: float) -> float:
    """Rough seconds espeak-ng will take for ``text`` (used only to plan the hours)."""
    return len(text) * _SECONDS_PER_SYLLABLE_AT_1WPM / voice.speed + 2 * keep_silence_s


def plan_corpus(options: SynthOptions) -> list[UttSpec]:
    """The deterministic list of utterances for ``options`` (sorted by split, then id)."""
    options.check()
    rng = random.Random(options.seed)
    nrng = np.random.default_rng(options.seed)
    tone_rng = random.Random(options.seed ^ 0x70E5)  # its own stream: the rest of the plan stays
    texts = TextGenerator(options.seed, word_fraction=options.word_fraction)
    target = {s: options.hours * 3600.0 * options.split_shares[s] for s in SPLITS}
    planned = {s: 0.0 for s in SPLITS}
    count = {s: 0 for s in SPLITS}
    specs: list[UttSpec] = []
    draws = 0
    while any(planned[s] < target[s] or count[s] == 0 for s in SPLITS):
        draws += 1
        if draws > 1_000_000:
            raise RuntimeError("could not fill the splits from the text generator; check shares")
        sent = texts.next()
        split = split_of_text(sent.text, options.split_shares)
        if planned[split] >= target[split] and count[split] > 0:
            continue
        variants = TEST_VARIANTS if split == "test" else TRAIN_VARIANTS
        voice = VoiceSettings(
            variant=rng.choice(variants),
            speed=rng.randint(*SPEED_RANGE),
            pitch=rng.randint(*PITCH_RANGE),
            pitch_range=tone_rng.randint(*options.tone_range) if options.tone_range else 100,
        )
        if options.channel == "clean":
            chan = None
        elif options.channel == "telephone" or rng.random() < TELEPHONE_SHARE_IN_MIXED:
            chan = sample_channel(nrng)
        else:
            chan = None
        keep = round(rng.uniform(0.1, 0.2), 3)
        idx = count[split]
        speaker = f"{voice.variant}-p{voice.pitch // 10}"
        specs.append(
            UttSpec(
                utt_id=f"{speaker}-{split}{idx:07d}",
                speaker=speaker,
                split=split,
                index=idx,
                text=sent.text,
                role=sent.role,
                domain=sent.domain,
                template_id=sent.template_id,
                voice=voice,
                channel=chan,
                keep_silence_s=keep,
                seed=rng.getrandbits(63),
                audio_format=options.audio_format,
            )
        )
        count[split] += 1
        planned[split] += estimate_duration(sent.text, voice, keep)
    specs = [s for s in specs if s.split in options.splits]
    specs.sort(key=lambda s: (SPLITS.index(s.split), s.utt_id))
    return specs


# ------------------------------------------------------------------------------- audio making

_BABBLE: list[np.ndarray] = []


def babble_bank(seed: int, n: int = 12) -> list[np.ndarray]:
    """``n`` clean utterances (other voices, other texts) at 8 kHz, used as babble noise."""
    rng = random.Random(seed ^ 0x5EED)
    texts = TextGenerator(seed + 7919, word_fraction=0.5)
    out = []
    for _ in range(n):
        v = VoiceSettings(
            rng.choice(VARIANTS), rng.randint(*SPEED_RANGE), rng.randint(*PITCH_RANGE)
        )
        out.append(
            resample(synthesize(texts.next().text, v, keep_silence_s=0.0), OUTPUT_RATE, PHONE_RATE)
        )
    return out


def _init_worker(babble: list[np.ndarray]) -> None:
    global _BABBLE
    _BABBLE = babble


def make_utterance(spec: UttSpec, babble: list[np.ndarray] | None = None) -> tuple[np.ndarray, int]:
    """Synthesize ``spec`` and pass it through its channel: (float32 samples, sample rate)."""
    x = synthesize(spec.text, spec.voice, keep_silence_s=spec.keep_silence_s)
    if spec.channel is None:
        return x, OUTPUT_RATE
    rng = np.random.default_rng(spec.seed)
    talkers = babble if babble is not None else _BABBLE
    return spec.channel.apply(x, OUTPUT_RATE, rng, speech=talkers, speech_rate=PHONE_RATE)


def _work(job: tuple[UttSpec, str]) -> dict:
    import soundfile as sf

    spec, split_dir = job
    path = Path(split_dir) / spec.rel_path
    if path.exists():
        info = sf.info(str(path))
        return spec.meta(info.samplerate, info.frames / info.samplerate) | {"skipped": True}
    samples, sr = make_utterance(spec)
    tmp = path.with_name(path.name + ".part")
    fmt = "FLAC" if spec.audio_format == "flac" else "WAV"
    sf.write(str(tmp), samples, sr, subtype="PCM_16", format=fmt)
    os.replace(tmp, path)
    return spec.meta(sr, len(samples) / sr) | {"skipped": False}


def _write_kaldi(split_dir: Path, metas: list[dict]) -> None:
    metas = sorted(metas, key=lambda m: m["utt_id"])
    lines = {
        "wav.scp": [f"{m['utt_id']} {m['audio']}" for m in metas],
        "text": [f"{m['utt_id']} {m['text']}" for m in metas],
        "utt2spk": [f"{m['utt_id']} {m['speaker']}" for m in metas],
    }
    spk: dict[str, list[str]] = {}
    for m in metas:
        spk.setdefault(m["speaker"], []).append(m["utt_id"])
    lines["spk2utt"] = [f"{s} {' '.join(u)}" for s, u in sorted(spk.items())]
    for name, rows in lines.items():
        (split_dir / name).write_text("".join(r + "\n" for r in rows), encoding="utf-8")
    with open(split_dir / "meta.jsonl", "w", encoding="utf-8") as f:
        for m in metas:
            m = {k: v for k, v in m.items() if k != "skipped"}
            f.write(json.dumps(m, ensure_ascii=False) + "\n")


@dataclass
class CorpusSummary:
    out_dir: str
    utterances: dict[str, int]
    hours: dict[str, float]
    synthesized: int
    skipped: int
    synthesized_hours: float
    wall_seconds: float

    @property
    def total_hours(self) -> float:
        return sum(self.hours.values())


def generate_corpus(
    options: SynthOptions, out_dir: str | Path, jobs: int = 1, progress: bool = True
) -> CorpusSummary:
    """Plan and render the corpus into ``out_dir`` (see the module docstring)."""
    import time

    from tqdm import tqdm

    t0 = time.time()
    out = Path(out_dir)
    specs = plan_corpus(options)
    for s in options.splits:
        (out / s / "wav").mkdir(parents=True, exist_ok=True)
    babble = babble_bank(options.seed)
    jobs_list = [(spec, str(out / spec.split)) for spec in specs]
    metas: list[dict] = []
    bar = tqdm(total=len(specs), unit="utt", disable=not progress, desc="synth")
    if jobs <= 1:
        _init_worker(babble)
        for job in jobs_list:
            metas.append(_work(job))
            bar.update()
    else:
        import multiprocessing as mp

        from .pinyin import _tokenizer

        _tokenizer()  # load jieba once; forked workers inherit it
        with mp.get_context("fork").Pool(jobs, _init_worker, (babble,)) as pool:
            for meta in pool.imap_unordered(_work, jobs_list, chunksize=4):
                metas.append(meta)
                bar.update()
    bar.close()
    by_split = {s: [m for m in metas if m["split"] == s] for s in options.splits}
    for s in options.splits:
        _write_kaldi(out / s, by_split[s])
    summary = CorpusSummary(
        out_dir=str(out),
        utterances={s: len(by_split[s]) for s in options.splits},
        hours={
            s: round(sum(m["duration"] for m in by_split[s]) / 3600.0, 4) for s in options.splits
        },
        synthesized=sum(not m["skipped"] for m in metas),
        skipped=sum(m["skipped"] for m in metas),
        synthesized_hours=round(sum(m["duration"] for m in metas if not m["skipped"]) / 3600, 4),
        wall_seconds=round(time.time() - t0, 2),
    )
    record = {
        "options": asdict(options),
        "summary": asdict(summary),
        "test_variants": list(TEST_VARIANTS),
        "train_variants": list(TRAIN_VARIANTS),
        "wav_scp_paths": "relative to the split folder",
    }
    (out / "synth.json").write_text(
        json.dumps(record, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    return summary
