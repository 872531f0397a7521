"""Pinyin targets for the auxiliary CTC head: each Chinese character becomes two units,
its toneless syllable and its tone (``zhong`` ``1``; neutral tone is ``5``).

The syllable inventory is fixed (every reading in pypinyin's dictionary), so the head's size does
not depend on the corpus or the token table. Id 0 is the CTC blank.
"""

from __future__ import annotations

import functools
import re

BLANK = "<blk>"
UNK = "<unk>"
TONES = ("1", "2", "3", "4", "5")
_SPLIT = re.compile(r"^([a-zü]+?)([1-5])?$")


@functools.cache
def syllable_inventory() -> tuple[str, ...]:
    """All toneless syllables pypinyin knows (about 430), sorted."""
    from pypinyin.contrib.tone_convert import to_normal
    from pypinyin.pinyin_dict import pinyin_dict

    found = set()
    for readings in pinyin_dict.values():
        for p in readings.split(","):
            found.add(to_normal(p))
    return tuple(sorted(found))


class PinyinTargets:
    """Maps transcripts to pinyin-unit ids: ``<blk>`` 0, ``<unk>`` 1, tones, then syllables."""

    def __init__(self) -> None:
        self.units: list[str] = [BLANK, UNK, *TONES, *syllable_inventory()]
        self._ids = {u: i for i, u in enumerate(self.units)}

    @property
    def vocab_size(self) -> int:
        return len(self.units)

    def encode(self, text: str) -> list[int]:
        """Ids of ``syllable tone`` pairs for the Chinese characters in ``text`` (others dropped)."""
        from pypinyin import Style, pinyin

        out: list[int] = []
        unk = self._ids[UNK]
        for (syl,) in pinyin(text, style=Style.TONE3, neutral_tone_with_five=True, errors="ignore"):
            m = _SPLIT.match(syl)
            if m is None:
                out.append(unk)
                continue
            base, tone = m.group(1), m.group(2) or "5"
            out.append(self._ids.get(base, unk))
            out.append(self._ids[tone])
        return out

    def decode(self, ids: list[int]) -> list[str]:
        return [self.units[i] for i in ids]
