"""``hotline-asr transcribe``: offline transcription of recordings with the ONNX engine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hotline_asr.options import LmOption, LmScaleOption
from serving.lm import DEFAULT_LM_SCALE


def _read_hotwords(hotwords: list[str] | None, hotwords_file: Path | None) -> list[str]:
    words = [w for item in hotwords or [] for w in item.split(",") if w.strip()]
    if hotwords_file is not None:
        if not hotwords_file.is_file():
            raise typer.BadParameter(
                f"{hotwords_file} does not exist", param_hint="--hotwords-file"
            )
        words += [line.strip() for line in hotwords_file.read_text("utf-8").splitlines()]
    return [w.strip() for w in words if w.strip()]


def transcribe(
    files: Annotated[list[Path], typer.Argument(help="WAV/FLAC files (mono, or 2-channel calls).")],
    model: Annotated[
        Path,
        typer.Option(
            "--model", help="Folder with encoder*.onnx, decoder*.onnx, joiner*.onnx, tokens.txt."
        ),
    ],
    num_threads: Annotated[int, typer.Option(help="onnxruntime threads per session.")] = 1,
    decoding_method: Annotated[
        str, typer.Option(help="greedy_search or modified_beam_search.")
    ] = "greedy_search",
    beam: Annotated[int, typer.Option(help="Active paths for modified_beam_search.")] = 4,
    blank_penalty: Annotated[
        float,
        typer.Option(help="Subtract this from the blank logit: a model that deletes emits more."),
    ] = 0.0,
    hotwords: Annotated[
        list[str] | None,
        typer.Option("--hotword", help="Hot word (repeat, or comma-separated); beam search only."),
    ] = None,
    hotwords_file: Annotated[
        Path | None, typer.Option(help="File with one hot word per line; beam search only.")
    ] = None,
    hotwords_score: Annotated[float, typer.Option(help="Bonus per hot-word token.")] = 1.5,
    lm: LmOption = None,
    lm_scale: LmScaleOption = DEFAULT_LM_SCALE,
    int8: Annotated[bool, typer.Option(help="Use the *.int8.onnx files.")] = False,
    max_segment_s: Annotated[float, typer.Option(help="Longest VAD segment (s).")] = 20.0,
    max_batch_size: Annotated[int, typer.Option(help="Segments decoded together.")] = 32,
    output: Annotated[
        str,
        typer.Option("--format", help="json (one line per file) or text (a line per sentence)."),
    ] = "json",
) -> None:
    """Transcribe files; print one JSON line per file:
    {"file", "text", "sentences": [{"leg", "start_ms", "end_ms", "text"}], "duration_s", "rtf"}.
    In 2-channel files leg 0 is the agent and leg 1 the caller."""
    import json

    from serving.engine.offline import Transcriber
    from serving.engine.recognizer import Recognizer
    from serving.engine.vad import VadOptions

    if output not in ("json", "text"):
        raise typer.BadParameter("use json or text", param_hint="--format")
    words = _read_hotwords(hotwords, hotwords_file)
    if words and decoding_method != "modified_beam_search":
        raise typer.BadParameter(
            "hot words need --decoding-method modified_beam_search", param_hint="--hotword"
        )
    if lm is not None and decoding_method != "modified_beam_search":
        raise typer.BadParameter(
            "a language model needs --decoding-method modified_beam_search", param_hint="--lm"
        )
    if blank_penalty < 0:
        raise typer.BadParameter("must be 0 or more", param_hint="--blank-penalty")
    if lm is not None and not lm.is_file():
        raise typer.BadParameter(
            f"{lm} does not exist; build one with `hotline-asr lm build`", param_hint="--lm"
        )
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise typer.BadParameter(f"no such file(s): {', '.join(missing)}", param_hint="FILES")
    try:
        rec = Recognizer.from_folder(
            model,
            num_threads=num_threads,
            decoding_method=decoding_method,
            beam=beam,
            blank_penalty=blank_penalty,
            hotwords=words,
            hotwords_score=hotwords_score,
            int8=int8,
            max_batch_size=max_batch_size,
            lm=lm,
            lm_scale=lm_scale,
        )
    except (FileNotFoundError, ValueError) as e:
        raise typer.BadParameter(str(e), param_hint="--model") from e
    transcriber = Transcriber(rec, VadOptions(max_segment_s=max_segment_s))
    for f in files:
        result = transcriber.transcribe_file(f)
        if output == "json":
            typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
        else:
            typer.echo(format_text(result))


def format_text(result) -> str:
    """A readable transcript: one line per sentence with its leg and times, then the RTF."""
    legs = {s.leg for s in result.sentences}
    names = {0: "坐席 agent", 1: "市民 caller"} if legs - {0} else {0: "mono"}
    lines = [f"{result.file}  ({result.duration_s:.1f} s)"]
    for s in result.sentences:
        lines.append(
            f"  [{names.get(s.leg, s.leg)}] {_clock(s.start_ms)} - {_clock(s.end_ms)}  {s.text}"
        )
    lines.append(f"  RTF {result.rtf:.3f}")
    return "\n".join(lines)


def _clock(ms: int) -> str:
    return f"{ms // 60000:02d}:{ms % 60000 / 1000:06.3f}"
