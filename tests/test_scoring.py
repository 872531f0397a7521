from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest

from training.scoring import (
    AlignOp,
    ErrorCounts,
    ScoredUtt,
    align,
    format_alignment,
    hotword_recall,
    pinyin_units,
    score,
    score_one,
    scoring_units,
)


def _levenshtein(a: str, b: str) -> int:
    """Independent check: the classic two-row recurrence."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def test_align_basic_ops() -> None:
    ops = align("我要投诉", "我要投树啊")
    assert [o.op for o in ops] == ["ok", "ok", "ok", "sub", "ins"]
    assert ops[3] == AlignOp("sub", "诉", "树")
    assert format_alignment(ops) == "我要投(诉→树)[+啊]"
    assert [o.op for o in align("你好吗", "你吗")] == ["ok", "del", "ok"]
    assert align("", "") == []
    assert [o.op for o in align("", "好")] == ["ins"]
    assert [o.op for o in align("好", "")] == ["del"]


def test_align_is_minimal_and_consistent_on_random_strings() -> None:
    rng = random.Random(0)
    for _ in range(200):
        a = "".join(rng.choice("一二三四") for _ in range(rng.randint(0, 12)))
        b = "".join(rng.choice("一二三四") for _ in range(rng.randint(0, 12)))
        ops = align(a, b)
        assert "".join(o.ref for o in ops) == a
        assert "".join(o.hyp for o in ops) == b
        counts = ErrorCounts.from_ops(ops)
        assert counts.errors == _levenshtein(a, b)
        assert counts.ref_chars == len(a)
        for o in ops:
            assert (o.op == "ok") == (o.ref == o.hyp and o.ref != "")


def test_error_counts_arithmetic() -> None:
    c = ErrorCounts(ref_chars=10, sub=1, del_=2, ins=1, utts=1)
    assert c.errors == 4 and c.cer == pytest.approx(0.4)
    total = c + ErrorCounts(ref_chars=10, utts=1)
    assert total.cer == pytest.approx(0.2) and total.utts == 2
    assert ErrorCounts().cer == 0.0
    assert ErrorCounts(ins=2).cer == 2.0  # empty reference counts as one character
    assert c.to_dict()["del"] == 2


def test_score_normalizes_and_slices() -> None:
    utts = [
        # punctuation and Arabic numerals do not count as errors
        ScoredUtt("a", "押金交了2000元。", "押金交了两千元", {"voice": "f01", "channel": "pstn"}),
        ScoredUtt("b", "我要投诉", "我要投树", {"voice": "f01", "channel": "clean"}),
        ScoredUtt("c", "物业电话打不通", "物业电话打不", {"voice": "m02", "channel": "pstn"}),
    ]
    report = score(utts, worst_n=1)
    assert report.overall.ref_chars == 7 + 4 + 7
    assert (report.overall.sub, report.overall.del_, report.overall.ins) == (1, 1, 0)
    assert report.cer == pytest.approx(2 / 18)
    assert list(report.slices) == ["channel", "voice"]
    assert report.slices["voice"]["f01"].sub == 1 and report.slices["voice"]["f01"].utts == 2
    assert report.slices["voice"]["m02"].del_ == 1
    assert report.slices["channel"]["pstn"].ref_chars == 14
    assert [u.id for u in report.worst] == ["b"]  # one error each; b has the higher CER
    data = json.loads(report.to_json())
    assert data["overall"]["errors"] == 2
    assert data["slices"]["voice"]["m02"]["del"] == 1
    assert data["worst"][0]["alignment"] == "我要投(诉→树)"
    table = report.format_table()
    assert "CER 11.11%" in table
    assert "m02" in table and "我要投(诉→树)" in table


def test_score_without_normalization() -> None:
    report = score([ScoredUtt("a", "2000元", "两千元")], normalize_text=False)
    assert report.overall.ref_chars == 5 and report.overall.errors == 4


def test_desensitized_reference_is_matched_by_the_spoken_number() -> None:
    # The stored reference says <手机号> where the audio reads out eleven digits: the hypothesis
    # that reads them goes through the same desensitize and the placeholder is one unit.
    assert scoring_units("电话是<手机号>对吧") == ["电", "话", "是", "<手机号>", "对", "吧"]
    assert scoring_units("电话是幺三八幺二三四五六七八") == ["电", "话", "是", "<手机号>"]
    right = score_one(ScoredUtt("a", "我姓董电话是<手机号>", "我姓董电话是幺三八幺二三四五六七八"))
    assert (right.counts.ref_chars, right.counts.errors) == (7, 0)
    assert right.hyp == "我姓董电话是<手机号>"
    # a raw reference is desensitized the same way, Arabic digits included
    raw = score_one(ScoredUtt("b", "我的手机号是13812345678", "我的手机号是幺三八幺二三四五六七八"))
    assert raw.counts.errors == 0 and raw.ref == "我的手机号是<手机号>"
    # a number too short to be masked stays characters: the placeholder is substituted, the
    # surplus digits are insertions, one surname error is one substitution
    short = score_one(ScoredUtt("c", "我姓董电话是<手机号>", "我姓公电话是幺九二二"))
    assert (short.counts.sub, short.counts.ins, short.counts.ref_chars) == (2, 3, 7)
    assert [o for o in short.ops if o.op == "sub"][1] == AlignOp("sub", "<手机号>", "幺")
    # without normalization the text is taken as it is, placeholders still one unit each
    assert (
        score_one(ScoredUtt("d", "是<手机号>", "是<手机号>"), normalize_text=False).counts.ref_chars
        == 2
    )


def test_pinyin_units_keep_tones_and_other_characters() -> None:
    assert pinyin_units("我要投诉12") == ["wo3", "yao4", "tou2", "su4", "1", "2"]
    assert pinyin_units("我要投诉", tones=False) == ["wo", "yao", "tou", "su"]


def test_score_pinyin_splits_sound_tone_and_homophone_errors() -> None:
    utts = [
        # 诉→速: same syllable and tone (a homophone): a character error only
        ScoredUtt("homophone", "我要投诉", "我要投速", {"text": "sentences"}),
        # 诉→苏: same syllable, tone 4→1: a tone error
        ScoredUtt("tone", "我要投诉", "我要投苏", {"text": "sentences"}),
        # a deleted character: a sound error, with or without tone
        ScoredUtt("sound", "物业电话", "物业电", {"text": "word lists"}),
    ]
    report = score(utts, pinyin=True)
    assert report.overall.errors == 3
    assert report.pinyin is not None and report.pinyin_slices is not None
    assert report.pinyin.toned.errors == 2  # the tone error and the deletion
    assert report.pinyin.toneless.errors == 1  # only the deletion
    assert report.pinyin.toned.ref_chars == 12
    lists = report.pinyin_slices["text"]["word lists"]
    assert (lists.toned.del_, lists.toneless.del_) == (1, 1)
    assert report.pinyin_slices["text"]["sentences"].toned.sub == 1
    data = json.loads(report.to_json())
    assert data["pinyin"]["overall"]["toneless"]["errors"] == 1
    assert (
        data["worst"][0]["id"] == "homophone" and data["worst"][0]["pinyin"]["toned"]["errors"] == 0
    )
    table = report.format_table()
    assert "pinyin syllable errors 16.67% with tone, 8.33% without" in table
    assert "syl+tone" in table
    # without the option nothing changes
    plain = score(utts)
    assert plain.pinyin is None and "pinyin" not in json.loads(plain.to_json())
    assert "syl+tone" not in plain.format_table()


def test_hotword_recall() -> None:
    pairs = [
        ScoredUtt("a", "我要查公积金和居住证", "我要查公积金和居住正"),
        ("公积金怎么提取", "公鸡金怎么提取"),
        ("居住证积分", "居住证积分"),
        ("没有热词", "公积金"),
        ("公积金公积金", "公积金啊公积金"),
    ]
    stats = hotword_recall(pairs, ["公积金", "居住证", "随申办"])
    assert stats["公积金"] == {"ref": 4, "found": 3, "hyp": 4, "recall": 0.75}
    assert stats["居住证"]["ref"] == 2 and stats["居住证"]["found"] == 1
    assert stats["随申办"] == {"ref": 0, "found": 0, "hyp": 0, "recall": None}


def test_hotword_split_by_insertion_is_not_found() -> None:
    stats = hotword_recall([("我的公积金", "我的公积啊金")], ["公积金"])
    assert stats["公积金"]["found"] == 0


def test_scoring_does_not_import_torch() -> None:
    code = "import sys, training.scoring; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
