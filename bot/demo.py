"""`duban demo`: the whole product in half a minute, offline.

On a fresh temporary SQLite database it imports the bundled sample plan, registers contacts
across the bureau's units, assigns all 27 items from the bundled CSV, then plays a fortnight
on the injectable clock through the real router, planner, outbox and dispatcher on the
console channel: asks go out, officials answer in the different reply forms, one item falls
behind, one is overdue and escalates, the leaders get the weekly digest. It ends with the
digest and the paths of the ledger and the chart it wrote.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import count
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from sqlmodel import Session

from bot import db
from bot.channels.console import ConsoleMessenger
from bot.chat import ChatCore
from bot.clock import FakeClock
from bot.events import EventKind, IncomingMessage
from bot.i18n import Translator
from bot.importer.parse import parse_plan_file
from bot.models import Role
from bot.services import assignments, audit, contacts, plans
from bot.services.bulletin import bulletin_file_name, current_month, write_bulletin
from bot.services.digest import build_digest
from bot.services.ledger_export import export_ledger
from bot.services.progress import StatusRules
from bot.services.sending import write_digest_chart
from bot.settings import Settings
from bot.templating import render_digest
from handlers.registry import build_router
from scheduler.dispatcher import Dispatcher
from scheduler.runner import Planner, work_calendar

TZ = ZoneInfo("Asia/Shanghai")
START = date(2023, 6, 6)  # a Tuesday
END = date(2023, 6, 16)
TICKS = (time(9, 0), time(10, 0))

# Who is who (the officials come from samples/assignments.csv).
LEADERS = [("陈局长", "局领导"), ("刘副局长", "局领导")]
ADMIN = ("王芳", "办公室")

# (day, time, who, what they type) — what the people of the bureau say during the fortnight.
SCRIPT: list[tuple[date, time, str, str]] = [
    (date(2023, 6, 6), time(9, 30), "王芳", "/help"),
    (date(2023, 6, 6), time(9, 31), "王芳", "/contacts"),
    (
        date(2023, 6, 7),
        time(9, 0),
        "陈局长",
        "/task 做好暑期校园安全检查 @张敏 @李明 6月30日前 请形成书面报告",
    ),
    (date(2023, 6, 7), time(11, 0), "何军", "20 滞后 施工方资质复核未通过，已责令整改"),
    (date(2023, 6, 8), time(10, 30), "林芳", "#14 已完成 特殊教育资源中心已挂牌"),
    (date(2023, 6, 9), time(10, 20), "张敏", "9 60% 华侨实验小学主体完工，新增学位6500个"),
    (date(2023, 6, 9), time(10, 25), "吴刚", "第11项 进度40%"),
    (date(2023, 6, 9), time(10, 30), "张敏", "J1 50% 已部署各校开展自查"),
    (date(2023, 6, 9), time(10, 40), "陈晓", "本周召开思政课一体化指导委员会成立会，进度50%"),
    (date(2023, 6, 9), time(10, 41), "陈晓", "1"),
    (date(2023, 6, 9), time(11, 5), "郑华", "13号 滞后 产教融合数据平台招标延期"),
    (date(2023, 6, 9), time(11, 30), "李明", "#1 已完成"),
    (date(2023, 6, 9), time(14, 0), "马丽", "21 30% 考核办法征求意见中"),
    (date(2023, 6, 9), time(14, 5), "马丽", "/undo"),
    (date(2023, 6, 9), time(14, 6), "马丽", "21 35% 考核办法征求意见中"),
    (date(2023, 6, 12), time(11, 0), "黄伟", "8 50% 年度教育经费预算已下达"),
    (date(2023, 6, 13), time(9, 30), "陈局长", "/status 9"),
    (date(2023, 6, 13), time(9, 35), "王芳", "/overdue"),
    (date(2023, 6, 14), time(15, 0), "张敏", "/my"),
    (date(2023, 6, 15), time(16, 0), "张敏", "J1 已办结 已完成全市校园安全检查并形成书面报告"),
]


@dataclass
class DemoResult:
    """What the demo wrote."""

    database: Path
    ledger: Path
    chart: Path
    bulletin: Path


def _setup(settings: Settings, csv: Path, sample: Path, now: datetime) -> None:
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    with Session(engine, expire_on_commit=False) as session:
        plan = plans.import_plan(
            session, parse_plan_file(sample), source_file=sample.name, actor=audit.CLI_ACTOR
        ).plan
        for name, unit in LEADERS:
            contacts.add_contact(
                session, name=name, unit=unit, role=Role.leader, actor=audit.CLI_ACTOR
            )
        contacts.add_contact(
            session, name=ADMIN[0], unit=ADMIN[1], role=Role.admin, actor=audit.CLI_ACTOR
        )
        rows = assignments.read_assignment_csv(session, plan, csv.read_text(encoding="utf-8"))
        assignments.apply_assignment_csv(session, rows, actor=audit.CLI_ACTOR)
        # the leader in charge of section 三 gets its escalations; the others go to all leaders
        from scheduler.reminders import find_section, set_section_leader

        leader = contacts.find_contact(session, "刘副局长")
        set_section_leader(
            session, find_section(session, plan, "三"), leader, actor=audit.CLI_ACTOR
        )
        # assignment notices were queued for delivery: the demo starts after they went out
        from sqlmodel import select

        from bot.models import Outbox

        for row in session.exec(select(Outbox)):
            row.state, row.sent_at = "sent", now
        session.commit()
    engine.dispose()


def _header(out: TextIO, day: date, locale: str) -> None:
    names = "一二三四五六日"
    label = (
        f"{day.isoformat()} 星期{names[day.weekday()]}"
        if locale != "en"
        else (day.strftime("%Y-%m-%d %A"))
    )
    out.write(f"\n── {label} " + "─" * 40 + "\n")


async def play(
    settings: Settings,
    *,
    out: TextIO,
    colors: bool,
    csv: Path,
    sample: Path,
) -> DemoResult:
    """Play the fortnight and write the ledger and the chart into settings.data_dir."""
    clock = FakeClock(datetime.combine(START, time(8, 30), tzinfo=TZ))
    _setup(settings, csv, sample, clock())
    engine = db.make_engine(settings.database_url)
    core = ChatCore(engine, settings, build_router(), clock=clock)
    with Session(engine) as session:
        roles = {c.name: c.role.value for c, _ in contacts.list_contacts(session)}
    console = ConsoleMessenger(out, clock=clock, tz=TZ, colors=colors, roles=roles)
    core.add_messenger(console)
    dispatcher = Dispatcher(
        engine, core.messengers, t=core.t, clock=clock, calendar=work_calendar(settings)
    )
    core.after_commit.append(dispatcher.deliver_due)
    planner = Planner(engine, settings, clock=clock, charts=False)
    ids = count(1)
    day = START
    while day <= END:
        if work_calendar(settings).is_working_day(day):
            _header(out, day, settings.locale)
        moments = sorted(
            [(at, None, None) for at in TICKS]
            + [(at, who, text) for d, at, who, text in SCRIPT if d == day],
            key=lambda m: m[0],
        )
        for at, who, text in moments:
            clock.set(datetime.combine(day, at, tzinfo=TZ))
            if who is None:
                await asyncio.to_thread(planner.plan_due)
                await dispatcher.deliver_due()
                continue
            assert text is not None
            button = console.choice(who, text.strip())
            console.user_says(who, text)
            await core.handle(
                IncomingMessage(
                    platform="console",
                    chat_id=who,
                    sender_id=who,
                    update_id=f"demo-{next(ids)}",
                    text="" if button else text,
                    kind=EventKind.button if button else EventKind.text,
                    button_data=button.data if button else None,
                )
            )
        day += timedelta(days=1)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with Session(engine, expire_on_commit=False) as session:
        plan = plans.current_plan(session)
        now = clock()
        digest = build_digest(
            session, plan, now=now, tz=TZ, rules=StatusRules.from_settings(settings)
        )
        ledger = export_ledger(
            session, plan, settings.data_dir / "台账.xlsx", settings=settings, now=now
        )
        period = current_month(now, TZ)
        bulletin = write_bulletin(
            session,
            plans.active_plans(session),
            period,
            settings.data_dir / bulletin_file_name(period, Translator(settings.locale)),
            settings=settings,
            now=now,
        )
        task_digest = None
        tasks = plans.tasks_plan(session)
        if tasks is not None:
            task_digest = build_digest(
                session, tasks, now=now, tz=TZ, rules=StatusRules.from_settings(settings)
            )
    chart = write_digest_chart(digest, settings.data_dir / "进度图.png", settings.locale)
    out.write("\n" + "═" * 60 + "\n")
    out.write(render_digest(digest, "text", settings.locale) + "\n")
    if task_digest is not None:
        out.write("─" * 60 + "\n")
        out.write(render_digest(task_digest, "text", settings.locale) + "\n")
    out.write("═" * 60 + "\n")
    core.close()  # its last deferred writes first, then the connections go
    engine.dispose()
    database = Path(settings.database_url.removeprefix("sqlite:///"))
    return DemoResult(database=database, ledger=ledger, chart=chart, bulletin=bulletin)


def demo_settings(base: Settings, out_dir: Path | None) -> Settings:
    """The user's settings with a fresh temporary database and an output folder."""
    folder = out_dir or Path(tempfile.mkdtemp(prefix="duban-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    return base.model_copy(
        update={"database_url": f"sqlite:///{folder / 'demo.db'}", "data_dir": folder}
    )
