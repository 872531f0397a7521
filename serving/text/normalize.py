"""Text normalization shared by training, scoring and serving.

``normalize(text)`` turns a transcript, a model hypothesis or a written sentence into the form
the recognizer is trained on: Chinese characters and upper-case Latin letters only, numbers
written out the way a caller says them, no punctuation or whitespace. It is idempotent.

Arabic numerals are read by context; the first rule that fits wins:

- e-mail ``ab12@qq.com`` -> AB幺二艾特QQ点COM (``@`` 艾特, ``.`` 点, ``_`` 下划线, ``-`` 杠)
- licence plate ``沪A12345`` -> 沪A幺二三四五 (digit by digit with 幺)
- date ``2026-03-05``, ``2026/3/5``, ``2026年3月5日`` -> 二零二六年三月五日
- time ``14:30`` -> 十四点三十分, ``2:05`` -> 两点零五分, ``14:00`` -> 十四点
- percentage ``15%`` -> 百分之十五, ``3.5%`` -> 百分之三点五 (``‰`` 千分之)
- currency sign ``¥120`` -> 一百二十元, ``$5`` -> 五美元
- range before a unit ``3-5天`` -> 三到五天, ``2~3个`` -> 两到三个
- phone-style groups of 7+ digits ``138-1234-5678``, ``(021)68025706``, ``+86 138…`` -> digit
  by digit with 幺 (``+`` 加)
- room ``1203室``, ``805房间`` -> 一二零三室 (digit by digit with 一)
- operator ``3298号话务员``, ``工号0231`` -> 三二九八号话务员 (digit by digit with 幺)
- 4-digit year before 年 ``2026年`` -> 二零二六年 (``15年`` stays 十五年, a duration)
- number before a unit or counter ``120元``, ``88号``, ``12天``, ``3月`` -> cardinal
- hotline numbers ``12345``, ``12315``, ``12333``… (5 digits) always; ``110``/``120``/``119``
  after 打/拨 or before 热线/报警/急救 -> 幺二三四五, 幺幺零
- after 身份证/证件号, or 18 digits with a valid checksum, or 17 digits + X -> digit by digit
  with 一, X -> 叉
- after 电话/手机/号码/座机/工单/编号/单号/卡号/账号/尾号/邮编/… (3+ digits), any string of
  7+ digits, or one with a leading 0 -> digit by digit with 幺
- decimal ``3.5`` -> 三点五, ``0.25`` -> 零点二五; a minus sign -> 负
- anything else: cardinal, ``10`` 十, ``1005`` 一千零五, ``20000`` 两万

两 versus 二: ``read_cardinal`` says 两 only for the leading digit of the whole number when a
百/千/万/亿 follows it (200 两百, 2500 两千五百, 25000 两万五千, 228 两百二十八; but 22 二十二,
12000 一万二千, 220000 二十二万). A bare ``2`` becomes 两 before a measure word (``2个`` 两个,
``2点`` 两点, ``2元`` 两元) but stays 二 before 号/月/日/楼/层/分 and after 第 (ordinals).

Phone, work-order and other code numbers use 幺 for 1; ID numbers, rooms and years use 一, as
the hotline's transcripts do. Full-width ASCII becomes half-width, 〇 becomes 零, and ℃ ㎡ ㎏ ㎞
become 度 平方米 公斤 公里.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["normalize", "read_digits", "read_cardinal", "read_year", "read_decimal"]

_DIGITS = "零一二三四五六七八九"
_SMALL_UNITS = ("", "十", "百", "千")
_BIG_UNITS = ("", "万", "亿", "万亿")


def read_digits(s: str, one: str = "幺") -> str:
    """Read a digit string digit by digit: ``read_digits("13812345678")`` -> 幺三八幺二三四五六七八.

    ``one`` is the reading of 1 (幺 for phone numbers, 一 for rooms, years and IDs). ``X``/``x``
    (last character of an ID number) reads 叉. Spaces and hyphens are skipped.
    """
    out = []
    for ch in s:
        if "0" <= ch <= "9":
            out.append(one if ch == "1" else _DIGITS[ord(ch) - 48])
        elif ch in "Xx":
            out.append("叉")
        elif ch in " -":
            continue
        else:
            raise ValueError(
                f"read_digits: {ch!r} in {s!r} is not a digit; pass only 0-9, X, ' ', '-'"
            )
    return "".join(out)


def _read_group(g: int, first: bool) -> str:
    """Read 1..9999 (one 万-group). ``first``: this group starts the whole number."""
    digits = [(g // 10**p) % 10 for p in (3, 2, 1, 0)]
    out: list[str] = []
    pending_zero = False
    started = False
    for pos, d in zip((3, 2, 1, 0), digits, strict=True):
        if d == 0:
            if started:
                pending_zero = True
            continue
        if pending_zero:
            out.append("零")
            pending_zero = False
        if first and not started and d == 1 and pos == 1:
            out.append("十")  # 10-19 at the start of a number: 十, 十五 (not 一十)
        else:
            out.append(_DIGITS[d] + _SMALL_UNITS[pos])
        started = True
    return "".join(out)


def read_cardinal(n: int) -> str:
    """Read an integer as a Chinese cardinal: 10 -> 十, 120 -> 一百二十, 1005 -> 一千零五,
    20000 -> 两万, 100010 -> 十万零一十. Negative numbers get 负. Up to 10**16 - 1."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"read_cardinal expects an int, got {type(n).__name__}; use read_decimal")
    if n < 0:
        return "负" + read_cardinal(-n)
    if n == 0:
        return "零"
    if n >= 10**16:
        raise ValueError(f"read_cardinal: {n} is too large (max 10**16 - 1); use read_digits")
    groups = []
    m = n
    while m:
        groups.append(m % 10000)
        m //= 10000
    out: list[str] = []
    need_zero = False
    for k in range(len(groups) - 1, -1, -1):
        g = groups[k]
        first = not out
        if g == 0:
            need_zero = bool(out)
            continue
        if not first and (need_zero or g < 1000):
            out.append("零")
        text = _read_group(g, first)
        if (
            first
            and text[0] == "二"
            and (len(text) > 1 and text[1] in "百千" or (g == 2 and k > 0))
        ):
            text = "两" + text[1:]
        out.append(text + _BIG_UNITS[k])
        need_zero = False
    return "".join(out)


def read_year(s: str) -> str:
    """Read a year digit by digit with 一: ``read_year("2026")`` -> 二零二六 (no 年 added)."""
    s = s.strip()
    if s.endswith("年"):
        s = s[:-1]
    if not s.isascii() or not s.isdigit():
        raise ValueError(f"read_year: {s!r} is not a year in Arabic digits, e.g. '2026'")
    return read_digits(s, one="一")


def read_decimal(s: str) -> str:
    """Read a decimal number: 3.5 -> 三点五, 0.25 -> 零点二五, -1.5 -> 负一点五, 12 -> 十二.
    Thousands commas (``1,200.5``) are allowed; fraction digits are read one by one with 一."""
    t = s.strip().replace(",", "")
    m = re.fullmatch(r"([+-]?)(\d*)(?:\.(\d+))?", t)
    if not m or not (m.group(2) or m.group(3)):
        raise ValueError(f"read_decimal: {s!r} is not a number like '3.5' or '-0.25'")
    sign, whole, frac = m.groups()
    if not whole:
        out = "零"
    elif len(whole.lstrip("0")) > 16:
        out = read_digits(whole, one="一")  # beyond 万亿: no cardinal reading
    else:
        out = read_cardinal(int(whole))
    if frac:
        out += "点" + read_digits(frac, one="一")
    return ("负" if sign == "-" else "") + out


# --------------------------------------------------------------------------------------------
# context-dependent reading of numbers inside a sentence

_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_EMAIL_RE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)
_PLATE_RE = re.compile(
    rf"([{_PROVINCES}])([A-Za-z])[·•・.\s-]?"
    r"((?:[A-Ka-k][A-HJ-NP-Za-hj-np-z0-9]\d{4}|\d{5}[DFdf])|[A-Za-z0-9]{4}[A-Za-z0-9挂学警港澳])"
    r"(?![A-Za-z0-9])"
)
_DATE_RE = re.compile(
    r"(\d{4})\s*([-/.年])\s*(\d{1,2})\s*([-/.月])\s*(\d{1,2})(?!\d)(?:\s*([日号]))?"
)
_TIME_RE = re.compile(r"(\d{1,2})[:：](\d{2})(?:[:：](\d{2}))?(?!\d)")
_TIME_RANGE_BEFORE = re.compile(r"\d[:：]\d{2}\s*[-~～—–]\s*$")
_PERCENT_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([%‰])")
_CURRENCY_RE = re.compile(r"([¥$])\s*(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)")
_RANGE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*[-~—–]\s*(\d+(?:\.\d+)?)")
_GROUPED_RE = re.compile(r"(\+)?\(?\d+\)?(?:[ \-—–()]{1,2}\d+)+(?:[Xx](?![A-Za-z]))?")
_NUMBER_RE = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\d)|\d+\.\d+|\d+(?:[Xx](?![A-Za-z]))?")

# Words after a number that make it a quantity (read as a cardinal, not digit by digit).
_UNITS = (
    "元块角毛钱万亿千百岁个只位名次件天周月日号年时分秒米斤克吨度平层楼栋幢弄路人户家台辆条张份"
    "套间本遍趟倍级期届批项起所座页章节集部笔宗例箱袋瓶桶包把根盏棵点刻"
)
# After a bare 2 these take 两 (两个, 两点); 号/月/日/楼/层/路/弄/期/届/级 keep 二 (ordinals).
_LIANG_UNITS = set(
    "个只位名次件天周年岁点元块角毛钱万亿千百斤吨米人户家台辆条张份套间本遍趟倍项起所座笔宗"
)
_LIANG_WORDS = ("小时", "分钟", "公里", "公斤", "千米", "平方")

# Context words before a number; the last one found decides (身份证号码 is one ID word).
_CONTEXT_RE = re.compile(
    r"(?P<id>身份证号码|身份证号|身份证|证件号码|证件号)|"
    r"(?P<code>电话|手机|号码|座机|固话|热线|分机|工单|编号|单号|受理号|卡号|账号|帐号|尾号|验证码|"
    r"工号|订单|流水号|邮编|QQ|qq|微信|车牌|代码|密码)"
)
_OPERATOR_AFTER = re.compile(r"号(话务员|接线员|客服|坐席)")
# Service numbers read digit by digit when dialled or named (拨打12345, 110报警); 123xx always.
_SERVICE_NUMBERS = frozenset(
    "110 119 120 122 12345 12315 12333 12329 12319 12320 12369 12348 12351 12388 12123 "
    "12306 12308 12310 12318 12355 12358 12365 12366 12368 95598".split()
)
_DIAL_WORDS = ("打", "拨", "致电", "呼叫", "电话", "热线")
_SERVICE_AFTER = ("热线", "报警", "急救", "服务", "平台", "投诉", "反映", "举报", "求助")
_NOT_UNIT = ("分机", "号码", "年级")


_SYMBOLS = {"￥": "¥", "℃": "度", "°": "度", "㎡": "平方米", "㎏": "公斤", "㎞": "公里"}


def _fullwidth_to_ascii(text: str) -> str:
    out = []
    for ch in text:
        o = ord(ch)
        if 0xFF01 <= o <= 0xFF5E:
            out.append(chr(o - 0xFEE0))
        elif ch == "\u3000":
            out.append(" ")
        elif ch in _SYMBOLS:
            out.append(_SYMBOLS[ch])
        else:
            out.append(ch)
    return "".join(out)


def _id_checksum_ok(s: str) -> bool:
    if not re.fullmatch(r"\d{17}[\dXx]", s):
        return False
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(c) * w for c, w in zip(s[:17], weights, strict=True))
    return "10X98765432"[total % 11] == s[17].upper()


def _context_kind(before: str) -> str | None:
    """'id' or 'code' when a context word sits just before a number (in the last 6 characters,
    with no sentence break in between)."""
    window = re.split(r"[。！？；!?;，,]", before)[-1]
    last = None
    for m in _CONTEXT_RE.finditer(window):
        last = m
    if last is None or last.end() < len(window) - 6:
        return None
    return last.lastgroup


def _unit_after(after: str) -> str | None:
    a = after.lstrip(" ")
    if a.startswith(_NOT_UNIT):
        return None
    for w in _LIANG_WORDS:
        if a.startswith(w):
            return w
    if a and a[0] in _UNITS:
        return a[0]
    return None


def _cardinal_in_context(n: int, before: str, after: str) -> str:
    text = read_cardinal(n)
    if n == 2 and not before.endswith("第"):
        unit = _unit_after(after)
        if unit is not None and (unit in _LIANG_UNITS or unit in _LIANG_WORDS):
            return "两"
    return text


def _read_integer(s: str, before: str, after: str) -> str:
    """Read an integer token (maybe ending in X) given the raw text around it."""
    digits = s.rstrip("Xx")
    a = after.lstrip(" ")
    if digits != s:
        return read_digits(s, one="一")  # only ID numbers end in X
    if a.startswith(("室", "房间")):
        return read_digits(digits, one="一")
    if _OPERATOR_AFTER.match(a) or before.endswith("工号"):
        return read_digits(digits)
    if len(digits) == 4 and a.startswith("年"):
        return read_year(digits)
    leading_zero = len(digits) > 1 and digits[0] == "0"
    if _unit_after(a) is not None and len(digits) <= 12 and (not leading_zero or len(digits) == 2):
        return _cardinal_in_context(int(digits), before, a)
    if digits in _SERVICE_NUMBERS and (
        len(digits) == 5 or before.endswith(_DIAL_WORDS) or a.startswith(_SERVICE_AFTER)
    ):
        return read_digits(digits)
    kind = _context_kind(before)
    if kind == "id" and len(digits) >= 3 or len(digits) >= 7 and _id_checksum_ok(digits):
        return read_digits(digits, one="一")
    if leading_zero or len(digits) >= 7 or kind == "code" and len(digits) >= 3:
        return read_digits(digits)
    return _cardinal_in_context(int(digits), before, a)


def _read_number(s: str, before: str, after: str) -> str:
    if "," in s or "." in s:
        return read_decimal(s)
    return _read_integer(s, before, after)


def _email(m: re.Match[str], before: str, after: str) -> str | None:
    out = []
    for ch in m.group(0):
        if ch.isdigit():
            out.append(read_digits(ch))
        else:
            out.append({"@": "艾特", ".": "点", "_": "下划线", "-": "杠"}.get(ch, ch))
    return "".join(out)


def _plate(m: re.Match[str], before: str, after: str) -> str | None:
    tail = m.group(3)
    if sum(c.isdigit() for c in tail) < 3:
        return None
    return (
        m.group(1)
        + m.group(2).upper()
        + "".join(read_digits(c) if c.isdigit() else c for c in tail)
    )


def _date(m: re.Match[str], before: str, after: str) -> str | None:
    year, sep1, month, sep2, day, suffix = m.groups()
    if (sep1 == "年") != (sep2 == "月") or sep1 != "年" and sep1 != sep2:
        return None
    mo, d = int(month), int(day)
    if not (1 <= mo <= 12 and 1 <= d <= 31):
        return None
    if sep1 == "年" and suffix is None:
        suffix = ""  # "2026年3月5" stays without 日 when the writer left it out
    return f"{read_year(year)}年{read_cardinal(mo)}月{read_cardinal(d)}{suffix or '日'}"


def _time(m: re.Match[str], before: str, after: str) -> str | None:
    h, mi = int(m.group(1)), int(m.group(2))
    se = int(m.group(3)) if m.group(3) else 0
    if h > 24 or mi > 59 or se > 59:
        return None
    out = ("两" if h == 2 else read_cardinal(h)) + "点"
    if mi or se:
        out += ("零" if 0 < mi < 10 else "") + read_cardinal(mi) + "分"
    if se:
        out += ("零" if se < 10 else "") + read_cardinal(se) + "秒"
    if _TIME_RANGE_BEFORE.search(before):
        out = "到" + out  # 9:00-17:00 -> 九点到十七点
    return out


def _percent(m: re.Match[str], before: str, after: str) -> str | None:
    prefix = "百分之" if m.group(2) == "%" else "千分之"
    return prefix + read_decimal(m.group(1))


def _currency(m: re.Match[str], before: str, after: str) -> str | None:
    unit = "元" if m.group(1) == "¥" else "美元"
    amount = m.group(2)
    if "," in amount or "." in amount:
        spoken = read_decimal(amount)
    else:
        spoken = _cardinal_in_context(int(amount), "", unit)
    if after.lstrip(" ").startswith(unit):
        unit = ""
    return spoken + unit


def _range(m: re.Match[str], before: str, after: str) -> str | None:
    a = after.lstrip(" ")
    if _unit_after(a) is None:
        return None
    lo, hi = m.group(1), m.group(2)
    if len(lo.replace(".", "")) > 6 or len(hi.replace(".", "")) > 6:
        return None
    return _read_number(lo, before, a) + "到" + _read_number(hi, "", a)


def _grouped(m: re.Match[str], before: str, after: str) -> str | None:
    digits = re.sub(r"[^0-9Xx]", "", m.group(0))
    groups = re.findall(r"\d+", m.group(0))
    if len(digits.rstrip("Xx")) < 7 or max(len(g) for g in groups) > 8:
        return None  # "2026 13812345678" is two numbers, not one grouped phone number
    id_like = _context_kind(before) == "id" or _id_checksum_ok(digits) or digits[-1] in "Xx"
    return ("加" if m.group(1) else "") + read_digits(digits, one="一" if id_like else "幺")


def _number(m: re.Match[str], before: str, after: str) -> str | None:
    s = m.group(0)
    spoken = _read_number(s, before, after)
    head = before[:-1].rstrip(" ")
    if before.endswith("-") and (
        not head or not (head[-1].isascii() and head[-1].isalnum() or head[-1] in ")）")
    ):
        spoken = "负" + spoken
    return spoken


_RULES = (
    (_EMAIL_RE, _email),
    (_PLATE_RE, _plate),
    (_DATE_RE, _date),
    (_TIME_RE, _time),
    (_PERCENT_RE, _percent),
    (_CURRENCY_RE, _currency),
    (_RANGE_RE, _range),
    (_GROUPED_RE, _grouped),
    (_NUMBER_RE, _number),
)
_EMAIL_START = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9]")


def _read_numbers(text: str) -> str:
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if not (ch.isascii() and ch.isalnum() or ch in "¥$+(" or ch in _PROVINCES):
            out.append(ch)
            i += 1
            continue
        before = text[max(0, i - 12) : i]
        for pattern, reader in _RULES:
            if pattern is _EMAIL_RE and not _EMAIL_START.match(text, i):
                continue
            m = pattern.match(text, i)
            if m is None:
                continue
            spoken = reader(m, before, text[m.end() : m.end() + 8])
            if spoken is not None:
                out.append(spoken)
                i = m.end()
                break
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _keep(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return cat[0] in "LM"


def normalize(text: str) -> str:
    """Normalize a sentence for training, scoring and serving (see the module docstring):
    half-width ASCII, numbers read out in Chinese, Latin letters upper-cased, punctuation and
    whitespace removed. ``normalize("我的电话是138-1234-5678。")`` -> 我的电话是幺三八幺二三四五六七八."""
    text = _fullwidth_to_ascii(text).replace("〇", "零")
    text = _read_numbers(text)
    return "".join(ch for ch in text.upper() if _keep(ch))
