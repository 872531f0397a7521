"""Token table in sherpa-onnx / icefall ``tokens.txt`` form: one ``<token> <id>`` per line,
``<blk>`` 0, ``<sos/eos>`` 1, ``<unk>`` 2, then one token per line. The hotline models use
single characters (Chinese characters and upper-case Latin letters) as tokens."""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["BLANK", "SOS_EOS", "UNK", "TokenTable"]

BLANK = "<blk>"
SOS_EOS = "<sos/eos>"
UNK = "<unk>"
_SPECIALS = (BLANK, SOS_EOS, UNK)


class TokenTable:
    """A bijection between tokens and ids, ids ``0..len-1``.

    ``encode`` splits text into characters (whitespace skipped; unknown characters -> ``<unk>``);
    ``decode`` joins tokens, dropping ``<blk>``, ``<sos/eos>`` and ``<unk>`` and turning the
    SentencePiece word marker ``▁`` into a space.
    """

    def __init__(self, tokens: Sequence[str]) -> None:
        tokens = list(tokens)
        ids: dict[str, int] = {}
        for i, tok in enumerate(tokens):
            if not tok or any(c.isspace() for c in tok):
                raise ValueError(f"token {i} is {tok!r}: tokens must be non-empty, without spaces")
            if tok in ids:
                raise ValueError(f"token {tok!r} appears twice (ids {ids[tok]} and {i})")
            ids[tok] = i
        for special in (BLANK, UNK):
            if special not in ids:
                raise ValueError(
                    f"the token table has no {special}; sherpa-style tables start with "
                    f"{BLANK} 0, {SOS_EOS} 1, {UNK} 2"
                )
        self._tokens = tokens
        self._ids = ids

    # ---- construction / io

    @classmethod
    def load(cls, path: str | Path) -> TokenTable:
        """Read a ``tokens.txt`` (``token id`` per line; ids must be 0..N-1, in any order)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no token table at {path}")
        by_id: dict[int, str] = {}
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                raise ValueError(f"{path}:{lineno}: expected '<token> <id>', got {line!r}")
            tok, idx = parts[0], int(parts[1])
            if idx in by_id:
                raise ValueError(f"{path}:{lineno}: id {idx} already used by {by_id[idx]!r}")
            by_id[idx] = tok
        if sorted(by_id) != list(range(len(by_id))):
            missing = sorted(set(range(len(by_id))) - set(by_id))[:5]
            raise ValueError(
                f"{path}: ids must be 0..{len(by_id) - 1} without gaps; missing {missing}"
            )
        return cls([by_id[i] for i in range(len(by_id))])

    @classmethod
    def from_texts(
        cls, texts: Iterable[str], min_count: int = 1, extra_chars: str = ""
    ) -> TokenTable:
        """Build a character table from (normalized) texts: the specials, then every character
        seen at least ``min_count`` times plus ``extra_chars``, most frequent first, ties by code
        point, so the same texts always give the same table."""
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(c for c in text if not c.isspace())
        chars = {c for c, n in counts.items() if n >= min_count}
        chars.update(c for c in extra_chars if not c.isspace())
        chars.difference_update(_SPECIALS)
        ordered = sorted(chars, key=lambda c: (-counts.get(c, 0), c))
        return cls([*_SPECIALS, *ordered])

    def save(self, path: str | Path) -> None:
        """Write ``tokens.txt`` atomically (a temporary file in the same folder, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
                f.writelines(f"{tok} {i}\n" for i, tok in enumerate(self._tokens))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # ---- lookups

    @property
    def blank_id(self) -> int:
        return self._ids[BLANK]

    @property
    def unk_id(self) -> int:
        return self._ids[UNK]

    @property
    def sos_eos_id(self) -> int | None:
        return self._ids.get(SOS_EOS)

    @property
    def tokens(self) -> list[str]:
        return list(self._tokens)

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._ids

    def __getitem__(self, key: str | int) -> int | str:
        """``table["好"]`` -> id, ``table[5]`` -> token."""
        if isinstance(key, str):
            return self._ids[key]
        return self._tokens[key]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TokenTable) and self._tokens == other._tokens

    def __repr__(self) -> str:
        return f"TokenTable({len(self)} tokens)"

    # ---- text <-> ids

    def encode(self, text: str) -> list[int]:
        unk = self.unk_id
        return [self._ids.get(c, unk) for c in text if not c.isspace()]

    def decode(self, ids: Iterable[int]) -> str:
        skip = {self._ids.get(s) for s in _SPECIALS}
        n = len(self._tokens)
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < n:
                raise IndexError(f"token id {i} is outside this table (0..{n - 1})")
            if i not in skip:
                out.append(self._tokens[i])
        return "".join(out).replace("▁", " ").strip()
