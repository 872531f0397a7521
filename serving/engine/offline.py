"""Offline transcription of recordings: VAD segments decoded in batches by the streaming model.

Each speech segment becomes one stream; up to ``max_batch_size`` streams are decoded together
(one encoder call per chunk for all of them) and a finished stream's slot is refilled with the
next segment, so long calls keep the batch full with bounded memory. Two-channel files are
call recordings with one leg per channel (0 = agent, 1 = caller): each leg is segmented and
decoded on its own and the sentences of both legs are merged by start time.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from serving.audio import audio_info, load_audio

from .recognizer import Recognizer, Result, Stream
from .vad import SpeechSegment, VadOptions, detect_speech

__all__ = ["Sentence", "Transcriber", "TranscriptionResult", "transcribe_file"]


@dataclass
class Sentence:
    """One decoded speech segment. ``start_ms``/``end_ms`` are the VAD's speech bounds (a streaming
    transducer emits a token some frames after it is spoken, so token times run late);
    ``token_ms`` gives each token's emission time, all in ms from the start of the recording."""

    leg: int  # channel: 0 = agent, 1 = caller in two-channel calls; 0 for mono files
    start_ms: int
    end_ms: int
    text: str
    tokens: list[str] = field(default_factory=list)
    token_ms: list[int] = field(default_factory=list)


@dataclass
class TranscriptionResult:
    """Everything said in one recording, with timing and speed."""

    file: str
    text: str  # the sentences' texts joined in time order
    sentences: list[Sentence] = field(default_factory=list)
    duration_s: float = 0.0
    processing_s: float = 0.0
    rtf: float = 0.0  # processing_s / duration_s (whole file, all legs)
    num_channels: int = 1

    def to_dict(self) -> dict:
        """The JSON-line form printed by ``hotline-asr transcribe``."""
        return {
            "file": self.file,
            "text": self.text,
            "sentences": [asdict(s) for s in self.sentences],
            "duration_s": round(self.duration_s, 3),
            "rtf": round(self.rtf, 4),
        }


class Transcriber:
    """Runs VAD + batched decoding with one :class:`Recognizer` over many files."""

    def __init__(self, recognizer: Recognizer, vad: VadOptions | None = None) -> None:
        self.recognizer = recognizer
        self.vad = vad or VadOptions()

    def segments(self, samples: np.ndarray, sample_rate: int) -> list[SpeechSegment]:
        return detect_speech(samples, sample_rate, self.vad)

    def decode_segments(
        self, samples: np.ndarray, sample_rate: int, segments: list[SpeechSegment]
    ) -> list[str]:
        """Text of each segment of one signal (same order)."""
        return self.decode_pieces([samples[s.pad_start : s.pad_end] for s in segments], sample_rate)

    def decode_pieces(self, pieces: list[np.ndarray], sample_rate: int) -> list[str]:
        """Text of each audio piece, each decoded as its own stream (see :meth:`decode_results`)."""
        return [r.text for r in self.decode_results(pieces, sample_rate)]

    def decode_results(self, pieces: list[np.ndarray], sample_rate: int) -> list[Result]:
        """Result (text, tokens, token times from the piece start) of each audio piece, each
        decoded as its own stream. Up to ``max_batch_size`` streams are decoded together; a
        finished stream's slot goes to the next piece."""
        rec = self.recognizer
        results: list[Result | None] = [None] * len(pieces)
        pending = list(range(len(pieces)))[::-1]
        active: list[tuple[int, Stream]] = []
        while pending or active:
            while pending and len(active) < rec.max_batch_size:
                i = pending.pop()
                s = rec.create_stream()
                s.accept_waveform(sample_rate, pieces[i])
                s.input_finished()
                active.append((i, s))
            rec.decode_streams([s for _, s in active])
            still = []
            for i, s in active:
                if rec.is_ready(s):
                    still.append((i, s))
                else:
                    results[i] = rec.get_result(s)
            active = still
        return [r for r in results if r is not None]

    def transcribe_samples(self, channels: list[np.ndarray], sample_rate: int) -> list[Sentence]:
        """Sentences of all channels (one leg each, segmented separately, decoded in one
        batch pool), merged by start time."""
        found = [
            (leg, x, seg) for leg, x in enumerate(channels) for seg in self.segments(x, sample_rate)
        ]
        pieces = [x[seg.pad_start : seg.pad_end] for _, x, seg in found]
        sentences = []
        for (leg, _, seg), r in zip(found, self.decode_results(pieces, sample_rate), strict=True):
            if not r.text:
                continue
            offset_s = seg.pad_start / sample_rate + r.start_time
            sentences.append(
                Sentence(
                    leg=leg,
                    start_ms=int(round(seg.start_s * 1000)),
                    end_ms=int(round(seg.end_s * 1000)),
                    text=r.text,
                    tokens=list(r.tokens),
                    token_ms=[int(round((offset_s + t) * 1000)) for t in r.timestamps],
                )
            )
        sentences.sort(key=lambda s: (s.start_ms, s.leg))
        return sentences

    def transcribe_file(self, path: str | Path) -> TranscriptionResult:
        """Transcribe a WAV/FLAC file; two-channel files are decoded leg by leg."""
        t0 = time.perf_counter()
        info = audio_info(path)
        if info.num_channels > 2:
            raise ValueError(
                f"{path}: has {info.num_channels} channels; expected mono or a two-leg call"
            )
        channels = []
        for ch in range(info.num_channels):
            x, sr = load_audio(path, channel=ch if info.num_channels > 1 else None)
            channels.append(x)
        sentences = self.transcribe_samples(channels, sr)
        elapsed = time.perf_counter() - t0
        duration = len(channels[0]) / sr if channels else 0.0
        return TranscriptionResult(
            file=str(path),
            text="".join(s.text for s in sentences),
            sentences=sentences,
            duration_s=duration,
            processing_s=elapsed,
            rtf=elapsed / duration if duration > 0 else 0.0,
            num_channels=info.num_channels,
        )


def transcribe_file(
    path: str | Path,
    recognizer: Recognizer | None = None,
    model_dir: str | Path | None = None,
    vad: VadOptions | None = None,
    **recognizer_options,
) -> TranscriptionResult:
    """One-shot: transcribe ``path`` with ``recognizer`` (or one loaded from ``model_dir``)."""
    if recognizer is None:
        if model_dir is None:
            raise ValueError("pass a recognizer or model_dir (a folder with the ONNX files)")
        recognizer = Recognizer.from_folder(model_dir, **recognizer_options)
    return Transcriber(recognizer, vad).transcribe_file(path)
