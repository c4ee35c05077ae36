"""Deadlines as people type them (in chat and on the command line) and as they read them.

``parse_typed_date(text, year=...)`` reads the deadline an admin writes after ``/assign`` or
``/deadline`` (or ``duban assign --deadline``). The whole text must be one date; ``year``
is the plan's year (``plan_start(plan).year``), used when the text names none: a plan's
deadlines fall in its own year, and the reply always shows the full date it understood.

=================================================  ==========================================
written                                            date
=================================================  ==========================================
``2023-12-31``, ``2023/12/31``, ``2023.12.31``      that day (full-width digits too)
``2023年12月31日``, ``二〇二三年十二月三十一日``       that day (``号`` for ``日`` too)
``12月31日``, ``12-31``, ``12/31``                  that day in the plan's year
``6月底``, ``6月末``, ``6月``                        the last day of June
``6月上旬`` / ``6月中旬`` / ``6月下旬``               June 10 / June 20 / June 30
``年底``, ``年末``, ``年终``, ``2024年底``            December 31
``上半年``, ``年中``                                 June 30 (``下半年``: December 31)
``一季度``, ``第三季度``, ``三季度末``                the quarter's last day
=================================================  ==========================================

``今年``/``明年`` count from the plan's year. A trailing ``前`` (``之前``, ``以前``) keeps the
day (``6月底前`` is June 30), except after a bare month, as in a plan: ``9月前`` is August 31.
``12.31`` is not a date (``3.2`` names an item: the second of section 3), nor is a bare
number. The words come from the importer's reading of plan text
(``bot.importer.deadlines.read_time``): one vocabulary for documents and people.

A text written as a day that does not exist (``2023-02-30``, ``13月1日``) is a UserError that
names the wrong part; any other text that is no date is one with an example of the right form.
"""

from __future__ import annotations

import re
from datetime import date

from bot.cn_numbers import cn_int
from bot.i18n import Translator, UserError
from bot.importer.deadlines import read_time

_D = r"[0-9０-９]"
_N = rf"{_D}{{1,2}}|[一二三四五六七八九十]{{1,3}}"  # a month or a day
_Y = rf"{_D}{{4}}|[〇○零Ｏ一二三四五六七八九]{{4}}"  # a year
_BEFORE = re.compile(r"\s*(?:之前|以前|前)$")

# Days written in full: the part before 前 must match one of these whole.
_DAYS = (
    re.compile(
        rf"(?P<y>{_D}{{4}})\s*(?P<s>[.．/／\-－])\s*(?P<m>{_D}{{1,2}})\s*(?P=s)\s*(?P<d>{_D}{{1,2}})"
    ),
    re.compile(rf"(?P<m>{_D}{{1,2}})\s*[/／\-－]\s*(?P<d>{_D}{{1,2}})"),
    re.compile(rf"(?:(?P<y>{_Y})\s*年\s*)?(?P<m>{_N})\s*月\s*(?P<d>{_N})\s*[日号]"),
)
# A month with an optional part (底, 上旬, ...): only checked for a month that does not exist.
_MONTH = re.compile(
    rf"(?:(?:{_Y})\s*年\s*)?(?P<m>{_N})\s*月(?:份)?\s*(?:底|末|上旬|中旬|下旬|初)?\s*(?:之前|以前|前)?"
)
# Words people type that a plan document rarely uses as a time (年中 reads 今年中小学 wrong).
_ALIASES = {"年中": (6, 30), "年终": (12, 31)}


def _year_of(text: str | None, default: int) -> int | None:
    if not text:
        return default
    text = text.replace("○", "〇").replace("Ｏ", "〇")
    return cn_int(text)


def _day(value: str, match: re.Match[str], default_year: int) -> date:
    """The day a full-day match names, or a UserError naming the part that does not exist."""
    year = _year_of(match.groupdict().get("y"), default_year)
    month, day = cn_int(match.group("m")), cn_int(match.group("d"))
    if month is None or not 1 <= month <= 12:
        raise UserError("date.bad_month", value=value, month=match.group("m"))
    if year is None or day is None:
        raise UserError("date.unreadable", value=value)
    try:
        return date(year, month, day)
    except ValueError:
        if not 1 <= year <= 9999:
            raise UserError("date.unreadable", value=value) from None
        raise UserError("date.bad_day", value=value, year=year, month=month, day=day) from None


def read_typed_date(text: str, *, year: int) -> date | None:
    """The date a typed text stands for, None when the text is no date at all (a name, an
    item number), or a UserError when it is written as a day that does not exist."""
    value = text.strip()
    body = _BEFORE.sub("", value)
    for pattern in _DAYS:
        match = pattern.fullmatch(body)
        if match:
            return _day(value, match, year)
    if body in _ALIASES:
        return date(year, *_ALIASES[body])
    found = read_time(value, year)
    if found is not None:
        return found
    month = _MONTH.fullmatch(value)
    if month:  # a month the importer skipped: it does not exist
        raise UserError("date.bad_month", value=value, month=month.group("m"))
    return None


def parse_typed_date(text: str, *, year: int) -> date:
    """The date a person typed (2023-12-31, 12月31日, 6月底, 年底, ...), or a UserError that
    says what is wrong and gives an example."""
    found = read_typed_date(text, year=year)
    if found is None:
        raise UserError("date.unreadable", value=text.strip())
    return found


def deadline_label(value: date | None, t: Translator) -> str:
    """A deadline as people read it: the date (2023-12-31), or "未设定"/"not set"."""
    return value.isoformat() if value else t("deadline.not_set")
