"""The status rule (红黄绿), the time-elapsed share, target shares and projections."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.services.progress import (
    StatusRules,
    expected_percent,
    judge,
    project,
    projection,
    round_to_unit,
    target_share,
)

START = date(2023, 3, 15)
RULES = StatusRules()


def verdict(
    today: date,
    *,
    percent: int | None = None,
    status: str | None = None,
    last: date | None = None,
    deadline: date | None = date(2023, 12, 31),
    rules: StatusRules = RULES,
) -> tuple[str, str | None]:
    result = judge(
        percent=percent,
        reported_status=status,
        last_report_at=datetime.combine(last, datetime.min.time(), tzinfo=UTC) if last else None,
        start=START,
        deadline=deadline,
        today=today,
        now=datetime.combine(today, datetime.min.time(), tzinfo=UTC),
        rules=rules,
    )
    return result.status, result.why.key if result.why else None


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        # done wins over everything, even past the deadline
        ({"today": date(2024, 2, 1), "percent": 100}, ("done", None)),
        ({"today": date(2023, 6, 1), "status": "done", "last": date(2023, 5, 30)}, ("done", None)),
        # past the deadline and not done
        (
            {"today": date(2024, 1, 2), "percent": 90, "last": date(2023, 12, 30)},
            ("red", "why.overdue"),
        ),
        # no deadline: the end of the plan's year is the deadline
        (
            {
                "today": date(2024, 1, 2),
                "deadline": None,
                "percent": 90,
                "last": date(2023, 12, 30),
            },
            ("red", "why.overdue"),
        ),
        # reported as delayed by the owner
        (
            {
                "today": date(2023, 6, 1),
                "percent": 80,
                "status": "delayed",
                "last": date(2023, 5, 31),
            },
            ("red", "why.delayed"),
        ),
        # behind by more than 30 points: about 27% of the time gone by 1 June; 1 Oct ~ 70%
        (
            {"today": date(2023, 10, 1), "percent": 30, "last": date(2023, 9, 28)},
            ("red", "why.behind"),
        ),
        # behind by more than 10 (but not 30) points
        (
            {"today": date(2023, 10, 1), "percent": 50, "last": date(2023, 9, 28)},
            ("amber", "why.behind"),
        ),
        # within 10 points: green
        ({"today": date(2023, 10, 1), "percent": 65, "last": date(2023, 9, 28)}, ("green", None)),
        # no report for two cycles
        (
            {"today": date(2023, 10, 1), "percent": 75, "last": date(2023, 9, 10)},
            ("amber", "why.stale"),
        ),
        # never reported, plan young: none; older than two cycles: amber
        ({"today": date(2023, 3, 20)}, ("none", None)),
        ({"today": date(2023, 4, 20)}, ("amber", "why.stale")),
    ],
)
def test_status_rule(kwargs: dict[str, object], expected: tuple[str, str | None]) -> None:
    assert verdict(**kwargs) == expected  # type: ignore[arg-type]


def test_thresholds_come_from_the_rules() -> None:
    strict = StatusRules(amber_behind=0, red_behind=5)
    assert verdict(date(2023, 10, 1), percent=60, last=date(2023, 9, 28), rules=strict)[0] == "red"
    assert (
        verdict(date(2023, 10, 1), percent=65, last=date(2023, 9, 28), rules=strict)[0] == "amber"
    )


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (date(2023, 3, 15), 0),
        (date(2023, 12, 31), 100),
        (date(2024, 5, 1), 100),
        (date(2023, 1, 1), 0),
    ],
)
def test_expected_percent(today: date, expected: int) -> None:
    assert expected_percent(START, date(2023, 12, 31), today) == expected


def test_expected_percent_midway() -> None:
    assert expected_percent(date(2023, 1, 1), date(2023, 1, 11), date(2023, 1, 6)) == 50


@pytest.mark.parametrize(
    ("comparator", "goal", "value", "share"),
    [
        (">", 10000, 6500, 65),
        (">=", 50, 46, 92),
        ("decrease", 0.5, 0.3, 60),
        ("=", 15, 12, 80),
        ("<=", 5, 3, None),
        (">", 10000, None, None),
        (">", 0, 5, None),
    ],
)
def test_target_share(comparator: str, goal: float, value: float | None, share: int | None) -> None:
    assert target_share(comparator, goal, value) == share


def test_projection_carries_the_pace_on() -> None:
    t0 = datetime(2023, 4, 1, tzinfo=UTC)
    t1 = datetime(2023, 7, 1, tzinfo=UTC)  # 91 days: 4,000 -> 6,000
    end = datetime(2023, 12, 30, tzinfo=UTC)  # 182 days on
    assert project((t0, 4000), (t1, 6000), end) == pytest.approx(10000, rel=0.01)
    assert project((t1, 4000), (t1, 6000), end) is None


SHANGHAI = ZoneInfo("Asia/Shanghai")
DEADLINE = datetime(2023, 12, 30, tzinfo=UTC)


def _pace(
    v0: float, v1: float, *, t0: datetime, t1: datetime, goal: float = 10000, unit: str = "个"
) -> float | None:
    return projection((t0, v0), (t1, v1), DEADLINE, goal=goal, unit=unit, tz=SHANGHAI)


def test_a_projection_is_rounded_to_the_unit() -> None:
    t0, t1 = datetime(2023, 4, 1, tzinfo=UTC), datetime(2023, 7, 1, tzinfo=UTC)
    places = _pace(4000, 6000, t0=t0, t1=t1)
    assert places == 10000 and isinstance(places, float) and places.is_integer()
    # 40% to 43.31% in 91 days, 182 days on: 49.93 (rounded to one decimal)
    assert _pace(40.0, 43.31, t0=t0, t1=t1, goal=50, unit="%") == 49.9
    # other measures keep the decimals of the target itself (at most two)
    assert round_to_unit(1234.5678, "万元", 1.5) == 1234.6
    assert round_to_unit(1234.5678, "", 2) == 1235
    assert round_to_unit(0.123456, "亿元", 0.125) == 0.12
    assert round_to_unit(7.46, "个百分点", 0.5) == 7.5


def test_no_projection_from_values_of_one_day() -> None:
    # 23:00 and 01:00 next day in UTC are the same morning in Shanghai
    t0 = datetime(2023, 6, 7, 17, 0, tzinfo=UTC)  # 01:00 on 8 June in Shanghai
    assert _pace(100, 9000, t0=t0, t1=t0 + timedelta(minutes=30)) is None
    assert _pace(100, 9000, t0=t0, t1=t0 + timedelta(hours=15)) is None  # 16:00 on 8 June
    # 23:30 and 00:10 are two days in Shanghai (and the pace that makes is then absurd)
    late = datetime(2023, 6, 8, 15, 30, tzinfo=UTC)
    assert _pace(100, 150, t0=late, t1=late + timedelta(minutes=40), goal=1e9) is not None


@pytest.mark.parametrize(
    ("v0", "v1", "why"),
    [
        (9000, 100, "negative: the value fell fast"),
        (0, 9000, "more than ten times the target"),
        (0, math.inf, "not finite"),
    ],
)
def test_an_absurd_projection_is_left_out(v0: float, v1: float, why: str) -> None:
    t0, t1 = datetime(2023, 6, 1, tzinfo=UTC), datetime(2023, 6, 8, tzinfo=UTC)
    assert project((t0, v0), (t1, v1), DEADLINE) is not None, why  # the raw pace exists
    assert _pace(v0, v1, t0=t0, t1=t1) is None, why


def test_no_projection_once_the_deadline_has_passed() -> None:
    t0, t1 = datetime(2023, 6, 1, tzinfo=UTC), datetime(2024, 1, 8, tzinfo=UTC)
    assert _pace(1000, 2000, t0=t0, t1=t1) is None
