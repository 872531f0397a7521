"""How sure a CER, or a difference between two models' CERs, is: bootstrap over utterances
(torch-free).

A dev set of 100 utterances (~1,600 characters) moves by 0.06 points per character, and two
averaging windows of the same run can differ by half a point on it by chance. Resampling the
utterances (with replacement) shows that spread:

    interval = cer_interval([u.counts for u in results])        # CER and its 95 % interval
    cmp = paired_bootstrap(counts_a, counts_b)                  # B against A, same utterances
    cmp = compare_reports(json.load(open("a.json")), json.load(open("b.json")))

The comparison is paired: both models' errors on the same resampled utterances, so what the two
share (hard utterances) cancels and only the difference is left.

Utterances that read the same text are not independent evidence (a generated test set speaks a
call sentence in several voices): ``groups`` (one key per utterance, e.g. its reference text)
resamples whole groups instead, which widens the interval by what the repeats share. With every
key distinct it is the plain utterance bootstrap, draw for draw.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from training.scoring import ErrorCounts, ScoredUtt, score_one

__all__ = [
    "CerInterval",
    "PairedComparison",
    "cer_interval",
    "compare_reports",
    "paired_bootstrap",
]


def _rounded(result: Any) -> dict[str, Any]:
    """A result dataclass as a dict, its fractions rounded to 6 places as the eval report's."""
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in asdict(result).items()}


@dataclass(frozen=True)
class CerInterval:
    """A CER and the central ``level`` share of its bootstrap distribution (fractions, not %)."""

    cer: float
    low: float
    high: float
    level: float
    resamples: int
    utts: int
    # the units resampled: distinct group keys (texts), or ``utts`` without groups
    groups: int = 0

    def to_dict(self) -> dict[str, Any]:
        return _rounded(self)

    @property
    def over(self) -> str:
        """What was resampled, in words."""
        if self.groups and self.groups < self.utts:
            return f"the {self.groups} distinct texts of {self.utts} utterances"
        return f"the {self.utts} utterances"

    def format(self) -> str:
        return (
            f"CER {100 * self.cer:.2f}%, {100 * self.level:.0f} % interval "
            f"{100 * self.low:.2f}-{100 * self.high:.2f}% (bootstrap, {self.resamples} "
            f"resamples of {self.over})"
        )


@dataclass(frozen=True)
class PairedComparison:
    """Model B against model A on the same utterances. ``diff`` = CER(B) - CER(A) in fractions
    (negative: B makes fewer errors); ``low``/``high`` bound it at ``level``; ``b_better`` is the
    share of resamples in which B has fewer errors than A (ties count half)."""

    utts: int
    ref_chars: int
    errors_a: int
    errors_b: int
    cer_a: float
    cer_b: float
    diff: float
    low: float
    high: float
    level: float
    b_better: float
    resamples: int
    utts_differing: int
    groups: int = 0  # the units resampled: distinct group keys, or ``utts``

    def to_dict(self) -> dict[str, Any]:
        return _rounded(self)

    @property
    def significant(self) -> bool:
        """True when the interval of the difference leaves out zero."""
        return self.low > 0 or self.high < 0

    def format(self, name_a: str = "A", name_b: str = "B") -> str:
        verdict = (
            "the interval leaves out 0"
            if self.significant
            else "the interval includes 0: no difference shown"
        )
        return "\n".join(
            [
                f"A  {name_a}: CER {100 * self.cer_a:.2f}% ({self.errors_a} errors)",
                f"B  {name_b}: CER {100 * self.cer_b:.2f}% ({self.errors_b} errors)",
                f"{self.utts} utterances, {self.ref_chars} reference characters; "
                f"{self.utts_differing} utterances scored differently"
                + (
                    f"; resampled as {self.groups} distinct texts"
                    if 0 < self.groups < self.utts
                    else ""
                ),
                f"B - A: {100 * self.diff:+.2f} points, {100 * self.level:.0f} % interval "
                f"{100 * self.low:+.2f} to {100 * self.high:+.2f} ({verdict}); "
                f"B has fewer errors in {100 * self.b_better:.1f} % of {self.resamples} resamples",
            ]
        )


def _arrays(counts: Sequence[ErrorCounts]) -> tuple[np.ndarray, np.ndarray]:
    errors = np.array([c.errors for c in counts], dtype=np.int64)
    chars = np.array([c.ref_chars for c in counts], dtype=np.int64)
    return errors, chars


def _grouped(
    errors: np.ndarray, chars: np.ndarray, groups: Sequence[Hashable] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Errors and characters summed per group, groups in order of first appearance."""
    if groups is None:
        return errors, chars
    if len(groups) != len(errors):
        raise ValueError(
            f"groups has {len(groups)} keys for {len(errors)} utterances: give one per utterance"
        )
    first: dict[Hashable, int] = {}
    gid = np.array([first.setdefault(g, len(first)) for g in groups], dtype=np.int64)
    n = len(first)
    return (
        np.bincount(gid, weights=errors, minlength=n).astype(np.int64),
        np.bincount(gid, weights=chars, minlength=n).astype(np.int64),
    )


def _check(level: float, resamples: int) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must lie between 0 and 1 (0.95 for 95 %), got {level}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")


def _resample_index(n: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def cer_interval(
    counts: Sequence[ErrorCounts],
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
    groups: Sequence[Hashable] | None = None,
) -> CerInterval:
    """The CER of ``counts`` (one per utterance) and its bootstrap interval; with ``groups``
    (one key per utterance) whole groups are resampled."""
    _check(level, resamples)
    if not counts:
        raise ValueError("no utterances to resample: score at least one")
    errors, chars = _grouped(*_arrays(counts), groups)
    idx = _resample_index(len(errors), resamples, seed)
    cers = errors[idx].sum(axis=1) / np.maximum(chars[idx].sum(axis=1), 1)
    tail = (1 - level) / 2
    return CerInterval(
        cer=float(errors.sum() / max(chars.sum(), 1)),
        low=float(np.quantile(cers, tail)),
        high=float(np.quantile(cers, 1 - tail)),
        level=level,
        resamples=resamples,
        utts=len(counts),
        groups=len(errors),
    )


def paired_bootstrap(
    a: Sequence[ErrorCounts],
    b: Sequence[ErrorCounts],
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
    groups: Sequence[Hashable] | None = None,
) -> PairedComparison:
    """Compare two models scored on the same utterances, in the same order; with ``groups``
    (one key per utterance) whole groups are resampled."""
    _check(level, resamples)
    if len(a) != len(b):
        raise ValueError(
            f"the two models were scored on different numbers of utterances ({len(a)} and "
            f"{len(b)}); score both on the same data"
        )
    if not a:
        raise ValueError("no utterances to compare: score at least one")
    ea, chars = _arrays(a)
    eb, chars_b = _arrays(b)
    if not np.array_equal(chars, chars_b):
        k = int(np.flatnonzero(chars != chars_b)[0])
        raise ValueError(
            f"utterance {k} has {chars[k]} reference characters for A and {chars_b[k]} for B: "
            "the references differ, so these are not the same utterances"
        )
    utts, differing = len(a), int(np.sum(ea != eb))
    ea, _ = _grouped(ea, chars, groups)
    eb, chars = _grouped(eb, chars, groups)
    idx = _resample_index(len(ea), resamples, seed)
    n_chars = np.maximum(chars[idx].sum(axis=1), 1)
    sa, sb = ea[idx].sum(axis=1), eb[idx].sum(axis=1)
    diffs = (sb - sa) / n_chars
    tail = (1 - level) / 2
    total = max(int(chars.sum()), 1)
    return PairedComparison(
        utts=utts,
        ref_chars=int(chars.sum()),
        errors_a=int(ea.sum()),
        errors_b=int(eb.sum()),
        cer_a=float(ea.sum() / total),
        cer_b=float(eb.sum() / total),
        diff=float((eb.sum() - ea.sum()) / total),
        low=float(np.quantile(diffs, tail)),
        high=float(np.quantile(diffs, 1 - tail)),
        level=level,
        b_better=float(np.mean(sb < sa) + 0.5 * np.mean(sb == sa)),
        resamples=resamples,
        utts_differing=differing,
        groups=len(ea),
    )


def _hypotheses(report: Mapping[str, Any], name: str) -> dict[str, tuple[str, str]]:
    hyps = report.get("hypotheses")
    if not isinstance(hyps, list) or not hyps:
        raise ValueError(
            f"{name} has no 'hypotheses' list: give the JSON that `hotline-asr eval --output` "
            "writes"
        )
    out: dict[str, tuple[str, str]] = {}
    for h in hyps:
        try:
            out[str(h["id"])] = (str(h["ref"]), str(h["hyp"]))
        except (KeyError, TypeError) as e:
            raise ValueError(f"{name}: a hypothesis lacks 'id', 'ref' or 'hyp': {h!r}") from e
    return out


def compare_reports(
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
    names: tuple[str, str] = ("A", "B"),
) -> PairedComparison:
    """Paired comparison of two ``hotline-asr eval --output`` reports, matched by utterance id.
    Both must cover the same utterances with the same references."""
    ha, hb = _hypotheses(a, names[0]), _hypotheses(b, names[1])
    only_a, only_b = sorted(set(ha) - set(hb)), sorted(set(hb) - set(ha))
    if only_a or only_b:
        raise ValueError(
            f"the reports cover different utterances: {len(only_a)} only in {names[0]} "
            f"{only_a[:3]}, {len(only_b)} only in {names[1]} {only_b[:3]}; evaluate both on "
            "the same data (and the same --max-utts)"
        )
    ids = sorted(ha)
    for i in ids:
        if ha[i][0] != hb[i][0]:
            raise ValueError(
                f"utterance {i} has different references: {ha[i][0]!r} in {names[0]}, "
                f"{hb[i][0]!r} in {names[1]}"
            )
    ra = [score_one(ScoredUtt(i, *ha[i])) for i in ids]
    cb = [score_one(ScoredUtt(i, *hb[i])).counts for i in ids]
    # utterances reading the same text (as scored, like score()'s interval) are resampled together
    return paired_bootstrap(
        [r.counts for r in ra], cb, level, resamples, seed, groups=[r.ref for r in ra]
    )
