"""The outbox: several dispatchers, expiry after downtime, working hours, retries."""

from __future__ import annotations

import asyncio
import io
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot import db
from bot.channels.console import ConsoleMessenger
from bot.clock import FakeClock
from bot.events import Button, SentMessage
from bot.i18n import Translator
from bot.importer.parse import parse_plan_file
from bot.models import Contact, Outbox, Plan, Role
from bot.services import assignments, contacts, plans
from bot.settings import Settings
from scheduler.calendar import WorkCalendar
from scheduler.dispatcher import MAX_ATTEMPTS, Dispatcher
from scheduler.reminders import ask_now

TZ = ZoneInfo("Asia/Shanghai")
MONDAY_10 = datetime(2023, 6, 5, 10, 0, tzinfo=TZ)


class Recorder:
    """A channel that records what it was asked to send (and can be made to fail)."""

    platform = "console"

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.sent: list[tuple[str, str]] = []
        self.delay = delay
        self.fail = fail

    async def send_text(
        self,
        chat_id: str,
        text: str,
        *,
        buttons: tuple[tuple[Button, ...], ...] = (),
        reply_to: str | None = None,
        markup: str = "text",
    ) -> SentMessage:
        if self.fail:
            raise ConnectionError("the platform is down")
        await asyncio.sleep(self.delay)
        self.sent.append((chat_id, text))
        return SentMessage("console", chat_id, str(len(self.sent)))

    async def send_file(
        self, chat_id: str, path: Path, *, caption: str | None = None
    ) -> SentMessage:
        return await self.send_text(chat_id, str(path))

    async def send_photo(
        self, chat_id: str, path: Path, *, caption: str | None = None
    ) -> SentMessage:
        return await self.send_text(chat_id, str(path))


def _contacts(engine: Engine, count: int) -> list[int]:
    with Session(engine) as session:
        people = [
            Contact(name=f"联络员{i:04d}", unit="科", role=Role.official) for i in range(count)
        ]
        session.add_all(people)
        session.commit()
        return [p.id for p in people if p.id is not None]


def _rows(
    engine: Engine,
    contact_ids: list[int],
    *,
    kind: str = "notice",
    due: datetime = MONDAY_10,
    expires: datetime | None = None,
) -> None:
    with Session(engine) as session:
        for n, contact_id in enumerate(contact_ids):
            session.add(
                Outbox(
                    dedupe_key=f"{kind}:{contact_id}:{n}",
                    kind=kind,
                    contact_id=contact_id,
                    payload={"text": f"消息 {n}"},
                    due_at=due,
                    expires_at=expires,
                )
            )
        session.commit()


def _dispatcher(engine: Engine, messenger: Recorder, clock: FakeClock, **kw: object) -> Dispatcher:
    return Dispatcher(
        engine,
        {"console": messenger},
        t=Translator("zh-CN"),
        clock=clock,  # type: ignore[dict-item]
        calendar=WorkCalendar(TZ),
        **kw,
    )  # type: ignore[arg-type]


async def test_two_dispatchers_on_postgresql_deliver_each_row_once(
    pg_database_factory: object,
) -> None:
    url = pg_database_factory()  # type: ignore[operator]
    engine = db.make_engine(url)
    db.upgrade(engine)
    ids = _contacts(engine, 1000)
    _rows(engine, ids)
    clock = FakeClock(MONDAY_10)
    first, second = Recorder(delay=0.001), Recorder(delay=0.001)
    a = _dispatcher(db.make_engine(url), first, clock, batch=50)
    b = _dispatcher(db.make_engine(url), second, clock, batch=50)
    sent = await asyncio.gather(a.deliver_due(), b.deliver_due())
    delivered = Counter(chat for chat, _ in first.sent + second.sent)
    assert sum(sent) == 1000
    assert len(delivered) == 1000, "none lost"
    assert max(delivered.values()) == 1, "none twice"
    assert first.sent and second.sent, "both dispatchers did part of the work"
    with Session(engine) as session:
        states = Counter(o.state for o in session.exec(select(Outbox)))
    assert states == {"sent": 1000}
    for e in (engine, a.engine, b.engine):
        e.dispose()


async def test_expired_rows_are_dropped_not_sent(engine: Engine) -> None:
    ids = _contacts(engine, 3)
    _rows(
        engine,
        ids[:2],
        kind="deadline",
        due=MONDAY_10 - timedelta(days=3),
        expires=MONDAY_10 - timedelta(hours=1),
    )
    _rows(
        engine,
        ids[2:],
        kind="deadline",
        due=MONDAY_10 - timedelta(days=1),
        expires=MONDAY_10 + timedelta(days=1),
    )
    recorder = Recorder()
    await _dispatcher(engine, recorder, FakeClock(MONDAY_10)).deliver_due()
    assert len(recorder.sent) == 1  # only the one that still means something
    with Session(engine) as session:
        assert Counter(o.state for o in session.exec(select(Outbox))) == {"dropped": 2, "sent": 1}


async def test_scheduled_messages_wait_for_working_hours(engine: Engine) -> None:
    ids = _contacts(engine, 2)
    saturday_night = datetime(2023, 6, 10, 21, 0, tzinfo=TZ)
    _rows(engine, ids[:1], kind="ask", due=saturday_night)
    _rows(engine, ids[1:], kind="notice", due=saturday_night)
    clock = FakeClock(saturday_night)
    recorder = Recorder()
    dispatcher = _dispatcher(engine, recorder, clock)
    await dispatcher.deliver_due()
    assert [text for _, text in recorder.sent] == ["消息 0"]  # the notice; the ask waits
    clock.set(datetime(2023, 6, 12, 9, 0, tzinfo=TZ))  # Monday morning
    await dispatcher.deliver_due()
    assert len(recorder.sent) == 2


async def test_failures_back_off_then_fail(engine: Engine) -> None:
    ids = _contacts(engine, 1)
    with Session(engine) as session:
        boss = Contact(name="管理员", unit="办公室", role=Role.admin)
        session.add(boss)
        session.commit()
        admin = boss.id
    _rows(engine, ids)
    clock = FakeClock(MONDAY_10)
    dispatcher = _dispatcher(engine, Recorder(fail=True), clock)
    for attempt in range(MAX_ATTEMPTS):
        await dispatcher.deliver_due()
        await dispatcher.deliver_due()  # within the backoff: not tried again
        clock.advance(timedelta(hours=6))
        with Session(engine) as session:
            row = session.exec(select(Outbox).where(Outbox.kind == "notice")).one()
        assert row.attempts == attempt + 1
    assert row.state == "failed" and "platform is down" in (row.last_error or "")
    # the admins are told once
    with Session(engine) as session:
        notices = session.exec(select(Outbox).where(Outbox.kind == "failure")).all()
    assert len(notices) == 1 and notices[0].contact_id == admin
    assert notices[0].payload["message"] == "outbox.failed"


async def test_console_channel_reaches_unbound_contacts(engine: Engine) -> None:
    ids = _contacts(engine, 1)
    _rows(engine, ids)
    stream = io.StringIO()
    messenger = ConsoleMessenger(stream, clock=FakeClock(MONDAY_10), tz=TZ, colors=False)
    dispatcher = Dispatcher(
        engine, {"console": messenger}, t=Translator("zh-CN"), clock=FakeClock(MONDAY_10)
    )
    assert await dispatcher.deliver_due() == 1
    assert "联络员0000: 消息 0" in stream.getvalue()


def _plan_with_people(session: Session, sample_plan: Path) -> tuple[Plan, Contact, Contact]:
    plan = plans.import_plan(session, parse_plan_file(sample_plan), source_file=None, actor="t")
    zhang = contacts.add_contact(
        session, name="张敏", unit="基础教育科", role=Role.official, actor="t"
    )
    li = contacts.add_contact(session, name="李四", unit="人事科", role=Role.official, actor="t")
    return plan.plan, zhang, li


def test_assign_after_unassign_queues_a_fresh_notice(session: Session, sample_plan: Path) -> None:
    """SQLite reuses the largest row id after a delete: no notice key may be built from one."""
    plan, zhang, li = _plan_with_people(session, sample_plan)
    item13 = plans.find_item(session, plan, "13")
    assignments.assign(session, item=item13, contact=zhang, actor="t")
    session.commit()
    assignments.unassign(session, item=item13, contact=zhang, actor="t")
    session.commit()
    assignments.assign(session, item=plans.find_item(session, plan, "9"), contact=li, actor="t")
    session.commit()
    assignments.assign(session, item=item13, contact=zhang, actor="t")  # re-assign after unassign
    session.commit()
    notices = session.exec(select(Outbox).where(Outbox.kind == "notice")).all()
    assert len(notices) == 3  # each new assignment is told, once
    assert len({n.dedupe_key for n in notices}) == 3


def test_asking_now_twice_in_one_second_asks_twice(session: Session, sample_plan: Path) -> None:
    plan, zhang, _ = _plan_with_people(session, sample_plan)
    assignments.assign(session, item=plans.find_item(session, plan, "9"), contact=zhang, actor="t")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    now = MONDAY_10.astimezone(ZoneInfo("UTC"))
    for _ in range(2):
        ask_now(session, plan, now=now, settings=settings, item=None, actor="t")
        session.commit()
    asks = session.exec(select(Outbox).where(Outbox.kind == "ask")).all()
    assert len(asks) == 2 and len({a.dedupe_key for a in asks}) == 2
