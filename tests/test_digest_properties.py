"""Property tests over random report histories, on SQLite and PostgreSQL.

Each example plays a random history into a small plan: reports with and without a percent,
status words, corrections within the undo window, withdrawals, reports an admin makes or enters
on an owner's behalf, values against targets. Then it checks what people are shown against a
plain reading of the stored rows:

- one latest figure everywhere: the item views, `latest_known_percent`, the digest, the ledger,
  `duban items --json`, `/status` and `/my` all show the percent of the newest live report on
  the item that has one;
- a digest that agrees with itself: every count in the overview equals the list it sums up,
  "this week" holds live reports only, whoever reported this week is not listed as 未报送;
- projections come from two values on different days, are rounded to the target's unit and
  are never absurd;
- times are shown in the plan's time zone;
- an owner who answered (滞后 with a reason is an answer) is not nagged again in that cycle.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import count
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.chat import ChatCore
from bot.events import IncomingMessage
from bot.i18n import UserError
from bot.models import (
    Assignment,
    AssignmentRole,
    Contact,
    Plan,
    Report,
    ReportStatus,
    Role,
    Section,
    Target,
    TargetValue,
    WorkItem,
)
from bot.reporting import STATUSES
from bot.services import reports
from bot.services.digest import build_digest, statuses_at
from bot.services.items import item_json, item_views
from bot.services.ledger_export import ledger_rows
from bot.services.progress import StatusRules
from bot.settings import Settings
from bot.templating import render_digest
from handlers.registry import build_router
from scheduler.planner import Schedule, ask_day, load_state, plan_day
from scheduler.runner import work_calendar

TZ = ZoneInfo("Asia/Shanghai")
RULES = StatusRules()
NOW = datetime(2023, 6, 9, 23, 30, tzinfo=TZ)  # Friday evening of 2023-W23 (5 to 11 June)
WEEK_START = datetime(2023, 6, 5, tzinfo=TZ)
HISTORY_FROM = datetime(2023, 6, 3, 6, 0, tzinfo=TZ)  # the weekend before, into this week

OFFICIALS = ("张甲", "李乙", "王丙")
ADMIN = "赵管"
LEADER = "钱领"
# item number: (section, deadline, owners, lead first)
ITEMS: dict[int, tuple[int, date | None, tuple[str, ...]]] = {
    1: (1, date(2023, 6, 30), ("张甲", "李乙")),
    2: (1, None, ("李乙",)),
    3: (2, date(2023, 5, 26), ("王丙", "张甲")),  # overdue through the history
    4: (2, date(2023, 12, 31), ("王丙",)),
}
# item number: (metric, comparator, goal, unit, additive)
TARGETS = {
    1: ("新增学位", ">=", 10_000.0, "个", True),
    2: ("公办园在园幼儿占比", ">=", 50.0, "%", False),
}
TEXTS = ("", "按计划推进", "原因：征地未完成", "已召开推进会")

HYPOTHESIS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
HEAVY = settings(HYPOTHESIS, max_examples=25)  # each example asks the chat or plans many days


# --- the world: a small plan, its people, and a chat core to ask -------------------------


@dataclass
class World:
    """The plan every example plays its history into."""

    engine: Engine
    core: ChatCore
    plan_id: int
    items: dict[int, int]  # number -> id
    people: dict[str, int]  # name -> id
    targets: dict[int, Target]  # item number -> target
    updates: Iterator[int]

    def reset(self) -> None:
        """Forget every report (the plan, people and assignments stay)."""
        with self.engine.begin() as conn:
            conn.execute(sa.delete(TargetValue))
            conn.execute(sa.update(Report).values(superseded_by_id=None))
            conn.execute(sa.delete(Report))

    def play(self, steps: list[Say | Undo], start: datetime = HISTORY_FROM) -> None:
        """Record the history through the report service, in one transaction."""
        at = start
        with Session(self.engine, expire_on_commit=False) as session:
            people = {c.name: c for c in session.exec(select(Contact))}
            for step in steps:
                at += timedelta(minutes=step.gap)
                if at > NOW:
                    break
                if isinstance(step, Undo):
                    with suppress(UserError):  # nothing of theirs to take back: a no-op
                        reports.undo_last(session, people[step.who], at)
                    session.flush()
                    continue
                item = session.get(WorkItem, self.items[step.item])
                assert item is not None
                target = self.targets.get(step.item)
                values = [(target, step.value)] if target and step.value is not None else []
                reports.record_report(
                    session,
                    item=item,
                    contact=people[step.who],
                    now=at,
                    percent=step.percent,
                    status=step.status,
                    text=step.text,
                    values=values,
                    source="cli" if step.on_behalf else "chat",
                    entered_by=people[ADMIN] if step.on_behalf else None,
                )
            session.commit()

    def say(self, name: str, text: str) -> str:
        """What the bot answers `name` on the console channel."""
        event = IncomingMessage(
            platform="console",
            chat_id=name,
            sender_id=name,
            update_id=str(next(self.updates)),
            text=text,
        )
        result = self.core.process(event)
        assert result is not None
        return "\n".join(out.text for out in result[0])


@pytest.fixture
def world(engine: Engine, db_url: str) -> Iterator[World]:
    with Session(engine, expire_on_commit=False) as session:
        plan = Plan(title="性质测试计划", code="要点", issued_on=date(2023, 1, 1))
        session.add(plan)
        session.flush()
        assert plan.id is not None
        sections = {
            n: Section(plan_id=plan.id, number=n, label="一二"[n - 1], title=f"第{n}板块")
            for n in (1, 2)
        }
        session.add_all(sections.values())
        people = {
            name: Contact(name=name, unit=f"{name}科", role=Role.official) for name in OFFICIALS
        }
        people[ADMIN] = Contact(name=ADMIN, unit="办公室", role=Role.admin)
        people[LEADER] = Contact(name=LEADER, unit="局领导", role=Role.leader)
        session.add_all(people.values())
        session.flush()
        items = {}
        for number, (section, deadline, _) in ITEMS.items():
            items[number] = WorkItem(
                plan_id=plan.id,
                section_id=sections[section].id or 0,
                number=number,
                label=f"{number}.",
                title=f"第{number}项任务",
                deadline=deadline,
            )
        session.add_all(items.values())
        session.flush()
        targets = {}
        for number, (metric, comparator, goal, unit, additive) in TARGETS.items():
            targets[number] = Target(
                item_id=items[number].id or 0,
                text=f"{metric}{goal:g}{unit}",
                metric=metric,
                comparator=comparator,
                value=goal,
                unit=unit,
                additive=additive,
            )
        session.add_all(targets.values())
        for number, (_, _, owners) in ITEMS.items():
            for n, name in enumerate(owners):
                session.add(
                    Assignment(
                        item_id=items[number].id or 0,
                        contact_id=people[name].id or 0,
                        role=AssignmentRole.lead if n == 0 else AssignmentRole.support,
                    )
                )
        session.commit()
    settings_ = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=db_url,
        timezone="Asia/Shanghai",
        locale="zh-CN",
    )
    core = ChatCore(engine, settings_, build_router(), clock=lambda: NOW)
    yield World(
        engine=engine,
        core=core,
        plan_id=plan.id,
        items={n: i.id or 0 for n, i in items.items()},
        people={name: c.id or 0 for name, c in people.items()},
        targets=targets,
        updates=count(1),
    )
    core.close()


# --- random histories ----------------------------------------------------------------------


@dataclass(frozen=True)
class Say:
    """A report: by an owner, by the admin in chat, or entered by the admin for an owner."""

    gap: int  # minutes after the previous step
    item: int
    who: str
    percent: int | None
    status: ReportStatus | None
    text: str
    value: float | None
    on_behalf: bool


@dataclass(frozen=True)
class Undo:
    """/undo: takes the sender's last report back when it is less than 10 minutes old."""

    gap: int
    who: str


# Minutes apart: within the undo window (a correction), or hours to days.
GAPS = st.one_of(st.integers(1, 12), st.integers(3 * 60, 2 * 24 * 60))


@st.composite
def says(draw: st.DrawFn, items: tuple[int, ...] = (1, 1, 2, 2, 3, 4), gaps: Any = GAPS) -> Say:
    item = draw(st.sampled_from(items))
    who = draw(st.sampled_from([*ITEMS[item][2], ADMIN]))
    status = draw(st.none() | st.sampled_from(ReportStatus))
    percent = draw(st.none() | st.integers(0, 100))
    if status == ReportStatus.done and percent not in (None, 100):
        percent = None  # "已完成" comes with 100% or no percent at all
    value = None
    target = TARGETS.get(item)
    if target is not None and draw(st.integers(0, 3)):
        if target[3] == "个":
            value = float(draw(st.integers(0, 20_000)))
        else:
            value = draw(st.integers(0, 1000)) / 10
    return Say(
        gap=draw(gaps),
        item=item,
        who=who,
        percent=percent,
        status=status,
        text=draw(st.sampled_from(TEXTS)),
        value=value,
        on_behalf=who != ADMIN and draw(st.booleans()),
    )


undos = st.builds(Undo, gap=st.integers(1, 15), who=st.sampled_from([*OFFICIALS, ADMIN]))
histories = st.lists(st.one_of(says(), says(), says(), undos), max_size=14)


# --- a plain reading of the stored rows ------------------------------------------------------


def stored(world: World) -> list[Report]:
    with Session(world.engine) as session:
        return list(session.exec(select(Report)))


def live(rows: list[Report], until: datetime = NOW) -> list[Report]:
    """Reports that stand: not withdrawn, not superseded by a correction."""
    return [
        r
        for r in rows
        if r.withdrawn_at is None and r.superseded_by_id is None and r.created_at <= until
    ]


def newest(rows: list[Report]) -> Report | None:
    return max(rows, key=lambda r: (r.created_at, r.id or 0), default=None)


def figure_report(rows: list[Report], item_id: int) -> Report | None:
    """The report whose percent is the item's latest figure."""
    return newest([r for r in live(rows) if r.item_id == item_id and r.percent is not None])


def local_day(moment: datetime) -> str:
    return moment.astimezone(TZ).strftime("%m-%d")


# --- what people are shown -------------------------------------------------------------------

STATUS_FIGURE = re.compile(r"最新进度：(?:(\d+)%（(.+?)，(\d\d-\d\d)）|未填写|暂无)")


def status_figure(text: str) -> tuple[int | None, str | None, str | None]:
    """The item's latest figure as `/status` shows it: percent, who, local day."""
    found = STATUS_FIGURE.search(text)
    assert found is not None, text
    percent, who, day = found.groups()
    return (int(percent) if percent else None), who, day


def my_rows(text: str) -> dict[int, tuple[int | None, str | None]]:
    """Per item in `/my`: the item's latest figure and the day of my own latest report."""
    out: dict[int, tuple[int | None, str | None]] = {}
    lines = text.splitlines()
    for index, line in enumerate(lines):
        head = re.match(r"\S+ (\d+)\. ", line)
        if head is None:
            continue
        detail = lines[index + 1]
        percent = re.search(r"进度：(?:(\d+)%|未填写|暂无)", detail)
        assert percent is not None, detail
        mine = re.search(r"我的最新进展：.*（(\d\d-\d\d)）$", detail)
        out[int(head.group(1))] = (
            int(percent.group(1)) if percent.group(1) else None,
            mine.group(1) if mine else None,
        )
    return out


def block(text: str, header: str) -> list[str]:
    """The lines under a digest heading, up to the next blank line."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if header in line]
    if not starts:
        return []
    out = []
    for line in lines[starts[0] + 1 :]:
        if not line.strip():
            break
        out.append(line)
    return out


# --- the properties --------------------------------------------------------------------------


@HYPOTHESIS
@given(percent=st.none() | st.integers(0, 100), status=st.none() | st.sampled_from(ReportStatus))
def test_a_report_stores_only_the_percent_it_was_given(
    world: World, percent: int | None, status: ReportStatus | None
) -> None:
    world.reset()
    earlier = Say(60, 1, "张甲", 40, None, "", None, False)
    world.play([earlier, Say(24 * 60, 1, "李乙", percent, status, "说明", None, False)])
    rows = sorted(stored(world), key=lambda r: r.created_at)
    report = rows[-1]
    expected = percent if percent is not None else 100 if status == ReportStatus.done else None
    assert report.percent == expected  # never the earlier report's 40
    if status is not None:
        assert report.status == status
    elif expected is not None:
        assert report.status == (ReportStatus.done if expected == 100 else ReportStatus.in_progress)
    else:
        assert report.status is None
    with Session(world.engine) as session:
        known = reports.latest_known_percent(session, world.items[1])
    assert known == (expected if expected is not None else 40)  # derived when read


@HEAVY
@given(steps=histories)
def test_one_latest_figure_everywhere(world: World, steps: list[Say | Undo]) -> None:
    world.reset()
    world.play(steps)
    rows = stored(world)
    names = {v: k for k, v in world.people.items()}
    with Session(world.engine) as session:
        plan = session.get(Plan, world.plan_id)
        assert plan is not None
        views = {v.item.number: v for v in item_views(session, plan, now=NOW, tz=TZ, rules=RULES)}
        digest = {
            v.item.number: v for v in build_digest(session, plan, now=NOW, tz=TZ, rules=RULES).views
        }
        ledger = {row.number: row for row in ledger_rows(list(views.values()))}
        helper = {n: reports.latest_known_percent(session, i) for n, i in world.items.items()}
    for number, item_id in world.items.items():
        figure = figure_report(rows, item_id)
        expected = figure.percent if figure else None
        assert views[number].percent == expected
        assert helper[number] == expected
        assert digest[number].percent == expected
        assert ledger[number].percent == expected
        assert item_json(views[number])["percent"] == expected
        shown, who, day = status_figure(world.say(LEADER, f"/status {number}"))
        assert shown == expected
        if figure is not None:  # who gave the figure, and when, in the plan's time zone
            assert (who, day) == (names[figure.contact_id], local_day(figure.created_at))
    for name in OFFICIALS:
        mine = my_rows(world.say(name, "/my"))
        assert set(mine) == {n for n, (_, _, owners) in ITEMS.items() if name in owners}
        for number, (shown, day) in mine.items():
            figure = figure_report(rows, world.items[number])
            assert shown == (figure.percent if figure else None)
            own = newest(
                [
                    r
                    for r in live(rows)
                    if r.item_id == world.items[number] and r.contact_id == world.people[name]
                ]
            )
            assert day == (local_day(own.created_at) if own else None)


@HYPOTHESIS
@given(steps=histories)
def test_the_digest_agrees_with_itself(world: World, steps: list[Say | Undo]) -> None:
    world.reset()
    world.play(steps)
    rows = stored(world)
    with Session(world.engine) as session:
        plan = session.get(Plan, world.plan_id)
        assert plan is not None
        d = build_digest(session, plan, now=NOW, tz=TZ, rules=RULES)
    # the counts are the lists they sum up
    assert sum(d.counts.values()) == len(d.views) == len(ITEMS)
    for status in STATUSES:
        assert d.counts[status] == sum(v.status == status for v in d.views)
        assert d.counts[status] == sum(s.counts[status] for s in d.sections)
    assert (d.counts["red"], d.counts["amber"]) == (len(d.red), len(d.amber))
    # this week: live reports only (no corrected, no withdrawn ones)
    week = [r for r in live(rows) if r.created_at >= WEEK_START]
    names = {v: k for k, v in world.people.items()}
    numbers = {v: k for k, v in world.items.items()}
    assert sorted((r.item, r.contact, r.at) for r in d.reports) == sorted(
        (numbers[r.item_id], names[r.contact_id], r.created_at) for r in week
    )
    # not reported: the officials of open items who made no live report this week
    reporters = {r.contact_id for r in week}
    assert d.missing == sorted(
        {
            c.name
            for v in d.views
            if v.status != "done"
            for c, _ in v.people
            if c.role == Role.official and c.id not in reporters
        }
    )
    # and the text says the same
    text = render_digest(d, "text", "zh-CN")
    overview = re.search(
        r"共 (\d+) 项；已完成 (\d+)，正常 (\d+)，预警 (\d+)，滞后 (\d+)，尚无报送 (\d+)；", text
    )
    assert overview is not None, text
    assert [int(n) for n in overview.groups()] == [
        len(d.views),
        *(d.counts[s] for s in ("done", "green", "amber", "red", "none")),
    ]
    this_week = re.search(r"本周新报送 (\d+) 条，(\d+) 人未报送", text)
    assert this_week is not None, text
    assert (int(this_week[1]), int(this_week[2])) == (len(d.reports), len(d.missing))
    red, amber = block(text, "🔴 滞后事项"), block(text, "🟡 预警事项")
    assert (len(red), len(amber)) == (d.counts["red"], d.counts["amber"])
    for line, view in zip([*red, *amber], [*d.red, *d.amber], strict=True):
        # "尚无报送" only for an item nobody has reported on (滞后 with a reason is a report)
        assert ("尚无报送" in line) == (view.latest is None), line
    silent = block(text, "⏰ 本周未报送")
    listed = silent[0].split("、") if d.missing else []
    assert listed == d.missing
    changes = block(text, "📝 本周变化")
    listed_reports = [line for line in changes if line.startswith("· 第") and "→" not in line]
    assert len(listed_reports) == min(20, len(d.reports))
    assert len([line for line in changes if "→" in line]) == len(d.changes)
    assert "未报送 →" not in text and "→ 未报送" not in text  # items: 尚无报送; people: 未报送


@HYPOTHESIS
@given(steps=histories)
def test_projections_are_sane(world: World, steps: list[Say | Undo]) -> None:
    world.reset()
    world.play(steps)
    rows = {r.id: r for r in live(stored(world))}
    with Session(world.engine) as session:
        plan = session.get(Plan, world.plan_id)
        assert plan is not None
        values = list(session.exec(select(TargetValue)))
        views = item_views(session, plan, now=NOW, tz=TZ, rules=RULES)
    for view in views:
        for state in view.targets:
            target = state.target
            given = sorted(
                (
                    rows[v.report_id].created_at,
                    rows[v.report_id].id or 0,
                    rows[v.report_id],
                    v.value,
                )
                for v in values
                if v.target_id == target.id and v.report_id in rows
            )
            days = {at.astimezone(TZ).date() for at, _, _, _ in given}
            if len(days) < 2:  # one day's values make no pace
                assert state.projection is None
                continue
            # The pace from where the value stood when reporting began to where it stands now,
            # carried on to the end of the deadline's day.
            t0, _, _, v0 = given[0]
            newest_by: dict[int, tuple[datetime, float]] = {}
            for at, _, report, value in given:
                newest_by[report.contact_id] = (at, value)
            t1 = max(at for at, _ in newest_by.values())
            v1 = sum(value for _, value in newest_by.values()) if target.additive else given[-1][3]
            end = datetime.combine(view.deadline or date(2023, 12, 31), time.max, tzinfo=TZ)
            raw = v1 + (v1 - v0) / (t1 - t0).total_seconds() * (end - t1).total_seconds()
            if raw < 0 or raw > 10 * target.value:
                assert state.projection is None  # absurd: left out
                continue
            assert state.projection is not None
            rounding = 0.5 if target.unit == "个" else 0.05
            assert state.projection == pytest.approx(raw, abs=rounding + 1e-9)
            if target.unit == "个":  # a count is a whole number
                assert state.projection == int(state.projection)
            else:  # a share has one decimal at most
                assert round(state.projection, 1) == state.projection


def _nag_steps() -> Any:
    hours = st.integers(60, 2 * 24 * 60)
    return st.lists(says(items=(3,), gaps=hours), max_size=10)


@HEAVY
@given(steps=_nag_steps())
def test_an_owner_who_answered_is_not_nagged_again_that_cycle(
    world: World, steps: list[Say | Undo]
) -> None:
    world.reset()
    world.play(steps, start=datetime(2023, 5, 26, 12, tzinfo=TZ))
    rows = stored(world)
    item3 = world.items[3]
    cal = work_calendar(Settings(_env_file=None))  # type: ignore[call-arg]
    schedule = Schedule()
    first_nag = cal.add_working_days(ITEMS[3][1] or NOW.date(), 1)
    day, nag_days = first_nag, 0
    while day <= NOW.date():
        if not cal.is_working_day(day) or cal.working_days_between(first_nag, day) % 3:
            day += timedelta(days=1)
            continue  # not a day the schedule nags on: nothing to check
        nag_days += 1
        now = datetime.combine(day, time(10), tzinfo=TZ)
        with Session(world.engine) as session:
            plan = session.get(Plan, world.plan_id)
            assert plan is not None
            state = load_state(session, plan, now=now, tz=TZ, rules=RULES)
        planned = {p.key for p in plan_day(state, day, cal, schedule)}
        for nag in plan_day(state, day, cal, schedule, assume_silent=True):
            if nag.kind != "overdue" or nag.item_id != item3:
                continue
            asked = ask_day(cal, schedule, day)
            if datetime.combine(asked, schedule.ask_time, tzinfo=TZ) > nag.due_at:
                asked = ask_day(cal, schedule, day - timedelta(days=7))
            cycle = datetime.combine(asked, schedule.ask_time, tzinfo=TZ)
            answered = any(
                r.item_id == item3 and r.contact_id == nag.contact_id and r.created_at >= cycle
                for r in live(rows, until=now)
            )
            assert (nag.key in planned) == (not answered), (day, nag.key)
        day += timedelta(days=1)
    assert nag_days >= 3


def test_the_strategies_reach_the_interesting_cases(world: World) -> None:
    """A fixed history with everything at once: a correction, a withdrawal, a report without
    a percent after one with, an admin's report, values on one day and on two."""
    world.reset()
    world.play(
        [
            Say(0, 1, "张甲", 85, None, "", 4000, False),
            Say(3 * 24 * 60, 1, "张甲", 60, None, "", 5000, False),
            Say(5, 1, "张甲", 65, None, "更正", 5200, False),  # a correction: 60 is superseded
            Say(24 * 60, 1, ADMIN, 50, None, "", None, False),
            Say(2, 1, ADMIN, 55, None, "", None, False),
            Undo(3, ADMIN),  # takes the 55 back; the 50 it corrected stands again
            Say(24 * 60, 1, "李乙", None, ReportStatus.delayed, "原因：征地未完成", None, True),
        ]
    )
    rows = stored(world)
    figure = figure_report(rows, world.items[1])
    assert figure is not None and figure.percent == 50
    assert len(live(rows)) == 4
    with Session(world.engine) as session:
        assert reports.latest_known_percent(session, world.items[1]) == 50
    shown, who, _ = status_figure(world.say(LEADER, "/status 1"))
    assert (shown, who) == (50, ADMIN)


@HEAVY
@given(steps=histories, hours=st.sampled_from([0, 30, 24 * 3, 24 * 6 + 5]))
def test_statuses_at_an_earlier_moment_agree_with_the_item_views(
    world: World, steps: list[Say | Undo], hours: int
) -> None:
    """The digest's one-query statuses as of an earlier moment (the start of the week) are
    what item_views says as of that moment."""
    world.reset()
    world.play(steps)
    moment = NOW - timedelta(hours=hours)
    with Session(world.engine) as session:
        plan = session.get(Plan, world.plan_id)
        assert plan is not None
        views = item_views(session, plan, now=NOW, tz=TZ, rules=RULES)
        fast = statuses_at(session, plan, views, moment, tz=TZ, rules=RULES)
        slow = item_views(session, plan, now=NOW, tz=TZ, rules=RULES, as_of=moment)
    assert fast == {v.item.id: v.status for v in slow}
