from __future__ import annotations

import shutil

import pytest

from training.synth.espeak import VOICE, VoiceSettings, espeak_command, phonemes
from training.synth.pinyin import pinyin_for_espeak, to_pinyin

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng missing")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("长宁区", "chang2 ning2 qu1"),
        ("长风公园", "chang2 feng1 gong1 yuan2"),
        ("闵行区", "min3 hang2 qu1"),
        ("干垃圾", "gan1 la1 ji1"),
        ("窨井盖", "yin4 jing3 gai4"),
        ("重置密码", "chong2 zhi4 mi4 ma3"),
        ("银行", "yin2 hang2"),
        ("行长", "hang2 zhang3"),
        ("弄堂", "long4 tang2"),
        ("五弄", "wu3 long4"),
        ("三百二十一弄", "san1 bai3 er4 shi2 yi1 long4"),
    ],
)
def test_lexicon_and_lane(text, expected):
    assert pinyin_for_espeak(text) == expected


def test_lexicon_match_does_not_cut_through_a_word():
    # 进行|长期 must not read 行长 as hang2 zhang3
    assert to_pinyin("进行长期") == ["jin4", "xing2", "chang2", "qi2"]


def test_nong_as_a_verb_stays_nong():
    assert to_pinyin("弄坏了")[0] == "nong4"


@pytest.mark.parametrize(
    "text, yi",
    [
        ("一个", "yi2"),  # before 4th tone
        ("一样", "yi2"),
        ("一天", "yi4"),  # before 1st
        ("一起", "yi4"),  # before 3rd
        ("一百", "yi4"),
        ("第一", "yi1"),  # ordinal
        ("十一", "yi1"),
        ("一月", "yi1"),  # date
        ("一楼", "yi1"),
        ("统一", "yi1"),  # word-final
        ("看一看", "yi5"),  # between reduplicated verbs
    ],
)
def test_yi_sandhi(text, yi):
    syl = to_pinyin(text)
    assert syl[text.index("一")] == yi


@pytest.mark.parametrize(
    "text, bu",
    [("不是", "bu2"), ("不对", "bu2"), ("不好", "bu4"), ("不行", "bu4"), ("差不多", "bu5")],
)
def test_bu_sandhi(text, bu):
    assert to_pinyin(text)[text.index("不")] == bu


@pytest.mark.parametrize(
    "text, de",
    [
        ("跑得很快", "de5"),
        ("吵得睡不着", "de5"),
        ("我得走了", "dei3"),
        ("记得", "de5"),
        ("得到", "de2"),
    ],
)
def test_de_particle(text, de):
    assert to_pinyin(text)[text.index("得")] == de


def test_erhua_merges_into_previous_syllable_but_not_for_children():
    assert to_pinyin("一点儿") == ["yi4", "dian3r"]
    assert to_pinyin("去哪儿玩儿") == ["qu4", "na3r", "wan2r"]
    assert to_pinyin("女儿") == ["nv3", "er2"]
    assert to_pinyin("婴儿") == ["ying1", "er2"]


def test_neutral_tone_is_5_and_u_umlaut_is_v():
    assert to_pinyin("好吗") == ["hao3", "ma5"]
    assert to_pinyin("绿色") == ["lv4", "se4"]
    assert to_pinyin("女人") == ["nv3", "ren2"]
    assert to_pinyin("学习")[0] == "xue2"  # u after x stays u
    assert all(s[-1] in "12345" for s in to_pinyin("您好这里是幺二三四五市民服务热线"))


def test_non_chinese_input_is_refused_with_advice():
    with pytest.raises(ValueError, match="normalize numbers"):
        to_pinyin("5弄")


def test_command_uses_the_pinyin_voice_not_plain_cmn():
    cmd = espeak_command("ni3 hao3", VoiceSettings("f2", 150, 40))
    v = cmd[cmd.index("-v") + 1]
    assert VOICE == "cmn-latn-pinyin"
    assert v == "cmn-latn-pinyin+f2"
    assert "-v" in cmd and "cmn" not in [c for c in cmd if c != v]


@needs_espeak
def test_espeak_reads_our_pinyin_as_mandarin_tones():
    ph = phonemes(pinyin_for_espeak("你好"))
    assert "(en)" not in ph  # plain cmn would switch to English for latin input
    assert "214" in ph  # hao3: full third tone
    assert "11" in phonemes("ma5")  # tone 5 is neutral
    assert "55" in phonemes("ma")  # no digit would be read as tone 1: why we always write 5
    assert "y" in phonemes("lv4")  # v is u-umlaut
    assert "@r" in phonemes("dian3r")  # r-colouring of 儿化
    plain = subprocess_phonemes_plain_cmn("ni3 hao3")
    assert "(en)" in plain  # the reason the plain cmn voice is not used


def subprocess_phonemes_plain_cmn(text: str) -> str:
    import subprocess

    out = subprocess.run(
        ["espeak-ng", "-v", "cmn", "-x", "-q", text], capture_output=True, text=True
    )
    return out.stdout


def test_every_generated_sentence_gets_one_espeak_syllable_per_character():
    from training.synth.textgen import TextGenerator

    for s in TextGenerator(8, word_fraction=0.5).take(600):
        syl = pinyin_for_espeak(s.text).split()
        erhua = sum(x.endswith("r") for x in syl)
        assert len(syl) + erhua == len(s.text), s.text
