"""Character error rate scoring with per-slice tables and hot-word recall (torch-free).

Both reference and hypothesis go through ``serving.text.normalize`` first, so punctuation,
spacing and the way numbers were written do not count as errors.

    report = score([ScoredUtt("u1", "我要投诉", "我要投树", {"voice": "f01"})])
    print(report.format_table())
    report.to_json()
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from serving.text.normalize import normalize

__all__ = [
    "AlignOp",
    "ErrorCounts",
    "ScoreReport",
    "ScoredUtt",
    "UttResult",
    "align",
    "format_alignment",
    "hotword_recall",
    "score",
]


@dataclass(frozen=True)
class AlignOp:
    """One step of an alignment: ``op`` is "ok", "sub", "del" (ref char missing from the
    hypothesis) or "ins" (extra hyp char); ``ref``/``hyp`` are the characters ("" if none)."""

    op: str
    ref: str
    hyp: str


def align(ref: str, hyp: str) -> list[AlignOp]:
    """Minimum-edit-distance alignment of two strings, character by character (unit costs).
    Among equal-cost alignments, substitutions come first and insertions/deletions last
    (``align("我要投诉", "我要投树啊")``: 诉→树, then +啊)."""
    n, m = len(ref), len(hyp)
    # cost[i][j]: edits to turn ref[:i] into hyp[:j]
    cost = [list(range(m + 1))]
    for i in range(1, n + 1):
        prev = cost[-1]
        row = [i] + [0] * m
        r = ref[i - 1]
        for j in range(1, m + 1):
            diag = prev[j - 1] + (r != hyp[j - 1])
            up = prev[j] + 1
            left = row[j - 1] + 1
            row[j] = min(diag, up, left)
        cost.append(row)
    ops: list[AlignOp] = []
    i, j = n, m
    while i > 0 or j > 0:
        here = cost[i][j]
        if i > 0 and j > 0 and ref[i - 1] == hyp[j - 1] and here == cost[i - 1][j - 1]:
            ops.append(AlignOp("ok", ref[i - 1], hyp[j - 1]))
            i, j = i - 1, j - 1
        elif j > 0 and here == cost[i][j - 1] + 1:
            ops.append(AlignOp("ins", "", hyp[j - 1]))
            j -= 1
        elif i > 0 and here == cost[i - 1][j] + 1:
            ops.append(AlignOp("del", ref[i - 1], ""))
            i -= 1
        else:
            ops.append(AlignOp("sub", ref[i - 1], hyp[j - 1]))
            i, j = i - 1, j - 1
    ops.reverse()
    return ops


def format_alignment(ops: Iterable[AlignOp]) -> str:
    """One-line view of an alignment: ``我要投(诉→树)[-了][+啊]``."""
    out = []
    for op in ops:
        if op.op == "ok":
            out.append(op.ref)
        elif op.op == "sub":
            out.append(f"({op.ref}→{op.hyp})")
        elif op.op == "del":
            out.append(f"[-{op.ref}]")
        else:
            out.append(f"[+{op.hyp}]")
    return "".join(out)


@dataclass
class ErrorCounts:
    """Error counts over one or more utterances; ``del_`` is the number of deletions."""

    ref_chars: int = 0
    sub: int = 0
    del_: int = 0
    ins: int = 0
    utts: int = 0

    @classmethod
    def from_ops(cls, ops: Iterable[AlignOp]) -> ErrorCounts:
        c = cls(utts=1)
        for op in ops:
            if op.op != "ins":
                c.ref_chars += 1
            if op.op == "sub":
                c.sub += 1
            elif op.op == "del":
                c.del_ += 1
            elif op.op == "ins":
                c.ins += 1
        return c

    @property
    def errors(self) -> int:
        return self.sub + self.del_ + self.ins

    @property
    def cer(self) -> float:
        """errors / reference characters (an empty reference counts as one character)."""
        return self.errors / max(self.ref_chars, 1)

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        return ErrorCounts(
            self.ref_chars + other.ref_chars,
            self.sub + other.sub,
            self.del_ + other.del_,
            self.ins + other.ins,
            self.utts + other.utts,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "utts": self.utts,
            "ref_chars": self.ref_chars,
            "sub": self.sub,
            "del": self.del_,
            "ins": self.ins,
            "errors": self.errors,
            "cer": round(self.cer, 6),
        }


@dataclass
class ScoredUtt:
    """One utterance to score: id, reference, hypothesis and slice labels such as
    ``{"voice": "f01", "channel": "phone", "has_hotword": "yes"}``."""

    id: str
    ref: str
    hyp: str
    slices: dict[str, str] = field(default_factory=dict)


@dataclass
class UttResult:
    """A scored utterance: normalized texts, counts and the alignment."""

    id: str
    ref: str
    hyp: str
    counts: ErrorCounts
    ops: list[AlignOp]
    slices: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ref": self.ref,
            "hyp": self.hyp,
            "alignment": format_alignment(self.ops),
            **self.counts.to_dict(),
            "slices": dict(self.slices),
        }


@dataclass
class ScoreReport:
    overall: ErrorCounts
    slices: dict[str, dict[str, ErrorCounts]]
    worst: list[UttResult]

    @property
    def cer(self) -> float:
        return self.overall.cer

    def to_dict(self) -> dict[str, Any]:
        return {
            "overall": self.overall.to_dict(),
            "slices": {
                name: {value: c.to_dict() for value, c in table.items()}
                for name, table in self.slices.items()
            },
            "worst": [u.to_dict() for u in self.worst],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    def format_table(self) -> str:
        """A plain-text summary for the terminal: overall CER, one table per slice, the worst
        utterances with their alignments."""
        o = self.overall
        lines = [
            f"CER {100 * o.cer:.2f}%  ({o.utts} utts, {o.ref_chars} ref chars: "
            f"{o.sub} sub, {o.del_} del, {o.ins} ins)"
        ]
        for name, table in self.slices.items():
            width = max([_width(name), *(_width(v) for v in table)])
            lines.append("")
            lines.append(
                f"{_ljust(name, width)}  {'utts':>5}  {'chars':>6}  {'sub':>5}  {'del':>5}  "
                f"{'ins':>5}  {'CER':>7}"
            )
            for value, c in table.items():
                lines.append(
                    f"{_ljust(value, width)}  {c.utts:>5}  {c.ref_chars:>6}  {c.sub:>5}  {c.del_:>5}  "
                    f"{c.ins:>5}  {100 * c.cer:>6.2f}%"
                )
        if self.worst:
            lines.append("")
            lines.append("worst utterances")
            for u in self.worst:
                lines.append(
                    f"  {u.id}  {u.counts.errors}/{u.counts.ref_chars}  {format_alignment(u.ops)}"
                )
        return "\n".join(lines)


def _width(s: str) -> int:
    """Terminal columns taken by ``s`` (CJK characters take two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)


def _ljust(s: str, width: int) -> str:
    return s + " " * max(0, width - _width(s))


def _score_one(utt: ScoredUtt, normalize_text: bool) -> UttResult:
    ref = normalize(utt.ref) if normalize_text else utt.ref
    hyp = normalize(utt.hyp) if normalize_text else utt.hyp
    ops = align(ref, hyp)
    return UttResult(utt.id, ref, hyp, ErrorCounts.from_ops(ops), ops, dict(utt.slices))


def score(
    pairs: Iterable[ScoredUtt], worst_n: int = 10, normalize_text: bool = True
) -> ScoreReport:
    """Score utterances: overall counts, per-slice tables (``{slice: {value: ErrorCounts}}``,
    values sorted) and the ``worst_n`` utterances with most errors (ties: higher CER, then id)."""
    overall = ErrorCounts()
    slices: dict[str, dict[str, ErrorCounts]] = {}
    results: list[UttResult] = []
    for utt in pairs:
        r = _score_one(utt, normalize_text)
        results.append(r)
        overall = overall + r.counts
        for name, value in r.slices.items():
            table = slices.setdefault(name, {})
            key = str(value)
            table[key] = table.get(key, ErrorCounts()) + r.counts
    slices = {name: dict(sorted(t.items())) for name, t in sorted(slices.items())}
    worst = sorted(
        (r for r in results if r.counts.errors),
        key=lambda r: (-r.counts.errors, -r.counts.cer, r.id),
    )[:worst_n]
    return ScoreReport(overall, slices, worst)


def _found_in_alignment(ops: list[AlignOp], ref_start: int, length: int) -> bool:
    """True when ref[ref_start:ref_start+length] is matched char for char, with no insertion
    inside, by the aligned hypothesis."""
    first = last = None
    ref_pos = 0
    for k, op in enumerate(ops):
        if op.op == "ins":
            continue
        if ref_pos == ref_start:
            first = k
        if ref_pos == ref_start + length - 1:
            last = k
            break
        ref_pos += 1
    if first is None or last is None:
        return False
    span = ops[first : last + 1]
    return len(span) == length and all(op.op == "ok" for op in span)


def hotword_recall(
    pairs: Iterable[ScoredUtt | tuple[str, str]], hotwords: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """Per hot word: ``ref`` (occurrences in the normalized references), ``found`` (of those,
    how many the aligned hypothesis reproduces exactly), ``recall`` (found/ref, None if it never
    occurs) and ``hyp`` (occurrences in the hypotheses, to spot false alarms)."""
    terms = []
    for w in hotwords:
        t = normalize(w)
        if t and t not in terms:
            terms.append(t)
    stats = {t: {"ref": 0, "found": 0, "hyp": 0} for t in terms}
    for pair in pairs:
        ref_raw, hyp_raw = (pair.ref, pair.hyp) if isinstance(pair, ScoredUtt) else pair
        ref, hyp = normalize(ref_raw), normalize(hyp_raw)
        ops: list[AlignOp] | None = None
        for t in terms:
            stats[t]["hyp"] += hyp.count(t)
            start = ref.find(t)
            while start >= 0:
                if ops is None:
                    ops = align(ref, hyp)
                stats[t]["ref"] += 1
                stats[t]["found"] += _found_in_alignment(ops, start, len(t))
                start = ref.find(t, start + len(t))
    return {
        t: {**s, "recall": (s["found"] / s["ref"]) if s["ref"] else None} for t, s in stats.items()
    }
