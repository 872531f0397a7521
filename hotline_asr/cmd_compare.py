"""``hotline-asr compare``: is model B really better than model A on the same data?"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from hotline_asr.errors import fail


def _read(path: Path) -> dict:
    if not path.is_file():
        raise fail(f"{path} not found; write it with `hotline-asr eval ... --output {path}`")
    try:
        data = json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as e:
        raise fail(
            f"{path} is not JSON ({e}); give a report from `hotline-asr eval --output`"
        ) from None
    if not isinstance(data, dict):
        raise fail(f"{path} holds no eval report; give a report from `hotline-asr eval --output`")
    return data


def compare(
    a: Annotated[Path, typer.Argument(help="Eval report of model A (`eval --output A.json`).")],
    b: Annotated[Path, typer.Argument(help="Eval report of model B, on the same utterances.")],
    level: Annotated[float, typer.Option(help="Interval coverage, 0-1.")] = 0.95,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the resampling.")] = 0,
    json_: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
) -> None:
    """Paired bootstrap over utterances: B's CER minus A's, its interval, and how often B wins.
    A difference whose interval includes 0 is not shown by this data."""
    from training.significance import compare_reports

    ra, rb = _read(a), _read(b)
    try:
        result = compare_reports(ra, rb, level, resamples, seed, names=(str(a), str(b)))
    except ValueError as e:
        raise fail(str(e)) from None
    if json_:
        typer.echo(json.dumps({"a": str(a), "b": str(b), **result.to_dict()}, indent=2))
    else:
        typer.echo(result.format(ra.get("model", str(a)), rb.get("model", str(b))))
