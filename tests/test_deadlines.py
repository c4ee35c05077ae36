"""Dates and deadlines written in Chinese plan text."""

from __future__ import annotations

from datetime import date

import pytest

from bot.importer.deadlines import extract_deadline, find_cn_date, parse_cn_date


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
