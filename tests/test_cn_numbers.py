"""Tests for bot.cn_numbers: Arabic, full-width and Chinese numbers."""

import re

import pytest

from bot.cn_numbers import NUMBER_PATTERN, cn_int, parse_number


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Arabic
        ("0", 0.0),
        ("15", 15.0),
        ("2023", 2023.0),
        ("0.5", 0.5),
        ("98.5", 98.5),
        ("10,000", 10000.0),
        ("1,234,567.5", 1234567.5),
        (" 42 ", 42.0),
        # full-width
        ("１５", 15.0),
        ("２．５", 2.5),
        ("１０，０００", 10000.0),
        # Arabic with a multiplier
        ("1万", 10000.0),
        ("1.5万", 15000.0),
        ("1.2万", 12000.0),
        ("3千", 3000.0),
        ("2亿", 200000000.0),
        ("3.5亿", 350000000.0),
        ("3千万", 30000000.0),
        ("1万亿", 1e12),
        ("５万", 50000.0),
        # Chinese numerals
        ("零", 0.0),
        ("〇", 0.0),
        ("一", 1.0),
        ("两", 2.0),
        ("十", 10.0),
        ("十五", 15.0),
        ("二十", 20.0),
        ("二十三", 23.0),
        ("九十九", 99.0),
        ("一百", 100.0),
        ("一百零五", 105.0),
        ("一百一十", 110.0),
        ("三千", 3000.0),
        ("两千五百", 2500.0),
        ("一千零五十", 1050.0),
        ("一万", 10000.0),
        ("十万", 100000.0),
        ("一万二千", 12000.0),
        ("二十万零五", 200005.0),
        ("一亿二千万", 120000000.0),
        ("二〇二三", 2023.0),
        # abbreviated trailing digit
        ("一万二", 12000.0),
        ("三百五", 350.0),
        ("一亿二", 120000000.0),
        # financial capitals
        ("壹佰贰拾", 120.0),
        ("叁仟", 3000.0),
        ("伍万", 50000.0),
        # Chinese decimals
        ("一点五", 1.5),
        ("零点五", 0.5),
    ],
)
def test_parse_number(text: str, expected: float) -> None:
    assert parse_number(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "abc",
        "1,2",
        "1.",
        ".5",
        "百",
        "千",
        "万",
        "亿",
        "十四五",
        "二十三百",
        "十十",
        "50%",
    ],
)
def test_parse_number_rejects(text: str) -> None:
    assert parse_number(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("一", 1),
        ("二", 2),
        ("九", 9),
        ("十", 10),
        ("十一", 11),
        ("十九", 19),
        ("二十", 20),
        ("二十一", 21),
        ("九十九", 99),
        ("一百", 100),
        ("两", 2),
        ("壹", 1),
        ("7", 7),
        ("１２", 12),
    ],
)
def test_cn_int(text: str, expected: int) -> None:
    assert cn_int(text) == expected


@pytest.mark.parametrize("text", ["", "、", "一点五", "1.5", "百", "第一", "二十三百"])
def test_cn_int_rejects(text: str) -> None:
    assert cn_int(text) is None


def test_cn_int_type() -> None:
    assert isinstance(cn_int("十二"), int)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("新增学位超1万个", ["1万"]),
        ("培训1.5万人次", ["1.5万"]),
        ("投入10,000元", ["10,000"]),
        ("培育十五个集团", ["十五"]),
        ("招聘三千名教师", ["三千"]),
        ("投入3千万元", ["3千万"]),
        ("新建改扩建幼儿园２０所", ["２０"]),
        ("下降0.5个百分点", ["0.5"]),
        # 千 in 千米 / 千克 is part of the unit, not a multiplier
        ("新建道路3千米", ["3"]),
        # a run of Chinese numerals must start with a digit or 十
        ("百镇千村", []),
        ("万人", []),
    ],
)
def test_number_pattern_tokens(text: str, tokens: list[str]) -> None:
    assert re.findall(NUMBER_PATTERN, text) == tokens


@pytest.mark.parametrize("token", ["1万", "1.5万", "10,000", "３．５", "二十三", "一百零五", "2亿"])
def test_number_pattern_tokens_parse(token: str) -> None:
    assert re.fullmatch(NUMBER_PATTERN, token)
    assert parse_number(token) is not None


def test_number_pattern_has_no_groups() -> None:
    assert re.compile(NUMBER_PATTERN).groups == 0
