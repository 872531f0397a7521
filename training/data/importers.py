"""Import speech corpora into Lhotse manifests (recordings, supervisions, cuts) per split.

Three input formats:

- ``kaldi``: one folder per split (``SRC/{split}/``, or ``SRC`` itself as one split) with
  ``wav.scp`` (plain file paths, absolute or relative to the folder; piped commands and ark
  offsets are refused), ``text``, optional ``segments``, ``utt2spk`` and ``meta.jsonl``
  (one JSON object per utterance with ``utt_id``; ``sample_rate`` there is checked against the
  audio; ``role``, ``accent``, ``domain``, ``voice``, ``speed``, ``pitch``, ``channel``,
  ``template_id`` are kept in the supervision's ``custom``).
- ``folder``: audio files (``.wav``/``.flac``, searched recursively) each with a same-name
  ``.txt`` transcript; the utterance id is the file stem, the speaker the name of the folder the
  file is in (when it is below the split folder).
- ``lhotse``: existing ``*_recordings_{split}.jsonl.gz`` + ``*_supervisions_{split}.jsonl.gz``.

Every transcript goes through ``serving.text.normalize.normalize`` and then
``serving.text.desensitize.desensitize``; the raw text is not kept. The one exception is
``keep_numbers`` for a corpus made by ``hotline-asr data synth`` (its ``synth.json`` says so):
its phone and ID numbers are invented, and kept as read out so a model can learn to write them.
All audio is decoded once to prove it is readable and has the claimed sample rate. Every split
is checked before anything is written; then all files are written atomically (see
:mod:`training.data.manifests`).
Audio paths in the manifests are relative to the working directory when the audio lies below it
(so a checkout can be moved, as in icefall's recipes), otherwise absolute.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.data.manifests import (
    AtomicWriter,
    check_name,
    import_report_path,
    raw_cuts_path,
    recordings_path,
    supervisions_path,
)
from training.data.problems import Problem, ProblemLog
from training.data.transcripts import TextTally, TranscriptError, clean_transcript

__all__ = [
    "FORMATS",
    "META_FIELDS",
    "ImportReport",
    "SplitData",
    "find_source_splits",
    "import_corpus",
    "read_split",
]

FORMATS = ("kaldi", "folder", "lhotse")
AUDIO_EXTENSIONS = (".wav", ".flac")
META_FIELDS = ("role", "accent", "domain", "voice", "speed", "pitch", "channel", "template_id")
_ARK_OFFSET = re.compile(r"\.ark:\d+$")


@dataclass
class ImportReport:
    """What one split's import did (also written as ``{corpus}_import_report_{split}.json``)."""

    corpus: str
    split: str
    source: str
    format: str
    recordings: int = 0
    utterances: int = 0
    speakers: int = 0
    hours: float = 0.0
    changed_by_normalize: int = 0
    desensitized: dict[str, int] = field(default_factory=dict)
    # keep_numbers: the invented numbers left in the transcripts, by desensitize type
    numbers_kept: dict[str, int] = field(default_factory=dict)
    skipped: list[Problem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "skipped"}
        d["skipped_count"] = len(self.skipped)
        d["skipped"] = [p.to_dict() for p in self.skipped]
        return d


@dataclass
class SplitData:
    """The manifests of one split, in memory, before they are written."""

    split: str
    recordings: Any  # lhotse.RecordingSet
    supervisions: Any  # lhotse.SupervisionSet
    cuts: Any  # lhotse.CutSet
    report: ImportReport


# --------------------------------------------------------------------------- intermediate form


@dataclass
class _Rec:
    rec_id: str
    path: Path
    where: tuple[str, int | None]  # file and line that named the audio
    claims: list[tuple[int, str]] = field(default_factory=list)  # (sample rate, who claims it)


@dataclass
class _Utt:
    utt_id: str
    rec_id: str
    raw_text: str
    where: tuple[str, int | None]  # file and line of the transcript
    start: float = 0.0
    end: float | None = None  # None: to the end of the recording
    speaker: str | None = None
    custom: dict[str, Any] = field(default_factory=dict)
    channel: int = 0
    span_where: tuple[str, int | None] | None = None  # where start/end come from (segments)


@dataclass
class _Source:
    recs: dict[str, _Rec]
    utts: list[_Utt]
    bad_ids: set[str]  # utterance ids already reported (not to be reported twice)


# --------------------------------------------------------------------------- small readers


def _read_lines(path: Path, log: ProblemLog) -> Iterator[tuple[int, str]]:
    """(1-based line number, text) for non-empty lines; undecodable lines are problems."""
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError as e:
                log.add("bad-line", path, line_no, f"not UTF-8 text ({e.reason})")
                continue
            if line:
                yield line_no, line


def _read_table(path: Path, log: ProblemLog, bad_ids: set[str]) -> dict[str, tuple[str, int]]:
    """A Kaldi table ``<key> <value...>``: key -> (value, line). Duplicated keys are problems
    and the key is dropped altogether (either line could be the right one)."""
    table: dict[str, tuple[str, int]] = {}
    for line_no, line in _read_lines(path, log):
        parts = line.split(maxsplit=1)
        key, value = parts[0], (parts[1] if len(parts) > 1 else "")
        if key in table or key in bad_ids:
            first = table.pop(key, None)
            also = f" (first on line {first[1]})" if first else ""
            if key not in bad_ids:
                bad_ids.add(key)
                log.add("duplicate-id", path, line_no, f"id {key!r} appears again{also}", key)
            continue
        table[key] = (value, line_no)
    return table


def _read_meta(path: Path, log: ProblemLog) -> dict[str, tuple[dict, int]]:
    meta: dict[str, tuple[dict, int]] = {}
    if not path.is_file():
        return meta
    for line_no, line in _read_lines(path, log):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            log.add("bad-line", path, line_no, f"not valid JSON ({e.msg})")
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("utt_id"), str):
            log.add("bad-line", path, line_no, "expected a JSON object with a string 'utt_id'")
            continue
        if obj["utt_id"] in meta:
            log.add(
                "duplicate-id",
                path,
                line_no,
                f"utt_id {obj['utt_id']!r} appears again (first on line {meta[obj['utt_id']][1]})",
                obj["utt_id"],
            )
            continue
        meta[obj["utt_id"]] = (obj, line_no)
    return meta


def _meta_custom(meta: dict) -> dict[str, Any]:
    """The META_FIELDS of a meta.jsonl entry. A ``voice`` object (the synth's
    ``{"variant", "speed", "pitch"}``) is flattened into voice, speed and pitch; a ``channel``
    object (codec, band, noise, SNR) is kept whole."""
    meta = dict(meta)
    voice = meta.get("voice")
    if isinstance(voice, dict):
        meta["voice"] = voice.get("variant", voice.get("name"))
        for key in ("speed", "pitch"):
            meta.setdefault(key, voice.get(key))
    return {k: meta[k] for k in META_FIELDS if meta.get(k) is not None}


def _wav_path(value: str, folder: Path) -> Path | tuple[str, str]:
    """The audio path of a wav.scp entry, or (problem kind, why it cannot be used)."""
    if value.endswith("|") or value.startswith("|"):
        return "piped-command", "is a piped command; only plain file paths are supported"
    if _ARK_OFFSET.search(value):
        return "piped-command", "reads an ark offset; only plain file paths are supported"
    if not value:
        return "bad-line", "has no audio path"
    p = Path(value)
    return p if p.is_absolute() else folder / p


# --------------------------------------------------------------------------- format readers


def _read_kaldi(folder: Path, log: ProblemLog, sample_rate: int | None) -> _Source:
    bad_ids: set[str] = set()
    for required in ("wav.scp", "text"):
        if not (folder / required).is_file():
            raise FileNotFoundError(
                f"{folder / required} is missing; a Kaldi data folder needs wav.scp and text"
            )
    wav_scp = folder / "wav.scp"
    text_file = folder / "text"
    wavs = _read_table(wav_scp, log, bad_ids)
    texts = _read_table(text_file, log, bad_ids)
    utt2spk_file = folder / "utt2spk"
    utt2spk = _read_table(utt2spk_file, log, bad_ids) if utt2spk_file.is_file() else None
    meta_file = folder / "meta.jsonl"
    meta = _read_meta(meta_file, log)

    recs: dict[str, _Rec] = {}
    for rec_id, (value, line_no) in wavs.items():
        path = _wav_path(value, folder)
        if isinstance(path, tuple):
            log.add(path[0], wav_scp, line_no, f"entry {rec_id!r} {path[1]}", rec_id)
            bad_ids.add(rec_id)
            continue
        recs[rec_id] = _Rec(rec_id, path, (str(wav_scp), line_no))
        if sample_rate:
            recs[rec_id].claims.append((sample_rate, "--sample-rate"))

    # Utterances: segments of recordings, or whole recordings.
    segments_file = folder / "segments"
    spans: dict[str, tuple[str, float, float | None, tuple[str, int]]] = {}
    if segments_file.is_file():
        for seg_id, (value, line_no) in _read_table(segments_file, log, bad_ids).items():
            fields = value.split()
            try:
                if len(fields) != 3:
                    raise ValueError
                rec_id, start, end = fields[0], float(fields[1]), float(fields[2])
            except ValueError:
                log.add(
                    "bad-line",
                    segments_file,
                    line_no,
                    "expected '<seg> <rec> <start> <end>'",
                    seg_id,
                )
                bad_ids.add(seg_id)
                continue
            if rec_id not in wavs:
                if rec_id not in bad_ids:
                    log.add(
                        "id-mismatch",
                        segments_file,
                        line_no,
                        f"segment {seg_id!r} refers to recording {rec_id!r}, not in wav.scp",
                        seg_id,
                    )
                bad_ids.add(seg_id)
                continue
            spans[seg_id] = (rec_id, start, None if end < 0 else end, (str(segments_file), line_no))
    else:
        for rec_id, (_, line_no) in wavs.items():
            spans[rec_id] = (rec_id, 0.0, None, (str(wav_scp), line_no))

    utts: list[_Utt] = []
    for utt_id, (rec_id, start, end, where) in spans.items():
        if utt_id in bad_ids:
            continue
        if utt_id not in texts:
            if utt_id not in bad_ids:
                log.add(
                    "id-mismatch",
                    where[0],
                    where[1],
                    f"{utt_id!r} has no line in {text_file}",
                    utt_id,
                )
                bad_ids.add(utt_id)
            continue
        raw, text_line = texts[utt_id]
        speaker = None
        if utt2spk is not None:
            if utt_id not in utt2spk:
                log.add(
                    "id-mismatch",
                    text_file,
                    text_line,
                    f"{utt_id!r} has no line in {utt2spk_file}",
                    utt_id,
                )
                bad_ids.add(utt_id)
                continue
            speaker = utt2spk[utt_id][0] or None
        info, meta_line = meta.get(utt_id, ({}, None))
        speaker = speaker or info.get("spk") or info.get("speaker")
        if info.get("sample_rate") is not None and rec_id in recs:
            claimed = info["sample_rate"]
            if not isinstance(claimed, int) or isinstance(claimed, bool) or claimed <= 0:
                log.add(
                    "bad-line",
                    meta_file,
                    meta_line,
                    f"sample_rate of {utt_id!r} must be a positive integer, got {claimed!r}",
                    utt_id,
                )
                bad_ids.add(utt_id)
                continue
            recs[rec_id].claims.append((claimed, f"{meta_file} line {meta_line}"))
        utts.append(
            _Utt(
                utt_id=utt_id,
                rec_id=rec_id,
                raw_text=raw,
                where=(str(text_file), text_line),
                start=start,
                end=end,
                speaker=speaker,
                custom=_meta_custom(info),
                span_where=where,
            )
        )
    wanted = set(spans)
    for utt_id, (_, line_no) in texts.items():
        if utt_id not in wanted and utt_id not in bad_ids:
            source = "segments" if segments_file.is_file() else "wav.scp"
            log.add("id-mismatch", text_file, line_no, f"{utt_id!r} is not in {source}", utt_id)
            bad_ids.add(utt_id)
    return _Source(recs=recs, utts=utts, bad_ids=bad_ids)


def _read_folder(folder: Path, log: ProblemLog, sample_rate: int | None) -> _Source:
    recs: dict[str, _Rec] = {}
    utts: list[_Utt] = []
    bad_ids: set[str] = set()
    audio = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    seen: dict[str, Path] = {}
    for path in audio:
        utt_id = path.stem
        if utt_id in seen or utt_id in bad_ids:
            first = seen.pop(utt_id, None)
            recs.pop(utt_id, None)
            utts = [u for u in utts if u.utt_id != utt_id]
            if utt_id not in bad_ids:
                bad_ids.add(utt_id)
                log.add(
                    "duplicate-id", path, None, f"id {utt_id!r} is also used by {first}", utt_id
                )
            continue
        seen[utt_id] = path
        txt = path.with_suffix(".txt")
        if not txt.is_file():
            log.add("id-mismatch", path, None, f"has no transcript file {txt.name}", utt_id)
            bad_ids.add(utt_id)
            continue
        try:
            raw = " ".join(txt.read_text(encoding="utf-8").split())
        except UnicodeDecodeError as e:
            log.add("bad-line", txt, None, f"not UTF-8 text ({e.reason})", utt_id)
            bad_ids.add(utt_id)
            continue
        rec = _Rec(utt_id, path, (str(path), None))
        if sample_rate:
            rec.claims.append((sample_rate, "--sample-rate"))
        recs[utt_id] = rec
        speaker = path.parent.name if path.parent != folder else None
        utts.append(_Utt(utt_id, utt_id, raw, (str(txt), 1), speaker=speaker))
    for txt in sorted(folder.rglob("*.txt")):
        if not any(txt.with_suffix(ext).is_file() for ext in AUDIO_EXTENSIONS):
            if not any(txt.with_suffix(ext.upper()).is_file() for ext in AUDIO_EXTENSIONS):
                log.add("id-mismatch", txt, None, "transcript without an audio file", txt.stem)
    return _Source(recs=recs, utts=utts, bad_ids=bad_ids)


def _iter_jsonl(path: Path, log: ProblemLog) -> Iterator[tuple[int, dict]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield line_no, json.loads(line)
            except json.JSONDecodeError as e:
                log.add("bad-line", path, line_no, f"not valid JSON ({e.msg})")


def _lhotse_files(src: Path) -> dict[str, tuple[Path, Path]]:
    pat = re.compile(r"^(?P<prefix>.*)recordings_(?P<split>[^_.]+)\.jsonl(\.gz)?$")
    found: dict[str, tuple[Path, Path]] = {}
    for rec_path in sorted(src.glob("*recordings_*.jsonl*")):
        m = pat.match(rec_path.name)
        if not m:
            continue
        sup_name = rec_path.name.replace("recordings_", "supervisions_", 1)
        sup_path = rec_path.with_name(sup_name)
        if sup_path.is_file():
            found[m.group("split")] = (rec_path, sup_path)
    return found


def _read_lhotse(
    rec_path: Path, sup_path: Path, log: ProblemLog, sample_rate: int | None
) -> _Source:
    from lhotse import Recording, SupervisionSegment

    recs: dict[str, _Rec] = {}
    bad_ids: set[str] = set()
    durations: dict[str, float] = {}
    first_line: dict[str, int] = {}
    for line_no, obj in _iter_jsonl(rec_path, log):
        try:
            r = Recording.from_dict(obj)
        except Exception as e:  # lhotse raises assorted errors for malformed entries
            log.add("bad-line", rec_path, line_no, f"not a lhotse Recording ({e})")
            continue
        if r.id in first_line:
            log.add(
                "duplicate-id",
                rec_path,
                line_no,
                f"recording id {r.id!r} appears again (first on line {first_line[r.id]})",
                r.id,
            )
            recs.pop(r.id, None)
            bad_ids.add(r.id)
            continue
        first_line[r.id] = line_no
        if len(r.sources) != 1 or r.sources[0].type != "file":
            log.add(
                "piped-command",
                rec_path,
                line_no,
                f"recording {r.id!r} is not a single local file (sources: "
                f"{[s.type for s in r.sources]}); only file sources are supported",
                r.id,
            )
            bad_ids.add(r.id)
            continue
        path = Path(r.sources[0].source)
        rec = _Rec(
            r.id, path, (str(rec_path), line_no), [(r.sampling_rate, f"{rec_path} line {line_no}")]
        )
        if sample_rate:
            rec.claims.append((sample_rate, "--sample-rate"))
        recs[r.id] = rec
        durations[r.id] = r.duration

    utts: list[_Utt] = []
    seen: dict[str, int] = {}
    for line_no, obj in _iter_jsonl(sup_path, log):
        try:
            s = SupervisionSegment.from_dict(obj)
        except Exception as e:
            log.add("bad-line", sup_path, line_no, f"not a lhotse SupervisionSegment ({e})")
            continue
        if s.id in seen:
            log.add(
                "duplicate-id",
                sup_path,
                line_no,
                f"supervision id {s.id!r} appears again (first on line {seen[s.id]})",
                s.id,
            )
            utts = [u for u in utts if u.utt_id != s.id]
            bad_ids.add(s.id)
            continue
        seen[s.id] = line_no
        if s.recording_id not in recs:
            if s.recording_id not in bad_ids:
                log.add(
                    "id-mismatch",
                    sup_path,
                    line_no,
                    f"supervision {s.id!r} refers to recording {s.recording_id!r}, not in {rec_path.name}",
                    s.id,
                )
            continue
        channel = s.channel if isinstance(s.channel, int) else s.channel[0]
        utts.append(
            _Utt(
                utt_id=s.id,
                rec_id=s.recording_id,
                raw_text=s.text or "",
                where=(str(sup_path), line_no),
                start=s.start,
                end=s.start + s.duration,
                speaker=s.speaker,
                custom=dict(s.custom or {}),
                channel=channel,
            )
        )
    return _Source(recs=recs, utts=utts, bad_ids=bad_ids)


# --------------------------------------------------------------------------- building manifests


def _manifest_path(path: Path) -> str:
    """Relative to the working directory when below it, else absolute."""
    path = path.resolve()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _probe(rec: _Rec) -> tuple[Any, tuple[str, str] | None]:
    """Decode the whole file once. Returns (AudioInfo, None) or (None, (kind, message))."""
    import soundfile as sf

    from serving.audio import AudioError, audio_info

    if not rec.path.is_file():
        return None, ("missing-audio", f"audio file {rec.path} does not exist")
    try:
        info = audio_info(rec.path)
        with sf.SoundFile(str(rec.path)) as f:
            n = 0
            for block in f.blocks(blocksize=1 << 16, dtype="float32"):
                n += len(block)
    except (AudioError, sf.LibsndfileError, RuntimeError) as e:
        return None, ("unreadable-audio", f"audio file {rec.path} does not decode: {e}")
    if n == 0:
        return None, ("unreadable-audio", f"audio file {rec.path} has no samples")
    for claimed, who in rec.claims:
        if claimed != info.sample_rate:
            return None, (
                "sample-rate",
                f"audio file {rec.path} is at {info.sample_rate} Hz but {who} says {claimed} Hz",
            )
    return info, None


def _build(
    source: _Source,
    log: ProblemLog,
    report: ImportReport,
    jobs: int,
    keep_numbers: bool = False,
) -> tuple[Any, Any, Any]:
    from lhotse import (
        AudioSource,
        CutSet,
        MonoCut,
        Recording,
        RecordingSet,
        SupervisionSegment,
        SupervisionSet,
    )
    from lhotse.utils import fastcopy

    used = {u.rec_id for u in source.utts}
    todo = [r for r in source.recs.values() if r.rec_id in used]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        probed = list(pool.map(_probe, todo))
    recordings: dict[str, Recording] = {}
    for rec, (info, problem) in zip(todo, probed, strict=True):
        if problem is not None:
            log.add(problem[0], rec.where[0], rec.where[1], problem[1], rec.rec_id)
            continue
        recordings[rec.rec_id] = Recording(
            id=rec.rec_id,
            sources=[
                AudioSource(
                    type="file",
                    channels=list(range(info.num_channels)),
                    source=_manifest_path(rec.path),
                )
            ],
            sampling_rate=info.sample_rate,
            num_samples=info.num_samples,
            duration=info.duration,
        )

    tally = TextTally()
    sups: list[SupervisionSegment] = []
    cuts: list[MonoCut] = []
    for u in source.utts:
        rec = recordings.get(u.rec_id)
        if rec is None:
            continue  # its audio was reported above
        end = rec.duration if u.end is None else u.end
        span = u.span_where or u.where
        if not (0 <= u.start < end <= rec.duration + 1e-3):
            log.add(
                "bad-segment",
                span[0],
                span[1],
                f"{u.utt_id!r} spans {u.start:.3f}-{end:.3f} s of a {rec.duration:.3f} s recording",
                u.utt_id,
            )
            continue
        if u.channel >= rec.num_channels:
            log.add(
                "bad-segment",
                span[0],
                span[1],
                f"{u.utt_id!r} is on channel {u.channel} of a {rec.num_channels}-channel recording",
                u.utt_id,
            )
            continue
        try:
            clean = clean_transcript(u.raw_text, keep_numbers)
        except TranscriptError as e:
            log.add(e.kind, u.where[0], u.where[1], f"{u.utt_id!r}: {e}", u.utt_id)
            continue
        tally.add(clean)
        end = min(end, rec.duration)
        sup = SupervisionSegment(
            id=u.utt_id,
            recording_id=u.rec_id,
            start=u.start,
            duration=round(end - u.start, 6),
            channel=u.channel,
            text=clean.text,
            language="Chinese",
            speaker=u.speaker,
            custom={
                **u.custom,
                **({"desensitized": clean.desensitized} if clean.desensitized else {}),
                **({"invented_numbers": clean.kept_numbers} if clean.kept_numbers else {}),
            }
            or None,
        )
        sups.append(sup)
        cuts.append(
            MonoCut(
                id=u.utt_id,
                start=sup.start,
                duration=sup.duration,
                channel=u.channel,
                recording=rec,
                supervisions=[fastcopy(sup, start=0.0)],
            )
        )

    kept = {s.recording_id for s in sups}
    recording_set = RecordingSet.from_recordings(r for r in recordings.values() if r.id in kept)
    report.recordings = len(recording_set)
    report.utterances = len(sups)
    report.speakers = len({s.speaker for s in sups if s.speaker})
    report.hours = round(sum(s.duration for s in sups) / 3600, 6)
    report.changed_by_normalize = tally.changed_by_normalize
    report.desensitized = dict(sorted(tally.desensitized.items()))
    report.numbers_kept = dict(sorted(tally.kept_numbers.items()))
    return recording_set, SupervisionSet.from_segments(sups), CutSet.from_cuts(cuts)


# --------------------------------------------------------------------------- public API


def find_source_splits(src: Path, fmt: str, splits: list[str] | None = None) -> dict[str, Any]:
    """Map split name -> where to read it (a folder, or a (recordings, supervisions) pair).

    A source that is itself one split (a Kaldi folder with wav.scp, a folder with audio files
    directly inside) is named after the folder, or after the one name in ``splits``.
    """
    src = Path(src)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not src.is_dir():
        raise FileNotFoundError(f"{src} is not a folder")

    def has_audio(d: Path, recursive: bool) -> bool:
        it = d.rglob("*") if recursive else d.iterdir()
        return any(p.suffix.lower() in AUDIO_EXTENSIONS for p in it)

    found: dict[str, Any]
    single = (fmt == "kaldi" and (src / "wav.scp").is_file()) or (
        fmt == "folder" and has_audio(src, recursive=False)
    )
    if single:
        if splits and len(splits) != 1:
            raise ValueError(f"{src} holds one split; give at most one name with --splits")
        found = {(splits[0] if splits else src.name): src}
    elif fmt == "kaldi":
        found = {d.name: d for d in sorted(src.iterdir()) if (d / "wav.scp").is_file()}
    elif fmt == "folder":
        found = {d.name: d for d in sorted(src.iterdir()) if d.is_dir() and has_audio(d, True)}
    else:
        found = _lhotse_files(src)
    if not found:
        raise FileNotFoundError(f"no {fmt} splits found in {src}")
    if splits and not single:
        missing = [s for s in splits if s not in found]
        if missing:
            raise FileNotFoundError(
                f"split(s) {', '.join(missing)} not found in {src}; found {', '.join(found)}"
            )
        found = {s: found[s] for s in splits}
    for name in found:
        check_name("split", name)
    return found


def read_split(
    where: Any,
    *,
    corpus: str,
    split: str,
    fmt: str = "kaldi",
    skip_bad: bool = False,
    sample_rate: int | None = None,
    jobs: int = 2,
    keep_numbers: bool = False,
) -> SplitData:
    """Read and check one split into in-memory manifests (nothing is written).

    Raises :class:`~training.data.problems.CorpusError` on the first bad item unless
    ``skip_bad``, in which case bad items are left out and listed in ``report.skipped``.
    """
    log = ProblemLog(skip_bad)
    if fmt == "kaldi":
        source = _read_kaldi(Path(where), log, sample_rate)
        source_name = str(where)
    elif fmt == "folder":
        source = _read_folder(Path(where), log, sample_rate)
        source_name = str(where)
    elif fmt == "lhotse":
        rec_path, sup_path = where
        source = _read_lhotse(Path(rec_path), Path(sup_path), log, sample_rate)
        source_name = str(rec_path)
    else:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    report = ImportReport(corpus=corpus, split=split, source=source_name, format=fmt)
    recordings, supervisions, cuts = _build(source, log, report, jobs, keep_numbers)
    report.skipped = list(log.problems)
    if not len(supervisions):
        raise ValueError(f"{source_name}: no usable utterances in split {split!r}")
    return SplitData(split, recordings, supervisions, cuts, report)


def import_corpus(
    src: str | Path,
    corpus: str,
    *,
    fmt: str = "kaldi",
    out_dir: str | Path = "data",
    splits: list[str] | None = None,
    skip_bad: bool = False,
    sample_rate: int | None = None,
    jobs: int = 2,
    keep_numbers: bool = False,
) -> list[ImportReport]:
    """Import every split of ``src`` and write its manifests under ``{out_dir}/manifests``.

    All splits are read and checked first; only then are the files written, each atomically,
    so a failed import leaves earlier manifests as they were. ``keep_numbers`` leaves the read-out
    numbers in the transcripts instead of desensitizing them; only for a corpus that
    ``hotline-asr data synth`` made (a ``synth.json`` in ``src`` or the folder above it).
    """
    check_name("corpus", corpus)
    if keep_numbers and not any(
        (d / "synth.json").is_file() for d in (Path(src), Path(src).parent)
    ):
        raise ValueError(
            f"keep_numbers is only for corpora made by `hotline-asr data synth`, whose numbers "
            f"are invented; {src} has no synth.json. Real transcripts are always desensitized."
        )
    found = find_source_splits(Path(src), fmt, splits)
    results = [
        read_split(
            where,
            corpus=corpus,
            split=split,
            fmt=fmt,
            skip_bad=skip_bad,
            sample_rate=sample_rate,
            jobs=jobs,
            keep_numbers=keep_numbers,
        )
        for split, where in found.items()
    ]
    manifests = Path(out_dir) / "manifests"
    with AtomicWriter() as w:
        for r in results:
            w.manifest(r.recordings, recordings_path(manifests, corpus, r.split))
            w.manifest(r.supervisions, supervisions_path(manifests, corpus, r.split))
            w.manifest(r.cuts, raw_cuts_path(manifests, corpus, r.split))
            w.json(r.report.to_dict(), import_report_path(manifests, corpus, r.split))
    return [r.report for r in results]
