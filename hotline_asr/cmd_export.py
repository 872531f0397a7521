"""`hotline-asr export`: a checkpoint to sherpa-onnx-compatible streaming zipformer2 ONNX files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from training.served import SERVED_CHUNK_SIZE, SERVED_LEFT_CONTEXT


def export(
    model: Annotated[
        Path,
        typer.Argument(
            help="Our model file, or an icefall epoch-*.pt with hyper-params.json beside it."
        ),
    ],
    out_dir: Annotated[Path, typer.Argument(help="Folder for encoder/decoder/joiner .onnx.")],
    chunk_size: Annotated[
        int, typer.Option(help="Chunk in 50 Hz frames (after encoder_embed), e.g. 16, 32, 64.")
    ] = SERVED_CHUNK_SIZE,
    left_context: Annotated[
        int, typer.Option(help="Left context in 50 Hz frames, e.g. 64, 128, 256.")
    ] = SERVED_LEFT_CONTEXT,
    int8: Annotated[
        bool, typer.Option("--int8/--no-int8", help="Also write dynamically quantized *.int8.onnx.")
    ] = True,
    opset: Annotated[int, typer.Option(help="ONNX opset version.")] = 13,
    tokens: Annotated[
        Path | None,
        typer.Option(help="tokens.txt; default: the one in MODEL, else tokens.txt beside it."),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check/--no-check",
            help="Run torch streaming and ONNX on the same random features and compare.",
        ),
    ] = True,
    threads: Annotated[int, typer.Option(help="torch threads.")] = 1,
) -> None:
    """Export a streaming transducer to encoder.onnx, decoder.onnx, joiner.onnx and tokens.txt."""
    import torch

    from training.export import ExportOptions, export_transducer, load_for_export

    torch.set_num_threads(threads)
    options = ExportOptions(
        chunk_size=chunk_size, left_context=left_context, int8=int8, opset=opset
    )
    try:
        net, table = load_for_export(model, tokens)
        result = export_transducer(net, out_dir, table, options)
    except (FileNotFoundError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(code=1) from None
    files = [result.encoder, result.decoder, result.joiner, result.tokens, *result.int8.values()]
    for f in files:
        typer.echo(f"{f}  {f.stat().st_size:,} bytes")
    meta = result.encoder_metadata
    typer.echo(
        f"exported in {result.seconds:.1f} s: T={meta['T']}, "
        f"decode_chunk_len={meta['decode_chunk_len']}, left_context_len={meta['left_context_len']}"
    )
    if check:
        from training.export_check import check_export

        report = check_export(net, out_dir)
        typer.echo(report.table())
        if not report.ok:
            typer.echo("error: the ONNX files do not match the torch model (see above)", err=True)
            raise typer.Exit(code=1)
