"""``hotline-asr text normalize`` and ``hotline-asr text desensitize``: line filters on stdin."""

from __future__ import annotations

import io
import sys
from typing import TextIO

import typer

_WITH_IDS = typer.Option(
    False,
    "--with-ids",
    help="Lines are Kaldi-style '<utt_id> <text>': keep the first field as it is.",
)


def _utf8_streams() -> tuple[TextIO, TextIO]:
    """stdin and stdout as UTF-8 text, whatever the locale says."""
    for stream in (sys.stdin, sys.stdout):
        try:
            stream.reconfigure(encoding="utf-8")  # type: ignore[union-attr]
        except (AttributeError, io.UnsupportedOperation):
            pass
    return sys.stdin, sys.stdout


def _split_id(line: str, with_ids: bool) -> tuple[str, str]:
    """(prefix, text): the prefix is the utterance id with the blanks after it, exactly as read."""
    if not with_ids:
        return "", line
    head = line.lstrip()
    utt_id = head.split(maxsplit=1)[0] if head else ""
    rest = head[len(utt_id) :]
    text = rest.lstrip()
    return line[: len(line) - len(text)], text


def normalize(with_ids: bool = _WITH_IDS) -> None:
    """Read lines on stdin and print each one normalized (numbers read out, no punctuation)."""
    from serving.text.normalize import normalize as normalize_text

    stdin, stdout = _utf8_streams()
    for line in stdin:
        prefix, text = _split_id(line.rstrip("\r\n"), with_ids)
        prefix = prefix.strip() + " " if prefix.strip() else ""
        stdout.write(prefix + normalize_text(text) + "\n")
    stdout.flush()


def desensitize(
    with_ids: bool = _WITH_IDS,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not print counts on stderr."),
) -> None:
    """Read lines on stdin and print them with personal data masked.

    Phone, ID and bank card numbers, licence plates and e-mail addresses become placeholders
    such as <手机号>; the rest of each line is unchanged. Counts by type go to stderr."""
    from serving.text.desensitize import PLACEHOLDERS
    from serving.text.desensitize import desensitize as desensitize_text

    stdin, stdout = _utf8_streams()
    totals: dict[str, int] = {}
    lines = masked_lines = 0
    for line in stdin:
        body = line.rstrip("\r\n")
        ending = line[len(body) :]
        prefix, text = _split_id(body, with_ids)
        result = desensitize_text(text)
        stdout.write(prefix + result.text + ending)
        lines += 1
        masked_lines += bool(result.spans)
        for kind, n in result.counts.items():
            totals[kind] = totals.get(kind, 0) + n
    stdout.flush()
    if quiet:
        return
    rows = [f"{'type':<10} {'count':>6}  placeholder"]
    rows += [f"{k:<10} {totals.get(k, 0):>6}  {tag}" for k, tag in PLACEHOLDERS.items()]
    rows.append(f"{lines} lines read, {masked_lines} with masked items")
    typer.echo("\n".join(rows), err=True)
