"""Tests for bot.progress_parser: progress messages in plain Chinese and their target values."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bot.i18n import UserError
from bot.models import ReportStatus, Target
from bot.progress_parser import (
    MAX_REPORT_LENGTH,
    NumberMention,
    match_targets,
    parse_report_text,
)

DONE = ReportStatus.done
IN_PROGRESS = ReportStatus.in_progress
DELAYED = ReportStatus.delayed
NOT_STARTED = ReportStatus.not_started

# (text, command, item_ref, percent, status, note)
CASES: list[tuple[str, bool, str | None, int | None, ReportStatus | None, str]] = [
    # A percentage set apart at the end of a clause is the report's percent...
    ("已召开创建推进会 30%", False, None, 30, None, "已召开创建推进会"),
    ("已召开创建推进会 30%，下周验收", False, None, 30, None, "已召开创建推进会 下周验收"),
    # ...but not when it names a rate or a change.
    ("公办占比 46%", False, None, None, None, "公办占比 46%"),
    ("近视率下降 0.3%", False, None, None, None, "近视率下降 0.3%"),
    # item reference forms
    ("9 60% 华侨实验小学主体完工", False, "9", 60, None, "华侨实验小学主体完工"),
    ("第9项 进度60%", False, "9", 60, None, ""),
    ("#9 已完成", False, "9", 100, DONE, ""),
    ("9号 滞后 原因是资金未到位", False, "9", None, DELAYED, "原因是资金未到位"),
    ("9、60%", False, "9", 60, None, ""),
    ("9. 60% 主体完工", False, "9", 60, None, "主体完工"),
    ("9项 60%", False, "9", 60, None, ""),
    ("第9 60%", False, "9", 60, None, ""),
    ("三.2 推进中", False, "三.2", None, IN_PROGRESS, ""),
    ("三、2 45%", False, "三.2", 45, None, ""),
    ("3.2 60%", False, "3.2", 60, None, ""),
    ("主体完工 #9 60%", False, "9", 60, None, "主体完工"),
    # full-width digits, ％ and the ideographic space
    ("９ ６０％", False, "9", 60, None, ""),
    ("９　６０％ 主体完工", False, "9", 60, None, "主体完工"),
    # Chinese numerals
    ("第九项 完成80%", False, "9", 80, None, ""),
    ("第十二项 已完成", False, "12", 100, DONE, ""),
    ("9 完成百分之六十", False, "9", 60, None, ""),
    ("9 百分之百", False, "9", 100, None, ""),
    ("9 六十% 主体完工", False, "9", 60, None, "主体完工"),
    # percent forms
    ("9 进度为60% 主体完工", False, "9", 60, None, "主体完工"),
    ("9 目前进度约60%以上", False, "9", 60, None, ""),
    ("9 进度60 主体完工", False, "9", 60, None, "主体完工"),
    ("9 60.5%", False, "9", 61, None, ""),
    (
        "9 华侨小学建设进度60%，新增学位1.2万个",
        False,
        "9",
        60,
        None,
        "华侨小学建设，新增学位1.2万个",
    ),
    ("9 主体完工，60%", False, "9", 60, None, "主体完工"),
    ("进度过半", False, None, None, None, "进度过半"),
    # "完成80%" is a percent, "已完成" alone is the status
    ("9 已完成80%", False, "9", 80, None, ""),
    ("9 已完成", False, "9", 100, DONE, ""),
    ("9 完成", False, "9", 100, DONE, ""),
    ("9 已办结", False, "9", 100, DONE, ""),
    ("9 办结，材料已归档", False, "9", 100, DONE, "材料已归档"),
    ("9 完成 6500个", False, "9", None, None, "完成 6500个"),
    ("9 已完成6500个学位建设", False, "9", None, None, "已完成6500个学位建设"),
    ("9 未完成", False, "9", None, None, "未完成"),
    # status words with and without percents
    ("9 推进中", False, "9", None, IN_PROGRESS, ""),
    ("9 进行中 40%", False, "9", 40, IN_PROGRESS, ""),
    ("9 正在推进主体施工", False, "9", None, IN_PROGRESS, "主体施工"),
    ("9 有序推进", False, "9", None, IN_PROGRESS, ""),
    ("9 滞后 30%", False, "9", 30, DELAYED, ""),
    ("9 30% 延期至6月底", False, "9", 30, DELAYED, "至6月底"),
    ("9 受阻", False, "9", None, DELAYED, ""),
    ("9 延误", False, "9", None, DELAYED, ""),
    ("9 进度滞后，原因是资金受阻", False, "9", None, DELAYED, "原因是资金受阻"),
    ("9 未启动", False, "9", None, NOT_STARTED, ""),
    ("9 尚未启动，计划下月开工", False, "9", None, NOT_STARTED, "计划下月开工"),
    ("9 未开始", False, "9", None, NOT_STARTED, ""),
    ("9 主体完工，整体进度滞后", False, "9", None, DELAYED, "主体完工，整体进度滞后"),
    # "60% 已完成" is 60% of the work done, not the item done
    ("9 60% 已完成", False, "9", 60, None, ""),
    # no item reference: the caller uses the reply link or the single open item
    ("6500个学位已建成", False, None, None, None, "6500个学位已建成"),
    ("2023年6月30日前完成主体工程", False, None, None, None, "2023年6月30日前完成主体工程"),
    ("9号文件已下发", False, None, None, None, "9号文件已下发"),
    ("3项任务已完成", False, None, None, None, "3项任务已完成"),
    ("9.5万元已拨付", False, None, None, None, "9.5万元已拨付"),
    ("10:30召开推进会", False, None, None, None, "10:30召开推进会"),
    ("已完成", False, None, 100, DONE, ""),
    ("60% 主体完工", False, None, 60, None, "主体完工"),
    # a bare second number is a percent only in command mode
    ("9 60", False, "9", None, None, "60"),
    ("9 60 华侨实验小学主体完工", True, "9", 60, None, "华侨实验小学主体完工"),
    ("/report 9 60 华侨实验小学主体完工", True, "9", 60, None, "华侨实验小学主体完工"),
    ("第9项 60", True, "9", 60, None, ""),
    ("三.2 45 推进中", True, "三.2", 45, IN_PROGRESS, ""),
    ("9 60% 主体完工", True, "9", 60, None, "主体完工"),
    ("9 已完成", True, "9", 100, DONE, ""),
    ("9 150 华侨", True, "9", None, None, "150 华侨"),
]


@pytest.mark.parametrize(("text", "command", "item_ref", "percent", "status", "note"), CASES)
def test_parse_report_text(
    text: str,
    command: bool,
    item_ref: str | None,
    percent: int | None,
    status: ReportStatus | None,
    note: str,
) -> None:
    parsed = parse_report_text(text, command=command)
    assert (parsed.item_ref, parsed.percent, parsed.status, parsed.note) == (
        item_ref,
        percent,
        status,
        note,
    )


def test_cases_table_is_large() -> None:
    assert len(CASES) >= 30


# --- numbers ----------------------------------------------------------------------------


def _numbers(text: str) -> list[tuple[float, str, str]]:
    return [(n.value, n.unit, n.context) for n in parse_report_text(text).numbers]


def test_number_mention_fields() -> None:
    parsed = parse_report_text("9 60% 新增学位6500个")
    assert parsed.numbers == [
        NumberMention(value=6500.0, unit="个", context="新增学位", text="新增学位6500个")
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9 新增学位6,500个", [(6500.0, "个", "新增学位")]),
        ("9 新增学位1.2万个", [(12000.0, "个", "新增学位")]),
        ("9 新增学位6千5百个", [(6500.0, "个", "新增学位")]),
        ("9 新增学位六千五百个", [(6500.0, "个", "新增学位")]),
        ("9 新增学位６５００个", [(6500.0, "个", "新增学位")]),
        ("9 已培育十二个", [(12.0, "个", "已培育")]),
        ("9 新增学位6500多个", [(6500.0, "个", "新增学位")]),
        ("6 近视率下降0.3个百分点", [(0.3, "个百分点", "近视率下降")]),
        ("6 近视率下降0.3百分点", [(0.3, "个百分点", "近视率下降")]),
        ("10 公办占比46%，普惠占比83%", [(46.0, "%", "公办占比"), (83.0, "%", "普惠占比")]),
        ("10 公办占比百分之四十六", [(46.0, "%", "公办占比")]),
        ("9 60% 公办占比46%", [(46.0, "%", "公办占比")]),
        ("9 进度60%，完成率70%", [(70.0, "%", "完成率")]),
        ("9 投入资金50万元", [(500000.0, "元", "投入资金")]),
        ("6500个学位已建成", [(6500.0, "个", "")]),
        ("9 已建成 6500 个学位", [(6500.0, "个", "已建成")]),
    ],
)
def test_numbers(text: str, expected: list[tuple[float, str, str]]) -> None:
    assert _numbers(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "9 60% 2023年6月30日前完工",  # year and date
        "9 6.30前完工",  # date written with a dot
        "9 2023-06-30完工",
        "9 10:30召开现场会",  # time
        "9 第三届劳动教育周已举办",  # ordinal
        "9 10-20所学校已开工",  # range
        "9 “三所学校”建设推进中",  # slogan in quotes
        "9 十四五规划已印发",  # Chinese numeral without unit
        "9 一所一策推进",  # lone 一
        "第9项 完成80%",  # item and percent
        "９ ６０％",
        "9 完成百分之六十",
    ],
)
def test_not_numbers(text: str) -> None:
    assert parse_report_text(text).numbers == []


def test_item_number_is_not_a_number() -> None:
    parsed = parse_report_text("9 60% 新增学位9个")
    assert parsed.item_ref == "9"
    assert [(n.value, n.unit) for n in parsed.numbers] == [(9.0, "个")]


def test_words_after_the_number() -> None:
    (mention,) = parse_report_text("9 已建成6500个学位，主体完工").numbers
    assert mention.context == "已建成"
    assert mention.after == "学位"
    assert mention.text == "已建成6500个学位"


# --- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("9 120%", "120%"),
        ("9 进度150%", "150%"),
        ("９ １２０％", "120%"),
        ("9 一百二十%", "一百二十%"),
    ],
)
def test_bad_percent(text: str, value: str) -> None:
    with pytest.raises(UserError) as exc:
        parse_report_text(text)
    assert exc.value.key == "report.bad_percent"
    assert exc.value.params == {"value": value}


def test_metric_percent_over_100_is_not_an_error() -> None:
    parsed = parse_report_text("9 60% 投入增长120%")
    assert parsed.percent == 60
    assert [(n.value, n.unit) for n in parsed.numbers] == [(120.0, "%")]


def test_too_long() -> None:
    text = "9 60% " + "华" * MAX_REPORT_LENGTH
    with pytest.raises(UserError) as exc:
        parse_report_text(text)
    assert exc.value.key == "report.too_long"
    assert exc.value.params == {"max": 4000, "length": len(text)}


def test_longest_allowed() -> None:
    text = "9 60% " + "华" * (MAX_REPORT_LENGTH - 6)
    assert parse_report_text(text).percent == 60


@pytest.mark.parametrize(("text", "command"), [("", False), ("  \n ", False), ("/report ", True)])
def test_empty(text: str, command: bool) -> None:
    with pytest.raises(UserError) as exc:
        parse_report_text(text, command=command)
    assert exc.value.key == "report.empty"


# --- match_targets ----------------------------------------------------------------------


@dataclass(frozen=True)
class FakeTarget:
    metric: str
    unit: str
    comparator: str


SEATS = FakeTarget("新增学位", "个", ">")
PUBLIC_SHARE = FakeTarget("公办幼儿园在园人数(不含购买学位)占比", "%", ">=")
INCLUSIVE_SHARE = FakeTarget("公办幼儿园和普惠性民办幼儿园占比", "%", ">=")
GROUPS = FakeTarget("培育市级优质教育集团", "个", "=")
MYOPIA = FakeTarget("全市儿童青少年总体近视率", "个百分点", "decrease")
JUNIOR = FakeTarget("初中", "所", "=")
SENIOR = FakeTarget("高中", "所", "=")
REFORM = FakeTarget("学校书记校长分设、重新修订议事规则等改革任务", "%", ">=")


def _match(text: str, targets: list[FakeTarget]) -> list[tuple[FakeTarget, float]]:
    return match_targets(parse_report_text(text).numbers, targets)


def test_match_by_metric() -> None:
    assert _match("9 60% 新增学位6500个", [SEATS]) == [(SEATS, 6500.0)]


def test_match_two_shares() -> None:
    targets = [PUBLIC_SHARE, INCLUSIVE_SHARE]
    expected = [(PUBLIC_SHARE, 46.0), (INCLUSIVE_SHARE, 83.0)]
    assert _match("10 公办占比46%，普惠占比83%", targets) == expected
    assert _match("10 普惠占比83%，公办占比46%", targets) == expected
    assert _match("10 公办占比46%普惠占比83%", targets) == expected


def test_single_target_without_context() -> None:
    assert _match("22 已培育12个", [GROUPS]) == [(GROUPS, 12.0)]
    assert _match("22 40% 目前12个", [GROUPS]) == [(GROUPS, 12.0)]


def test_single_target_two_candidates_without_context() -> None:
    assert _match("22 目前12个，另有3个在申报", [GROUPS]) == []


def test_unrelated_number_not_matched() -> None:
    assert _match("9 60% 召开推进会3次", [SEATS]) == []
    assert _match("9 60% 新增学位6500个，召开推进会3次", [SEATS]) == [(SEATS, 6500.0)]
    assert _match("9 60% 新建学校3所", [SEATS]) == []


def test_number_without_unit_needs_context() -> None:
    assert _match("9 60% 3503835", [SEATS]) == []
    assert _match("9 60% 新增学位6500", [SEATS]) == [(SEATS, 6500.0)]


def test_report_percent_is_not_a_target_value() -> None:
    assert _match("2 完成80%", [REFORM]) == []
    assert _match("2 80%", [REFORM]) == []


def test_decrease_in_points_and_percent() -> None:
    assert _match("6 近视率下降0.3个百分点", [MYOPIA]) == [(MYOPIA, 0.3)]
    assert _match("6 完成80%，近视率下降0.3%", [MYOPIA]) == [(MYOPIA, 0.3)]


def test_several_targets_of_one_item() -> None:
    targets = [SEATS, JUNIOR, SENIOR]
    assert _match("9 培育初中2所、高中1所，学位6500个", targets) == [
        (SEATS, 6500.0),
        (JUNIOR, 2.0),
        (SENIOR, 1.0),
    ]
    assert _match("9 已建成6500个学位", targets) == [(SEATS, 6500.0)]


def test_a_target_takes_the_first_mention() -> None:
    assert _match("9 新增学位6500个，新增学位7000个", [SEATS]) == [(SEATS, 6500.0)]


def test_stop_words_alone_do_not_match() -> None:
    target = FakeTarget("全市学校建设完成", "个", "=")
    targets = [target, SEATS]
    assert _match("9 全市学校建设完成3个", targets) == []


def test_match_target_rows() -> None:
    row = Target(item_id=1, text="新增学位超1万个", metric="新增学位", comparator=">", value=1e4)
    row.unit = "个"
    values = match_targets(parse_report_text("9 新增学位6500个").numbers, [row])
    assert values == [(row, 6500.0)]


def test_match_nothing() -> None:
    assert match_targets([], [SEATS]) == []
    assert _match("9 新增学位6500个", []) == []
