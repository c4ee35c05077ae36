"""Numbers as written in Chinese documents: Arabic, full-width, Chinese numerals and mixes.

parse_number("1.5万") == 15000.0, parse_number("一百零五") == 105.0,
cn_int("二十三") == 23, and NUMBER_PATTERN is a regex fragment matching one such token.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation

__all__ = ["NUMBER_PATTERN", "cn_int", "parse_number"]

# Digit characters, including the financial capitals and the two zeros.
_DIGITS: dict[str, int] = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "壹": 1,
    "二": 2,
    "贰": 2,
    "貳": 2,
    "两": 2,
    "兩": 2,
    "三": 3,
    "叁": 3,
    "參": 3,
    "四": 4,
    "肆": 4,
    "五": 5,
    "伍": 5,
    "六": 6,
    "陆": 6,
    "陸": 6,
    "七": 7,
    "柒": 7,
    "八": 8,
    "捌": 8,
    "九": 9,
    "玖": 9,
}
# Units inside a 万-group.
_SMALL_UNITS: dict[str, int] = {
    "十": 10,
    "拾": 10,
    "百": 100,
    "佰": 100,
    "千": 1000,
    "仟": 1000,
}
_WAN = frozenset("万萬")
_YI = frozenset("亿億")
# Multipliers that may follow Arabic digits ("1.5万", "3千万", "2亿").
_MULTIPLIERS: dict[str, int] = {
    **_SMALL_UNITS,
    "万": 10_000,
    "萬": 10_000,
    "亿": 100_000_000,
    "億": 100_000_000,
}

_CN_LEAD_CHARS = "零〇一二两三四五六七八九十壹贰貳兩叁參肆伍陆陸柒捌玖拾"
_CN_CHARS = _CN_LEAD_CHARS + "百千万亿佰仟萬億"

_ARABIC_PATTERN = r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:[.．]\d+)?"
# 千 is not a multiplier in 千米 / 千克 / 千瓦 (km, kg, kW).
_MULTIPLIER_PATTERN = r"(?:[百佰千仟](?![米克瓦])[万萬]?|[万萬][亿億]?|[亿億])"

NUMBER_PATTERN: str = (
    rf"(?:{_ARABIC_PATTERN}{_MULTIPLIER_PATTERN}?|[{_CN_LEAD_CHARS}][{_CN_CHARS}]*)"
)
"""Regex fragment (no groups) matching one number token: "1.5万", "10,000", "二十三"."""

_ARABIC_RE = re.compile(
    r"(?P<digits>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)(?P<mult>[十百千万亿拾佰仟萬億]*)"
)
_CN_DECIMAL_RE = re.compile(
    rf"(?P<int>[{_CN_CHARS}]+)点(?P<frac>[{''.join(_DIGITS)}]+)(?P<mult>[十百千万亿拾佰仟萬億]*)"
)


# Full-width ASCII forms and the ideographic space to ASCII, one character for one so
# offsets stay valid. The one home of width folding (the progress parser and the importer).
_FULLWIDTH_MAP = {chr(c): chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)} | {"\u3000": " "}
_FOLD = str.maketrans(_FULLWIDTH_MAP)
_FOLD_KEEP_COMMA = str.maketrans({k: v for k, v in _FULLWIDTH_MAP.items() if k != "\uff0c"})


def fold_width(text: str, *, keep_comma: bool = False) -> str:
    """Full-width digits, letters, ％ and the ideographic space as ASCII, offsets unchanged
    (keep_comma keeps ， so that "9，600个" never reads as 9600)."""
    return text.translate(_FOLD_KEEP_COMMA if keep_comma else _FOLD)


def _normalize(s: str) -> str:
    """Fold full-width forms to ASCII and strip surrounding whitespace."""
    return unicodedata.normalize("NFKC", s).strip()


def _multiplier(chars: str) -> int:
    """Product of the multiplier characters in chars (1 when empty)."""
    result = 1
    for ch in chars:
        result *= _MULTIPLIERS[ch]
    return result


def _parse_cn_int(s: str) -> int | None:
    """Value of a Chinese integer numeral such as 一万二千 or 二〇二三, or None."""
    if not s:
        return None
    if all(ch in _DIGITS for ch in s):
        # Positional digit string: 二〇二三 -> 2023, 五 -> 5.
        return int("".join(str(_DIGITS[ch]) for ch in s))
    total = 0  # completed 亿 groups
    wan = 0  # completed 万 group of the current 亿 group
    section = 0  # below 万
    digit: int | None = None  # pending digit, not yet given a unit
    last_unit = 10**12  # the last unit seen; small units must decrease within a group
    zero_before_digit = False
    seen_yi = False
    for ch in s:
        if ch in _DIGITS:
            value = _DIGITS[ch]
            if digit is not None:
                return None  # two digits in a row ("三四十")
            if value == 0:
                zero_before_digit = True
                continue
            digit = value
        elif ch in _SMALL_UNITS:
            unit = _SMALL_UNITS[ch]
            if unit >= last_unit and last_unit < 10_000:
                return None  # "二十三百"
            if digit is None:
                if unit == 10 and section == 0:
                    digit = 1  # 十五 = 15
                else:
                    return None  # bare 百 / 千
            section += digit * unit
            digit = None
            last_unit = unit
            zero_before_digit = False
        elif ch in _WAN:
            if wan or (section == 0 and digit is None):
                return None
            wan = (section + (digit or 0)) * 10_000
            section, digit, last_unit = 0, None, 10_000
            zero_before_digit = False
        elif ch in _YI:
            group = wan + section + (digit or 0)
            if seen_yi or group == 0:
                return None
            total = group * 100_000_000
            wan, section, digit, last_unit = 0, 0, None, 100_000_000
            seen_yi = True
            zero_before_digit = False
        else:
            return None
    if digit is not None and not zero_before_digit and last_unit > 10:
        # Abbreviated trailing digit: 一万二 = 12000, 三百五 = 350.
        digit *= {10_000: 1000, 100_000_000: 10_000_000}.get(last_unit, last_unit // 10)
    return total + wan + section + (digit or 0)


def parse_number(s: str) -> float | None:
    """Return the value of an Arabic or Chinese number ("1.5万", "一百零五"), or None."""
    s = _normalize(s)
    if not s:
        return None
    m = _ARABIC_RE.fullmatch(s)
    if m:
        try:
            value = Decimal(m.group("digits").replace(",", ""))
        except InvalidOperation:  # pragma: no cover - the regex only admits valid decimals
            return None
        return float(value * _multiplier(m.group("mult")))
    m = _CN_DECIMAL_RE.fullmatch(s)
    if m:
        whole = _parse_cn_int(m.group("int"))
        if whole is None:
            return None
        frac = "".join(str(_DIGITS[ch]) for ch in m.group("frac"))
        return float(Decimal(f"{whole}.{frac}") * _multiplier(m.group("mult")))
    whole = _parse_cn_int(s)
    return None if whole is None else float(whole)


def cn_int(s: str) -> int | None:
    """Return the integer written in Chinese numerals or digits (labels 一..九十九), or None."""
    s = _normalize(s)
    if s.isascii() and s.isdigit():
        return int(s)
    return _parse_cn_int(s)
