"""kill -9 in the middle of a fan-out, then start again: every planned message is delivered,
and delivered once as far as the recorded state can tell."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlmodel import Session, select

from bot import db
from bot.models import Account, Contact, Outbox, Role
from tests.fakes import FakeTelegram
from tests.ports import free_port

FIRST = 500_000
PEOPLE = 150


def _seed(url: str) -> None:
    engine = db.make_engine(url)
    db.upgrade(engine)
    now = datetime.now(UTC)
    with Session(engine) as session:
        for n in range(PEOPLE):
            contact = Contact(name=f"联络员{n:03d}", unit="科", role=Role.official)
            session.add(contact)
            session.flush()
            session.add(
                Account(contact_id=contact.id or 0, platform="telegram", account_id=str(FIRST + n))
            )
            session.add(
                Outbox(
                    dedupe_key=f"notice:fanout:{n}",
                    kind="notice",
                    contact_id=contact.id,
                    payload={"text": f"第{n}条通知"},
                    due_at=now,
                )
            )
        session.commit()
    engine.dispose()


def _start(server: FakeTelegram, tmp_path: Path, url: str, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "WECOM_"))}
    env.update(
        DATABASE_URL=url,
        TELEGRAM_BOT_TOKEN=server.token,
        TELEGRAM_API_BASE_URL=f"{server.url}/bot",
        TELEGRAM_POLL_TIMEOUT="1",
        WEB_PORT=str(port),
        PTB_TIMEDELTA="1",
        SCHEDULER_TICK_SECONDS="1",
        OUTBOX_LEASE_SECONDS="3",
        OUTBOX_BATCH="20",
    )
    with (tmp_path / "run.log").open("ab") as log:  # a file, not a pipe: a full pipe stalls
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "run"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    for _ in range(600):  # a minute: a fresh interpreter is slow to start on a busy machine
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("duban run did not start")


def _pending(url: str) -> int:
    engine = db.make_engine(url)
    with Session(engine) as session:
        count = len(session.exec(select(Outbox).where(Outbox.state != "sent")).all())
    engine.dispose()
    return count


def test_kill_9_mid_fanout_then_restart(server: FakeTelegram, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fanout.db'}"
    _seed(url)
    first = _start(server, tmp_path, url, free_port())
    try:
        server.wait_until(lambda s: s.stats["sendMessage"] >= PEOPLE // 4, timeout=60)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    before_restart = server.stats["sendMessage"]
    assert before_restart < PEOPLE, "killed in the middle of the fan-out"
    second = _start(server, tmp_path, url, free_port())
    try:
        server.wait_until(
            lambda s: len({c.chat_id for c in s.calls("sendMessage")}) >= PEOPLE, timeout=60
        )
        # rows the killed process sent but never recorded are sent again once their claim
        # (OUTBOX_LEASE_SECONDS) runs out
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _pending(url):
            time.sleep(0.2)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=15)
    per_chat = Counter(c.chat_id for c in server.calls("sendMessage"))
    assert len(per_chat) == PEOPLE  # every planned message was delivered
    # The one window for a duplicate: the platform accepted a message but the process died
    # before it recorded the batch as sent: at most one claimed batch (OUTBOX_BATCH rows).
    assert sum(count - 1 for count in per_chat.values()) <= 20
    engine = db.make_engine(url)
    with Session(engine) as session:
        assert {o.state for o in session.exec(select(Outbox))} == {"sent"}
    engine.dispose()
    assert "Traceback" not in (tmp_path / "run.log").read_text(encoding="utf-8")
    assert "Traceback" not in (tmp_path / "run.log").read_text(encoding="utf-8")
