"""Dates and deadlines written in Chinese plan text, and typed by people for a deadline."""

from __future__ import annotations

from datetime import date

import pytest

from bot.dates import deadline_label, parse_typed_date, read_typed_date
from bot.i18n import Translator, UserError
from bot.importer.deadlines import extract_deadline, find_cn_date, parse_cn_date, read_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023年3月15日", date(2023, 3, 15)),
        ("二〇二三年三月十五日", date(2023, 3, 15)),
        ("二○二三年十二月三十一日", date(2023, 12, 31)),
        ("２０２３年３月１５日", date(2023, 3, 15)),
        ("2023 年 3 月 5 号", date(2023, 3, 5)),
        ("2023.3.15", date(2023, 3, 15)),
        ("2023-03-15", date(2023, 3, 15)),
        ("2023/3/15", date(2023, 3, 15)),
        ("江门市教育局 2023年3月15日", date(2023, 3, 15)),
        ("（2023年3月15日印发）", date(2023, 3, 15)),
        ("2023年2月30日", None),
        ("2023年3月", None),
        ("3月15日", None),
        ("12.5万元", None),
        ("", None),
    ],
)
def test_parse_cn_date(text: str, expected: date | None) -> None:
    assert parse_cn_date(text) == expected


def test_find_cn_date_gives_the_span() -> None:
    assert find_cn_date("江门市教育局2023年3月15日") == (date(2023, 3, 15), 6, 16)
    assert find_cn_date("无日期") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # month ends
        ("2023年6月底前完成", date(2023, 6, 30)),
        ("6月底前完成", date(2023, 6, 30)),
        ("于6月末完成验收", date(2023, 6, 30)),
        ("二〇二三年十月底前", date(2023, 10, 31)),
        ("２月底前", date(2023, 2, 28)),
        ("2024年2月底前", date(2024, 2, 29)),
        ("6月中旬前", date(2023, 6, 20)),
        ("6月上旬", date(2023, 6, 10)),
        ("6月下旬完成", date(2023, 6, 30)),
        # "before month X" ends with month X-1
        ("2023年9月前", date(2023, 8, 31)),
        ("9月之前完成报名", date(2023, 8, 31)),
        ("1月前", date(2022, 12, 31)),
        # a bare month needs a marker
        ("9月完成", date(2023, 9, 30)),
        ("6月启动，至9月", date(2023, 9, 30)),
        ("3月启动试点工作", None),
        ("一月一次", None),
        # full dates
        ("2023年12月31日前", date(2023, 12, 31)),
        ("12月31日前完成", date(2023, 12, 31)),
        ("于2023年3月15日召开会议", None),
        ("2023.6.30前完成", date(2023, 6, 30)),
        # year ends, halves, quarters
        ("年底前完成", date(2023, 12, 31)),
        ("2023年底", date(2023, 12, 31)),
        ("2023年年末", date(2023, 12, 31)),
        ("今年年底", date(2023, 12, 31)),
        ("明年3月底前", date(2024, 3, 31)),
        ("上半年完成", date(2023, 6, 30)),
        ("下半年", date(2023, 12, 31)),
        ("2024年上半年", date(2024, 6, 30)),
        ("第三季度完成", date(2023, 9, 30)),
        ("一季度", date(2023, 3, 31)),
        ("三季度末", date(2023, 9, 30)),
        ("年内完成", date(2023, 12, 31)),
        ("本年度内完成", date(2023, 12, 31)),
        ("三年内完成", None),
        ("学年末进行考核", None),
        # the latest one wins
        ("3月底前印发方案，11月底前完成培训", date(2023, 11, 30)),
        ("2024年6月底前完成，3月底前启动", date(2024, 6, 30)),
        # a time-limit note wins over other dates
        ("全年6月底前。完成时限：3月底前", date(2023, 3, 31)),
        ("（牵头单位：市教育局；完成时限：2023年12月）", date(2023, 12, 31)),
        ("完成时间：2023年", date(2023, 12, 31)),
        ("完成时限：长期坚持", None),
        # a text that is only a time, like a table cell
        ("2023年6月", date(2023, 6, 30)),
        ("12月", date(2023, 12, 31)),
        ("2023-06-30", date(2023, 6, 30)),
        ("长期", None),
        # no date at all
        ("组织开展好我市2023年市县两级评价工作", None),
        ("全面提升教育质量", None),
        ("", None),
    ],
)
def test_extract_deadline(text: str, expected: date | None) -> None:
    assert extract_deadline(text, 2023) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("6月底前", None),
        ("年底前", None),
        ("上半年", None),
        ("2023年6月底前", date(2023, 6, 30)),
        ("2023年第三季度", date(2023, 9, 30)),
    ],
)
def test_extract_deadline_without_a_default_year(text: str, expected: date | None) -> None:
    assert extract_deadline(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023年6月底", date(2023, 6, 30)),
        ("年底", date(2023, 12, 31)),
        ("12月", date(2023, 12, 31)),
        ("6月底前完成验收", None),  # more than a time: not read
        ("张三", None),
        ("12", None),
        ("", None),
    ],
)
def test_read_time_reads_a_text_that_is_only_a_time(text: str, expected: date | None) -> None:
    assert read_time(text, 2023) == expected


# --- dates typed for a deadline (bot/dates.py) ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # full days, in every form people write them
        ("2023-12-31", date(2023, 12, 31)),
        ("2023/12/31", date(2023, 12, 31)),
        ("2023.12.31", date(2023, 12, 31)),
        ("２０２３．１２．３１", date(2023, 12, 31)),
        ("2023-6-5", date(2023, 6, 5)),
        ("2023年12月31日", date(2023, 12, 31)),
        ("2023 年 12 月 31 号", date(2023, 12, 31)),
        ("二〇二三年十二月三十一日", date(2023, 12, 31)),
        ("2024-02-29", date(2024, 2, 29)),
        # a day without a year: in the plan's year
        ("12月31日", date(2023, 12, 31)),
        ("3月31号", date(2023, 3, 31)),
        ("12-31", date(2023, 12, 31)),
        ("12/31", date(2023, 12, 31)),
        ("12月31日前", date(2023, 12, 31)),
        ("明年3月31日", date(2024, 3, 31)),
        # month ends and parts
        ("6月底", date(2023, 6, 30)),
        ("6月末", date(2023, 6, 30)),
        ("6月底前", date(2023, 6, 30)),
        ("2月底", date(2023, 2, 28)),
        ("6月", date(2023, 6, 30)),
        ("2024年6月", date(2024, 6, 30)),
        ("6月中旬", date(2023, 6, 20)),
        ("9月前", date(2023, 8, 31)),  # before September, as in a plan
        # year ends, halves, quarters
        ("年底", date(2023, 12, 31)),
        ("年末", date(2023, 12, 31)),
        ("年终", date(2023, 12, 31)),
        ("年底前", date(2023, 12, 31)),
        ("今年年底", date(2023, 12, 31)),
        ("2024年底", date(2024, 12, 31)),
        ("上半年", date(2023, 6, 30)),
        ("年中", date(2023, 6, 30)),
        ("下半年", date(2023, 12, 31)),
        ("一季度", date(2023, 3, 31)),
        ("第三季度", date(2023, 9, 30)),
        ("三季度末", date(2023, 9, 30)),
        # not dates: item numbers and labels, names, words
        ("12", None),
        ("2023", None),
        ("3.2", None),
        ("12.31", None),
        ("三.2", None),
        ("第9项", None),
        ("张三", None),
        ("下周五", None),
        ("", None),
    ],
)
def test_read_typed_date(text: str, expected: date | None) -> None:
    assert read_typed_date(text, year=2023) == expected


@pytest.mark.parametrize(
    ("text", "key", "says"),
    [
        ("2023-02-30", "date.bad_day", "日期“2023-02-30”无效：2023 年 2 月没有 30 日"),
        ("2月29日", "date.bad_day", "2023 年 2 月没有 29 日"),
        ("12月32日", "date.bad_day", "12 月没有 32 日"),
        ("2023-13-01", "date.bad_month", "没有 13 月"),
        ("13月1日", "date.bad_month", "没有 13 月"),
        ("13/1", "date.bad_month", "没有 13 月"),
        ("13月底", "date.bad_month", "没有 13 月"),
        ("0000-01-01", "date.unreadable", "无法识别"),
    ],
)
def test_a_day_that_does_not_exist_says_which_part_is_wrong(text: str, key: str, says: str) -> None:
    with pytest.raises(UserError) as caught:
        read_typed_date(text, year=2023)
    assert caught.value.key == key
    message = caught.value.render(Translator("zh-CN"))
    assert says in message and "例如 2023-12-31 或 12月31日" in message


@pytest.mark.parametrize("text", ["下周五", "张三", "12.31", "soon", " "])
def test_parse_typed_date_refuses_what_is_no_date_with_an_example(text: str) -> None:
    with pytest.raises(UserError) as caught:
        parse_typed_date(text, year=2023)
    assert caught.value.key == "date.unreadable"
    message = caught.value.render(Translator("zh-CN"))
    assert f"日期“{text.strip()}”无法识别" in message and "例如 2023-12-31 或 12月31日" in message
    assert "e.g. 2023-12-31 or 12月31日" in caught.value.render(Translator("en"))


def test_deadline_label_is_the_date_or_not_set() -> None:
    assert deadline_label(date(2023, 12, 31), Translator("zh-CN")) == "2023-12-31"
    assert deadline_label(None, Translator("zh-CN")) == "未设定"
    assert deadline_label(None, Translator("en")) == "not set"
