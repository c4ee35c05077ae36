"""Status of an item (红黄绿) and progress against quantitative targets: the rules, pure.

Reported percent is compared with the share of time elapsed to the deadline (序时进度):

- done: the latest report says done (or 100%);
- red: past its deadline (or the end of the plan's year, when it has none) and not done,
  behind by more than `red_behind` points, or reported
  as delayed (滞后/延期/受阻) by its owner;
- amber: behind by more than `amber_behind` points, or no report for `stale_cycles` cycles;
- green: otherwise, once reported;
- none: never reported, and neither red nor amber yet.

The time runs from the plan's start (its issue date, else 1 January of its year) to the
item's deadline (else 31 December of that year).

A projection carries the pace of a target's values on to the deadline: only from two values
on different days, rounded to the target's unit, and never when it would be absurd.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from bot.settings import Settings


@dataclass(frozen=True)
class StatusRules:
    """The thresholds of the status rule (from settings)."""

    amber_behind: int = 10
    red_behind: int = 30
    stale_cycles: int = 2
    cycle_days: int = 7

    @classmethod
    def from_settings(cls, settings: Settings) -> StatusRules:
        """The rules configured in settings."""
        return cls(
            amber_behind=settings.status_amber_behind,
            red_behind=settings.status_red_behind,
            stale_cycles=settings.status_stale_cycles,
            cycle_days=settings.report_cycle_days,
        )


@dataclass(frozen=True)
class Why:
    """Why an item has its status: a message key and its parameters (rendered per locale)."""

    key: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """An item's status, why, and the time-elapsed share it was measured against."""

    status: str
    why: Why | None
    expected: int | None  # 序时进度, whole percent


def expected_percent(start: date, deadline: date, today: date) -> int:
    """The share of the time from start to deadline that has passed, in whole percent."""
    if deadline <= start:
        return 100 if today >= deadline else 0
    share = (today - start).days / (deadline - start).days
    return round(100 * min(1.0, max(0.0, share)))


def judge(
    *,
    percent: int | None,
    reported_status: str | None,
    last_report_at: datetime | None,
    start: date,
    deadline: date | None,
    today: date,
    now: datetime,
    rules: StatusRules,
) -> Verdict:
    """Apply the status rule to one item."""
    if reported_status == "done" or percent == 100:
        return Verdict("done", None, 100)
    end = deadline or date(start.year, 12, 31)  # no deadline: the end of the plan's year
    expected = expected_percent(start, end, today)
    if today > end:
        return Verdict("red", Why("why.overdue", {"deadline": end.isoformat()}), expected)
    if reported_status == "delayed":
        return Verdict("red", Why("why.delayed"), expected)
    behind = expected - (percent or 0) if percent is not None else None
    if behind is not None and behind > rules.red_behind:
        return Verdict(
            "red",
            Why("why.behind", {"behind": behind, "expected": expected, "percent": percent}),
            expected,
        )
    stale_after = timedelta(days=rules.cycle_days * rules.stale_cycles)
    reference = last_report_at.date() if last_report_at else start
    if now.date() - reference > stale_after and today > start + stale_after:
        weeks = (today - reference).days // 7
        return Verdict("amber", Why("why.stale", {"weeks": weeks}), expected)
    if behind is not None and behind > rules.amber_behind:
        return Verdict(
            "amber",
            Why("why.behind", {"behind": behind, "expected": expected, "percent": percent}),
            expected,
        )
    if percent is None and reported_status is None:
        return Verdict("none", None, expected)
    return Verdict("green", None, expected)


def target_share(comparator: str, goal: float, value: float | None) -> int | None:
    """How far a value is towards a target, in whole percent (None when it cannot be said)."""
    if value is None or not goal or comparator in ("<", "<="):
        return None  # a ceiling: staying under it is the goal, a share means nothing
    return round(100 * value / goal)


def project(
    first: tuple[datetime, float], last: tuple[datetime, float], until: datetime
) -> float | None:
    """Where a value is heading: the pace from the first to the last report, carried on."""
    (t0, v0), (t1, v1) = first, last
    span = (t1 - t0).total_seconds()
    if span <= 0:
        return None
    rate = (v1 - v0) / span
    return v1 + rate * max(0.0, (until - t1).total_seconds())


# Units that count whole things: a projection of them is a whole number.
COUNT_UNITS = frozenset(
    {"个", "所", "家", "项", "名", "位", "人", "人次", "场次", "场", "次", "间", "台", "套", "本"}
    | {"篇", "门", "节", "张", "支", "册", "件", "户", "辆", "座", "处", "条", "栋", "幢", "层"}
    | {"批", "份"}
)
# Shares: a projection of them has at most one decimal.
SHARE_UNITS = frozenset({"%", "‰", "个百分点", "百分点"})
ABSURD_TIMES = 10  # a projection beyond ten times the target says more about the data


def round_to_unit(value: float, unit: str, goal: float) -> float:
    """A value rounded as its unit is written: counts whole, shares to one decimal, other
    measures to the decimals of the target itself (at most two)."""
    if unit in COUNT_UNITS:
        return float(round(value))
    if unit in SHARE_UNITS:
        return round(value, 1)
    exponent = Decimal(repr(float(goal))).normalize().as_tuple().exponent
    decimals = -exponent if isinstance(exponent, int) else 0
    return round(value, min(2, max(0, decimals)))


def projection(
    first: tuple[datetime, float],
    last: tuple[datetime, float],
    until: datetime,
    *,
    goal: float,
    unit: str,
    tz: tzinfo,
) -> float | None:
    """Where a target's value is heading by `until`, or None when that cannot be said sensibly.

    None when the two values were given on the same day in the plan's time zone (minutes apart
    make a pace of nothing), when the deadline has passed, and when the result is not finite,
    negative, or more than ten times the target.
    """
    (t0, _), (t1, _) = first, last
    if t0.astimezone(tz).date() >= t1.astimezone(tz).date() or until <= t1:
        return None
    raw = project(first, last, until)
    if raw is None or not math.isfinite(raw) or raw < 0:
        return None
    if goal > 0 and raw > ABSURD_TIMES * goal:
        return None
    return round_to_unit(raw, unit, goal)
