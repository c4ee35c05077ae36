"""Progress replies through the whole pipeline vs a bare python-telegram-bot echo bot.

5,000 progress replies from 200 officials go through the fake Bot API over loopback into
`duban run` (its own process, SQLite file) and back; the same load goes to a bare PTB echo
bot on the same fake server, in the same run. Prints both rates, their ratio (target >= 0.8)
and Duban's peak RSS (target < 150 MB).

    uv run python bench/telegram_throughput.py [--messages 5000] [--officials 200]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlmodel import Session

from bot import db
from bot.importer.parse import parse_plan_file
from bot.models import Assignment, Contact, Role
from bot.services import plans
from tests.fakes import FakeTelegram

ROOT = Path(__file__).resolve().parent.parent

SAMPLE = ROOT / "samples" / "jiangmen-edu-2023-workpoints.txt"
FIRST_ID = 100_000


def seed(url: str, officials: int) -> None:
    """The sample plan and `officials` bound officials, each with one item."""
    engine = db.make_engine(url)
    db.upgrade(engine)
    with Session(engine) as session:
        parsed = parse_plan_file(SAMPLE)
        plan = plans.import_plan(session, parsed, source_file="s", actor="cli").plan
        items = plans.live_items(session, plan)
        for i in range(officials):
            contact = Contact(
                name=f"联络员{i:03d}",
                unit="基础教育科",
                role=Role.official,
                telegram_id=FIRST_ID + i,
            )
            session.add(contact)
            session.flush()
            item = items[i % len(items)]
            session.add(Assignment(item_id=item.id or 0, contact_id=contact.id or 0))
        session.commit()
    engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_rss_mb(pid: int, field: str = "VmHWM") -> float:
    """Peak (VmHWM) or current (VmRSS) resident set of a live process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drive(server: FakeTelegram, messages: int, officials: int, text_for, pid: int) -> float:
    """Queue all messages at once; return the seconds until every reply was sent."""
    server.reset()
    cpu = cpu_seconds(pid)
    start = time.perf_counter()
    for n in range(messages):
        user = FIRST_ID + n % officials
        server.user_says(user, text_for(n, n % officials))
    server.wait_until(lambda s: s.stats["sendMessage"] >= messages, timeout=600)
    elapsed = time.perf_counter() - start
    used = cpu_seconds(pid) - cpu
    print(f"  cpu {used / messages * 1000:.2f} ms/msg, busy {used / elapsed:.0%} of one core")
    return elapsed


def run_echo(server: FakeTelegram, messages: int, officials: int) -> float:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "_echo_bot.py"), server.token, server.url],
        stderr=subprocess.DEVNULL,
    )
    try:
        server.wait_until(lambda s: s.stats["getUpdates"] > 0, timeout=30)
        return drive(server, messages, officials, lambda n, _u: f"echo {n}", proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def run_duban(
    server: FakeTelegram, messages: int, officials: int, workdir: Path
) -> tuple[float, float, int]:
    url = f"sqlite:///{workdir / 'bench.db'}"
    seed(url, officials)
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "TELEGRAM_BOT_TOKEN": server.token,
        "TELEGRAM_API_BASE_URL": f"{server.url}/bot",
        "WEB_PORT": str(port),
        "TELEGRAM_MAX_RATE": "100000",
        "TELEGRAM_POLL_TIMEOUT": "1",
        "LOG_LEVEL": "WARNING",
    }
    profile = os.environ.get("DUBAN_BENCH_PROFILE")  # a path: cProfile the bot into it
    prefix = ["-m", "cProfile", "-o", profile] if profile else []
    proc = subprocess.Popen([sys.executable, *prefix, "-m", "bot", "run"], cwd=workdir, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("duban run did not start")
            time.sleep(0.1)
        server.wait_until(lambda s: s.stats["getUpdates"] > 0, timeout=30)

        def text(n: int, official: int) -> str:
            item = official % 27 + 1
            return f"{item} {min(100, 5 + n // officials * 4)}% 本周推进顺利"

        idle = peak_rss_mb(proc.pid, "VmRSS")
        elapsed = drive(server, messages, officials, text, proc.pid)
        after = peak_rss_mb(proc.pid, "VmRSS")
        print(f"  duban RSS idle {idle:.1f} MB, after the load {after:.1f} MB")
        rss = peak_rss_mb(proc.pid)
        engine = db.make_engine(url)
        with engine.connect() as conn:
            reports = conn.exec_driver_sql("SELECT count(*) FROM report").scalar_one()
            processed = conn.exec_driver_sql("SELECT count(*) FROM processed_update").scalar_one()
        engine.dispose()
        assert processed == messages, f"{processed} of {messages} updates processed"
        return elapsed, rss, int(reports)
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--officials", type=int, default=200)
    args = parser.parse_args()
    os.environ.setdefault("PTB_TIMEDELTA", "1")
    with FakeTelegram() as server, tempfile.TemporaryDirectory() as tmp:
        echo = run_echo(server, args.messages, args.officials)
        duban, rss, reports = run_duban(server, args.messages, args.officials, Path(tmp))
    echo_rate, duban_rate = args.messages / echo, args.messages / duban
    print(f"messages: {args.messages} from {args.officials} officials")
    print(f"bare PTB echo bot : {echo_rate:8.1f} msg/s ({echo:.2f} s)")
    print(f"duban (SQLite)    : {duban_rate:8.1f} msg/s ({duban:.2f} s), {reports} reports stored")
    print(f"ratio duban/echo  : {duban_rate / echo_rate:.2f} (target >= 0.8)")
    print(f"duban peak RSS    : {rss:.1f} MB (target < 150 MB)")


if __name__ == "__main__":
    main()
