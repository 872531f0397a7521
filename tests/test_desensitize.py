from __future__ import annotations

import pytest

from serving.text.desensitize import PLACEHOLDERS, desensitize
from serving.text.normalize import normalize

# (input, expected output); a valid ID: 11010519491231002X, 310105199003071234 has a bad checksum
MASKED = [
    # mobile
    ("我的手机号是13812345678", "我的手机号是<手机号>"),
    ("手机 138-1234-5678 打不通", "手机 <手机号> 打不通"),
    ("手机：138 1234 5678。", "手机：<手机号>。"),
    ("+86 138 1234 5678", "<手机号>"),
    ("+8613812345678", "<手机号>"),
    ("008613812345678", "<手机号>"),
    ("联系人张先生15900001111，晚上打", "联系人张先生<手机号>，晚上打"),
    ("１３８１２３４５６７８", "<手机号>"),
    ("我的手机号是幺八三四九五二零七五八", "我的手机号是<手机号>"),
    ("就是说我的手机号是幺三八六九二二二二幺幺", "就是说我的手机号是<手机号>"),
    ("跟您核对一下手机号码是幺八七二七二零八幺二四对吗", "跟您核对一下手机号码是<手机号>对吗"),
    ("号码是一三八一二三四五六七八", "号码是<手机号>"),
    ("一三八幺二三四五六七八", "<手机号>"),
    ("幺三八 幺二三四 五六七八", "<手机号>"),
    ("加八六幺三八幺二三四五六七八", "<手机号>"),
    ("统一幺三八幺二三四五六七八", "统一<手机号>"),
    ("电话12345678901", "电话<手机号>"),
    ("手机13812345678和15900001111都行", "手机<手机号>和<手机号>都行"),
    # landline
    ("打我座机吧零二幺六八零二五七零六", "打我座机吧<座机号>"),
    ("电话021-68025706", "电话<座机号>"),
    ("(021)68025706", "<座机号>"),
    ("（021）6802 5706", "<座机号>"),
    ("0512-67891234转8001", "<座机号>转8001"),
    ("010-12345678", "<座机号>"),
    ("座机68025706", "座机<座机号>"),
    ("您打这个电话六八零二五七零六", "您打这个电话<座机号>"),
    ("零五七幺八八八八六六六六", "<座机号>"),
    # ID cards
    ("身份证号11010519491231002X", "身份证号<身份证号>"),
    ("11010519491231002x", "<身份证号>"),
    ("身份证号码310105199003071234", "身份证号码<身份证号>"),
    ("身份证三一零一零五一九九零零三零七一二三叉", "身份证<身份证号>"),
    ("我的是三一零一零五一九九零零三零七一二三四", "我的是<身份证号>"),
    ("证件号码110105 19491231 002X", "证件号码<身份证号>"),
    ("身份证号310105900307123", "身份证号<身份证号>"),
    # bank cards
    ("银行卡号6222021234567890123", "银行卡号<银行卡号>"),
    ("卡号 6222 0212 3456 7890 123", "卡号 <银行卡号>"),
    ("4111111111111111", "<银行卡号>"),
    ("打到这张卡六二二二零二幺二三四五六七八九零幺二三", "打到这张卡<银行卡号>"),
    ("账号是1234567890123", "账号是<银行卡号>"),
    ("6222021234567890124", "<银行卡号>"),
    # plates
    ("沪A12345的车", "<车牌号>的车"),
    ("苏E·D12345", "<车牌号>"),
    ("沪AD12345违章停车", "<车牌号>违章停车"),
    ("浙B12345D", "<车牌号>"),
    ("车牌沪A幺二三四五", "车牌<车牌号>"),
    ("粤B·A123学", "<车牌号>"),
    # e-mail
    ("邮箱abc12@qq.com", "邮箱<邮箱>"),
    ("发到 zhang.san_01@sh.gov.cn 就行", "发到 <邮箱> 就行"),
    ("邮箱ABC幺二艾特QQ点COM", "邮箱<邮箱>"),
    ("ZHANG下划线SAN艾特SH点GOV点CN", "<邮箱>"),
    # several in one line
    (
        "我叫李四，手机13812345678，身份证11010519491231002X，车牌沪A12345",
        "我叫李四，手机<手机号>，身份证<身份证号>，车牌<车牌号>",
    ),
]

UNCHANGED = [
    "押金一千二百元",
    "押金1200元",
    "这个月水费多收了四万四千元",
    "12000000元",
    "2026年3月5日",
    "二零二六年三月五日",
    "2026-03-05",
    "20260305",
    "下午14:30到",
    "早上六点二十分就开始敲了",
    "莲花南路88号",
    "我家楼上漏水1203室的业主联系不上",
    "一八零一室",
    "曹安公路一千四百二十二弄九号",
    "5弄",
    "工单号2026120400123",
    "工单号13812345678",
    "您的工单编号是二六零零幺零零七请您记一下",
    "工单号是二六七五幺八九六到现在还没人处理",
    "受理号 20261204001",
    "订单编号6222021234567890123",
    "拨打12345热线",
    "幺二三四五市民服务热线",
    "您好三二九八号话务员为您服务",
    "第13812345678位",
    "一二三四五六七",
    "我住了十五年",
    "居住证积分满一百二十分",
    "68025706",
    "沪ABCDE",
    "邮箱地址我等会发给你",
    "三点半以后再打",
    "请问二零二七年灵活就业人员医保每个月交多少",
    "3216549870321654987",
    "9876543210123456",
    "编号9876543210123456",
]


@pytest.mark.parametrize(("text", "expected"), MASKED)
def test_masks(text: str, expected: str) -> None:
    assert desensitize(text).text == expected


@pytest.mark.parametrize("text", UNCHANGED)
def test_leaves_alone(text: str) -> None:
    result = desensitize(text)
    assert result.text == text
    assert result.counts == {}
    assert result.spans == []


def test_table_is_large() -> None:
    assert len(MASKED) + len(UNCHANGED) >= 60


@pytest.mark.parametrize(("text", "expected"), MASKED)
def test_masks_normalized_text(text: str, expected: str) -> None:
    """The same items are found after normalization (digits spelled, punctuation removed)."""
    assert desensitize(normalize(text)).counts == desensitize(text).counts


@pytest.mark.parametrize("text", UNCHANGED)
def test_leaves_alone_normalized_text(text: str) -> None:
    normalized = normalize(text)
    assert desensitize(normalized).text == normalized


def test_counts_and_spans() -> None:
    text = "手机13812345678，座机021-68025706，手机15900001111"
    result = desensitize(text)
    assert result.counts == {"mobile": 2, "landline": 1}
    assert [s.type for s in result.spans] == ["mobile", "landline", "mobile"]
    assert [s.original_length for s in result.spans] == [11, 12, 11]
    for span in result.spans:
        assert result.text[span.start : span.end] == PLACEHOLDERS[span.type]
    # nothing of the original numbers survives anywhere in the result
    assert "138" not in repr(result) and "6802" not in repr(result)


def test_rest_of_line_is_byte_identical() -> None:
    text = "  喂，你好！我的电话是 138-1234-5678 ，地址是莲花南路88号1203室。 "
    result = desensitize(text)
    assert result.text == "  喂，你好！我的电话是 <手机号> ，地址是莲花南路88号1203室。 "


def test_empty_text() -> None:
    result = desensitize("")
    assert result.text == "" and result.counts == {} and result.spans == []


def test_cli_desensitize() -> None:
    from typer.testing import CliRunner

    from hotline_asr.cli import app

    lines = "喂，我的手机是138-1234-5678。\n押金1200元，工单号2026120400123\n车牌沪A12345，手机15900001111\n"
    result = CliRunner().invoke(app, ["text", "desensitize"], input=lines)
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "喂，我的手机是<手机号>。\n押金1200元，工单号2026120400123\n车牌<车牌号>，手机<手机号>\n"
    )
    counts = {
        row.split()[0]: int(row.split()[1])
        for row in result.stderr.splitlines()
        if row.split() and row.split()[0] in PLACEHOLDERS
    }
    assert counts["mobile"] == 2 and counts["plate"] == 1 and counts["id_card"] == 0
    assert "3 lines read, 2 with masked items" in result.stderr


def test_cli_desensitize_quiet_with_ids() -> None:
    from typer.testing import CliRunner

    from hotline_asr.cli import app

    result = CliRunner().invoke(
        app, ["text", "desensitize", "--with-ids", "-q"], input="u-13812345678\t电话13812345678"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "u-13812345678\t电话<手机号>"
    assert result.stderr == ""
