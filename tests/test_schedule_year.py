"""A whole plan year on the injectable clock: the planner, the outbox and the dispatcher
deliver through the console channel only on China's working days and hours, the right
deadline reminders, bounded nags and escalations, and nothing twice."""

from __future__ import annotations

import asyncio
import io
import logging
from collections import Counter, defaultdict
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.channels.console import ConsoleMessenger
from bot.clock import FakeClock
from bot.i18n import Translator
from bot.models import Assignment, Contact, Outbox, Role, Section, WorkItem
from bot.services import audit, contacts, plans, reports
from bot.settings import Settings
from scheduler.dispatcher import Dispatcher
from scheduler.runner import Planner, work_calendar
from tests.harness import seed

TZ = ZoneInfo("Asia/Shanghai")
DEADLINES = {9: date(2023, 6, 30), 22: date(2023, 10, 10), 10: date(2023, 12, 29)}


def _setup(engine: Engine) -> None:
    seed(engine)
    with Session(engine, expire_on_commit=False) as session:
        plan = plans.current_plan(session)
        for number, deadline in DEADLINES.items():
            plans.find_item(session, plan, str(number)).deadline = deadline
        contacts.add_contact(
            session, name="刘局", unit="局领导", role=Role.leader, actor=audit.CLI_ACTOR
        )
        wang = session.exec(select(Contact).where(Contact.name == "王局")).one()
        section3 = session.exec(select(Section).where(Section.number == 3)).one()
        section3.leader_id = wang.id  # item 9 is in section 三: its escalations go to 王局
        # 陈五 (item 8) stays unbound to any chat: make him reachable on the console too
        session.commit()


async def _play(engine: Engine, start: date, end: date) -> tuple[ConsoleMessenger, Counter[str]]:
    clock = FakeClock(datetime.combine(start, time(8), tzinfo=TZ))
    settings = Settings(_env_file=None, database_url="sqlite://", timezone="Asia/Shanghai")  # type: ignore[call-arg]
    messenger = ConsoleMessenger(io.StringIO(), clock=clock, tz=TZ, colors=False)
    planner = Planner(engine, settings, clock=clock, charts=False)
    dispatcher = Dispatcher(
        engine,
        {"console": messenger},
        t=Translator("zh-CN"),
        clock=clock,
        calendar=work_calendar(settings),
    )
    kinds: Counter[str] = Counter()
    day = start
    while day <= end:
        for at in (time(9), time(10), time(11), time(20)):
            clock.set(datetime.combine(day, at, tzinfo=TZ))
            await asyncio.to_thread(planner.plan_due)
            await dispatcher.deliver_due()
            if at == time(11):
                _li_answers(engine, clock.now)  # 李四 answers every ask; 张三 never does
        day += timedelta(days=1)
    with Session(engine) as session:
        for row in session.exec(select(Outbox)):
            kinds[f"{row.kind}:{row.state}"] += 1
    return messenger, kinds


def _li_answers(engine: Engine, now: datetime) -> None:
    with Session(engine, expire_on_commit=False) as session:
        plan = plans.current_plan(session)
        item = plans.find_item(session, plan, "22")
        li = session.exec(select(Contact).where(Contact.name == "李四")).one()
        asked = session.exec(
            select(Outbox).where(
                Outbox.contact_id == li.id, Outbox.kind == "ask", Outbox.state == "sent"
            )
        ).all()
        if not any(a.sent_at and a.sent_at.astimezone(TZ).date() == now.date() for a in asked):
            return
        reports.record_report(session, item=item, contact=li, now=now, percent=40, text="推进中")
        session.commit()


@pytest.mark.slow  # a whole year simulated, on both databases: over a minute (`-m slow`)
async def test_a_whole_plan_year(engine: Engine) -> None:
    _setup(engine)
    cal = work_calendar(Settings(_env_file=None))  # type: ignore[call-arg]
    messenger, kinds = await _play(engine, date(2023, 3, 15), date(2023, 12, 31))
    sent = [line for line in messenger.transcript if line.sender == messenger.bot_name]
    assert sent, "something was sent"
    days = {line.time.astimezone(TZ).date() for line in sent}
    # never on a day off; the make-up working day 2023-10-07 is not a day off
    assert date(2023, 10, 2) not in days
    assert all(cal.is_working_day(d) for d in days)
    assert date(2023, 10, 7) in days  # item 22's T-3 reminder falls on it
    assert any(d.weekday() >= 5 for d in days)  # make-up Saturdays/Sundays are used
    # only in working hours
    assert all(time(9) <= line.time.astimezone(TZ).time() < time(18) for line in sent)

    by_kind: dict[str, list[date]] = defaultdict(list)
    with Session(engine) as session:
        for row in session.exec(select(Outbox).where(Outbox.state == "sent")):
            assert row.sent_at is not None
            by_kind[f"{row.kind}:{row.contact_id}:{row.item_id}"].append(
                row.sent_at.astimezone(TZ).date()
            )
        zhang = session.exec(select(Contact).where(Contact.name == "张三")).one()
        li = session.exec(select(Contact).where(Contact.name == "李四")).one()
        wang = session.exec(select(Contact).where(Contact.name == "王局")).one()
        liu = session.exec(select(Contact).where(Contact.name == "刘局")).one()
        item = {
            n: session.exec(select(WorkItem).where(WorkItem.number == n)).one().id
            for n in DEADLINES
        }
        # every message the console shows is one outbox row sent once: nothing twice
        sent_rows = session.exec(select(Outbox).where(Outbox.state == "sent")).all()
        assert len(sent_rows) == len(sent)
        assert len({r.dedupe_key for r in sent_rows}) == len(sent_rows)
        assert session.exec(select(Assignment)).all()

    # deadline reminders 7, 3 and 1 working days before 2023-06-30 (Dragon Boat 22-23 June off,
    # Sunday 25 June a make-up day)
    assert sorted(by_kind[f"deadline:{zhang.id}:{item[9]}"]) == [
        date(2023, 6, 20),
        date(2023, 6, 27),
        date(2023, 6, 29),
    ]
    # 2023-10-10: T-7 falls before National Day, T-3 on the make-up Saturday, T-1 on 9 October
    assert sorted(by_kind[f"deadline:{li.id}:{item[22]}"]) == [
        date(2023, 9, 25),  # working days back: 9, 8 (Sun), 7 (Sat) October, 28 ... 25 September
        date(2023, 10, 7),
        date(2023, 10, 9),
    ]
    # overdue: the working day after, then every 3 working days, at most 5 times
    assert sorted(by_kind[f"overdue:{zhang.id}:{item[9]}"]) == [
        date(2023, 7, 3),
        date(2023, 7, 6),
        date(2023, 7, 11),
        date(2023, 7, 14),
        date(2023, 7, 19),
    ]
    # escalated from the second nag on, to the section's leader only
    assert sorted(by_kind[f"escalation:{wang.id}:{item[9]}"]) == [
        date(2023, 7, 6),
        date(2023, 7, 11),
        date(2023, 7, 14),
        date(2023, 7, 19),
    ]
    assert by_kind[f"escalation:{liu.id}:{item[9]}"] == []
    # item 22 is in a section with no leader set: all leaders get its escalations
    assert len(by_kind[f"escalation:{liu.id}:{item[22]}"]) == 4
    assert len(by_kind[f"escalation:{wang.id}:{item[22]}"]) == 4
    # the weekly ask: Fridays, else the last working day of the week
    asks = sorted(
        d for key, ds in by_kind.items() if key.startswith(f"ask:{zhang.id}:") for d in ds
    )
    assert date(2023, 9, 28) in asks  # Friday 29 September was Mid-Autumn
    assert date(2023, 10, 8) in asks  # the week of National Day: its make-up Sunday
    assert len(asks) == len(set(asks))  # one a week
    # follow-ups: 张三 never answers, 李四 always does
    followups = [key for key in by_kind if key.startswith("followup:")]
    assert any(key.startswith(f"followup:{zhang.id}:") for key in followups)
    assert not any(key.startswith(f"followup:{li.id}:") for key in followups)
    # digests on Mondays (first working day) to leaders; nothing failed
    assert kinds["digest:sent"] >= 2 * 40
    assert not [k for k in kinds if k.endswith(":failed")]


def test_a_skipped_tick_is_not_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    from scheduler.runner import quiet_skipped_ticks

    quiet_skipped_ticks()  # what Scheduler.start does
    quiet_skipped_ticks()  # once only
    aps = logging.getLogger("apscheduler.scheduler")
    assert sum(type(f).__name__ == "_LongTickNotice" for f in aps.filters) == 1
    with caplog.at_level(logging.INFO):
        aps.warning(
            'Execution of job "Scheduler.tick" skipped: maximum number of running instances '
            "reached (1)"
        )
        aps.warning("Run time of job was missed by 0:00:05")
    assert [r.getMessage()[:8] for r in caplog.records] == ["Run time"]
    with caplog.at_level(logging.DEBUG, logger="apscheduler.scheduler"):
        caplog.clear()
        aps.warning("Execution of job skipped: maximum number of running instances reached (1)")
    assert [r.levelname for r in caplog.records] == ["DEBUG"]


async def test_a_reassigned_item_is_reminded_even_when_sqlite_reuses_the_row_id(
    engine: Engine,
) -> None:
    """Deadline reminders are keyed by item and person: when 张三's item passes to 陈五 on the
    day of its T-7 reminder, and SQLite gives the new assignment the deleted row's id, 陈五
    still gets that day's reminder (a key built from the row id would match 张三's)."""
    from bot.services import assignments

    _setup(engine)
    with Session(engine, expire_on_commit=False) as session:  # 张三's row: the newest id
        item = plans.find_item(session, plans.current_plan(session), "9")
        zhang = session.exec(select(Contact).where(Contact.name == "张三")).one()
        assignments.unassign(session, item=item, contact=zhang, actor=audit.CLI_ACTOR)
        assignments.assign(session, item=item, contact=zhang, actor=audit.CLI_ACTOR)
        session.commit()

    def deadline_rows() -> list[Outbox]:
        with Session(engine) as session:
            return list(session.exec(select(Outbox).where(Outbox.kind == "deadline")))

    day = DEADLINES[9] - timedelta(days=14)
    while not any(r.item_id == _item9(engine) for r in deadline_rows()):
        await _play(engine, day, day)
        day += timedelta(days=1)
    t7 = day - timedelta(days=1)
    with Session(engine, expire_on_commit=False) as session:
        item = plans.find_item(session, plans.current_plan(session), "9")
        zhang = session.exec(select(Contact).where(Contact.name == "张三")).one()
        chen = session.exec(select(Contact).where(Contact.name == "陈五")).one()
        old_id = session.exec(select(Assignment.id).where(Assignment.item_id == item.id)).one()
        assignments.unassign(session, item=item, contact=zhang, actor=audit.CLI_ACTOR)
        session.commit()
        assignments.assign(session, item=item, contact=chen, actor=audit.CLI_ACTOR)
        session.commit()
        new_id = session.exec(select(Assignment.id).where(Assignment.item_id == item.id)).one()
    if engine.dialect.name == "sqlite":
        assert new_id == old_id, "SQLite gave the deleted row's id again"
    await _play(engine, t7, DEADLINES[9])
    mine = [r for r in deadline_rows() if r.item_id == item.id and r.contact_id == chen.id]
    assert len(mine) == 3, "T-7 (the day of the change), T-3 and T-1, each once"
    assert min(r.due_at for r in mine).astimezone(TZ).date() == t7


def _item9(engine: Engine) -> int:
    with Session(engine) as session:
        item = plans.find_item(session, plans.current_plan(session), "9")
        assert item.id is not None
        return item.id
