"""What the benchmarks share: seeding a database, starting `duban run`, pushing a load of
progress replies through a fake platform and measuring it, reading /proc."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import Session

from bot import db
from bot.importer.parse import parse_plan_file
from bot.models import Account, Assignment, Contact, Role
from bot.services import audit, contacts, plans

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "jiangmen-edu-2023-workpoints.txt"
FIRST_TELEGRAM_ID = 100_000


def wecom_userid(n: int) -> str:
    """The WeCom userid of the n-th seeded official."""
    return f"u{n:05d}"


def seed(url: str, officials: int) -> None:
    """The sample plan and `officials` bound officials (Telegram and WeCom), one item each."""
    engine = db.make_engine(url)
    db.upgrade(engine)
    with Session(engine) as session:
        parsed = parse_plan_file(SAMPLE)
        plan = plans.import_plan(session, parsed, source_file="s", actor="cli").plan
        items = plans.live_items(session, plan)
        for i in range(officials):
            contact = Contact(
                name=f"联络员{i:05d}",
                unit="基础教育科",
                role=Role.official,
            )
            session.add(contact)
            session.flush()
            for platform, account_id in (
                ("telegram", str(FIRST_TELEGRAM_ID + i)),
                ("wecom", wecom_userid(i)),
            ):
                session.add(
                    Account(contact_id=contact.id or 0, platform=platform, account_id=account_id)
                )
            item = items[i % len(items)]
            session.add(Assignment(item_id=item.id or 0, contact_id=contact.id or 0))
        session.commit()
    engine.dispose()


def seed_on(url: str, officials: int, platform: str, account_of: Callable[[int], str]) -> None:
    """The sample plan and `officials` officials bound on one platform (the n-th with the
    account `account_of(n)`), one item each."""
    engine = db.make_engine(url)
    db.upgrade(engine)
    with Session(engine) as session:
        plan = plans.import_plan(
            session, parse_plan_file(SAMPLE), source_file="s", actor="cli"
        ).plan
        items = plans.live_items(session, plan)
        for i in range(officials):
            contact = contacts.add_contact(
                session,
                name=f"联络员{i:05d}",
                unit="基础教育科",
                role=Role.official,
                accounts={platform: account_of(i)},
                actor=audit.CLI_ACTOR,
            )
            item = items[i % len(items)]
            session.add(Assignment(item_id=item.id or 0, contact_id=contact.id or 0))
        session.commit()
    engine.dispose()


def telegram_env(server: Any, url: str) -> dict[str, str]:
    """`duban run`'s settings against a fake Bot API: no rate limit of its own, short polls."""
    return {
        "DATABASE_URL": url,
        "TELEGRAM_BOT_TOKEN": server.token,
        "TELEGRAM_API_BASE_URL": f"{server.url}/bot",
        "TELEGRAM_MAX_RATE": "100000",
        "TELEGRAM_POLL_TIMEOUT": "1",
    }


def progress_text(n: int, official: int, officials: int) -> str:
    """The n-th progress reply of a load (each official's percent climbs through the load)."""
    return f"{item_of(official)} {min(100, 5 + n // officials * 4)}% 本周推进顺利"


def item_of(official: int) -> int:
    """The item number the n-th seeded official answers for."""
    return official % 27 + 1


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_duban(env: dict[str, str], workdir: Path, port: int) -> subprocess.Popen[bytes]:
    """`duban run` in its own process; returns once /healthz answers."""
    profile = os.environ.get("DUBAN_BENCH_PROFILE")  # a path: cProfile the bot into it
    prefix = ["-m", "cProfile", "-o", profile] if profile else []
    full = {**os.environ, "WEB_PORT": str(port), "LOG_LEVEL": "WARNING", **env}
    proc = subprocess.Popen([sys.executable, *prefix, "-m", "bot", "run"], cwd=workdir, env=full)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("duban run did not start")
        time.sleep(0.1)


def proc_status_mb(pid: int, field: str = "VmHWM") -> float:
    """Peak (VmHWM) or current (VmRSS) resident set of a live process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """User + system CPU time a process (or one of its threads) has used."""
    stat = Path(f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def count_rows(url: str, table: str) -> int:
    """Rows in a table."""
    engine = db.make_engine(url)
    with engine.connect() as conn:
        value = conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()
    engine.dispose()
    return int(value)


@dataclass
class Load:
    """What pushing a load of messages into a bot took."""

    messages: int
    pushed: float  # seconds to push every message
    elapsed: float  # seconds until every reply was sent
    cpu: float  # CPU seconds the bot's process used meanwhile
    fake_cpu: float  # CPU seconds this process (the fake) used meanwhile
    loop_cpu: float = 0.0  # of `cpu`, the bot's main thread (its event loop)

    @property
    def loop_ms(self) -> float:
        """The bot's main thread's CPU milliseconds per message (the rest: its other threads,
        the database lane's among them)."""
        return self.loop_cpu / self.messages * 1000

    @property
    def rate(self) -> float:
        """Replies a second."""
        return self.messages / self.elapsed

    @property
    def cpu_ms(self) -> float:
        """The bot's CPU milliseconds per message."""
        return self.cpu / self.messages * 1000

    @property
    def busy(self) -> float:
        """How busy the bot kept one core (0..1)."""
        return self.cpu / self.elapsed

    @property
    def fake_busy(self) -> float:
        """How busy the fake kept one core (0..1)."""
        return self.fake_cpu / self.elapsed


def push_load(
    fake: Any,
    pid: int,
    messages: int,
    officials: int,
    say: Callable[[int, str], object],
    sent: Callable[[Any], int],
    *,
    text_for: Callable[[int, int], str] | None = None,
    timeout: float = 600.0,
    stuck: Callable[[], str] | None = None,
) -> Load:
    """Push `messages` texts at once, round robin over the officials (`say(official, text)`;
    progress replies unless `text_for(n, official)` says otherwise), and wait until the fake
    has sent that many more replies (`sent(fake)` counts them). `stuck` says what to print
    when they did not come in time."""
    if text_for is None:

        def text_for(n: int, official: int) -> str:
            return progress_text(n, official, officials)

    done = sent(fake) + messages
    cpu = cpu_seconds(pid)
    loop_cpu = cpu_seconds(pid, pid)
    fake_cpu = cpu_seconds(os.getpid())
    start = time.perf_counter()
    for n in range(messages):
        official = n % officials
        say(official, text_for(n, official))
    pushed = time.perf_counter() - start
    try:
        fake.wait_until(lambda f: sent(f) >= done, timeout=timeout)
    except TimeoutError:
        if stuck is not None:
            print(f"stuck: {stuck()}", flush=True)
        raise
    elapsed = time.perf_counter() - start
    used = cpu_seconds(pid) - cpu
    loop_used = cpu_seconds(pid, pid) - loop_cpu
    fake_used = cpu_seconds(os.getpid()) - fake_cpu
    return Load(messages, pushed, elapsed, used, fake_used, loop_used)


@dataclass
class Run:
    """A load through `duban run`, with its memory and what it stored."""

    load: Load
    idle_mb: float  # RSS once connected, before the load
    after_mb: float  # RSS after the load
    peak_mb: float  # peak RSS
    inbox_rows: int
    reports: int

    @property
    def rss_text(self) -> str:
        """The RSS figures, in one line."""
        return (
            f"idle {self.idle_mb:.1f} MB, after {self.after_mb:.1f} MB, peak {self.peak_mb:.1f} MB"
        )


def run_load(
    url: str,
    env: dict[str, str],
    workdir: Path,
    *,
    connected: Callable[[], object],
    drive: Callable[[int], Load],
    settle: Callable[[], object] | None = None,
) -> Run:
    """Start `duban run` on `env`, wait until `connected()`, push the load (`drive(pid)`),
    wait until `settle()` and stop it; returns the figures and what the database holds."""
    proc = start_duban(env, workdir, free_port())
    try:
        connected()
        idle = proc_status_mb(proc.pid, "VmRSS")
        load = drive(proc.pid)
        if settle is not None:
            settle()
        after = proc_status_mb(proc.pid, "VmRSS")
        peak = proc_status_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    return Run(load, idle, after, peak, count_rows(url, "inbox"), count_rows(url, "report"))
