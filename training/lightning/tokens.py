"""Build a character ``tokens.txt`` (sherpa-onnx format) for a recipe.

Tokens: ``<blk>`` 0, ``<sos/eos>`` 1, ``<unk>`` 2, then every Han character of the training
texts (most frequent first), then those of the ``common_chars`` most common Han characters
that the texts lack, so that words outside the corpus still have a token. The common
characters are the ones the synthetic corpus is built to cover
(:func:`training.synth.textgen.common_chars`, ranked by jieba's word frequencies).
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

SPECIALS = ("<blk>", "<sos/eos>", "<unk>")


def is_han(ch: str) -> bool:
    o = ord(ch)
    return 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF


def texts_from(path: Path) -> Iterable[str]:
    """Transcripts from a Lhotse cut/supervision manifest (``.jsonl[.gz]``), a Kaldi ``text``
    file (``utt_id transcript``) or a plain text file (one sentence per line)."""
    name = path.name
    if name.endswith((".jsonl.gz", ".jsonl")):
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as f:
            for line in f:
                item = json.loads(line)
                sups = item.get("supervisions")
                if sups is None:
                    sups = [item]
                for s in sups:
                    if s.get("text"):
                        yield s["text"]
        return
    kaldi = name == "text"
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if kaldi:
                line = line.split(maxsplit=1)[1] if " " in line else ""
            if line:
                yield line


def build_token_table(sources: list[Path], out: Path, common_chars: int = 3500) -> list[str]:
    """Write ``out`` (``<symbol> <id>`` per line) and return the token list."""
    counts: Counter[str] = Counter()
    for src in sources:
        if not Path(src).is_file():
            raise FileNotFoundError(f"token source {src} is missing (a manifest or text file)")
        for text in texts_from(Path(src)):
            counts.update(ch for ch in text if is_han(ch))
    corpus = [ch for ch, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    seen = set(corpus)
    from training.synth.textgen import common_chars as ranked_common

    extra = [ch for ch in ranked_common(common_chars) if ch not in seen]
    from serving.tokens import TokenTable

    table = TokenTable([*SPECIALS, *corpus, *extra])
    table.save(out)
    return table.tokens
