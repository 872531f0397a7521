"""Chinese text -> tone-numbered pinyin for espeak-ng's ``cmn-latn-pinyin`` voice.

pypinyin reads each jieba word (``Style.TONE3``, tone sandhi on, neutral tone as ``5``); on top of
that this module fixes what pypinyin or espeak get wrong for hotline speech:

* a small lexicon of place names and words pypinyin misreads (长宁 chang2, 闵行 min3 hang2, 干垃圾
  gan1, 窨井 yin4, 银行 hang2 ...), applied only where it does not cut through a jieba word;
* 弄 after a numeral (5弄, 里弄) is the Shanghai lane, ``long4``;
* 一: ``yi1`` when counted or ordinal (第一, 十一, 一月, 一楼, word-final), ``yi5`` between
  reduplicated verbs (看一看), otherwise ``yi2`` before a fourth tone and ``yi4`` before the rest;
* 不: ``bu2`` before a fourth tone, keeps pypinyin's neutral ``bu5`` (差不多), else ``bu4``;
* a lone 得 (its own jieba word) after a pronoun or 就/还/也/都 is ``dei3`` (我得走了), after
  anything else the complement particle ``de5`` (跑得很快, 吵得睡不着);
* 儿化: a word-final 儿 that is not the noun "child" (女儿, 婴儿 ...) merges into the syllable
  before it, ``dian3r`` — the form espeak-ng renders with r-colouring.

espeak's pinyin voice wants space-separated syllables, tone digits 1-5 (a syllable with *no* digit
is read as tone 1, so the neutral tone must be ``5``), ü written ``v`` after l/n (``lv4``, ``nv3``;
``lu:4`` is misread) and ``u`` after j/q/x/y. It applies third-tone sandhi by itself.
"""

from __future__ import annotations

import re
from functools import lru_cache

# Words pypinyin reads wrongly in this domain: word -> syllables.
LEXICON: dict[str, tuple[str, ...]] = {
    "长宁": ("chang2", "ning2"),
    "长风": ("chang2", "feng1"),
    "长阳": ("chang2", "yang2"),
    "长治": ("chang2", "zhi4"),
    "长寿": ("chang2", "shou4"),
    "长时间": ("chang2", "shi2", "jian1"),
    "长期": ("chang2", "qi2"),
    "闵行": ("min3", "hang2"),
    "干垃圾": ("gan1", "la1", "ji1"),
    "干湿": ("gan1", "shi1"),
    "窨井": ("yin4", "jing3"),
    "重置": ("chong2", "zhi4"),
    "银行": ("yin2", "hang2"),
    "行长": ("hang2", "zhang3"),
    "弄堂": ("long4", "tang2"),
    "里弄": ("li3", "long4"),
    "弄口": ("long4", "kou3"),
    "得去": ("dei3", "qu4"),
    "不得了": ("bu4", "de2", "liao3"),
    "睡不着": ("shui4", "bu4", "zhao2"),
    "睡不着觉": ("shui4", "bu4", "zhao2", "jiao4"),
    "长护险": ("chang2", "hu4", "xian3"),
    "嗯": ("en4",),
    "哦": ("o4",),
    "喂": ("wei2",),
    "地址": ("di4", "zhi3"),
}

# Words ending in 儿 where 儿 is a full syllable (child, son), not the 儿化 suffix.
NON_ERHUA = frozenset(
    "女儿 婴儿 幼儿 孤儿 健儿 男儿 宠儿 胎儿 患儿 少儿 育儿 新生儿 混血儿 弃儿 孩儿 小儿 "
    "儿女 儿 托儿 孙儿 侄儿 妻儿 乳儿 病儿 产儿 残疾儿 早产儿 留守儿".split()
)

NUMERAL_CHARS = frozenset("零〇一二两三四五六七八九十百千万亿幺")
DIGIT_CHARS = frozenset("零〇一二三四五六七八九幺")
# 一 read yi1 in these (ordinal: dates, floors, numbered things).
_YI1_BEFORE = frozenset("月号楼层期室栋幢弄路组班等届楼区线")

_DEI3_AFTER = frozenset(
    "我 你 您 他 她 我们 你们 他们 她们 咱们 大家 就 还 也 都 总 必须 还是".split()
)

_HANZI = re.compile(r"[\u3400-\u9fff]")
_SYLLABLE = re.compile(r"^[a-z]+[1-5]r?$")


@lru_cache(maxsize=1)
def _tokenizer():
    import jieba

    jieba.setLogLevel(60)
    tok = jieba.Tokenizer()
    for word in LEXICON:
        if len(word) > 1:
            tok.add_word(word, freq=2000)
    return tok


def _pypinyin(word: str, sandhi: bool) -> list[str]:
    from pypinyin import Style, lazy_pinyin

    return lazy_pinyin(
        word,
        style=Style.TONE3,
        tone_sandhi=sandhi,
        neutral_tone_with_five=True,
        errors=lambda s: ["?"] * len(s),
    )


def _tone(syl: str) -> int:
    digits = [c for c in syl if c.isdigit()]
    return int(digits[-1]) if digits else 5


def _set_tone(syl: str, tone: int) -> str:
    return re.sub(r"[1-5]", str(tone), syl)


def _fix_espeak_spelling(syl: str) -> str:
    """Syllables pypinyin writes in a form espeak-ng's pinyin voice cannot read."""
    base, tone = syl[:-1], syl[-1]
    if base == "n":  # 嗯 n2
        return "en" + tone
    if base == "m":  # 呣
        return "mu" + tone
    if base == "hm":
        return "hen" + tone
    if base == "hng":
        return "heng" + tone
    return syl


def _lexicon_spans(text: str, words: list[str]) -> dict[int, tuple[str, ...]]:
    """Forward longest match of LEXICON over ``text``; a match is kept only if it lies inside one
    jieba word or starts and ends on word boundaries (so 进行|长期 never yields 行长)."""
    bounds = {0}
    word_of: list[int] = []
    pos = 0
    for i, w in enumerate(words):
        pos += len(w)
        bounds.add(pos)
        word_of.extend([i] * len(w))
    longest = max(len(k) for k in LEXICON)
    spans: dict[int, tuple[str, ...]] = {}
    i = 0
    while i < len(text):
        for n in range(min(longest, len(text) - i), 0, -1):
            piece = text[i : i + n]
            if piece in LEXICON:
                end = i + n
                inside = word_of[i] == word_of[end - 1]
                aligned = i in bounds and end in bounds
                if inside or aligned:
                    spans[i] = LEXICON[piece]
                    i = end
                    break
        else:
            i += 1
    return spans


def to_pinyin(text: str) -> list[str]:
    """Tone-numbered syllables for ``text`` (Chinese characters only), one per syllable;
    an 儿化 syllable carries the ``r`` after its tone (``dian3r``)."""
    bad = [c for c in text if not _HANZI.match(c)]
    if bad:
        raise ValueError(
            f"to_pinyin takes Chinese characters only, got {''.join(sorted(set(bad)))!r} in "
            f"{text!r}; normalize numbers and drop punctuation first (serving.text.normalize)"
        )
    if not text:
        return []
    words = list(_tokenizer().cut(text, HMM=False))
    sandhi: list[str] = []
    plain: list[str] = []
    word_idx: list[int] = []
    for wi, w in enumerate(words):
        sandhi.extend(_pypinyin(w, True))
        plain.extend(_pypinyin(w, False))
        word_idx.extend([wi] * len(w))
    if len(sandhi) != len(text):  # pypinyin groups non-hanzi; cannot happen after the check
        raise RuntimeError(f"pypinyin returned {len(sandhi)} syllables for {len(text)} chars")

    syl = list(sandhi)
    fixed = [False] * len(text)
    for start, pron in _lexicon_spans(text, words).items():
        for k, p in enumerate(pron):
            syl[start + k] = p
            plain[start + k] = p
            fixed[start + k] = True

    for i, ch in enumerate(text):
        if fixed[i]:
            continue
        prev = text[i - 1] if i > 0 else ""
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if ch == "弄" and prev in NUMERAL_CHARS:
            syl[i] = "long4"
        elif ch == "一":
            syl[i] = _yi(text, words, word_idx, plain, i, prev, nxt)
        elif ch == "不":
            if syl[i] == "bu5":
                continue
            syl[i] = "bu2" if nxt and _tone(plain[i + 1]) == 4 else "bu4"

    pos = 0
    for wi, w in enumerate(words):
        if w == "得" and wi > 0 and not fixed[pos]:
            syl[pos] = "dei3" if words[wi - 1] in _DEI3_AFTER else "de5"
        pos += len(w)

    # 儿化: merge a word-final 儿 into the syllable before it.
    out: list[str] = []
    pos = 0
    for w in words:
        n = len(w)
        piece = syl[pos : pos + n]
        if n >= 2 and w.endswith("儿") and w not in NON_ERHUA and not fixed[pos + n - 1]:
            piece = piece[:-2] + [piece[-2] + "r"]
        out.extend(piece)
        pos += n
    return [_fix_espeak_spelling(s) if not s.endswith("r") else s for s in out]


def _yi(
    text: str, words: list[str], word_idx: list[int], plain: list[str], i: int, prev: str, nxt: str
) -> str:
    if not nxt:
        return "yi1"
    if prev in NUMERAL_CHARS or prev == "第" or nxt in DIGIT_CHARS or nxt in _YI1_BEFORE:
        return "yi1"
    if prev and prev == nxt and prev != "一":  # 看一看
        return "yi5"
    w = words[word_idx[i]]
    if len(w) > 1 and w.endswith("一") and word_idx[i + 1] != word_idx[i]:  # 统一, 唯一
        return "yi1"
    return "yi2" if _tone(plain[i + 1]) == 4 else "yi4"


def pinyin_for_espeak(text: str) -> str:
    """The string to hand to ``espeak-ng -v cmn-latn-pinyin``: syllables joined by spaces."""
    syllables = to_pinyin(text)
    for s in syllables:
        if not _SYLLABLE.match(s):
            raise ValueError(f"cannot spell {s!r} (from {text!r}) for espeak-ng")
    return " ".join(syllables)
