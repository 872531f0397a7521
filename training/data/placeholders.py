"""Random stand-ins for desensitize's placeholders, for text-only training material.

A stored transcript says ``我姓董电话是<手机号>`` where the caller read out a number. Text models
built from such transcripts (the beam search's character n-gram) would otherwise never see a
number after 电话是, so the recogniser's own digits there look unlikely to them. A stand-in is a
random number of the placeholder's type, written as ``serving.text.normalize`` writes one read
out (digit by digit, 幺 for 1 in phone, card and plate numbers, 一 in ID numbers), so that
``desensitize`` masks it back into the same placeholder. It is drawn afresh, never recovered:
nothing of the original number survives desensitization.

    rng = random.Random(0)
    fill_placeholders("我姓董电话是<手机号>", rng)   # '我姓董电话是幺三七…' (11 digits)
"""

from __future__ import annotations

import random
import re

from serving.text.desensitize import PLACEHOLDERS
from serving.text.normalize import read_digits

__all__ = ["PLACEHOLDER_RE", "fill_placeholders", "standin"]

# any ``<...>`` placeholder, also one desensitize does not write (it then has no stand-in)
PLACEHOLDER_RE = re.compile(r"<[^<>]+>")
_KIND_OF = {v: k for k, v in PLACEHOLDERS.items()}
_PLATE_PREFIXES = ("沪A", "沪B", "沪C", "沪D", "苏E", "浙A")


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def standin(kind: str, rng: random.Random) -> str | None:
    """A random, read-out number of desensitize type ``kind`` (a key of ``PLACEHOLDERS``), or
    None for a type without one (e-mail addresses are not made up)."""
    if kind == "mobile":
        return read_digits("1" + rng.choice("3456789") + _digits(rng, 9))
    if kind == "landline":
        return read_digits("021" + rng.choice("2345678") + _digits(rng, 7))
    if kind == "id_card":
        region = rng.choice("1234568") + _digits(rng, 5)
        birth = f"{rng.randint(1940, 2008)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        return read_digits(region + birth + _digits(rng, 4), one="一")
    if kind == "bank_card":
        return read_digits("62" + _digits(rng, rng.choice((14, 17))))
    if kind == "plate":
        return rng.choice(_PLATE_PREFIXES) + read_digits(_digits(rng, 5))
    if kind in PLACEHOLDERS:
        return None
    raise ValueError(f"unknown placeholder type {kind!r}; known: {', '.join(PLACEHOLDERS)}")


def fill_placeholders(text: str, rng: random.Random) -> str | None:
    """``text`` with every placeholder replaced by a fresh stand-in; None when one of them has
    no stand-in (an e-mail, or a placeholder desensitize does not write)."""
    out: list[str] = []
    last = 0
    for m in PLACEHOLDER_RE.finditer(text):
        kind = _KIND_OF.get(m.group(0))
        value = standin(kind, rng) if kind is not None else None
        if value is None:
            return None
        out += [text[last : m.start()], value]
        last = m.end()
    return "".join(out) + text[last:]
