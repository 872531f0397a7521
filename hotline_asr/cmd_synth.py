"""`hotline-asr data synth|render-call`: synthetic hotline speech from espeak-ng."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer


def synth(
    hours: Annotated[float, typer.Option(help="Hours of audio to plan (all splits together).")],
    out: Annotated[Path, typer.Option(help="Corpus folder; gets train/, dev/, test/ in it.")],
    seed: Annotated[int, typer.Option(help="Seed: same seed, same texts and audio bytes.")] = 0,
    jobs: Annotated[int, typer.Option(help="Worker processes.")] = os.cpu_count() or 1,
    channel: Annotated[
        str, typer.Option(help="telephone (8 kHz G.711) | clean (16 kHz) | mixed (85% phone)")
    ] = "mixed",
    audio_format: Annotated[str, typer.Option("--format", help="flac | wav")] = "flac",
    word_fraction: Annotated[
        float, typer.Option(help="Share of jieba-word sentences (character coverage).")
    ] = 0.3,
    tone_range: Annotated[
        str | None,
        typer.Option(
            help="LOW:HIGH, e.g. 150:200: widen each utterance's pitch range to a % of espeak's "
            "own, drawn per utterance, so tones can be heard out of context (espeak's own move "
            "5-19 Hz). Same seed, same texts, voices and channels as without it."
        ),
    ] = None,
    splits: Annotated[
        str,
        typer.Option(
            help="Comma-separated splits to render, e.g. test: only that split of the corpus "
            "--hours plans (same seed, same utterances), for more held-out evidence."
        ),
    ] = "train,dev,test",
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Generate a Kaldi-style synthetic corpus (resumable: existing audio files are kept)."""
    from training.synth.generate import SynthOptions, generate_corpus

    try:
        span = _parse_range(tone_range) if tone_range is not None else None
        options = SynthOptions(
            hours=hours, seed=seed, channel=channel, audio_format=audio_format,
            word_fraction=word_fraction, tone_range=span,
            splits=tuple(x.strip() for x in splits.split(",") if x.strip()),
        )  # fmt: skip
        options.check()
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(code=1) from None
    summary = generate_corpus(options, out, jobs=max(1, jobs), progress=progress)
    for split, n in summary.utterances.items():
        typer.echo(f"{split}: {n} utterances, {summary.hours[split]:.3f} h")
    typer.echo(
        f"wrote {out}: {summary.synthesized} utterances synthesized "
        f"({summary.synthesized_hours:.3f} h), {summary.skipped} already there, "
        f"{summary.wall_seconds:.1f} s"
    )
    if summary.synthesized_hours > 0:
        rate = summary.synthesized_hours / (summary.wall_seconds / 3600.0)
        typer.echo(f"speed: {rate:.1f} audio hours per wall hour with {jobs} jobs")


def render_call(
    out: Annotated[Path, typer.Option(help="Folder for <id>.stereo.wav, .mono.wav, .rttm, .json")],
    seed: Annotated[int, typer.Option(help="Seed of the call (script, voices, channels).")] = 0,
    call_id: Annotated[str | None, typer.Option(help="File stem; default call<seed>.")] = None,
) -> None:
    """Render one two-party call: stereo (ch0 agent, ch1 caller) and mono 8 kHz, RTTM, JSON."""
    from training.synth.calls import render_call as render
    from training.synth.calls import write_call

    call = render(seed, call_id or f"call{seed}")
    paths = write_call(call, out)
    typer.echo(f"{call.duration:.1f} s, {len(call.turns)} turns")
    for kind, path in paths.items():
        typer.echo(f"{kind}: {path}")


def _parse_range(text: str) -> tuple[int, int]:
    try:
        low, high = (int(x) for x in text.split(":"))
    except ValueError:
        raise ValueError(
            f"--tone-range wants LOW:HIGH in percent, such as 150:200; got {text!r}"
        ) from None
    return low, high
