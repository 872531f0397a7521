"""``hotline-asr lm build``: a character n-gram language model for beam-search fusion."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from hotline_asr.errors import fail


def build(
    sources: Annotated[
        list[Path],
        typer.Argument(
            help="Transcripts: lhotse cut/supervision manifests (.jsonl[.gz]) or text files."
        ),
    ],
    out: Annotated[Path, typer.Option(help="ARPA file to write.")],
    order: Annotated[int, typer.Option(help="n-gram order (characters).")] = 4,
    skip_template: Annotated[
        list[str] | None,
        typer.Option(
            "--skip-template",
            help="Leave out supervisions with this custom.template_id (repeat; the synth "
            "corpus marks its random word lists W).",
        ),
    ] = None,
    kaldi_text: Annotated[
        bool,
        typer.Option("--kaldi-text", help="Text files are Kaldi `text`: drop the first field."),
    ] = False,
    fill_placeholders: Annotated[
        bool,
        typer.Option(
            help="Count a desensitized transcript with a random number of its type in place of "
            "each placeholder (<手机号> -> 幺三八…), so the LM knows a number follows 电话是; "
            "with --no-fill-placeholders such transcripts are left out (before the "
            "seventeenth session, the only way)."
        ),
    ] = True,
    seed: Annotated[int, typer.Option(help="Seed of the stand-in numbers.")] = 0,
) -> None:
    """Count transcripts into an interpolated Kneser-Ney character n-gram (ARPA) for
    `eval --lm` and `transcribe --lm`. Never build it from evaluation transcripts."""
    from training.lm import build_arpa, texts_from

    if order < 1:
        raise fail(f"--order must be 1 or more, got {order}")
    try:
        stats = build_arpa(
            texts_from(
                sources,
                skip_templates=skip_template or (),
                kaldi_text=kaldi_text,
                fill_seed=seed if fill_placeholders else None,
            ),
            out,
            order=order,
        )
    except (FileNotFoundError, ValueError) as e:
        raise fail(str(e)) from None
    typer.echo(json.dumps(stats.to_dict(), ensure_ascii=False))
