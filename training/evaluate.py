"""Score a model on a test set: CER, S/D/I counts and per-slice tables (``training.scoring``).

Models: our model file (``save_model``), our Lightning ``.ckpt``, an icefall checkpoint
(``hyper-params.json`` and ``tokens.txt`` beside it), or an exported ONNX folder
(``encoder*.onnx`` + ``tokens.txt``, decoded by ``serving.engine``).
Data: a Kaldi-style folder (``wav.scp`` + ``text``, optional ``meta.jsonl`` for slices;
features computed with ``serving.features``) or a Lhotse cuts manifest (``.jsonl.gz``;
precomputed features when present, else audio).

``telephone_seed`` passes every utterance through a telephone channel first (band-limited
8 kHz, G.711, noise: the synth corpus's channel, drawn per utterance from the seed and the
utterance id), so clean test audio can be scored the way the hotline hears it.

Torch models decode the chunk-masked ("simulated streaming") encoder output with the given chunk
size and left context, or, with ``streaming=True``, run the real chunk-by-chunk streaming encoder.
"""

from __future__ import annotations

import json
import math
import time
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from serving.lm import DEFAULT_LM_SCALE
from training.served import SERVED_CHUNK_SIZE, SERVED_LEFT_CONTEXT

LOG_EPS = math.log(1e-10)
TAIL_PAD_FRAMES = 30  # LOG_EPS frames appended for causal models (icefall decode.py)
SLICE_KEYS = ("voice", "role", "domain", "unseen_template")


@dataclass
class EvalOptions:
    method: str = "greedy"  # "greedy", "beam", or "ctc" (torch models with a CTC head)
    beam: int = 4
    # greedy: symbols one encoder frame may emit (icefall and sherpa-onnx decode with 1; a
    # model that learned to emit bursts of tokens on one frame needs more)
    max_sym_per_frame: int = 1
    # subtracted from the blank logit before each choice (sherpa-onnx's blank_penalty): a
    # model that deletes emits more; 0 leaves the search as trained
    blank_penalty: float = 0.0
    chunk_size: int = SERVED_CHUNK_SIZE  # 50 Hz frames
    left_context: int = SERVED_LEFT_CONTEXT
    streaming: bool = False
    hotwords: list[str] = field(default_factory=list)
    hotword_score: float = 1.5
    # character n-gram ARPA fused into beam search (serving.lm), and its weight
    lm: str | None = None
    lm_scale: float = DEFAULT_LM_SCALE
    batch_utts: int = 8
    max_utts: int | None = None
    num_threads: int = 1
    int8: bool = False  # ONNX folders: decode with the *.int8.onnx files
    pinyin: bool = False  # also score pinyin syllables, with and without tone
    # set: every utterance passes a telephone channel drawn from (seed, utterance id) first
    telephone_seed: int | None = None
    # seconds of digital silence put before every utterance (ahead of the telephone channel),
    # as a call opens before the caller speaks; features come from the audio
    lead_silence: float = 0.0
    # score only utterances whose slice labels have these values ({"text": "sentences"}),
    # applied before max_utts
    only: dict[str, str] = field(default_factory=dict)


@dataclass
class EvalItem:
    id: str
    text: str
    slices: dict[str, str]
    audio: Path | None = None
    cut: Any = None  # a lhotse Cut
    telephone_seed: int | None = None  # see EvalOptions.telephone_seed
    lead_silence: float = 0.0  # see EvalOptions.lead_silence

    def samples(self) -> tuple[np.ndarray, int]:
        if self.cut is not None:
            audio = self.cut.load_audio()
            samples = np.asarray(audio[0] if audio.ndim == 2 else audio, np.float32)
            sr = int(self.cut.sampling_rate)
        else:
            from serving.audio import load_audio

            samples, sr = load_audio(self.audio)
        if self.lead_silence > 0:
            samples = np.pad(samples, (int(round(self.lead_silence * sr)), 0))
        if self.telephone_seed is None:
            return samples, sr
        from training.augment import telephone

        rng = np.random.default_rng([self.telephone_seed, zlib.crc32(self.id.encode("utf-8"))])
        return telephone(samples, sr, rng), sr

    def features(self) -> np.ndarray:
        if (
            self.cut is not None
            and self.cut.has_features
            and self.telephone_seed is None
            and not self.lead_silence
        ):
            return np.asarray(self.cut.load_features(), np.float32)
        from serving.features import compute_fbank

        samples, sr = self.samples()
        return compute_fbank(samples, sr)


@dataclass
class EvalResult:
    model: str
    data: str
    options: EvalOptions
    report: Any  # training.scoring.ScoreReport
    hypotheses: list[dict[str, str]]
    audio_seconds: float
    decode_seconds: float
    hotword_recall: dict[str, Any] | None = None

    @property
    def cer(self) -> float:
        return self.report.cer

    @property
    def rtf(self) -> float:
        return self.decode_seconds / max(self.audio_seconds, 1e-9)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "data": self.data,
            "options": asdict(self.options),
            **self.report.to_dict(),
            "audio_seconds": round(self.audio_seconds, 3),
            "decode_seconds": round(self.decode_seconds, 3),
            "rtf": round(self.rtf, 4),
            "hotword_recall": self.hotword_recall,
            "hypotheses": self.hypotheses,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2)


# ------------------------------------------------------------------------------ data
def _slices(custom: dict[str, Any]) -> dict[str, str]:
    """Slice labels from a supervision's ``custom`` (synth/import metadata): voice, role, domain,
    sentences or word lists, a read-out number desensitized on import, unseen template,
    speaking-rate band, and the telephone channel's codec, noise and SNR band."""
    out = {k: str(custom[k]) for k in SLICE_KEYS if custom.get(k) is not None}
    if custom.get("domain") is not None:
        # synth's random word lists (no sentence context to lean on) against call sentences:
        # the two score very differently, and the hotline hears sentences
        out["text"] = "word lists" if custom["domain"] == "words" else "sentences"
    numbers = custom.get("desensitized") or custom.get("invented_numbers")
    if custom.get("domain") is not None or numbers:
        # a number read out (desensitized on import, the reference says <手机号>, or an invented
        # one kept): training leaves desensitized cuts out, so the model may not write them
        out["number"] = "read out" if numbers else "none"
    speed = custom.get("speed")
    if isinstance(speed, (int, float)):  # espeak words per minute (default 175)
        out["speed"] = "slow" if speed < 150 else "fast" if speed > 190 else "normal"
    channel = custom.get("channel")
    if isinstance(channel, dict):
        out["codec"] = str(channel.get("codec", "none"))
        snr = channel.get("snr_db")
        out["noise"] = "none" if snr is None else str(channel.get("noise", "?"))
        out["snr"] = (
            "clean" if snr is None else "<10dB" if snr < 10 else "10-20dB" if snr < 20 else ">=20dB"
        )
    elif channel is not None:
        out["channel"] = str(channel)
    return out


def read_kaldi_dir(folder: Path) -> list[EvalItem]:
    folder = Path(folder)
    for name in ("wav.scp", "text"):
        if not (folder / name).is_file():
            raise FileNotFoundError(
                f"{folder / name} is missing: a Kaldi folder needs wav.scp+text"
            )

    def table(name: str) -> dict[str, str]:
        out = {}
        for line in (folder / name).read_text("utf-8").splitlines():
            parts = line.strip().split(maxsplit=1)
            if parts:
                out[parts[0]] = parts[1] if len(parts) > 1 else ""
        return out

    wavs, texts = table("wav.scp"), table("text")
    meta: dict[str, dict[str, Any]] = {}
    if (folder / "meta.jsonl").is_file():
        for line in (folder / "meta.jsonl").read_text("utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                meta[str(item.get("utt_id", item.get("id")))] = item
    missing = sorted(set(texts) - set(wavs))
    if missing:
        raise ValueError(f"{folder}: {len(missing)} utterance(s) in text lack wav.scp entries")
    items = []
    for utt, text in sorted(texts.items()):
        p = Path(wavs[utt])
        items.append(
            EvalItem(
                utt, text, _slices(meta.get(utt, {})), audio=p if p.is_absolute() else folder / p
            )
        )
    return items


def read_cuts(path: Path) -> list[EvalItem]:
    from lhotse import CutSet

    items = []
    for cut in CutSet.from_file(path):
        custom: dict[str, Any] = {}
        for s in cut.supervisions:
            custom.update(s.custom or {})
        text = "".join(s.text or "" for s in cut.supervisions)
        items.append(EvalItem(cut.id, text, _slices(custom), cut=cut))
    return items


def read_eval_data(path: Path | str) -> list[EvalItem]:
    path = Path(path)
    if path.is_dir():
        return read_kaldi_dir(path)
    if path.name.endswith((".jsonl.gz", ".jsonl")):
        return read_cuts(path)
    raise ValueError(f"{path}: give a Kaldi-style folder or a cuts manifest (.jsonl.gz)")


# ----------------------------------------------------------------------------- models
def is_onnx_folder(path: Path) -> bool:
    return Path(path).is_dir() and any(Path(path).glob("encoder*.onnx"))


def load_torch_model(path: Path | str, hyper_params: Path | str | None = None):
    """(Transducer in eval mode, token list) from any checkpoint kind the trainer reads."""
    from training.model.transducer import Transducer
    from training.train import read_init_checkpoint

    init = read_init_checkpoint(path, hyper_params)
    if init.tokens is None:
        raise FileNotFoundError(f"{path}: no token list inside and no tokens.txt beside it")
    model = Transducer(init.config)
    model.load_state_dict(init.state_dict, strict=True)
    return model.eval(), list(init.tokens)


def _batches(items: list[EvalItem], n: int) -> Iterator[list[EvalItem]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _decode_torch(model, tokens, items: list[EvalItem], opts: EvalOptions) -> list[str]:
    import torch

    from serving.context_graph import ContextGraph
    from serving.tokens import TokenTable
    from training.decode.search import greedy_search, modified_beam_search

    table = TokenTable(tokens)
    fusion = _lm_fusion(opts, table)
    graph = None
    if opts.hotwords:
        if opts.method != "beam":
            raise ValueError("hot words need --method beam (greedy search cannot use them)")
        graph = ContextGraph.from_texts(opts.hotwords, table.encode, score=opts.hotword_score)
    causal = bool(getattr(model.config, "causal", True))
    if opts.method == "ctc" and not getattr(model, "use_ctc", False):
        raise ValueError(
            "--method ctc needs a model trained with a CTC head (model.overrides.use_ctc=true)"
        )
    if opts.method == "ctc" and opts.streaming:
        raise ValueError("--method ctc decodes the chunk-masked encoder; drop --streaming")
    hyps: list[str] = []
    for batch in _batches(items, opts.batch_utts):
        feats = [torch.from_numpy(it.features()) for it in batch]
        if opts.streaming:
            from training.decode.streaming import StreamingDecoder

            decoder = StreamingDecoder(
                model,
                chunk_size=opts.chunk_size,
                left_context_frames=opts.left_context,
                method=opts.method,
                beam=opts.beam,
                context_graph=graph,
                max_sym_per_frame=opts.max_sym_per_frame,
                blank_penalty=opts.blank_penalty,
                lm=fusion,
            )
            ids = [r.tokens for r in decoder.decode(feats)]
        else:
            pad = TAIL_PAD_FRAMES if causal else 0
            lens = torch.tensor([f.shape[0] + pad for f in feats], dtype=torch.int64)
            x = torch.full((len(feats), int(lens.max()), feats[0].shape[1]), LOG_EPS)
            for i, f in enumerate(feats):
                x[i, : f.shape[0]] = f
            with torch.no_grad():
                enc, enc_lens = model.forward_encoder(
                    x, lens, chunk_size=opts.chunk_size, left_context_frames=opts.left_context
                )
            if opts.method == "greedy":
                ids = greedy_search(
                    model, enc, enc_lens, opts.max_sym_per_frame, opts.blank_penalty
                )
            elif opts.method == "ctc":
                ids = ctc_greedy_ids(model, enc, enc_lens)
            else:
                ids = modified_beam_search(
                    model,
                    enc,
                    enc_lens,
                    beam=opts.beam,
                    context_graph=graph,
                    blank_penalty=opts.blank_penalty,
                    lm=fusion,
                )
        hyps.extend(table.decode(h) for h in ids)
    return hyps


def _lm_fusion(opts: EvalOptions, table):
    """The LM fusion ``opts`` asks for, over ``table``'s ids (None without ``opts.lm``)."""
    if opts.lm is None:
        return None
    from serving.lm import LmFusion, NgramLM

    return LmFusion(NgramLM.from_arpa(opts.lm, table), scale=opts.lm_scale)


def ctc_greedy_ids(model, enc, enc_lens) -> list[list[int]]:
    """Greedy CTC over the model's character CTC head: per-frame argmax, repeats merged,
    blanks dropped. It reads the encoder without the transducer's decoder and joiner, so it
    shows how much the encoder alone has learned."""
    import torch

    with torch.no_grad():
        best = model.ctc_output(enc).argmax(-1)
    blank = model.decoder.blank_id
    return [
        collapse_ctc(row[:n], blank)
        for row, n in zip(best.tolist(), enc_lens.tolist(), strict=True)
    ]


def collapse_ctc(frame_ids: list[int], blank: int) -> list[int]:
    """Per-frame CTC labels to tokens: repeats merged, then blanks dropped."""
    prev = [None, *frame_ids][:-1]
    return [t for t, p in zip(frame_ids, prev, strict=True) if t != p and t != blank]


def _decode_onnx(folder: Path, items: list[EvalItem], opts: EvalOptions) -> list[str]:
    try:
        from serving.engine.recognizer import Recognizer
    except ImportError as e:  # the engine is optional in a training-only checkout
        raise RuntimeError(
            f"{folder} is an ONNX model but serving.engine is unavailable: {e}"
        ) from e

    if opts.max_sym_per_frame != 1:
        raise ValueError(
            f"the ONNX engine ({folder}) emits at most one symbol per frame, as sherpa-onnx does; "
            "drop --max-sym-per-frame or evaluate the torch checkpoint"
        )
    if opts.method not in ("greedy", "beam"):
        raise ValueError(
            f"method {opts.method!r} is not available for an ONNX folder ({folder}): "
            "the export has no CTC head; use greedy or beam, or evaluate the torch checkpoint"
        )
    rec = Recognizer.from_folder(
        folder,
        num_threads=opts.num_threads,
        decoding_method="greedy_search" if opts.method == "greedy" else "modified_beam_search",
        beam=opts.beam,
        hotwords=opts.hotwords or None,
        hotwords_score=opts.hotword_score,
        blank_penalty=opts.blank_penalty,
        int8=opts.int8,
        lm=opts.lm,
        lm_scale=opts.lm_scale,
    )
    return [engine_transcript(rec, *it.samples()) for it in items]


def engine_transcript(rec, samples: np.ndarray, sr: int) -> str:
    """All of ``samples`` through one stream of the engine's ``Recognizer``, as a call is
    served: the text of every endpointed segment, joined."""
    stream = rec.create_stream()
    stream.accept_waveform(sr, samples)
    stream.input_finished()
    parts = []
    while rec.is_ready(stream):
        rec.decode_stream(stream)
        if rec.is_endpoint(stream):
            parts.append(rec.get_result(stream).text)
            rec.reset(stream)
    parts.append(rec.get_result(stream).text)
    return "".join(parts)


def evaluate(
    model_path: Path | str,
    data_path: Path | str,
    options: EvalOptions | None = None,
    hyper_params: Path | str | None = None,
) -> EvalResult:
    """Decode ``data_path`` with ``model_path`` and score it."""
    from training.scoring import ScoredUtt, hotword_recall, score

    opts = options or EvalOptions()
    if opts.method not in ("greedy", "beam", "ctc"):
        raise ValueError(f"unknown method {opts.method!r}: use greedy, beam or ctc")
    if opts.max_sym_per_frame < 1 or (opts.max_sym_per_frame > 1 and opts.method != "greedy"):
        raise ValueError(
            f"max_sym_per_frame={opts.max_sym_per_frame}: it must be >= 1, and above 1 only with "
            "greedy search"
        )
    if opts.blank_penalty < 0 or (opts.blank_penalty and opts.method == "ctc"):
        raise ValueError(
            f"blank_penalty={opts.blank_penalty}: it must be 0 or more, and it applies to the "
            "transducer's greedy or beam search, not --method ctc"
        )
    # (a missing file and a negative scale are refused where the LM is loaded: serving.lm)
    if opts.lm is not None and opts.method != "beam":
        raise ValueError("a language model (--lm) needs --method beam")
    items = select(read_eval_data(data_path), opts.only, data_path)
    if opts.max_utts:
        items = items[: opts.max_utts]
    if not items:
        raise ValueError(f"{data_path}: no utterances to evaluate")
    if opts.telephone_seed is not None:
        if opts.telephone_seed < 0:
            raise ValueError(f"telephone_seed must be 0 or more, got {opts.telephone_seed}")
        for it in items:
            it.telephone_seed = opts.telephone_seed
    if opts.lead_silence:
        if not 0 < opts.lead_silence <= 60:
            raise ValueError(
                f"lead_silence must be between 0 and 60 seconds, got {opts.lead_silence}"
            )
        for it in items:
            it.lead_silence = opts.lead_silence
    if opts.int8 and not is_onnx_folder(Path(model_path)):
        raise ValueError(
            f"int8 decoding needs an exported ONNX folder, and {model_path} is not one; "
            "run `hotline-asr export` first"
        )
    if is_onnx_folder(Path(model_path)):
        t0 = time.perf_counter()
        hyps = _decode_onnx(Path(model_path), items, opts)
    else:
        import torch

        if opts.num_threads > 0:
            torch.set_num_threads(opts.num_threads)
        model, tokens = load_torch_model(model_path, hyper_params)
        t0 = time.perf_counter()
        hyps = _decode_torch(model, tokens, items, opts)
    seconds = time.perf_counter() - t0  # features + encoder + search, not model loading
    audio_seconds = sum(_duration(it) for it in items)
    pairs = [ScoredUtt(it.id, it.text, h, it.slices) for it, h in zip(items, hyps, strict=True)]
    report = score(pairs, pinyin=opts.pinyin)
    recall = hotword_recall(pairs, opts.hotwords) if opts.hotwords else None
    return EvalResult(
        model=str(model_path),
        data=str(data_path),
        options=opts,
        report=report,
        hypotheses=[{"id": p.id, "ref": p.ref, "hyp": p.hyp} for p in pairs],
        audio_seconds=audio_seconds,
        decode_seconds=seconds,
        hotword_recall=recall,
    )


def select(items: list[EvalItem], only: dict[str, str], data_path: Path | str) -> list[EvalItem]:
    """The items whose slice labels match every ``only`` entry; an error names the values
    there are when none match."""
    if not only:
        return items
    kept = [it for it in items if all(it.slices.get(k) == v for k, v in only.items())]
    if items and not kept:
        seen = {k: sorted({it.slices[k] for it in items if k in it.slices}) for k in only}
        raise ValueError(f"{data_path}: no utterance has {only}; the values there are {seen}")
    return kept


def rescore(
    report_path: Path | str,
    data_path: Path | str,
    pinyin: bool | None = None,
    only: dict[str, str] | None = None,
) -> EvalResult:
    """Score the hypotheses of an earlier ``evaluate`` report (its ``--output`` JSON) again,
    without decoding: after a change to the scoring rules, or to get slices the report lacks.
    References and slice labels come from ``data_path``, which must hold every utterance of the
    report with the same reference text (the data the report was made on). ``pinyin`` None keeps
    the report's own setting; ``only`` scores the utterances of one slice (``{"text":
    "sentences"}``), on top of the report's own ``only``; the slice's audio seconds are its own,
    its RTF the report's."""
    from dataclasses import fields

    from training.scoring import ScoredUtt, hotword_recall, score

    path = Path(report_path)
    if not path.is_file():
        raise FileNotFoundError(f"report {path} not found; write one with eval --output")
    try:
        saved = json.loads(path.read_text("utf-8"))
        hyps = saved["hypotheses"]
        known = {f.name for f in fields(EvalOptions)}
        opts = EvalOptions(**{k: v for k, v in saved.get("options", {}).items() if k in known})
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path} is not an eval report (--output JSON): {e}") from e
    if pinyin is not None:
        opts.pinyin = pinyin
    opts.only = {**opts.only, **(only or {})}
    by_id = {it.id: it for it in read_eval_data(data_path)}
    pairs = []
    for h in hyps:
        it = by_id.get(h["id"])
        if it is None:
            raise ValueError(
                f"utterance {h['id']} of {path} is not in {data_path}; give the --data the "
                "report was made on"
            )
        if it.text != h["ref"]:
            raise ValueError(
                f"utterance {h['id']}: {data_path} says {it.text!r} but {path} scored against "
                f"{h['ref']!r}; give the --data the report was made on"
            )
        pairs.append(ScoredUtt(it.id, it.text, h["hyp"], it.slices))
    if not pairs:
        raise ValueError(f"{path} holds no hypotheses to score")
    audio = float(saved.get("audio_seconds", 0.0))
    decode = float(saved.get("decode_seconds", 0.0))
    if opts.only:
        keep = {it.id for it in select([by_id[p.id] for p in pairs], opts.only, path)}
        if len(keep) < len(pairs):
            # the decode time of a slice is not in the report: keep the report's RTF
            kept_audio = sum(_duration(by_id[i]) for i in keep)
            decode *= kept_audio / audio if audio > 0 else 0.0
            audio = kept_audio
        pairs = [p for p in pairs if p.id in keep]
    return EvalResult(
        model=str(saved.get("model", "")),
        data=str(data_path),
        options=opts,
        report=score(pairs, pinyin=opts.pinyin),
        hypotheses=[{"id": p.id, "ref": p.ref, "hyp": p.hyp} for p in pairs],
        audio_seconds=audio,
        decode_seconds=decode,
        hotword_recall=hotword_recall(pairs, opts.hotwords) if opts.hotwords else None,
    )


def _duration(it: EvalItem) -> float:
    if it.cut is not None:
        return float(it.cut.duration)
    from serving.audio import audio_info

    return float(audio_info(it.audio).duration)
