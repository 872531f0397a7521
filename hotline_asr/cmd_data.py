"""`hotline-asr data import|fbank|stats`: corpora into Lhotse manifests, features, statistics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from hotline_asr.errors import fail


def _split_list(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    out = [s for v in values for s in v.split(",") if s]
    return out or None


def import_(
    src: Annotated[Path, typer.Argument(help="Corpus folder (or lhotse manifest folder).")],
    corpus: Annotated[str, typer.Option(help="Corpus name used in the manifest file names.")],
    format: Annotated[str, typer.Option("--format", help="kaldi | folder | lhotse")] = "kaldi",
    out: Annotated[Path, typer.Option(help="Output root; manifests go to OUT/manifests.")] = Path(
        "data"
    ),
    skip_bad: Annotated[
        bool,
        typer.Option(
            "--skip-bad",
            help="Skip bad items and list them in the import report instead of failing.",
        ),
    ] = False,
    splits: Annotated[
        list[str] | None,
        typer.Option(help="Splits to import (repeat or comma-separate); default: all found."),
    ] = None,
    sample_rate: Annotated[
        int | None, typer.Option(help="Sample rate every audio file must have, in Hz.")
    ] = None,
    jobs: Annotated[int, typer.Option(help="Threads for decoding audio.")] = 2,
    keep_numbers: Annotated[
        bool,
        typer.Option(
            "--keep-numbers",
            help="A `data synth` corpus only (its numbers are invented): keep read-out phone "
            "and ID numbers in the transcripts so training can learn to write them; refused "
            "without the corpus's synth.json.",
        ),
    ] = False,
) -> None:
    """Import a corpus into Lhotse manifests (transcripts normalized and desensitized)."""
    from training.data.importers import import_corpus
    from training.data.manifests import import_report_path
    from training.data.problems import CorpusError

    try:
        reports = import_corpus(
            src,
            corpus,
            fmt=format,
            out_dir=out,
            splits=_split_list(splits),
            skip_bad=skip_bad,
            sample_rate=sample_rate,
            jobs=jobs,
            keep_numbers=keep_numbers,
        )
    except (CorpusError, FileNotFoundError, ValueError) as e:
        raise fail(str(e)) from None
    for r in reports:
        desens = ", ".join(f"{k} {v}" for k, v in r.desensitized.items()) or "none"
        if r.numbers_kept:
            desens += "; invented numbers kept: " + ", ".join(
                f"{k} {v}" for k, v in r.numbers_kept.items()
            )
        typer.echo(
            f"{corpus}/{r.split}: {r.utterances} utterances, {r.hours:.3f} h, "
            f"{r.speakers} speakers, {len(r.skipped)} skipped, "
            f"{r.changed_by_normalize} transcripts changed by normalization, "
            f"desensitized: {desens} -> {import_report_path(out / 'manifests', corpus, r.split)}"
        )


def fbank(
    corpus: Annotated[str, typer.Option(help="Corpus name, as given to `data import`.")],
    manifests: Annotated[Path, typer.Option(help="Folder with the imported manifests.")] = Path(
        "data/manifests"
    ),
    out: Annotated[Path, typer.Option(help="Folder for features and cut manifests.")] = Path(
        "data/fbank"
    ),
    jobs: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    splits: Annotated[
        list[str] | None, typer.Option(help="Splits (repeat or comma-separate); default: all.")
    ] = None,
) -> None:
    """Compute 80-dim fbank features for every cut (lilcom chunky files)."""
    import torch

    from training.data.fbank import compute_fbank_for_corpus

    torch.set_num_threads(1)  # features use kaldi-native-fbank; keep torch from oversubscribing
    try:
        results = compute_fbank_for_corpus(
            corpus, manifests=manifests, out=out, jobs=jobs, splits=_split_list(splits)
        )
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        raise fail(str(e)) from None
    for r in results:
        speed = r.hours * 3600 / r.seconds if r.seconds else float("inf")
        typer.echo(
            f"{corpus}/{r.split}: {r.cuts} cuts, {r.frames} frames, {r.hours:.3f} h in "
            f"{r.seconds:.1f} s ({speed:.0f}x real time) -> {r.manifest}"
        )


def stats(
    corpus: Annotated[
        str | None, typer.Option(help="Corpus name; default: every corpus found.")
    ] = None,
    manifests: Annotated[Path, typer.Option(help="Folder with the manifests.")] = Path(
        "data/manifests"
    ),
    chars: Annotated[
        Path | None,
        typer.Option(help="Character list (one per line, or a tokens.txt) to measure coverage."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON {corpus: {split: {...}}} instead of a table.")
    ] = False,
) -> None:
    """Hours, utterances, speakers and characters per split."""
    from training.data.stats import corpus_stats, format_table, read_char_list, to_json_tree

    try:
        char_list = read_char_list(chars) if chars else None
        rows = corpus_stats(manifests, corpus, char_list)
    except (FileNotFoundError, ValueError) as e:
        raise fail(str(e)) from None
    if as_json:
        typer.echo(json.dumps(to_json_tree(rows), ensure_ascii=False, indent=2))
    else:
        typer.echo(format_table(rows))
