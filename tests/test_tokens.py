from __future__ import annotations

from pathlib import Path

import pytest

from serving.tokens import TokenTable


def test_load_icefall_fixture(icefall_fixture: Path) -> None:
    path = icefall_fixture / "tokens.txt"
    table = TokenTable.load(path)
    assert len(table) == 500
    assert (table.blank_id, table.sos_eos_id, table.unk_id) == (0, 1, 2)
    assert table[3] == "的" and table["的"] == 3
    ids = table.encode("我是的")
    assert ids == [table["我"], table["是"], 3]
    assert table.decode(ids) == "我是的"


def test_save_round_trip_is_byte_identical(icefall_fixture: Path, tmp_path: Path) -> None:
    src = icefall_fixture / "tokens.txt"
    out = tmp_path / "sub" / "tokens.txt"
    TokenTable.load(src).save(out)
    assert out.read_bytes() == src.read_bytes()
    assert [p.name for p in out.parent.iterdir()] == ["tokens.txt"]  # no temporary left over


def test_encode_unknown_and_whitespace() -> None:
    table = TokenTable.from_texts(["你好", "好的"])
    assert table.encode("你 好吗") == [table["你"], table["好"], table.unk_id]
    assert table.decode([0, table["你"], 0, 0, table["好"], 2, 1]) == "你好"


def test_from_texts_is_deterministic_and_counts() -> None:
    texts = ["好好好的", "的你", "吗"]
    table = TokenTable.from_texts(texts)
    assert table.tokens == ["<blk>", "<sos/eos>", "<unk>", "好", "的", "你", "吗"]
    assert TokenTable.from_texts(list(reversed(texts))) == table
    pruned = TokenTable.from_texts(texts, min_count=2, extra_chars="幺A")
    assert pruned.tokens == ["<blk>", "<sos/eos>", "<unk>", "好", "的", "A", "幺"]


def test_load_reports_bad_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no token table"):
        TokenTable.load(tmp_path / "missing.txt")
    bad = tmp_path / "gap.txt"
    bad.write_text("<blk> 0\n<sos/eos> 1\n<unk> 2\n好 4\n", encoding="utf-8")
    with pytest.raises(ValueError, match="without gaps"):
        TokenTable.load(bad)
    dup = tmp_path / "dup.txt"
    dup.write_text("<blk> 0\n<unk> 0\n", encoding="utf-8")
    with pytest.raises(ValueError, match="already used"):
        TokenTable.load(dup)
    garbled = tmp_path / "garbled.txt"
    garbled.write_text("<blk> zero\n", encoding="utf-8")
    with pytest.raises(ValueError, match="expected '<token> <id>'"):
        TokenTable.load(garbled)
    no_blank = tmp_path / "noblank.txt"
    no_blank.write_text("<unk> 0\n好 1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no <blk>"):
        TokenTable.load(no_blank)


def test_decode_rejects_out_of_range_ids() -> None:
    table = TokenTable.from_texts(["好"])
    with pytest.raises(IndexError, match="outside this table"):
        table.decode([99])


def test_decode_sentencepiece_word_marker() -> None:
    table = TokenTable(["<blk>", "<sos/eos>", "<unk>", "▁HELLO", "▁WOR", "LD"])
    assert table.decode([3, 4, 5]) == "HELLO WORLD"
