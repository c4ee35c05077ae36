"""What the benchmarks share: seeding a database, starting `duban run`, reading /proc."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import Session

from bot import db
from bot.importer.parse import parse_plan_file
from bot.models import Account, Assignment, Contact, Role
from bot.services import plans

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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def count_rows(url: str, table: str) -> int:
    """Rows in a table."""
    engine = db.make_engine(url)
    with engine.connect() as conn:
        value = conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()
    engine.dispose()
    return int(value)
