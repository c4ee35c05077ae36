"""The scheduler: an APScheduler tick that plans what is due and has the dispatcher send it.

The schedule itself lives in the database (the outbox) and in settings, not in APScheduler's
job store: a restart loses nothing, and the first tick after it catches up on what is still
worth sending.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.clock import Clock, system_clock
from bot.db_errors import describe
from bot.i18n import UserError
from bot.models import Outbox, Plan
from bot.services.digest import build_digest
from bot.services.plans import active_plans, current_plan
from bot.services.progress import StatusRules
from bot.services.sending import queue_digest
from bot.settings import Settings
from scheduler.calendar import WorkCalendar
from scheduler.dispatcher import Dispatcher
from scheduler.planner import Schedule, load_state, plan_day, store

log = logging.getLogger(__name__)


def work_calendar(settings: Settings) -> WorkCalendar:
    """The working days and hours of the plan's time zone."""
    return WorkCalendar(settings.tz, start=settings.work_start, end=settings.work_end)


class Planner:
    """Plans the messages due by now into the outbox (idempotent: dedupe keys)."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        clock: Clock = system_clock,
        charts: bool = True,
    ) -> None:
        self.engine = engine
        self.charts = charts  # draw the digest's chart (off where no one will look at it)
        self.settings = settings
        self.clock = clock
        self.calendar = work_calendar(settings)
        self.schedule = Schedule.from_settings(settings)

    def plan_due(self, now: datetime | None = None) -> int:
        """Store every message due by now today; returns how many new rows were planned."""
        now = now or self.clock()
        tz = self.settings.tz
        rules = StatusRules.from_settings(self.settings)
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                default = current_plan(session)
            except UserError:
                default = None
            added = 0
            for plan in active_plans(session):  # closed plans get no reminders
                added += self._plan_one(session, plan, default, now=now, tz=tz, rules=rules)
            session.commit()
        if added:
            log.info("planned %d message(s)", added)
        return added

    def _plan_one(
        self,
        session: Session,
        plan: Plan,
        default: Plan | None,
        *,
        now: datetime,
        tz: ZoneInfo,
        rules: StatusRules,
    ) -> int:
        """Plan one open plan's messages due by now (asks, reminders, nags, its digest)."""
        state = load_state(session, plan, now=now, tz=tz, rules=rules)
        if default is None or plan.id != default.id:
            state.key_suffix = f":p{plan.id}"
        today = now.astimezone(tz).date()
        due = [p for p in plan_day(state, today, self.calendar, self.schedule) if p.due_at <= now]
        added = store(session, due, now=now)
        for digest in (p for p in due if p.kind == "digest"):
            if session.exec(select(Outbox.id).where(Outbox.dedupe_key == digest.key)).first():
                continue
            year, week = (int(x) for x in digest.params["week"].split("-W"))
            built = build_digest(session, plan, now=now, tz=tz, rules=rules, week=(year, week))
            added += queue_digest(
                session,
                built,
                locale=self.settings.locale,
                now=now,
                chart_dir=self.settings.data_dir / "charts" if self.charts else None,
            )
        return added


class _LongTickNotice(logging.Filter):
    """A tick still delivering a large fan-out when the next falls due is normal: APScheduler's
    warning about the skipped tick becomes a DEBUG line (the running tick covers its work)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "maximum number of running instances reached" in record.getMessage():
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def quiet_skipped_ticks() -> None:
    """Turn APScheduler's "skipped: maximum number of running instances" into DEBUG (the
    running tick is doing that work); installed once, when a scheduler starts."""
    apscheduler_log = logging.getLogger("apscheduler.scheduler")
    if not any(isinstance(f, _LongTickNotice) for f in apscheduler_log.filters):
        apscheduler_log.addFilter(_LongTickNotice())


class Scheduler:
    """Ticks every SCHEDULER_TICK_SECONDS: plan what is due, then deliver the outbox."""

    def __init__(self, planner: Planner, dispatcher: Dispatcher, *, tick_seconds: int) -> None:
        self.planner = planner
        self.dispatcher = dispatcher
        self.tick_seconds = tick_seconds
        self._scheduler: AsyncIOScheduler | None = None
        self._ticking = asyncio.Lock()

    async def tick(self) -> None:
        """Plan and deliver once."""
        async with self._ticking:
            try:
                await asyncio.to_thread(self.planner.plan_due)
            except Exception as exc:
                self._failed("planning", exc)
            try:
                await self.dispatcher.deliver_due()
            except Exception as exc:
                self._failed("delivering the outbox", exc)

    def _failed(self, what: str, exc: Exception) -> None:
        """Log a failed tick: one line when the database is away (it is retried next tick),
        the traceback for anything else."""
        problem = describe(exc, self.planner.engine.url)
        if problem is not None:
            log.warning("%s skipped: database unavailable (%s)", what, problem.reason)
        else:
            log.exception("%s failed", what)

    def start(self) -> None:
        """Start ticking (the first tick at once)."""
        quiet_skipped_ticks()
        scheduler = AsyncIOScheduler(timezone=self.planner.settings.tz)
        scheduler.add_job(
            self.tick,
            IntervalTrigger(seconds=self.tick_seconds),
            next_run_time=datetime.now(self.planner.settings.tz),
            max_instances=1,
            coalesce=True,
            id="tick",
        )
        scheduler.start()
        self._scheduler = scheduler

    async def stop(self) -> None:
        """Stop ticking: no new tick starts, the one in flight ends after its current batch."""
        if self._scheduler is None:
            return
        self._scheduler.pause()
        self.dispatcher.stopping = True
        async with self._ticking:  # the tick in flight finishes (shutdown would cancel it)
            pass
        self._scheduler.shutdown(wait=False)
        self._scheduler = None
