"""Corpus statistics from supervision manifests: hours, utterances, speakers, characters,
distinct characters and, given a character list (e.g. a ``tokens.txt``), its coverage."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from training.data.manifests import find_corpora, find_splits, supervisions_path

# A desensitize placeholder such as <手机号> counts as one character; spaces do not count.
_TOKEN = re.compile(r"<[^<>\s]+>|\S")

__all__ = [
    "SplitStats",
    "corpus_stats",
    "format_table",
    "read_char_list",
    "split_stats",
    "to_json_tree",
]


@dataclass
class SplitStats:
    corpus: str
    split: str
    hours: float
    utterances: int
    speakers: int
    characters: int  # letters of the transcripts (a placeholder <...> is one), no spaces
    distinct_characters: int
    # With a character list: the share of the transcripts' characters that are in the list
    # (1 - OOV rate), and the share of the list's entries that occur in the transcripts.
    text_coverage: float | None = None
    list_coverage: float | None = None
    missing_characters: str | None = None  # the most frequent characters not in the list

    def to_dict(self) -> dict:
        return asdict(self)


def read_char_list(path: str | Path) -> set[str]:
    """Characters from a file with one entry per line; a second column (token id, as in
    sherpa-onnx's ``tokens.txt``) is ignored, and so are ``<...>`` symbols and multi-letter
    tokens (only single characters count)."""
    chars: set[str] = set()
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if fields and len(fields[0]) == 1:
            chars.add(fields[0])
    if not chars:
        raise ValueError(f"{path}: no single-character entries found")
    return chars


def split_stats(
    supervisions, corpus: str, split: str, char_list: set[str] | None = None
) -> SplitStats:
    """Statistics of one SupervisionSet (or any iterable of supervisions)."""
    seconds = 0.0
    utterances = 0
    speakers: set[str] = set()
    counts: Counter[str] = Counter()
    for s in supervisions:
        seconds += s.duration
        utterances += 1
        if s.speaker:
            speakers.add(s.speaker)
        counts.update(_TOKEN.findall(s.text or ""))
    total = sum(counts.values())
    st = SplitStats(
        corpus=corpus,
        split=split,
        hours=seconds / 3600,
        utterances=utterances,
        speakers=len(speakers),
        characters=total,
        distinct_characters=len(counts),
    )
    if char_list is not None:
        covered = sum(n for c, n in counts.items() if c in char_list)
        st.text_coverage = covered / total if total else 0.0
        st.list_coverage = len(char_list & counts.keys()) / len(char_list)
        missing = [c for c, _ in counts.most_common() if c not in char_list]
        st.missing_characters = "".join(missing[:20])
    return st


def corpus_stats(
    manifests: str | Path = "data/manifests",
    corpus: str | None = None,
    char_list: set[str] | None = None,
) -> list[SplitStats]:
    """One :class:`SplitStats` per split of ``corpus`` (or of every corpus in ``manifests``)."""
    from lhotse import load_manifest_lazy

    manifests = Path(manifests)
    corpora = [corpus] if corpus else find_corpora(manifests)
    if not corpora:
        raise FileNotFoundError(f"no *_supervisions_<split>.jsonl.gz manifests in {manifests}")
    out = []
    for name in corpora:
        splits = find_splits(manifests, name, "supervisions")
        if not splits:
            raise FileNotFoundError(
                f"no {name}_supervisions_<split>.jsonl.gz in {manifests}; "
                "run `hotline-asr data import` first"
            )
        for split in splits:
            sups = load_manifest_lazy(supervisions_path(manifests, name, split))
            out.append(split_stats(sups, name, split, char_list))
    return out


def to_json_tree(rows: list[SplitStats]) -> dict[str, dict[str, dict]]:
    """``{corpus: {split: {hours: ..., utterances: ...}}}`` (nested objects, as ``dvc metrics``
    reads them)."""
    tree: dict[str, dict[str, dict]] = {}
    for r in rows:
        d = r.to_dict()
        corpus, split = d.pop("corpus"), d.pop("split")
        tree.setdefault(corpus, {})[split] = d
    return tree


def format_table(rows: list[SplitStats]) -> str:
    """A plain-text table, one line per split."""
    headers = ["corpus", "split", "hours", "utts", "speakers", "chars", "distinct"]
    with_list = any(r.text_coverage is not None for r in rows)
    if with_list:
        headers += ["text cov.", "list cov.", "top missing"]
    table = [headers]
    for r in rows:
        cells = [
            r.corpus,
            r.split,
            f"{r.hours:.3f}",
            str(r.utterances),
            str(r.speakers),
            str(r.characters),
            str(r.distinct_characters),
        ]
        if with_list:
            cells += [
                f"{r.text_coverage:.2%}" if r.text_coverage is not None else "-",
                f"{r.list_coverage:.2%}" if r.list_coverage is not None else "-",
                r.missing_characters or "",
            ]
        table.append(cells)

    def width(s: str) -> int:  # CJK characters take two columns in a terminal
        return sum(2 if ord(c) > 0x2E80 else 1 for c in s)

    widths = [max(width(row[i]) for row in table) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(table):
        cells = []
        for i, cell in enumerate(row):
            pad = " " * (widths[i] - width(cell))
            cells.append(cell + pad if i < 2 or i == len(row) - 1 and with_list else pad + cell)
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
