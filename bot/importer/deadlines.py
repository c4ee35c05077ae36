"""Dates and deadlines written in Chinese plan text.

``parse_cn_date`` reads one calendar date: ``2023年3月15日``, ``二〇二三年三月十五日``,
``2023.3.15``, ``2023-03-15``, ``2023/3/15``.

``extract_deadline`` finds the deadlines an item states and returns the latest one;
``read_time`` reads a text that is nothing but a time expression (a table cell, a deadline
a person typed: ``bot/dates.py`` builds on it).
Every expression below may carry a year (``2023年``, ``二〇二三年``), a relative year
(``今年``/``本年``/``当年`` = the default year, ``明年``/``次年`` = the year after); without
one the default year (the plan's year) is used, and without a default year the
expression is skipped.

==========================  =====================================================
written                     deadline
==========================  =====================================================
``6月底前``, ``6月底``       June 30 (``底``/``末`` = the last day of the month)
``6月上旬/初``              June 10; ``中旬`` June 20; ``下旬`` June 30
``9月前``, ``9月之前``       August 31: "before month X" ends with month X-1
``9月完成``, ``至9月``       September 30 (a bare month needs a marker: after it
                            完成/结束/截止/止/为止/内, or before it 到/至/截至/截止)
``12月31日前``              December 31 (a full date needs the same markers, or 前)
``年底前``, ``2023年年末``   December 31
``上半年``                  June 30; ``下半年`` December 31
``第三季度``, ``三季度末``    September 30 (the last day of the quarter)
``年内``, ``年度内``         December 31 (but not ``三年内``: a duration)
==========================  =====================================================

In a time-limit note (``完成时限：…``, ``完成时间：…``, ``时间节点：…``) and in a text that
is nothing but a time (a table cell such as ``2023年6月``), markers are not needed:
a bare month is its last day, a bare year its December 31.  When an item has such a
note, the note's deadline wins over dates elsewhere in the text.
"""

from __future__ import annotations

import calendar
import re
from datetime import date

from bot.cn_numbers import cn_int


def _year_value(text: str) -> int | None:
    """Read a four-digit year written in digits or as 二〇二三."""
    text = text.strip().replace("○", "〇").replace("Ｏ", "〇")
    year = cn_int(text)
    return year if year is not None and len(text) == 4 else None


_Y = r"[0-9０-９]{4}|[〇○零Ｏ一二三四五六七八九]{4}"
_N = r"[0-9０-９]{1,2}|[一二三四五六七八九十]{1,3}"
_SEP = r"[.．/／\-－]"

_DATE_CN = re.compile(rf"(?P<y>{_Y})\s*年\s*(?P<m>{_N})\s*月\s*(?P<d>{_N})\s*[日号]")
_DATE_NUM = re.compile(
    rf"(?<![0-9０-９])(?P<y>[0-9０-９]{{4}})\s*{_SEP}\s*(?P<m>[0-9０-９]{{1,2}})\s*{_SEP}"
    rf"\s*(?P<d>[0-9０-９]{{1,2}})(?![0-9０-９])"
)


def _make_date(year: int | None, month: int | None, day: int | None) -> date | None:
    if year is None or month is None or day is None:
        return None
    try:
        return date(year, month, day)
    except ValueError:
        return None


def find_cn_date(text: str) -> tuple[date, int, int] | None:
    """Return the first full calendar date in text with its (start, end) span, or None."""
    found: list[tuple[int, int, date]] = []
    for pattern in (_DATE_CN, _DATE_NUM):
        for m in pattern.finditer(text):
            value = _make_date(
                _year_value(m.group("y")), cn_int(m.group("m")), cn_int(m.group("d"))
            )
            if value is not None:
                found.append((m.start(), m.end(), value))
                break
    if not found:
        return None
    start, end, value = min(found)
    return value, start, end


def parse_cn_date(text: str) -> date | None:
    """Return the first full date in text (2023年3月15日, 二〇二三年三月十五日, 2023.3.15)."""
    found = find_cn_date(text)
    return found[0] if found else None


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


# A year in front of a time expression: explicit, relative, or none.
_YP = rf"(?:(?P<y>{_Y})\s*年\s*|(?P<rel>今|本|当|明|次)年(?:度)?\s*)?"
_REL_OFFSET = {"今": 0, "本": 0, "当": 0, "明": 1, "次": 1}
_BEFORE = ("前", "之前", "以前")
_AFTER_MARK = r"(?P<mk>之前|以前|前|为止|止|完成|结束|截止|内)?"
_AFTER_NUM = re.compile(r"\s*(?:之前|以前|前|为止|止|完成|结束|截止)")
_PREFIX_MARK = re.compile(r"(?:到|至|截至|截止|截止到|截止至)\s*$")

_FULL = re.compile(_YP + rf"(?P<m>{_N})\s*月\s*(?P<d>{_N})\s*[日号]\s*" + _AFTER_MARK)
_MONTH = re.compile(
    _YP
    + rf"(?<![0-9０-９第])(?P<m>{_N})\s*月(?:份)?\s*(?P<part>底|末|上旬|中旬|下旬|初)?\s*"
    + _AFTER_MARK
)
_YEAR_END = re.compile(
    rf"(?:(?P<y>{_Y})\s*年\s*(?:年\s*)?|(?P<rel>今|本|当|明|次)年\s*(?:年\s*)?|(?<!学)年\s*)"
    r"(?:底|末)"
)
_PERIOD = re.compile(_YP + r"(?P<p>上半年|下半年|第?[一二三四1-4１-４]季度)")
_WITHIN_YEAR = re.compile(r"年(?:度)?内")
_BARE_YEAR = re.compile(rf"(?P<y>{_Y})\s*年(?:度)?")

_NOTE = re.compile(
    r"(?:完成时限|完成时间|完成期限|时间节点|时限要求|截止时间|办结时限|时间要求|时限)\s*[:：]\s*"
    r"(?P<v>[^\n；;。)）〕\]］】]*)"
)
# A text made of nothing but a time expression, such as a table cell "2023年6月底前".
_TIME_ONLY = re.compile(
    r"[\s0-9０-９〇○零Ｏ一二三四五六七八九十两年度月份日号底末前内旬上中下半季第初之以止为完成结束"
    r"截至到今本当明.．/／\-－—~～、，,]+"
)


def _year_of(m: re.Match[str], default_year: int | None) -> int | None:
    year = m.groupdict().get("y")
    if year:
        return _year_value(year)
    rel = m.groupdict().get("rel")
    if rel and default_year is not None:
        return default_year + _REL_OFFSET[rel]
    return default_year


def _mask(text: str, start: int, end: int) -> str:
    return text[:start] + " " * (end - start) + text[end:]


def _scan(text: str, default_year: int | None, *, lenient: bool) -> list[date]:
    """All deadlines in text; masks each match so shorter patterns don't read it again."""
    found: list[date] = []
    year: int | None

    def prefixed(start: int) -> bool:
        return bool(_PREFIX_MARK.search(text[max(0, start - 4) : start]))

    for m in list(_DATE_NUM.finditer(text)):
        value = _make_date(_year_value(m.group("y")), cn_int(m.group("m")), cn_int(m.group("d")))
        marked = _AFTER_NUM.match(text, m.end())
        if value is not None and (lenient or marked or prefixed(m.start())):
            found.append(value)
        text = _mask(text, m.start(), m.end())
    for m in list(_FULL.finditer(text)):
        year, mark = _year_of(m, default_year), m.group("mk")
        value = _make_date(year, cn_int(m.group("m")), cn_int(m.group("d")))
        if value is not None and (lenient or mark or prefixed(m.start())):
            found.append(value)
        text = _mask(text, m.start(), m.end())
    for m in list(_MONTH.finditer(text)):
        month = cn_int(m.group("m"))
        year = _year_of(m, default_year)
        text = _mask(text, m.start(), m.end())
        if month is None or not 1 <= month <= 12 or year is None:
            continue
        part, mark = m.group("part"), m.group("mk")
        if part in ("上旬", "初"):
            found.append(date(year, month, 10))
        elif part == "中旬":
            found.append(date(year, month, 20))
        elif part:  # 底, 末, 下旬
            found.append(_month_end(year, month))
        elif mark in _BEFORE:
            found.append(date(year - 1, 12, 31) if month == 1 else _month_end(year, month - 1))
        elif mark or lenient or prefixed(m.start()):
            found.append(_month_end(year, month))
    for m in list(_YEAR_END.finditer(text)):
        year = _year_of(m, default_year)
        text = _mask(text, m.start(), m.end())
        if year is not None:
            found.append(date(year, 12, 31))
    for m in list(_PERIOD.finditer(text)):
        year = _year_of(m, default_year)
        text = _mask(text, m.start(), m.end())
        if year is None:
            continue
        period = m.group("p")
        if period == "上半年":
            found.append(date(year, 6, 30))
        elif period == "下半年":
            found.append(date(year, 12, 31))
        else:
            quarter = cn_int(period.strip("第季度")) or 4
            found.append(_month_end(year, min(quarter, 4) * 3))
    for m in list(_WITHIN_YEAR.finditer(text)):
        before = text[: m.start()].rstrip()
        year_m = re.search(rf"({_Y})$", before)
        if year_m:
            year = _year_value(year_m.group(1))
        elif before.endswith(("今", "本", "当")) or not re.search(
            r"[0-9０-９〇零一二三四五六七八九十两几多半个]$", before
        ):
            year = default_year
        else:  # 三年内: a duration, not a date
            continue
        if year is not None:
            found.append(date(year, 12, 31))
        text = _mask(text, m.start(), m.end())
    if lenient:
        for m in _BARE_YEAR.finditer(text):
            year = _year_value(m.group("y"))
            if year is not None:
                found.append(date(year, 12, 31))
    return found


def read_time(text: str, default_year: int | None = None) -> date | None:
    """Return the deadline a text stands for when it is nothing but a time expression (a
    table cell, a deadline typed in chat): 2023年6月 -> 2023-06-30, 年底 -> December 31 of
    the default year; None when the text holds anything else or no time at all."""
    stripped = text.strip()
    if not stripped or not _TIME_ONLY.fullmatch(stripped):
        return None
    found = _scan(stripped, default_year, lenient=True)
    return max(found) if found else None


def extract_deadline(text: str, default_year: int | None = None) -> date | None:
    """Return the deadline stated in text (e.g. 2023年6月底前 -> 2023-06-30), or None."""
    noted: list[date] = []
    for m in _NOTE.finditer(text):
        noted.extend(_scan(m.group("v"), default_year, lenient=True))
    if noted:
        return max(noted)
    stripped = text.strip()
    found = _scan(stripped, default_year, lenient=bool(_TIME_ONLY.fullmatch(stripped)))
    return max(found) if found else None
