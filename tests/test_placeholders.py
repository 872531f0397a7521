"""Random stand-ins for desensitize placeholders (training.data.placeholders)."""

from __future__ import annotations

import random

import pytest

from serving.text.desensitize import PLACEHOLDERS, desensitize
from training.data.placeholders import fill_placeholders, standin


@pytest.mark.parametrize("kind", ["mobile", "landline", "id_card", "bank_card", "plate"])
def test_every_standin_desensitizes_back_to_its_placeholder(kind):
    rng = random.Random(7)
    values = {standin(kind, rng) for _ in range(200)}
    assert len(values) > 150  # drawn, not fixed
    for v in values:
        assert not any(c.isascii() and c.isdigit() for c in v)  # read out, as transcripts are
        got = desensitize(f"你好{v}谢谢")
        assert got.text == f"你好{PLACEHOLDERS[kind]}谢谢", v


def test_fill_keeps_the_text_around_the_placeholders():
    rng = random.Random(0)
    text = "我姓董电话是<手机号>，座机<座机号>"
    filled = fill_placeholders(text, rng)
    assert filled is not None and filled.startswith("我姓董电话是幺") and "，座机零二幺" in filled
    assert desensitize(filled).text == text
    assert fill_placeholders("没有号码", rng) == "没有号码"


def test_no_standin_for_email_or_unknown_placeholders():
    rng = random.Random(0)
    assert standin("email", rng) is None
    assert fill_placeholders("我的邮箱是<邮箱>", rng) is None
    assert fill_placeholders("这是<地址>", rng) is None
    with pytest.raises(ValueError, match="unknown placeholder type 'address'"):
        standin("address", rng)
