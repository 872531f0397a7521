from __future__ import annotations

import random
import re

import pytest

from training.synth.textgen import (
    CITIES,
    DISTRICTS,
    DOMAINS,
    N_COMMON,
    TEMPLATES,
    TextGenerator,
    call_script,
    common_chars,
    cover_words,
    coverage,
    passes_needed,
    render_template,
)

HANZI = re.compile(r"^[\u4e00-\u9fff]+$")


def test_same_seed_same_texts_and_other_seed_differs():
    a = [s.text for s in TextGenerator(11).take(200)]
    b = [s.text for s in TextGenerator(11).take(200)]
    c = [s.text for s in TextGenerator(12).take(200)]
    assert a == b
    assert a != c


def test_at_least_60_templates_with_unique_ids_roles_and_domains():
    assert len(TEMPLATES) >= 60
    assert len({t.id for t in TEMPLATES}) == len(TEMPLATES)
    assert {t.role for t in TEMPLATES} == {"caller", "agent"}
    for d in ("noise", "garbage", "property", "pension", "traffic", "utilities", "elderly"):
        assert d in DOMAINS


def test_every_template_renders_chinese_characters_only():
    rng = random.Random(0)
    for _ in range(5):
        for t in TEMPLATES:
            s = render_template(t, rng)
            assert HANZI.match(s.text), (t.id, s.text)
            assert "{" not in s.text and s.template_id == t.id and s.role == t.role


def test_slot_lists_cover_the_required_places():
    for d in ("长宁区", "闵行区", "浦东新区", "徐汇区", "静安区", "普陀区", "杨浦区", "虹口区",
              "宝山区", "嘉定区", "松江区", "青浦区", "奉贤区", "金山区", "崇明区"):  # fmt: skip
        assert d in DISTRICTS
    assert {"苏州", "杭州", "宁波", "无锡"} <= set(CITIES)


def test_phone_numbers_are_read_digit_by_digit_with_yao():
    tpl = next(t for t in TEMPLATES if "{phone}" in t.pattern and t.role == "caller")
    texts = [render_template(tpl, random.Random(i)).text for i in range(30)]
    assert any("幺" in t for t in texts)
    assert not any(re.search(r"[0-9]", t) for t in texts)


def test_common_chars_are_3500_distinct_and_frequent_ones_first():
    chars = common_chars()
    assert len(chars) == N_COMMON == len(set(chars))
    assert set("的一是不了人我在有") <= set(chars[:60])
    words = cover_words()
    assert all(ch in w for ch, w in words.items())


def test_word_sentences_cover_all_common_chars_within_the_guaranteed_count():
    gen = TextGenerator(5, word_fraction=1.0)
    sents = gen.take(passes_needed())
    assert coverage(sents) == 1.0
    assert coverage(sents[: passes_needed() // 4]) < 0.5  # the bound is not trivially loose


def test_mixed_generator_sample_covers_all_common_chars():
    # 30 % word sentences; 3,000 sentences hold ~900 of them, over the 700 one pass needs.
    sents = TextGenerator(3, word_fraction=0.3).take(3000)
    n_words = sum(s.template_id == "W" for s in sents)
    assert n_words >= passes_needed()
    assert coverage(sents) == 1.0
    templated = [s for s in sents if s.template_id != "W"]
    assert len({s.template_id for s in templated}) == len(TEMPLATES)


def test_call_script_starts_with_greeting_and_ends_with_goodbye():
    turns = call_script(random.Random(4), domain="noise")
    assert turns[0].role == "agent" and "幺二三四五" in turns[0].text
    assert turns[-1].role == "agent" and "再见" in turns[-1].text
    assert any(t.role == "caller" and t.domain == "noise" for t in turns)
    with pytest.raises(ValueError, match="unknown call domain"):
        call_script(random.Random(0), domain="weather")


def test_generated_text_is_already_in_normalized_form():
    from serving.text.normalize import normalize

    for s in TextGenerator(1).take(800):
        assert normalize(s.text) == s.text, s.text
