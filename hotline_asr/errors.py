"""How every sub-command reports a user error: one line on stderr, exit status 1."""

from __future__ import annotations

import typer


def fail(message: str) -> typer.Exit:
    """Print ``error: <message>`` to stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)
