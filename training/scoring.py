"""Character error rate scoring with per-slice tables and hot-word recall (torch-free).

Both reference and hypothesis go through ``serving.text.normalize`` first, so punctuation,
spacing and the way numbers were written do not count as errors, then through
``serving.text.desensitize``, as every transcript the project stores does: a reference that says
``<手机号>`` is matched by a hypothesis whose eleven digits desensitize to ``<手机号>``, and a
placeholder counts as one character on either side.

    report = score([ScoredUtt("u1", "我要投诉", "我要投树", {"voice": "f01"})])
    print(report.format_table())
    report.to_json()
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from serving.text.desensitize import PLACEHOLDERS, desensitize
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
    "pinyin_units",
    "score",
    "score_one",
    "scoring_units",
]


@dataclass(frozen=True)
class AlignOp:
    """One step of an alignment: ``op`` is "ok", "sub", "del" (ref char missing from the
    hypothesis) or "ins" (extra hyp char); ``ref``/``hyp`` are the characters ("" if none)."""

    op: str
    ref: str
    hyp: str


def align(ref: str | Sequence[str], hyp: str | Sequence[str]) -> list[AlignOp]:
    """Minimum-edit-distance alignment of two strings, character by character (unit costs), or
    of two sequences of units such as pinyin syllables.
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
class PinyinCounts:
    """Errors counted over pinyin syllables: ``toned`` (``zhong1`` vs ``zhong4`` is an error)
    and ``toneless`` (only the syllable counts). Characters read the same way are not errors
    here, so the three rates split an utterance's errors into sounds, tones and homophones."""

    toned: ErrorCounts = field(default_factory=ErrorCounts)
    toneless: ErrorCounts = field(default_factory=ErrorCounts)

    def __add__(self, other: PinyinCounts) -> PinyinCounts:
        return PinyinCounts(self.toned + other.toned, self.toneless + other.toneless)

    def to_dict(self) -> dict[str, Any]:
        return {"toned": self.toned.to_dict(), "toneless": self.toneless.to_dict()}


_TONE = re.compile(r"(?<=[a-zü])[1-5]$")  # the tone digit of a TONE3 syllable


def pinyin_units(text: str, tones: bool = True) -> list[str]:
    """Pinyin syllables of ``text`` (``zhong1``, neutral tone ``5``); any other character stays
    a unit of its own. pypinyin picks a polyphone's reading from the words around it, so a
    correct character next to a wrong one can, rarely, count as a syllable error too."""
    from pypinyin import Style, pinyin

    units = [
        u for (u,) in pinyin(text, style=Style.TONE3, neutral_tone_with_five=True, errors=list)
    ]
    return units if tones else _without_tones(units)


def _without_tones(units: list[str]) -> list[str]:
    return [_TONE.sub("", u) for u in units]


def _pinyin_counts(ref: str, hyp: str) -> PinyinCounts:
    r, h = pinyin_units(ref), pinyin_units(hyp)  # one pypinyin pass per text
    toned = ErrorCounts.from_ops(align(r, h))
    toneless = ErrorCounts.from_ops(align(_without_tones(r), _without_tones(h)))
    return PinyinCounts(toned, toneless)


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
    # with ``score(..., pinyin=True)``: errors over pinyin syllables, with and without tone
    pinyin: PinyinCounts | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "ref": self.ref,
            "hyp": self.hyp,
            "alignment": format_alignment(self.ops),
            **self.counts.to_dict(),
            "slices": dict(self.slices),
        }
        if self.pinyin is not None:
            out["pinyin"] = self.pinyin.to_dict()
        return out


@dataclass
class ScoreReport:
    overall: ErrorCounts
    slices: dict[str, dict[str, ErrorCounts]]
    worst: list[UttResult]
    # with ``score(..., pinyin=True)``: the same totals counted over pinyin syllables
    pinyin: PinyinCounts | None = None
    pinyin_slices: dict[str, dict[str, PinyinCounts]] | None = None
    # the overall CER's bootstrap interval over utterances (training.significance.CerInterval)
    interval: Any = None

    @property
    def cer(self) -> float:
        return self.overall.cer

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "overall": self.overall.to_dict(),
            "slices": _tables_to_dict(self.slices),
            "worst": [u.to_dict() for u in self.worst],
        }
        if self.interval is not None:
            out["interval"] = self.interval.to_dict()
        if self.pinyin is not None:
            out["pinyin"] = {
                "overall": self.pinyin.to_dict(),
                "slices": _tables_to_dict(self.pinyin_slices or {}),
            }
        return out

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    def format_table(self) -> str:
        """A plain-text summary for the terminal: overall CER, one table per slice, the worst
        utterances with their alignments. With pinyin counts, the syllable error rates with
        tone (``syl+tone``) and without (``syl``) follow the CER."""
        o = self.overall
        lines = [
            f"CER {100 * o.cer:.2f}%  ({o.utts} utts, {o.ref_chars} ref chars: "
            f"{o.sub} sub, {o.del_} del, {o.ins} ins)"
        ]
        if self.interval is not None:
            i = self.interval
            lines.append(
                f"{100 * i.level:.0f} % interval {100 * i.low:.2f}-{100 * i.high:.2f}% "
                f"(bootstrap over {i.over}; compare two models with "
                "`hotline-asr compare`)"
            )
        if self.pinyin is not None:
            lines.append(
                f"pinyin syllable errors {100 * self.pinyin.toned.cer:.2f}% with tone, "
                f"{100 * self.pinyin.toneless.cer:.2f}% without"
            )
        for name, table in self.slices.items():
            py_table = (self.pinyin_slices or {}).get(name)
            width = max([_width(name), *(_width(v) for v in table)])
            lines.append("")
            lines.append(
                f"{_ljust(name, width)}  {'utts':>5}  {'chars':>6}  {'sub':>5}  {'del':>5}  "
                f"{'ins':>5}  {'CER':>7}" + (f"  {'syl+tone':>8}  {'syl':>7}" if py_table else "")
            )
            for value, c in table.items():
                row = (
                    f"{_ljust(value, width)}  {c.utts:>5}  {c.ref_chars:>6}  {c.sub:>5}  {c.del_:>5}  "
                    f"{c.ins:>5}  {100 * c.cer:>6.2f}%"
                )
                if py_table:
                    p = py_table[value]
                    row += f"  {100 * p.toned.cer:>7.2f}%  {100 * p.toneless.cer:>6.2f}%"
                lines.append(row)
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


# split() with this keeps the placeholders: text pieces at even indices, placeholders at odd
_PLACEHOLDER_SPLIT = re.compile("(" + "|".join(re.escape(p) for p in PLACEHOLDERS.values()) + ")")


def scoring_units(text: str, normalize_text: bool = True) -> list[str]:
    """The units a text is scored in: one per character, one per desensitize placeholder.

    With ``normalize_text`` the text is normalized around the placeholders it already has (which
    ``normalize`` alone would turn into three or four characters), then desensitized, so a
    hypothesis that reads out a phone number scores like the desensitized reference of it.
    ``scoring_units("电话是幺三八幺二三四五六七八")`` -> ``["电", "话", "是", "<手机号>"]``."""
    parts = _PLACEHOLDER_SPLIT.split(text)
    if normalize_text:
        joined = "".join(p if i % 2 else normalize(p) for i, p in enumerate(parts))
        parts = _PLACEHOLDER_SPLIT.split(desensitize(joined).text)
    return [u for i, p in enumerate(parts) for u in ([p] if i % 2 else p)]


def score_one(utt: ScoredUtt, normalize_text: bool = True, pinyin: bool = False) -> UttResult:
    """Score one utterance (as ``score`` does each of its pairs)."""
    ref_units = scoring_units(utt.ref, normalize_text)
    hyp_units = scoring_units(utt.hyp, normalize_text)
    ref, hyp = "".join(ref_units), "".join(hyp_units)
    ops = align(ref_units, hyp_units)
    py = _pinyin_counts(ref, hyp) if pinyin else None
    return UttResult(utt.id, ref, hyp, ErrorCounts.from_ops(ops), ops, dict(utt.slices), py)


def _add_to_slices(tables: dict[str, dict[str, Any]], labels: dict[str, str], counts: Any) -> None:
    for name, value in labels.items():
        table = tables.setdefault(name, {})
        key = str(value)
        table[key] = table[key] + counts if key in table else counts


def _tables_to_dict(tables: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: {value: c.to_dict() for value, c in t.items()} for name, t in tables.items()}


def _sorted_tables(tables: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: dict(sorted(t.items())) for name, t in sorted(tables.items())}


def score(
    pairs: Iterable[ScoredUtt], worst_n: int = 10, normalize_text: bool = True, pinyin: bool = False
) -> ScoreReport:
    """Score utterances: overall counts, per-slice tables (``{slice: {value: ErrorCounts}}``,
    values sorted) and the ``worst_n`` utterances with most errors (ties: higher CER, then id).
    ``pinyin=True`` also counts errors over pinyin syllables, with and without tone. With two
    or more utterances the report carries the CER's 95 % bootstrap interval (seed 0), resampling
    the distinct reference texts."""
    from training.significance import cer_interval  # it imports this module

    overall = ErrorCounts()
    slices: dict[str, dict[str, ErrorCounts]] = {}
    py_overall = PinyinCounts() if pinyin else None
    py_slices: dict[str, dict[str, PinyinCounts]] = {}
    results: list[UttResult] = []
    for utt in pairs:
        r = score_one(utt, normalize_text, pinyin)
        results.append(r)
        overall = overall + r.counts
        _add_to_slices(slices, r.slices, r.counts)
        if r.pinyin is not None:
            py_overall = py_overall + r.pinyin
            _add_to_slices(py_slices, r.slices, r.pinyin)
    worst = sorted(
        (r for r in results if r.counts.errors),
        key=lambda r: (-r.counts.errors, -r.counts.cer, r.id),
    )[:worst_n]
    return ScoreReport(
        overall,
        _sorted_tables(slices),
        worst,
        py_overall,
        _sorted_tables(py_slices) if pinyin else None,
        # utterances reading the same text resampled together (training.significance)
        cer_interval([r.counts for r in results], groups=[r.ref for r in results])
        if len(results) > 1
        else None,
    )


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
