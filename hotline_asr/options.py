"""Options that more than one sub-command takes, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

LmOption = Annotated[
    Path | None,
    typer.Option(help="Character n-gram ARPA fused into beam search (`hotline-asr lm build`)."),
]
LmScaleOption = Annotated[float, typer.Option(help="Weight of the LM's context gain.")]
