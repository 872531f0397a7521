from __future__ import annotations

import pytest

from serving.text.normalize import normalize, read_cardinal, read_decimal, read_digits, read_year

NORMALIZE_CASES = [
    # plain text, punctuation, width, letters
    ("你好，请问有什么可以帮您？", "你好请问有什么可以帮您"),
    ("喂 你好 ！！", "喂你好"),
    ("“垃圾分类”（试行）", "垃圾分类试行"),
    ("我用的是iPhone", "我用的是IPHONE"),
    ("ＡＰＰ打不开", "APP打不开"),
    ("随申办app登录不上", "随申办APP登录不上"),
    ("二〇二六年", "二零二六年"),
    ("已经是汉字的一千二百元不动", "已经是汉字的一千二百元不动"),
    # cardinals
    ("10", "十"),
    ("120", "一百二十"),
    ("1005", "一千零五"),
    ("20000", "两万"),
    ("住了15年", "住了十五年"),
    ("积分满120分", "积分满一百二十分"),
    ("等了3个月", "等了三个月"),
    ("电梯坏了12天", "电梯坏了十二天"),
    ("今年72岁", "今年七十二岁"),
    ("住了27个人", "住了二十七个人"),
    ("2个人", "两个人"),
    ("第2名", "第二名"),
    ("2号线", "二号线"),
    ("2楼", "二楼"),
    ("2小时", "两小时"),
    ("iPhone 15 Pro", "IPHONE十五PRO"),
    # amounts
    ("120元", "一百二十元"),
    ("¥120", "一百二十元"),
    ("￥2500元", "两千五百元"),
    ("押金2000元", "押金两千元"),
    ("花了25000块钱", "花了两万五千块钱"),
    ("多收了220块", "多收了两百二十块"),
    ("1,200元", "一千二百元"),
    ("12000元", "一万二千元"),
    ("$5", "五美元"),
    ("4.7元每平方米", "四点七元每平方米"),
    ("2.5万", "二点五万"),
    ("1200000元", "一百二十万元"),
    # decimals, percentages, signs, ranges
    ("3.5", "三点五"),
    ("0.25", "零点二五"),
    ("15%", "百分之十五"),
    ("3.5%的利率", "百分之三点五的利率"),
    ("气温-5℃", "气温负五度"),
    ("3-5天", "三到五天"),
    ("2~3个工作日", "两到三个工作日"),
    # dates and times
    ("2026年", "二零二六年"),
    ("2026年3月5日", "二零二六年三月五日"),
    ("2026-03-05", "二零二六年三月五日"),
    ("2026/3/5", "二零二六年三月五日"),
    ("3月5日", "三月五日"),
    ("12月1号", "十二月一号"),
    ("3月05日", "三月五日"),
    ("14:30", "十四点三十分"),
    ("2:10", "两点十分"),
    ("1:05", "一点零五分"),
    ("14:00", "十四点"),
    ("9：15：30", "九点十五分三十秒"),
    ("下午3点", "下午三点"),
    ("办公时间9:00-17:00", "办公时间九点到十七点"),
    ("8:30到11:30", "八点三十分到十一点三十分"),
    ("凌晨2点", "凌晨两点"),
    # phone, ID, work order, rooms, addresses
    ("13812345678", "幺三八幺二三四五六七八"),
    ("我的手机号是13812345678。", "我的手机号是幺三八幺二三四五六七八"),
    ("手机：138-1234-5678", "手机幺三八幺二三四五六七八"),
    ("+86 138 1234 5678", "加八六幺三八幺二三四五六七八"),
    ("电话：021-68025706", "电话零二幺六八零二五七零六"),
    ("(021)68025706", "零二幺六八零二五七零六"),
    ("座机号码68025706", "座机号码六八零二五七零六"),
    ("分机808", "分机八零八"),
    ("尾号1234", "尾号幺二三四"),
    ("工单号2026120400123", "工单号二零二六幺二零四零零幺二三"),
    ("工单编号是26001007", "工单编号是二六零零幺零零七"),
    ("身份证号31010519900307123X", "身份证号三一零一零五一九九零零三零七一二三叉"),
    ("身份证号码310105199003071234", "身份证号码三一零一零五一九九零零三零七一二三四"),
    ("1203室", "一二零三室"),
    ("1801室的业主", "一八零一室的业主"),
    ("805房间", "八零五房间"),
    ("莲花南路481号", "莲花南路四百八十一号"),
    ("曹安公路1422弄9号", "曹安公路一千四百二十二弄九号"),
    ("228弄", "两百二十八弄"),
    ("3号楼2单元", "三号楼二单元"),
    ("3298号话务员为您服务", "三二九八号话务员为您服务"),
    ("工号0231", "工号零二三幺"),
    ("拨打12345热线", "拨打幺二三四五热线"),
    ("12345市民服务热线", "幺二三四五市民服务热线"),
    ("打110报警", "打幺幺零报警"),
    ("120元的急救费", "一百二十元的急救费"),
    ("邮编200120", "邮编二零零幺二零"),
    ("编号007", "编号零零七"),
    # plates and e-mail
    ("沪A12345", "沪A幺二三四五"),
    ("车牌苏E·D12345", "车牌苏ED幺二三四五"),
    ("浙B12345D", "浙B幺二三四五D"),
    ("邮箱abc12@qq.com", "邮箱ABC幺二艾特QQ点COM"),
    ("zhang_san@sh.gov.cn", "ZHANG下划线SAN艾特SH点GOV点CN"),
]


@pytest.mark.parametrize(("text", "expected"), NORMALIZE_CASES)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_normalize_table_is_large() -> None:
    assert len(NORMALIZE_CASES) >= 60


def test_normalize_is_idempotent() -> None:
    for text, _ in NORMALIZE_CASES:
        once = normalize(text)
        assert normalize(once) == once


def test_normalize_output_has_only_letters() -> None:
    for text, _ in NORMALIZE_CASES:
        out = normalize(text)
        assert all(ch.isalpha() for ch in out), (text, out)
        assert not any(ch.isdigit() for ch in out)


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "零"),
        (2, "二"),
        (10, "十"),
        (11, "十一"),
        (20, "二十"),
        (110, "一百一十"),
        (200, "两百"),
        (222, "两百二十二"),
        (1050, "一千零五十"),
        (2200, "两千二百"),
        (10001, "一万零一"),
        (100010, "十万零一十"),
        (101000, "十万一千"),
        (220000, "二十二万"),
        (1000100, "一百万零一百"),
        (10010000, "一千零一万"),
        (100000001, "一亿零一"),
        (200000000, "两亿"),
        (120000000, "一亿二千万"),
        (-15, "负十五"),
    ],
)
def test_read_cardinal(n: int, expected: str) -> None:
    assert read_cardinal(n) == expected


def test_read_cardinal_rejects_bad_input() -> None:
    with pytest.raises(TypeError, match="read_decimal"):
        read_cardinal(3.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="too large"):
        read_cardinal(10**16)


def test_read_digits() -> None:
    assert read_digits("13812345678") == "幺三八幺二三四五六七八"
    assert read_digits("1203", one="一") == "一二零三"
    assert read_digits("138-1234 5678") == "幺三八幺二三四五六七八"
    assert read_digits("12345X", one="一") == "一二三四五叉"
    with pytest.raises(ValueError, match="not a digit"):
        read_digits("12a")


def test_read_year_and_decimal() -> None:
    assert read_year("2026") == "二零二六"
    assert read_year("1999年") == "一九九九"
    assert read_decimal("3.5") == "三点五"
    assert read_decimal("-0.25") == "负零点二五"
    assert read_decimal(".5") == "零点五"
    assert read_decimal("12") == "十二"
    assert read_decimal("1,200.05") == "一千二百点零五"
    with pytest.raises(ValueError, match="not a year"):
        read_year("二零二六")
    with pytest.raises(ValueError, match="not a number"):
        read_decimal("3.5.1")


def test_reference_transcripts_are_fixed_points(shared_dir) -> None:
    """The hotline transcripts are already in normalized form: normalize() must not change them,
    and must turn their punctuated versions into them."""
    import json

    meta = shared_dir / "datasets" / "neural-voice-zh" / "dev" / "meta.jsonl"
    if not meta.is_file():
        pytest.skip(f"{meta} is missing")
    rows = [json.loads(line) for line in meta.read_text(encoding="utf-8").splitlines() if line]
    assert rows
    for row in rows:
        assert normalize(row["text"]) == row["text"]
        assert normalize(row["text_punct"]) == row["text"]


def test_cli_normalize() -> None:
    from typer.testing import CliRunner

    from hotline_asr.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["text", "normalize"], input="押金2000元。\n今天14:30到\n")
    assert result.exit_code == 0, result.output
    assert result.stdout == "押金两千元\n今天十四点三十分到\n"
    result = runner.invoke(
        app, ["text", "normalize", "--with-ids"], input="utt-1   我的电话：13812345678\n"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "utt-1 我的电话幺三八幺二三四五六七八\n"


@pytest.mark.parametrize(
    "text",
    [
        "1,000,000,000,000,000,000元",
        "12345678901234567.5",
        "99999999999999999999元",
        "12:60",
        "1-2-3",
    ],
)
def test_normalize_never_leaves_digits_or_fails(text: str) -> None:
    out = normalize(text)
    assert out and all(ch.isalpha() for ch in out)


def test_text_modules_do_not_import_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, serving.text.normalize, serving.text.desensitize, serving.tokens, "
        "hotline_asr.cmd_text; print(sorted(m for m in ('torch', 'lightning', 'mlflow') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
