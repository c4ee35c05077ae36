"""The weekly fan-out: 10,000 asks planned into the outbox and sent to the fake Telegram API.

The planner part times `load_state` + `plan_day` + `store` for the Friday ask of 10,000
assignments (target < 2 s). The fan-out part runs `duban run` (its own process, SQLite file)
against the fake Bot API limited to `--limit` msg/s (429 beyond it), with PTB's
AIORateLimiter at `--ptb-rate` (TELEGRAM_MAX_RATE, by default the same), and measures from
the first sendMessage to the last: the achieved rate as a share of the limit (target >= 0.95),
429s received (target 0), contacts that got no message and chats that got more than one (both
target 0), and Duban's CPU use and peak RSS.

Both buckets start full, so the first `--limit` messages may go out in a burst and the rate
from first to last can exceed the limit; the second-half rate shows the sustained rate.

    uv run python bench/fanout.py [--contacts 10000] [--limit 1000]
        [--ptb-rate 1000] [--concurrency 4] [--batch 10000]   # comma lists: each pair runs
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, col

from bench.common import (
    FIRST_TELEGRAM_ID,
    SAMPLE,
    cpu_seconds,
    free_port,
    proc_status_mb,
    start_duban,
)
from bot import db
from bot.importer.parse import parse_plan_file
from bot.models import Account, Assignment, AssignmentRole, Contact, Outbox, Role, utcnow
from bot.services import plans
from bot.services.progress import StatusRules
from bot.settings import Settings
from scheduler.planner import Schedule, load_state, plan_day, store
from scheduler.runner import work_calendar
from tests.fakes import FakeTelegram

ASK_NOW = datetime(2023, 6, 9, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))  # a Friday: ask day
PARKED = datetime(2100, 1, 1, tzinfo=UTC)  # rows wait here until the bot is up
NEVER = "23:59:59"  # ask/follow-up time of the live bot, so its own ticks plan nothing new
SKIPPED_TICK = "skipped: maximum number of running instances reached"


def seed(url: str, contacts: int) -> None:
    """The sample plan and `contacts` officials reached on Telegram only, one item each."""
    engine = db.make_engine(url)
    db.upgrade(engine)
    with Session(engine) as session:
        parsed = parse_plan_file(SAMPLE)
        plan = plans.import_plan(session, parsed, source_file="s", actor="cli").plan
        items = [item.id for item in plans.live_items(session, plan)]
        session.commit()
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            sa.insert(Contact),
            [
                {
                    "name": f"联络员{i:05d}",
                    "unit": "基础教育科",
                    "role": Role.official,
                    "active": True,
                    "created_at": now,
                }
                for i in range(contacts)
            ],
        )
        ids = dict(
            conn.execute(
                sa.select(col(Contact.name), col(Contact.id)).where(
                    col(Contact.name).like("联络员%")
                )
            ).all()
        )
        conn.execute(
            sa.insert(Account),
            [
                {
                    "contact_id": ids[f"联络员{i:05d}"],
                    "platform": "telegram",
                    "account_id": str(FIRST_TELEGRAM_ID + i),
                    "created_at": now,
                }
                for i in range(contacts)
            ],
        )
        contact_of = {FIRST_TELEGRAM_ID + i: ids[f"联络员{i:05d}"] for i in range(contacts)}
        conn.execute(
            sa.insert(Assignment),
            [
                {
                    "item_id": items[i % len(items)],
                    "contact_id": contact_of[FIRST_TELEGRAM_ID + i],
                    "role": AssignmentRole.lead,
                    "created_at": now,
                }
                for i in range(contacts)
            ],
        )
    engine.dispose()


@dataclass
class PlannerTime:
    """The planner's seconds per step, and what it planned."""

    load: float
    plan: float
    store: float
    kinds: Counter[str]
    added: int

    @property
    def total(self) -> float:
        """load_state + plan_day + store (with its commit)."""
        return self.load + self.plan + self.store


def plan_asks(url: str) -> PlannerTime:
    """Plan the Friday of ASK_NOW into the outbox, timing each step."""
    settings = Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]
    calendar = work_calendar(settings)
    schedule = Schedule.from_settings(settings)
    rules = StatusRules.from_settings(settings)
    engine = db.make_engine(url)
    with Session(engine, expire_on_commit=False) as session:
        plan = plans.current_plan(session)
        t0 = time.perf_counter()
        state = load_state(session, plan, now=ASK_NOW, tz=settings.tz, rules=rules)
        t1 = time.perf_counter()
        planned = plan_day(state, ASK_NOW.date(), calendar, schedule)
        t2 = time.perf_counter()
        added = store(session, planned, now=ASK_NOW)
        session.commit()
        t3 = time.perf_counter()
    engine.dispose()
    return PlannerTime(t1 - t0, t2 - t1, t3 - t2, Counter(p.kind for p in planned), added)


def park_asks(url: str, kind: str) -> int:
    """Keep only the asks, parked far ahead (as `kind`); returns the other rows removed."""
    engine = db.make_engine(url)
    with engine.begin() as conn:
        others = conn.execute(sa.delete(Outbox).where(col(Outbox.kind) != "ask"))
        conn.execute(sa.update(Outbox).values(kind=kind, due_at=PARKED, expires_at=None))
    engine.dispose()
    return int(others.rowcount)


def release_asks(url: str) -> None:
    """Make every parked row due now (the bot's next tick picks them up)."""
    engine = db.make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.update(Outbox).values(due_at=datetime.now(UTC) - timedelta(seconds=1)))
    engine.dispose()


def outbox_states(url: str) -> Counter[str]:
    """Outbox rows by state."""
    engine = db.make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(col(Outbox.state), sa.func.count()).group_by(col(Outbox.state))
        )
        states = Counter({str(state): int(n) for state, n in rows})
    engine.dispose()
    return states


@contextlib.contextmanager
def stderr_to(path: Path) -> Iterator[None]:
    """Point fd 2 at a file for a while (a child started meanwhile keeps writing there)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with path.open("ab") as log:
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@dataclass
class FanOut:
    """What one fan-out run measured."""

    concurrency: int
    batch: int
    sent: int = 0
    span: float = float("nan")
    rate: float = float("nan")
    steady: float = float("nan")
    e429: int = 0
    lost: int = 0
    duplicates: int = 0
    cpu_share: float = float("nan")
    cpu_ms: float = float("nan")
    fake_share: float = float("nan")
    rss: float = float("nan")
    states: Counter[str] = field(default_factory=Counter)
    log: list[str] = field(default_factory=list)

    def line(self, limit: float) -> str:
        """One row of the tuning table."""
        return (
            f"  concurrency {self.concurrency:3d} batch {self.batch:5d}: {self.rate:7.1f} msg/s "
            f"({self.rate / limit:.3f} of limit, 2nd half {self.steady / limit:.3f}), "
            f"429s {self.e429}, lost {self.lost}, dup {self.duplicates}, "
            f"duban cpu {self.cpu_ms:.2f} ms/msg ({self.cpu_share:.0%} of a core)"
        )


def fan_out(
    server: FakeTelegram,
    template: Path,
    workdir: Path,
    *,
    contacts: int,
    limit: float,
    ptb_rate: float,
    concurrency: int,
    batch: int,
    work_env: dict[str, str],
) -> FanOut:
    """One `duban run` sending every parked ask; the sends timed on the fake server."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"run-c{concurrency}-b{batch}-", dir=workdir))
    shutil.copy(template, run_dir / "bench.db")
    url = f"sqlite:///{run_dir / 'bench.db'}"
    server.reset()
    server.rate_limit(limit)
    env = {
        "DATABASE_URL": url,
        "TELEGRAM_BOT_TOKEN": server.token,
        "TELEGRAM_API_BASE_URL": f"{server.url}/bot",
        "TELEGRAM_MAX_RATE": str(ptb_rate),
        "TELEGRAM_POLL_TIMEOUT": "1",
        "OUTBOX_CONCURRENCY": str(concurrency),
        "OUTBOX_BATCH": str(batch),
        "SCHEDULER_TICK_SECONDS": "1",
        "LOG_LEVEL": "WARNING",
        "ASK_TIME": NEVER,
        "FOLLOWUP_TIME": NEVER,
        **work_env,
    }
    result = FanOut(concurrency, batch)
    log_path = run_dir / "duban.log"
    with stderr_to(log_path):
        proc = start_duban(env, run_dir, free_port())
    try:
        server.wait_until(lambda s: s.stats["getUpdates"] > 0, timeout=30)
        time.sleep(2.0)  # the first tick (planning over every contact) is behind us
        cpu, fake_cpu = cpu_seconds(proc.pid), time.process_time()
        started = time.perf_counter()
        release_asks(url)
        server.wait_until(
            lambda s: s.stats["sendMessage"] - s.stats["429"] >= contacts,
            timeout=60 + 10 * contacts / limit,
        )
        wall = time.perf_counter() - started
        used, fake_used = cpu_seconds(proc.pid) - cpu, time.process_time() - fake_cpu
        deadline = time.monotonic() + 30
        while outbox_states(url)["pending"] and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # a late duplicate would show up here
        result.rss = proc_status_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    calls = server.calls("sendMessage")
    times = sorted(c.at for c in calls)
    result.sent = len(calls)
    result.span = times[-1] - times[0]
    result.rate = (len(times) - 1) / result.span
    half = len(times) // 2
    result.steady = (len(times) - 1 - half) / (times[-1] - times[half])
    result.e429 = server.stats["429"]
    per_chat = Counter(c.chat_id for c in calls)
    result.lost = sum(1 for i in range(contacts) if per_chat[FIRST_TELEGRAM_ID + i] == 0)
    result.duplicates = sum(1 for n in per_chat.values() if n > 1)
    result.cpu_share = used / wall
    result.cpu_ms = used / contacts * 1000
    result.fake_share = fake_used / wall
    result.states = outbox_states(url)
    result.log = log_path.read_text(errors="replace").splitlines()
    return result


def working_env(notes: list[str]) -> tuple[dict[str, str], str]:
    """Work-hour settings that put the run in working time, and the kind the rows carry."""
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    calendar = work_calendar(settings)
    now = datetime.now(UTC)
    local = now.astimezone(settings.tz)
    if calendar.is_working_time(now) and calendar.is_working_time(now + timedelta(minutes=15)):
        notes.append(f"real clock {local:%a %H:%M} is working time: asks, default work hours")
        return {}, "ask"
    env = {"WORK_START": "00:00", "WORK_END": "23:59"}
    if calendar.is_working_day(local.date()):
        notes.append(
            f"real clock {local:%a %H:%M} is outside working hours: "
            "WORK_START=00:00, WORK_END=23:59; the rows stay asks"
        )
        return env, "ask"
    notes.append(
        f"real clock {local:%a %Y-%m-%d %H:%M} is not a working day: WORK_START=00:00, "
        "WORK_END=23:59, and the asks are enqueued as kind 'notice' (sent at any time)"
    )
    return env, "notice"


def log_summary(lines: list[str]) -> str:
    """Duban's stderr in a few words."""
    skipped = sum(SKIPPED_TICK in line for line in lines)
    other = [line for line in lines if SKIPPED_TICK not in line and line.strip()]
    first = next((line for line in other if " ERROR " in line or " WARNING " in line), "")
    text = f"{skipped} 'tick skipped' warnings, {len(other)} other lines"
    return f"{text} (first: {first[:90]})" if first else text


def ints(text: str) -> list[int]:
    """A comma-separated list of integers."""
    return [int(part) for part in text.split(",") if part.strip()]


def main() -> None:
    """Seed, time the planner, fan out (for each tuning pair), print the summary."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--limit", type=float, default=1000.0, help="msg/s, fake and PTB")
    parser.add_argument(
        "--ptb-rate", type=float, default=None, help="TELEGRAM_MAX_RATE (default: --limit)"
    )
    parser.add_argument("--concurrency", type=ints, default=[4], help="OUTBOX_CONCURRENCY")
    parser.add_argument("--batch", type=ints, default=[10000], help="OUTBOX_BATCH")
    args = parser.parse_args()
    os.environ.setdefault("PTB_TIMEDELTA", "1")
    notes = [
        f"the live bot runs with ASK_TIME=FOLLOWUP_TIME={NEVER}, so its own ticks plan nothing "
        "new; the planned rows are parked and made due once it is up"
    ]
    runs: list[FanOut] = []
    with FakeTelegram() as server, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        template = workdir / "template.db"
        url = f"sqlite:///{template}"
        started = time.perf_counter()
        seed(url, args.contacts)
        print(f"seeded {args.contacts} contacts in {time.perf_counter() - started:.1f} s")
        planner = plan_asks(url)
        work_env, kind = working_env(notes)
        removed = park_asks(url, kind)
        if removed:
            notes.append(f"{removed} planned row(s) other than asks removed before the fan-out")
        for concurrency in args.concurrency:
            for batch in args.batch:
                run = fan_out(
                    server,
                    template,
                    workdir,
                    contacts=args.contacts,
                    limit=args.limit,
                    ptb_rate=args.ptb_rate or args.limit,
                    concurrency=concurrency,
                    batch=batch,
                    work_env=work_env,
                )
                print(run.line(args.limit), flush=True)
                runs.append(run)
    best = max(runs, key=lambda r: (r.lost == 0 and r.duplicates == 0, r.rate))
    limit = args.limit
    for note in notes:
        print(f"note: {note}")
    steps = f"load {planner.load:.2f} + plan {planner.plan:.2f} + store {planner.store:.2f}"
    states = ", ".join(f"{k} {v}" for k, v in sorted(best.states.items()))
    tried = "best of those tried" if len(runs) > 1 else ""
    rows = [
        ("contacts, asks planned", f"{args.contacts}, {planner.kinds['ask']}", ""),
        ("planner (2023-06-09 ask)", f"{planner.total:.2f} s", "target < 2 s"),
        ("  steps", steps, ""),
        ("OUTBOX_CONCURRENCY / BATCH", f"{best.concurrency} / {best.batch}", tried),
        ("limit (fake server)", f"{limit:.0f} msg/s", ""),
        ("TELEGRAM_MAX_RATE (PTB)", f"{args.ptb_rate or limit:.0f} msg/s", ""),
        ("sendMessage calls", f"{best.sent} in {best.span:.2f} s", ""),
        ("achieved rate", f"{best.rate:.1f} msg/s", ""),
        ("  share of the limit", f"{best.rate / limit:.3f}", "target >= 0.95"),
        ("  second half only", f"{best.steady:.1f} msg/s ({best.steady / limit:.3f})", ""),
        ("429s received", f"{best.e429}", "target 0"),
        ("lost (contacts, no message)", f"{best.lost}", "target 0"),
        ("duplicates (chats, >1)", f"{best.duplicates}", "target 0"),
        ("outbox after the run", states, ""),
        ("duban CPU", f"{best.cpu_share:.0%} of one core, {best.cpu_ms:.2f} ms/msg", ""),
        ("fake server CPU", f"{best.fake_share:.0%} of one core", ""),
        ("duban peak RSS", f"{best.rss:.1f} MB", ""),
        ("duban stderr", log_summary(best.log), ""),
    ]
    width = max(len(name) for name, _, _ in rows)
    value_width = max(len(value) for _, value, target in rows if target)
    for name, value, target in rows:
        print(f"{name:<{width}} : {value:<{value_width}}  {target}".rstrip())


if __name__ == "__main__":
    main()
