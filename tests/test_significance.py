"""Bootstrap intervals of a CER and paired comparisons of two models (training.significance)."""

from __future__ import annotations

import numpy as np
import pytest

from training.evaluate import EvalOptions, EvalResult
from training.scoring import ErrorCounts, ScoredUtt, score
from training.significance import cer_interval, compare_reports, paired_bootstrap


def _counts(errors: list[int], chars: int = 10) -> list[ErrorCounts]:
    return [ErrorCounts(ref_chars=chars, sub=e, utts=1) for e in errors]


def test_interval_collapses_when_every_utterance_has_the_same_cer():
    i = cer_interval(_counts([2] * 30))
    assert i.cer == i.low == i.high == pytest.approx(0.2)


def test_interval_matches_the_normal_approximation_and_narrows_with_more_utterances():
    rng = np.random.default_rng(1)
    errors = rng.binomial(10, 0.1, size=400).tolist()
    few, many = cer_interval(_counts(errors[:100])), cer_interval(_counts(errors))
    for i, e in ((few, errors[:100]), (many, errors)):
        assert i.low < i.cer < i.high
        # equal-length utterances: the CER is a mean, its standard error sd/sqrt(n)
        half = 1.96 * np.std(np.array(e) / 10) / np.sqrt(len(e))
        assert (i.high - i.low) / 2 == pytest.approx(half, rel=0.15)
    assert many.high - many.low < 0.6 * (few.high - few.low)


def test_interval_is_reproducible_with_its_seed():
    c = _counts([0, 1, 3, 0, 2, 5, 1])
    assert cer_interval(c, seed=3) == cer_interval(c, seed=3)
    assert cer_interval(c, resamples=500, seed=3) != cer_interval(c, resamples=500, seed=4)


def test_identical_models_show_no_difference():
    c = _counts([0, 1, 3, 0, 2, 5, 1] * 5)
    cmp = paired_bootstrap(c, c)
    assert cmp.diff == cmp.low == cmp.high == 0
    assert cmp.b_better == 0.5 and not cmp.significant and cmp.utts_differing == 0
    assert "no difference shown" in cmp.format()


def test_a_fix_in_half_the_utterances_is_significant_and_one_character_is_not():
    a = _counts([2] * 100)
    b = _counts([1, 2] * 50)  # one error fewer in every other utterance
    cmp = paired_bootstrap(a, b)
    assert cmp.diff == pytest.approx(-50 / 1000)
    assert cmp.high < 0 and cmp.significant and cmp.b_better > 0.99
    assert cmp.utts_differing == 50 and cmp.errors_a == 200 and cmp.errors_b == 150
    one = paired_bootstrap(a, _counts([1] + [2] * 99))
    assert one.low < 0 <= one.high and not one.significant
    assert one.diff == pytest.approx(-1 / 1000)
    # swapping the models mirrors the result
    back = paired_bootstrap(b, a)
    assert back.diff == pytest.approx(-cmp.diff) and back.b_better < 0.01


def test_paired_is_sharper_than_comparing_two_intervals():
    # hard and easy utterances, B one error better on a third of them: the shared spread cancels
    rng = np.random.default_rng(0)
    base = rng.integers(0, 6, size=90)
    better = base - (np.arange(90) % 3 == 0) * (base > 0)
    a, b = _counts(base.tolist()), _counts(better.tolist())
    cmp = paired_bootstrap(a, b)
    ia, ib = cer_interval(a), cer_interval(b)
    assert ib.high > ia.low  # the two intervals overlap ...
    assert cmp.significant  # ... yet the paired difference is clear


@pytest.mark.parametrize(
    ("a", "b", "kw", "message"),
    [
        (_counts([1, 2]), _counts([1]), {}, "different numbers of utterances"),
        ([], [], {}, "no utterances"),
        (_counts([1]), _counts([1], chars=12), {}, "references differ"),
        (_counts([1]), _counts([1]), {"level": 95}, "between 0 and 1"),
        (_counts([1]), _counts([1]), {"resamples": 0}, "at least 1"),
    ],
)
def test_paired_errors_say_what_is_wrong(a, b, kw, message):
    with pytest.raises(ValueError, match=message):
        paired_bootstrap(a, b, **kw)


def test_interval_errors():
    with pytest.raises(ValueError, match="no utterances"):
        cer_interval([])
    with pytest.raises(ValueError, match="between 0 and 1"):
        cer_interval(_counts([1]), level=1.0)


def _report(pairs: list[tuple[str, str, str]]) -> dict:
    """A report exactly as `hotline-asr eval --output` writes it."""
    scored = [ScoredUtt(i, r, h) for i, r, h in pairs]
    result = EvalResult(
        model="m.pt",
        data="dev",
        options=EvalOptions(),
        report=score(scored),
        hypotheses=[{"id": i, "ref": r, "hyp": h} for i, r, h in pairs],
        audio_seconds=10.0,
        decode_seconds=1.0,
    )
    return result.to_dict()


def test_compare_reports_pairs_by_id_and_normalizes_text():
    a = _report(
        [("u1", "我要投诉", "我要投树"), ("u2", "垃圾分类", "垃圾分类"), ("u3", "你好", "你")]
    )
    # B in another order, with punctuation that scoring ignores; fixes u1
    b = _report(
        [("u3", "你好", "你"), ("u1", "我要投诉", "我要投诉。"), ("u2", "垃圾分类", "垃圾分类")]
    )
    cmp = compare_reports(a, b)
    assert (cmp.utts, cmp.ref_chars, cmp.errors_a, cmp.errors_b) == (3, 10, 2, 1)
    assert cmp.cer_a == pytest.approx(a["overall"]["cer"], abs=1e-6)
    assert cmp.diff == pytest.approx(-0.1) and cmp.utts_differing == 1


def test_compare_reports_refuses_different_data():
    a = _report([("u1", "我要投诉", "我要投树"), ("u2", "你好", "你好")])
    with pytest.raises(ValueError, match=r"1 only in A \['u2'\]"):
        compare_reports(a, _report([("u1", "我要投诉", "我要投诉")]))
    with pytest.raises(ValueError, match="different references"):
        compare_reports(a, _report([("u1", "我要投诉", "我"), ("u2", "您好", "你好")]))
    with pytest.raises(ValueError, match="no 'hypotheses' list"):
        compare_reports(a, {"overall": {}})
    with pytest.raises(ValueError, match="lacks 'id'"):
        compare_reports(a, {"hypotheses": [{"ref": "你好"}]})


def test_score_report_carries_the_interval():
    r = score([ScoredUtt("u1", "我要投诉", "我要投树"), ScoredUtt("u2", "你好", "你好")])
    assert r.interval is not None and r.interval.low <= r.cer <= r.interval.high
    assert r.to_dict()["interval"]["utts"] == 2
    assert "95 % interval" in r.format_table()
    single = score([ScoredUtt("u1", "我要投诉", "我要投树")])
    assert single.interval is None and "interval" not in single.to_dict()


def _repeated_texts(seed: int = 3) -> tuple[list[ErrorCounts], list[str]]:
    """20 texts, each read 10 times; a text's difficulty is shared by all its readings."""
    rng = np.random.default_rng(seed)
    errors, texts = [], []
    for t in range(20):
        hard = rng.random() < 0.3
        for _ in range(10):
            errors.append(int(rng.binomial(10, 0.5 if hard else 0.05)))
            texts.append(f"text{t}")
    return _counts(errors), texts


def test_groups_of_one_are_the_plain_bootstrap_draw_for_draw():
    counts = _counts(np.random.default_rng(2).binomial(10, 0.2, size=50).tolist())
    plain = cer_interval(counts)
    grouped = cer_interval(counts, groups=[f"t{i}" for i in range(50)])
    assert (grouped.low, grouped.high, grouped.groups) == (plain.low, plain.high, 50)
    other = _counts(np.random.default_rng(5).binomial(10, 0.2, size=50).tolist())
    a, b = paired_bootstrap(counts, other), paired_bootstrap(counts, other, groups=range(50))
    assert (a.low, a.high, a.b_better) == (b.low, b.high, b.b_better)


def test_repeated_texts_are_resampled_together_and_widen_the_interval():
    counts, texts = _repeated_texts()
    plain, grouped = cer_interval(counts), cer_interval(counts, groups=texts)
    assert grouped.cer == plain.cer and (grouped.utts, grouped.groups) == (200, 20)
    # 20 independent texts, not 200 independent utterances
    assert grouped.high - grouped.low > 2 * (plain.high - plain.low)
    assert "the 20 distinct texts of 200 utterances" in grouped.format()
    fixed = [ErrorCounts(ref_chars=c.ref_chars, sub=max(c.sub - 1, 0), utts=1) for c in counts]
    cmp = paired_bootstrap(counts, fixed, groups=texts)
    assert cmp.groups == 20 and cmp.utts == 200 and "resampled as 20 distinct texts" in cmp.format()
    with pytest.raises(ValueError, match="groups has 3 keys for 200 utterances"):
        cer_interval(counts, groups=["a", "b", "c"])


def test_score_and_compare_group_utterances_by_their_reference():
    pairs = [(f"u{k}", "我要投诉", "我要投树" if k % 2 else "我要投诉") for k in range(6)]
    pairs += [("v1", "你好", "你好"), ("v2", "垃圾分类", "垃圾分")]
    r = score([ScoredUtt(*p) for p in pairs])
    assert (r.interval.utts, r.interval.groups) == (8, 3)
    assert "the 3 distinct texts of 8 utterances" in r.format_table()
    cmp = compare_reports(_report(pairs), _report(pairs))
    assert (cmp.utts, cmp.groups) == (8, 3)
