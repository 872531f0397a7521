"""Mask personal data in hotline transcripts into typed placeholders.

``desensitize(text)`` returns the text with each personal number or address replaced by a
placeholder; everything else is left exactly as it was. It works on raw text (Arabic digits,
separators, ``@``) and on normalized text (digits spelled 幺三八…, ``艾特``/``点`` in e-mail).

==============  ==============  =======================================================
type            placeholder     what is masked
==============  ==============  =======================================================
``mobile``      ``<手机号>``    11 digits ``1[3-9]…`` (with ``+86``/``86``/separators);
                                any 11 digits starting with 1 after 手机/电话/号码
``landline``    ``<座机号>``    ``0`` + area code + local number (``021-68025706``,
                                ``0512 6789 1234``); 7-8 digit local numbers only after
                                电话/座机/固话/号码/打/拨
``id_card``     ``<身份证号>``  18 characters ``17 digits + digit/X/叉``: Arabic digits
                                need a valid checksum, spelled digits a plausible birth
                                date; after 身份证/证件号 any 15 or 18 digits
``bank_card``   ``<银行卡号>``  16-19 digits passing the Luhn check or starting with 62
                                (UnionPay); after 卡号/银行卡/账号 any 12-19 digits
``plate``       ``<车牌号>``    沪A12345, 苏E·D12345, 沪AD12345 / 沪A12345D (new energy),
                                digits Arabic or spelled (沪A幺二三四五)
``email``       ``<邮箱>``      ``name@host.cn`` and spoken ``NAME艾特QQ点COM``
==============  ==============  =======================================================

Digits may be Arabic, full-width or spelled (零〇 一幺 二两 三…九), mixed, with spaces or
hyphens between groups. What is never masked:

* numbers right after a work-order word — 工单/工单号/工单编号/单号/编号/受理号/订单/流水号/
  工号/快递/运单/合同号/发票 — whatever they look like (the hotline needs them to trace a case);
* numbers right before a unit or counter (元 块 万 年 月 日 号 室 弄 栋 层 岁 个 …) or after 第:
  amounts, dates, house, lane and room numbers;
* strings shorter than 7 digits (times, years, 12345, operator numbers), and long digit strings
  that match none of the patterns above.

"Right after" means the nearest context word in the 12 characters before the number, with no
sentence break (。！？；，) in between. ``Span`` records where each placeholder sits in the
output and how long the original was; the original value itself is never kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["PLACEHOLDERS", "DesensitizeResult", "Span", "desensitize"]

PLACEHOLDERS: dict[str, str] = {
    "mobile": "<手机号>",
    "landline": "<座机号>",
    "id_card": "<身份证号>",
    "bank_card": "<银行卡号>",
    "plate": "<车牌号>",
    "email": "<邮箱>",
}


@dataclass(frozen=True)
class Span:
    """One masked item: ``type`` (a key of ``PLACEHOLDERS``), ``start``/``end`` of its
    placeholder in the output text, and the length of the original text it replaced."""

    type: str
    start: int
    end: int
    original_length: int


@dataclass
class DesensitizeResult:
    text: str
    counts: dict[str, int] = field(default_factory=dict)
    spans: list[Span] = field(default_factory=list)


_DIGIT_VALUE: dict[str, str] = {str(d): str(d) for d in range(10)}
_DIGIT_VALUE.update({chr(0xFF10 + d): str(d) for d in range(10)})
_DIGIT_VALUE.update({c: str(i) for i, c in enumerate("零一二三四五六七八九")})
_DIGIT_VALUE.update({"〇": "0", "幺": "1", "两": "2"})
_X_CHARS = frozenset("XxＸｘ叉")
_SEPARATORS = frozenset(" -－—–\u3000\u00a0()（）")
_D = "0-9０-９零〇一二三四五六七八九幺两"  # digit characters, for regex classes

_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_PL = f"[A-HJ-NP-Za-hj-np-z{_D}]"  # plate letters and digits (no I, O)
_PLATE_RE = re.compile(
    rf"[{_PROVINCES}][A-Za-z][·•・.\s-]?"
    rf"(?:[A-Ka-k]{_PL}[{_D}]{{4}}|[{_D}]{{5}}[DFdf]|{_PL}{{4}}(?:{_PL}|[挂学警港澳]))"
    r"(?![A-Za-z0-9０-９])"
)
_EMAIL_RE = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*[@＠][A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
    r"\.[A-Za-z]{2,}"
)
_SPOKEN_EMAIL_RE = re.compile(
    rf"(?<![A-Za-z])(?:[A-Za-z{_D}]+(?:下划线|杠|点))*[A-Za-z{_D}]+(?:艾特|[@＠])"
    rf"(?:[A-Za-z{_D}-]+(?:点|\.))+[A-Za-z]{{2,}}"
)
_CONTEXT_RE = re.compile(
    r"(?P<id_card>身份证号码|身份证号|身份证|证件号码|证件号)|"
    r"(?P<bank_card>银行卡号|银行卡|信用卡|储蓄卡|借记卡|卡号|账号|帐号|账户|帐户)|"
    r"(?P<exempt>工单编号|工单号|工单|受理编号|受理号|单号|编号|订单|流水号|工号|快递|运单|合同号|发票)|"
    r"(?P<phone>手机号码|手机号|手机|电话号码|电话|座机|固话|号码|联系方式|来电|打|拨|联系)"
)
_SENTENCE_BREAK = re.compile(r"[。！？；!?;，,]")
_UNITS_AFTER = frozenset("元块角毛钱万亿千百岁个年月日号室弄栋幢层楼米斤次天人户位名期届")
_MOBILE_RE = re.compile(r"1[3-9]\d{9}")
_LANDLINE_RE = re.compile(r"0(?:10|2\d)\d{8}|0[3-9]\d{2}\d{7,8}")


def _luhn_ok(d: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(d)):
        v = int(ch)
        if i % 2:
            v = v * 2 - 9 if v > 4 else v * 2
        total += v
    return total % 10 == 0


def _id_checksum_ok(d: str) -> bool:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(c) * w for c, w in zip(d[:17], weights, strict=True))
    return "10X98765432"[total % 11] == d[17].upper()


def _id_plausible(d: str) -> bool:
    """Region, birth year, month and day in range (for spelled numbers, where ASR errors make
    the checksum unreliable)."""
    if d[0] not in "12345678":
        return False
    year, month, day = int(d[6:10]), int(d[10:12]), int(d[12:14])
    return 1900 <= year <= 2099 and 1 <= month <= 12 and 1 <= day <= 31


def _classify(d: str, arabic: bool, context: str | None) -> str | None:
    """Type of a digit string ``d`` (ASCII digits, maybe a final X), or None."""
    if context == "exempt":
        return None
    n = len(d)
    if d[-1] == "X":
        return "id_card" if n == 18 and d[:17].isdigit() else None
    if n == 18 and (
        arabic and _id_checksum_ok(d) or not arabic and _id_plausible(d) or context == "id_card"
    ):
        return "id_card"
    if n == 15 and context == "id_card":
        return "id_card"
    if n == 11 and (_MOBILE_RE.fullmatch(d) or d[0] == "1" and context == "phone"):
        return "mobile"
    if n == 13 and d.startswith("86") and _MOBILE_RE.fullmatch(d[2:]):
        return "mobile"
    if n == 15 and d.startswith("0086") and _MOBILE_RE.fullmatch(d[4:]):
        return "mobile"
    if _LANDLINE_RE.fullmatch(d):
        return "landline"
    if 16 <= n <= 19 and (_luhn_ok(d) or d.startswith("62") or context == "bank_card"):
        return "bank_card"
    if 12 <= n <= 19 and context == "bank_card":
        return "bank_card"
    if n in (7, 8) and d[0] not in "01" and context == "phone":
        return "landline"
    return None


@dataclass
class _Run:
    """A run of digit characters in the text: ``positions[i]`` is where digit ``digits[i]`` is."""

    digits: str
    positions: list[int]
    arabic: bool


def _digit_runs(text: str, taken: list[bool]) -> list[_Run]:
    runs: list[_Run] = []
    i, n = 0, len(text)
    while i < n:
        if taken[i] or text[i] not in _DIGIT_VALUE:
            i += 1
            continue
        digits, positions = [], []
        j = i
        while j < n and not taken[j]:
            ch = text[j]
            if ch in _DIGIT_VALUE:
                digits.append(_DIGIT_VALUE[ch])
                positions.append(j)
                j += 1
            elif ch in _X_CHARS and len(digits) == 17:
                digits.append("X")
                positions.append(j)
                j += 1
                break
            elif ch in _SEPARATORS and digits:
                k = j
                while k < n and k - j < 2 and text[k] in _SEPARATORS:
                    k += 1
                if k < n and not taken[k] and text[k] in _DIGIT_VALUE:
                    j = k
                else:
                    break
            else:
                break
        arabic = all(text[p].isascii() or "０" <= text[p] <= "９" for p in positions)
        runs.append(_Run("".join(digits), positions, arabic))
        i = j
    return runs


def _context_before(text: str, start: int, floor: int) -> str | None:
    window = text[max(floor, start - 12) : start]
    window = _SENTENCE_BREAK.split(window)[-1]
    last = None
    for m in _CONTEXT_RE.finditer(window):
        last = m
    return None if last is None else last.lastgroup


def _quantity(text: str, start: int, end: int) -> bool:
    """A number right before a unit (元, 号, 室, …) or right after 第 is a quantity or ordinal."""
    k = end
    while k < len(text) and text[k] == " ":
        k += 1
    return (k < len(text) and text[k] in _UNITS_AFTER) or (start > 0 and text[start - 1] == "第")


def _split_run(run: _Run, text: str) -> list[_Run]:
    """Split a run at separators (for "2026 13812345678" and similar)."""
    parts: list[_Run] = []
    cur_d: list[str] = []
    cur_p: list[int] = []
    for d, p in zip(run.digits, run.positions, strict=True):
        if cur_p and p != cur_p[-1] + 1:
            parts.append(_Run("".join(cur_d), cur_p, run.arabic))
            cur_d, cur_p = [], []
        cur_d.append(d)
        cur_p.append(p)
    if cur_p:
        parts.append(_Run("".join(cur_d), cur_p, run.arabic))
    return parts


def _match_run(text: str, run: _Run, floor: int) -> tuple[str, int, int] | None:
    """(type, start, end) of the personal number in ``run``, or None."""
    start, end = run.positions[0], run.positions[-1] + 1
    if len(run.digits) < 7 or _quantity(text, start, end):
        return None
    context = _context_before(text, start, floor)
    kind = _classify(run.digits, run.arabic, context)
    if kind is not None:
        if start > 0 and text[start - 1] in "(（" and any(c in ")）" for c in text[start:end]):
            start -= 1
        if kind == "mobile" and run.digits[0] == "8" or run.digits.startswith("00"):
            if start > 0 and text[start - 1] in "+＋加":
                start -= 1
        return kind, start, end
    if context == "exempt":
        return None
    parts = _split_run(run, text)
    if len(parts) > 1:
        for part in parts:
            found = _match_run(text, part, floor)
            if found is not None:
                return found
        return None
    if not run.arabic and len(run.digits) > 7:
        # a spelled number glued to a neighbouring 一/两/零 ("统一幺三八…"): trim up to 2 digits
        for left, right in ((1, 0), (0, 1), (2, 0), (0, 2), (1, 1)):
            sub = run.digits[left : len(run.digits) - right]
            kind = _classify(sub, False, None)
            if kind in ("mobile", "id_card", "landline"):
                return kind, run.positions[left], run.positions[len(run.digits) - right - 1] + 1
    return None


def desensitize(text: str) -> DesensitizeResult:
    """Mask personal data in ``text`` (see the module docstring for the rules and placeholders).

    >>> desensitize("我的手机号是13812345678").text
    '我的手机号是<手机号>'
    """
    taken = [False] * len(text)
    found: list[tuple[int, int, str]] = []

    def take(start: int, end: int, kind: str) -> None:
        found.append((start, end, kind))
        for k in range(start, end):
            taken[k] = True

    for pattern, kind in ((_EMAIL_RE, "email"), (_SPOKEN_EMAIL_RE, "email"), (_PLATE_RE, "plate")):
        for m in pattern.finditer(text):
            if not any(taken[m.start() : m.end()]):
                if kind == "plate" and sum(c in _DIGIT_VALUE for c in m.group(0)[2:]) < 3:
                    continue
                take(m.start(), m.end(), kind)

    floor = 0
    for run in _digit_runs(text, taken):
        hit = _match_run(text, run, floor)
        if hit is not None:
            kind, start, end = hit
            take(start, end, kind)
        floor = run.positions[-1] + 1

    found.sort()
    out: list[str] = []
    spans: list[Span] = []
    counts: dict[str, int] = {}
    pos = 0
    length = 0
    for start, end, kind in found:
        out.append(text[pos:start])
        length += start - pos
        tag = PLACEHOLDERS[kind]
        spans.append(Span(kind, length, length + len(tag), end - start))
        out.append(tag)
        length += len(tag)
        counts[kind] = counts.get(kind, 0) + 1
        pos = end
    out.append(text[pos:])
    return DesensitizeResult("".join(out), counts, spans)
