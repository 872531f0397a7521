"""Transcripts on their way in: ``normalize()`` then ``desensitize()`` (serving.text), then a
check that what is left is usable for training: Chinese characters, Latin letters, spaces, and
desensitize's placeholders (``<手机号>`` ...). Utterances with placeholders are kept (their
audio still says the number); the supervision's ``custom["desensitized"]`` holds the counts so
that training can leave them out or map the placeholders to a token.

``keep_numbers=True`` is for generated corpora only, whose numbers are invented: the text keeps
the number as read out, and ``CleanText.kept_numbers`` counts what desensitize would have masked
(the supervision's ``custom["invented_numbers"]``), so that training can learn to write them."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

# CJK unified ideographs (basic block and extension A), compatibility ideographs, ASCII letters,
# the apostrophe of English words, and spaces between words.
_USABLE = re.compile(r"^[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaffA-Za-z' ]+$")
_LETTER = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaffA-Za-z]")


@dataclass(frozen=True)
class CleanText:
    text: str
    changed_by_normalize: bool
    desensitized: dict[str, int]
    # with keep_numbers: what desensitize would have masked, left in the text
    kept_numbers: dict[str, int] = field(default_factory=dict)


class TranscriptError(ValueError):
    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


def clean_transcript(raw: str, keep_numbers: bool = False) -> CleanText:
    """Normalize and desensitize ``raw`` (with ``keep_numbers``, only count what would be
    masked); raise :class:`TranscriptError` if nothing usable."""
    from serving.text.desensitize import PLACEHOLDERS, desensitize
    from serving.text.normalize import normalize

    if not raw.strip():
        raise TranscriptError("empty-transcript", "empty transcript")
    normalized = normalize(raw)
    result = desensitize(normalized)
    text = " ".join((normalized if keep_numbers else result.text).split())
    if not text:
        raise TranscriptError(
            "empty-transcript",
            f"nothing left of the transcript ({len(raw)} characters) after normalization",
        )
    bare = text
    for placeholder in PLACEHOLDERS.values():
        bare = bare.replace(placeholder, " ")
    has_placeholder = bare != text
    bare = bare.strip()
    if (bare and not _USABLE.match(bare)) or not (_LETTER.search(bare) or has_placeholder):
        bad = "".join(dict.fromkeys(c for c in bare if not _USABLE.match(c)))
        raise TranscriptError(
            "unusable-transcript",
            f"the transcript normalizes to {text!r}, which has characters other than "
            f"Chinese or Latin letters: {bad!r}",
        )
    counts = {k: int(v) for k, v in result.counts.items() if v}
    return CleanText(
        text=text,
        changed_by_normalize=normalized != raw,
        desensitized={} if keep_numbers else counts,
        kept_numbers=counts if keep_numbers else {},
    )


@dataclass
class TextTally:
    """Totals for the import report."""

    changed_by_normalize: int = 0
    desensitized: Counter = field(default_factory=Counter)
    kept_numbers: Counter = field(default_factory=Counter)

    def add(self, clean: CleanText) -> None:
        self.changed_by_normalize += int(clean.changed_by_normalize)
        self.desensitized.update(clean.desensitized)
        self.kept_numbers.update(clean.kept_numbers)
