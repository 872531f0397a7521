"""Benchmark: our ONNX engine (serving.engine) against sherpa-onnx on the same model and audio.

    .venv/bin/python bench/engine.py                       # fixture model, ~40 synthetic utts
    .venv/bin/python bench/engine.py --model exp/onnx --kaldi ../shared/datasets/neural-voice-zh/dev

Prints one table: streaming RTF of each engine (one stream at a time, and all streams batched),
their ratio, per-chunk compute latency p50/p90, encoder state bytes per stream, greedy
transcript agreement, the offline (VAD + batched) RTF of one long recording, and int8
(the export's own ``*.int8.onnx``, or ``training.export.quantize_int8``) against fp32. Both engines get the same threads, the same
16 kHz samples and the same 0.66 s tail padding; their runs alternate utterance by utterance so
that load from other processes hits both alike.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from serving.audio import StreamingResampler, load_audio, resample  # noqa: E402
from serving.engine.model import find_model_files  # noqa: E402
from serving.engine.offline import Transcriber  # noqa: E402
from serving.engine.recognizer import Recognizer  # noqa: E402

FIXTURE = REPO.parent / "shared" / "fixtures" / "icefall-zipformer2-small"
TAIL_S = 0.66
SR = 16000

SENTENCES = [
    "市民服务热线您好请问有什么可以帮您",
    "我家楼上天天装修早上六点就开始敲了",
    "小区门口的垃圾三天没人清运了",
    "我想咨询一下公积金怎么提取",
    "居住证到期了需要去哪里办理续签",
    "工单号是幺二三四五六七八",
    "路口的红绿灯坏了好几天了",
    "停水通知什么时候能恢复供水",
    "孩子入学需要准备哪些材料",
    "好的您的问题我已经记录下来了",
]


@dataclass
class Utterance:
    name: str
    samples: np.ndarray  # float32 at `rate`
    rate: int = SR

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate


@dataclass
class EngineStats:
    seconds: float = 0.0
    chunk_ms: list[float] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)


def synthesize(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """n utterances: espeak-ng Mandarin (if installed) mixed with noise, else noise bursts."""
    rng = np.random.default_rng(seed)
    espeak = shutil.which("espeak-ng")
    paths = []
    for i in range(n):
        path = folder / f"utt{i:03d}.wav"
        if espeak:
            text = SENTENCES[i % len(SENTENCES)]
            raw = folder / f"raw{i:03d}.wav"
            speed = int(rng.integers(140, 190))
            subprocess.run(
                [espeak, "-v", "cmn", "-s", str(speed), "-w", str(raw), text],
                check=True,
                capture_output=True,
            )
            x, sr = sf.read(raw, dtype="float32")
            x = resample(x, sr, SR) * float(rng.uniform(0.3, 0.8))
            raw.unlink()
        else:
            x = np.zeros(int(rng.uniform(2.0, 5.0) * SR), dtype=np.float32)
            a, b = int(0.3 * SR), len(x) - int(0.3 * SR)
            x[a:b] = rng.standard_normal(b - a) * 0.2
        lead = np.zeros(int(rng.uniform(0.1, 0.5) * SR), dtype=np.float32)
        x = np.concatenate([lead, x, lead])
        x = x + rng.standard_normal(len(x)).astype(np.float32) * float(rng.uniform(0.002, 0.02))
        sf.write(path, np.clip(x, -1, 1), SR, subtype="PCM_16")
        paths.append(path)
    return paths


def load_set(args: argparse.Namespace, tmp: Path) -> list[Utterance]:
    if args.kaldi:
        root = Path(args.kaldi)
        entries = [line.split(maxsplit=1) for line in (root / "wav.scp").read_text().splitlines()]
        paths = [(k, root / v.strip()) for k, v in entries][: args.num_utts]
    elif args.wavs:
        files = sorted(p for p in Path(args.wavs).iterdir() if p.suffix in (".wav", ".flac"))
        paths = [(p.stem, p) for p in files][: args.num_utts]
    else:
        paths = [(p.stem, p) for p in synthesize(tmp, args.num_utts)]
    utts = []
    for name, p in paths:
        x, sr = load_audio(p)
        rate = args.rate
        utts.append(Utterance(name, resample(x, sr, rate) if sr != rate else x, rate))
    return utts


def sherpa_recognizer(folder: Path, threads: int, int8: bool = False):
    import sherpa_onnx

    f = find_model_files(folder, int8=int8)
    return sherpa_onnx.OnlineRecognizer.from_transducer(
        tokens=str(f.tokens),
        encoder=str(f.encoder),
        decoder=str(f.decoder),
        joiner=str(f.joiner),
        num_threads=threads,
        sample_rate=SR,
        feature_dim=80,
        decoding_method="greedy_search",
    )


def run_ours(rec: Recognizer, utt: Utterance, chunk_ms: list[float]) -> tuple[float, str]:
    """Decode one utterance as one stream; returns (seconds, text)."""
    t0 = time.perf_counter()
    s = rec.create_stream()  # tail padding is added by input_finished()
    s.accept_waveform(utt.rate, utt.samples)
    s.input_finished()
    while rec.is_ready(s):
        c0 = time.perf_counter()
        rec.decode_streams([s])
        chunk_ms.append((time.perf_counter() - c0) * 1000)
    text = "".join(rec.get_result(s).tokens)  # sherpa's text: every symbol but <unk>
    return time.perf_counter() - t0, text


def run_sherpa(rec, utt: Utterance, chunk_ms: list[float]) -> tuple[float, str]:
    t0 = time.perf_counter()
    s = rec.create_stream()
    s.accept_waveform(utt.rate, utt.samples)
    s.accept_waveform(utt.rate, np.zeros(int(TAIL_S * utt.rate), dtype=np.float32))
    s.input_finished()
    while rec.is_ready(s):
        c0 = time.perf_counter()
        rec.decode_stream(s)
        chunk_ms.append((time.perf_counter() - c0) * 1000)
    text = rec.get_result(s)
    return time.perf_counter() - t0, text


def sweep(engines, utts: list[Utterance], repeats: int) -> list[EngineStats]:
    """Each utterance through every engine ``repeats`` times, the order rotating each time;
    per utterance the fastest run counts (other processes share these CPUs)."""
    stats = [EngineStats() for _ in engines]
    for i, u in enumerate(utts):
        best = [float("inf")] * len(engines)
        for r in range(repeats):
            for k in range(len(engines)):
                j = (k + i + r) % len(engines)
                run, rec = engines[j]
                sec, text = run(rec, u, stats[j].chunk_ms)
                best[j] = min(best[j], sec)
                if r == 0:
                    stats[j].texts.append(text)
        for j, st in enumerate(stats):
            st.seconds += best[j]
    return stats


def batched(rec, utts: list[Utterance], ours: bool) -> float:
    """All utterances as concurrent streams, fed in 0.32 s pieces, decoded together."""
    t0 = time.perf_counter()
    streams = [rec.create_stream() for _ in utts]
    pos = [0] * len(utts)
    rate = utts[0].rate
    piece = int(0.32 * rate)
    live = set(range(len(utts)))
    while live:
        for i in list(live):
            x = utts[i].samples
            if pos[i] < len(x):
                streams[i].accept_waveform(rate, x[pos[i] : pos[i] + piece])
                pos[i] += piece
                if pos[i] >= len(x):
                    if not ours:
                        streams[i].accept_waveform(rate, np.zeros(int(TAIL_S * rate), np.float32))
                    streams[i].input_finished()
        ready = [s for s in streams if rec.is_ready(s)]
        while ready:
            rec.decode_streams(ready)
            ready = [s for s in ready if rec.is_ready(s)]
        live = {i for i in live if pos[i] < len(utts[i].samples)}
    return time.perf_counter() - t0


def quantize(folder: Path, out: Path) -> Path:
    """int8 files as `hotline-asr export` writes them (icefall's op choice: MatMul, plus Gather in
    the decoder): the folder's own ``*.int8.onnx`` when it has them, else quantized into ``out``."""
    try:
        find_model_files(folder, int8=True)
        return folder
    except (FileNotFoundError, ValueError):
        pass
    from training.export import INT8_OP_TYPES, quantize_int8

    f = find_model_files(folder)
    out.mkdir(parents=True, exist_ok=True)
    for kind, p in (("encoder", f.encoder), ("decoder", f.decoder), ("joiner", f.joiner)):
        quantize_int8(p, out / p.name.replace(".onnx", ".int8.onnx"), INT8_OP_TYPES[kind])
    shutil.copy(f.tokens, out / "tokens.txt")
    return out


def resampler_ms_per_audio_s(utts: list[Utterance], piece_s: float | None, repeats: int) -> float:
    """Milliseconds our streaming resampler (input rate -> 16 kHz) spends per audio second,
    fed whole utterances (as this bench feeds the engines) or ``piece_s``-second pieces (as a
    telephone stream arrives); the fastest of ``repeats`` runs."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for u in utts:
            r = StreamingResampler(u.rate, SR)
            step = len(u.samples) if piece_s is None else max(1, int(piece_s * u.rate))
            for i in range(0, len(u.samples), step):
                r.accept(u.samples[i : i + step])
            r.flush()
        best = min(best, time.perf_counter() - t0)
    return best * 1000 / sum(u.duration for u in utts)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", type=Path, default=FIXTURE, help="ONNX model folder")
    ap.add_argument("--wavs", type=Path, help="folder of .wav/.flac files")
    ap.add_argument("--kaldi", type=Path, help="Kaldi data dir with wav.scp")
    ap.add_argument("--num-utts", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--rate",
        type=int,
        default=SR,
        help="feed both engines audio at this rate (8000: telephone; each engine resamples "
        "with its own resampler, so transcripts may differ slightly)",
    )
    ap.add_argument(
        "--repeats", type=int, default=3, help="runs per measurement; the fastest counts"
    )
    ap.add_argument("--no-int8", action="store_true", help="skip the int8 comparison")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp_name:
        tmp = Path(tmp_name)
        utts = load_set(args, tmp)
        audio_s = sum(u.duration for u in utts)
        ours = Recognizer.from_folder(args.model, num_threads=args.threads)
        theirs = sherpa_recognizer(args.model, args.threads)

        # Warm-up (first runs allocate) on one utterance, not counted.
        run_ours(ours, utts[0], [])
        run_sherpa(theirs, utts[0], [])

        a, b = sweep([(run_ours, ours), (run_sherpa, theirs)], utts, args.repeats)
        agree = np.mean([x == y for x, y in zip(a.texts, b.texts, strict=True)]) * 100

        bt_ours, bt_theirs = float("inf"), float("inf")
        for _ in range(args.repeats):
            bt_ours = min(bt_ours, batched(ours, utts, ours=True))
            bt_theirs = min(bt_theirs, batched(theirs, utts, ours=False))

        # Offline: all utterances in one recording with 0.8 s pauses, VAD + batched decoding.
        gap = np.zeros(int(0.8 * args.rate), dtype=np.float32)
        long_x = np.concatenate([np.concatenate([u.samples, gap]) for u in utts])
        long_path = tmp / "long.wav"
        sf.write(long_path, long_x, args.rate, subtype="FLOAT")
        off_rec = Recognizer.from_folder(args.model, num_threads=1)
        off = Transcriber(off_rec).transcribe_file(long_path)

        rows = {
            "utterances": len(utts),
            "audio_s": round(audio_s, 1),
            "threads": args.threads,
            "repeats": args.repeats,
            "input_rate": args.rate,
            "rtf_ours": a.seconds / audio_s,
            "rtf_sherpa": b.seconds / audio_s,
            "ratio": a.seconds / b.seconds,
            "rtf_batched_ours": bt_ours / audio_s,
            "rtf_batched_sherpa": bt_theirs / audio_s,
            "ratio_batched": bt_ours / bt_theirs,
            "chunk_ms_p50_ours": pct(a.chunk_ms, 50),
            "chunk_ms_p90_ours": pct(a.chunk_ms, 90),
            "chunk_ms_p50_sherpa": pct(b.chunk_ms, 50),
            "chunk_ms_p90_sherpa": pct(b.chunk_ms, 90),
            "state_bytes_per_stream": ours.model.state_bytes(),
            "agreement_pct": float(agree),
            "offline_rtf_1thread": off.rtf,
            "offline_sentences": len(off.sentences),
        }

        if args.rate != SR:  # our resampler's share of the streaming time
            for label, piece in (("whole", None), ("100ms", 0.1)):
                ms = resampler_ms_per_audio_s(utts, piece, args.repeats)
                rows[f"resample_ms_per_audio_s_{label}"] = ms
            rows["resample_share_of_streaming_pct"] = (
                rows["resample_ms_per_audio_s_whole"] / 1000 / rows["rtf_ours"] * 100
            )

        if not args.no_int8:
            qdir = quantize(args.model, tmp / "int8")
            q_ours = Recognizer.from_folder(qdir, num_threads=args.threads, int8=True)
            q_theirs = sherpa_recognizer(qdir, args.threads, int8=True)
            run_ours(q_ours, utts[0], [])
            qa, fp, qb = sweep(
                [(run_ours, q_ours), (run_ours, ours), (run_sherpa, q_theirs)], utts, args.repeats
            )
            rows.update(
                {
                    "rtf_int8_ours": qa.seconds / audio_s,
                    "rtf_fp32_ours_rerun": fp.seconds / audio_s,
                    "int8_speedup": fp.seconds / qa.seconds,
                    "rtf_int8_sherpa": qb.seconds / audio_s,
                    "int8_agreement_ours_vs_sherpa_pct": float(
                        np.mean([x == y for x, y in zip(qa.texts, qb.texts, strict=True)]) * 100
                    ),
                    "int8_vs_fp32_same_text_pct": float(
                        np.mean([x == y for x, y in zip(qa.texts, fp.texts, strict=True)]) * 100
                    ),
                    "int8_encoder_mb": find_model_files(qdir, int8=True).encoder.stat().st_size
                    / 1e6,
                    "fp32_encoder_mb": find_model_files(args.model).encoder.stat().st_size / 1e6,
                }
            )

    width = max(len(k) for k in rows)
    print(f"model: {args.model}")
    for k, v in rows.items():
        print(f"{k:<{width}}  {v:.4f}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
