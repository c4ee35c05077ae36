"""kill -9 with 1,500 progress replies queued, then a restart: every reply recorded exactly
once and answered — on Telegram polling, the Telegram webhook and WeCom, on SQLite and
PostgreSQL. Marked `slow`: `uv run pytest` skips them, `.ci/run` runs them.

150 officials each send ten reports on item 9 (`9 1%` … `9 10%`); a reply says which percent
it recorded, so each answer can be matched to its message.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import Session

from bot import db
from bot.importer.parse import parse_plan_file
from bot.models import Account, Assignment, AssignmentRole, Contact, Role
from bot.services import plans
from tests.fakes import FakeTelegram
from tests.harness import SAMPLE, WECOM_AES_KEY, WECOM_TOKEN
from tests.ports import free_port

pytestmark = pytest.mark.slow

PEOPLE = 150
EACH = 10
TOTAL = PEOPLE * EACH
FIRST = 700_000
SECRET = "crash-test-webhook-secret"
# A reply in flight when the process died may go out twice (the platform took it, the
# process never recorded it): at most the updates handled at once, plus one outbox batch.
MAX_DUPLICATES = 16 + 20


@pytest.fixture(params=["sqlite", "postgres"])
def crash_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty migrated database for a subprocess: a SQLite file, then PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'crash.db'}"
    else:
        url = request.getfixturevalue("pg_database_factory")()
    engine = db.make_engine(url)
    db.upgrade(engine)
    with Session(engine) as session:
        plan = plans.import_plan(
            session, parse_plan_file(SAMPLE), source_file=SAMPLE.name, actor="cli"
        ).plan
        item = plans.find_item(session, plan, "9")
        for n in range(PEOPLE):
            person = Contact(
                name=f"联络员{n:03d}",
                unit="科",
                role=Role.official,
            )
            session.add(person)
            session.flush()
            session.add(
                Account(contact_id=person.id or 0, platform="telegram", account_id=str(FIRST + n))
            )
            session.add(
                Account(contact_id=person.id or 0, platform="wecom", account_id=f"u{n:03d}")
            )
            session.add(
                Assignment(
                    item_id=item.id or 0, contact_id=person.id or 0, role=AssignmentRole.lead
                )
            )
        session.commit()
    engine.dispose()
    return url


class Bot:
    """`duban run` as a subprocess: start, kill -9, start again, stop."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.env = env
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "WECOM_"))}
        env.update(self.env, WEB_PORT=str(self.port), PTB_TIMEDELTA="1")
        with (self.tmp_path / "run.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "run"],
                cwd=self.tmp_path,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        for _ in range(600):  # a minute: a fresh interpreter is slow to start on a busy machine
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.proc.kill()
        raise AssertionError("duban run did not start: " + self.log())

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def log(self) -> str:
        return (self.tmp_path / "run.log").read_text(encoding="utf-8", errors="replace")


@pytest.fixture
def bot_process(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Bot]]:
    made: list[Bot] = []

    def make(env: dict[str, str]) -> Bot:
        bot = Bot(tmp_path, env)
        made.append(bot)
        return bot

    yield make
    for bot in made:
        bot.stop()


def _count(url: str, sql: str) -> int:
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(sql)).scalar() or 0)
    finally:
        engine.dispose()


def _wait(what: Callable[[], bool], timeout: float, why: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out: {why}")


def _check_recorded_once(url: str) -> None:
    """Every message recorded exactly once; the inbox holds each, handled."""
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT contact_id, percent FROM report")).all()
            inbox = conn.execute(sa.text("SELECT count(*), count(handled_at) FROM inbox")).one()
    finally:
        engine.dispose()
    per_message = Counter((contact, percent) for contact, percent in rows)
    assert len(rows) == TOTAL, f"{len(rows)} reports for {TOTAL} messages"
    assert set(per_message.values()) == {1}, "a message recorded twice"
    assert {p for _, p in per_message} == set(range(1, EACH + 1))
    assert tuple(inbox) == (TOTAL, TOTAL)


def _check_answered(answers: Counter[tuple[str, int]]) -> None:
    """Every message answered; a duplicate only for the replies in flight at the kill."""
    missing = [(chat, k) for chat in range(PEOPLE) for k in range(1, EACH + 1)
               if answers[(str(chat), k)] == 0]  # fmt: skip
    assert missing == [], f"{len(missing)} messages never answered, e.g. {missing[:3]}"
    duplicates = sum(count - 1 for count in answers.values())
    assert duplicates <= MAX_DUPLICATES


def _percent_of(text: str) -> int | None:
    import re

    m = re.search(r"进度：(\d+)%", text)
    return int(m.group(1)) if m else None


# --- Telegram polling ----------------------------------------------------------------------


def test_kill_9_with_replies_queued_on_telegram_polling(
    server: FakeTelegram, crash_db: str, bot_process: Callable[[dict[str, str]], Bot]
) -> None:
    for k in range(1, EACH + 1):
        for n in range(PEOPLE):
            server.user_says(FIRST + n, f"9 {k}%")
    bot = bot_process(
        {
            "DATABASE_URL": crash_db,
            "TELEGRAM_BOT_TOKEN": server.token,
            "TELEGRAM_API_BASE_URL": f"{server.url}/bot",
            "TELEGRAM_POLL_TIMEOUT": "1",
            "OUTBOX_LEASE_SECONDS": "3",
            "SCHEDULER_TICK_SECONDS": "1",
        }
    )
    bot.start()
    _wait(lambda: _count(crash_db, "SELECT count(*) FROM report") >= TOTAL // 4, 120, "a quarter")
    bot.kill9()
    recorded = _count(crash_db, "SELECT count(*) FROM report")
    assert recorded < TOTAL, "killed part of the way"
    bot.start()
    _wait(lambda: _count(crash_db, "SELECT count(*) FROM report") >= TOTAL, 180, "all recorded")
    _wait(
        lambda: _count(crash_db, "SELECT count(*) FROM outbox WHERE state != 'sent'") == 0,
        60,
        "every reply sent",
    )
    bot.stop()
    _check_recorded_once(crash_db)
    answers: Counter[tuple[str, int]] = Counter()
    for call in server.calls("sendMessage"):
        percent = _percent_of(call.plain_text)
        if percent is not None:
            answers[(str(int(call.chat_id) - FIRST), percent)] += 1
    _check_answered(answers)
    assert "Traceback" not in bot.log()


# --- Telegram webhook ----------------------------------------------------------------------


def _update(update_id: int, user: int, text: str) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "from": {"id": user, "is_bot": False, "first_name": "Test"},
            "chat": {"id": user, "type": "private", "first_name": "Test"},
            "date": int(time.time()),
            "text": text,
        },
    }


async def _deliver(
    url: str,
    bodies: list[tuple[str, dict[str, Any] | bytes, dict[str, str]]],
    acked: set[str],
    *,
    connections: int = 20,
    reached: asyncio.Event | None = None,
    at: int = 0,
) -> None:
    """POST each body until it gets a 200 (as the platform does), `connections` at once;
    stops quietly when the server goes away."""
    queue: asyncio.Queue[tuple[str, dict[str, Any] | bytes, dict[str, str]]] = asyncio.Queue()
    for body in bodies:
        if body[0] not in acked:
            queue.put_nowait(body)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            key, body, params = queue.get_nowait()
            try:
                if isinstance(body, bytes):
                    response = await client.post(url, params=params, content=body)
                else:
                    response = await client.post(url, json=body, headers=params)
            except httpx.TransportError:
                return  # the process is gone: the rest is delivered after the restart
            if response.status_code == 200:
                acked.add(key)
                if reached is not None and len(acked) >= at:
                    reached.set()
            else:
                queue.put_nowait((key, body, params))
                await asyncio.sleep(0.05)

    async with httpx.AsyncClient(timeout=10) as client:
        await asyncio.gather(*(worker(client) for _ in range(connections)))


def _kill_midway_then_deliver_the_rest(
    bot: Bot,
    path: str,
    bodies: list[tuple[str, dict[str, Any] | bytes, dict[str, str]]],
    url: str,
) -> None:
    """Deliver the bodies as the platform does, kill -9 once a quarter were acknowledged,
    restart, deliver what was not acknowledged, and wait until every message is recorded and
    every reply is sent; then stop the bot."""
    acked: set[str] = set()
    bot.start()

    async def first_part() -> None:
        quarter = asyncio.Event()
        target = f"http://127.0.0.1:{bot.port}{path}"
        sending = asyncio.create_task(
            _deliver(target, bodies, acked, reached=quarter, at=TOTAL // 4)
        )
        await asyncio.wait_for(quarter.wait(), 120)
        bot.kill9()
        await sending

    asyncio.run(first_part())
    assert TOTAL // 4 <= len(acked) < TOTAL, "killed part of the way"
    bot.start()
    asyncio.run(_deliver(f"http://127.0.0.1:{bot.port}{path}", bodies, acked))
    assert len(acked) == TOTAL
    _wait(lambda: _count(url, "SELECT count(*) FROM report") >= TOTAL, 180, "all recorded")
    _wait(
        lambda: _count(url, "SELECT count(*) FROM outbox WHERE state != 'sent'") == 0,
        90,
        "every reply sent",
    )
    bot.stop()


def test_kill_9_with_replies_queued_on_the_telegram_webhook(
    server: FakeTelegram, crash_db: str, bot_process: Callable[[dict[str, str]], Bot]
) -> None:
    bodies = [
        (str(u), _update(u, FIRST + n, f"9 {k}%"), {"X-Telegram-Bot-Api-Secret-Token": SECRET})
        for u, (k, n) in enumerate(
            ((k, n) for k in range(1, EACH + 1) for n in range(PEOPLE)), start=1
        )
    ]
    bot = bot_process(
        {
            "DATABASE_URL": crash_db,
            "TELEGRAM_BOT_TOKEN": server.token,
            "TELEGRAM_API_BASE_URL": f"{server.url}/bot",
            "TELEGRAM_WEBHOOK_URL": "https://duban.example.org/telegram/webhook",
            "TELEGRAM_WEBHOOK_SECRET": SECRET,
            "OUTBOX_LEASE_SECONDS": "3",
            "SCHEDULER_TICK_SECONDS": "1",
        }
    )
    _kill_midway_then_deliver_the_rest(bot, "/telegram/webhook", bodies, crash_db)
    _check_recorded_once(crash_db)
    answers: Counter[tuple[str, int]] = Counter()
    for call in server.calls("sendMessage"):
        percent = _percent_of(call.plain_text)
        if percent is not None:
            answers[(str(int(call.chat_id) - FIRST), percent)] += 1
    _check_answered(answers)
    assert "Traceback" not in bot.log()


# --- WeCom ---------------------------------------------------------------------------------


@pytest.fixture
def fake_wecom() -> Iterator[Any]:
    from tests.fakes.wecom_api import FakeWeCom

    with FakeWeCom() as fake:
        yield fake


def test_kill_9_with_callbacks_answered_on_wecom(
    fake_wecom: Any, crash_db: str, bot_process: Callable[[dict[str, str]], Bot]
) -> None:
    import xmltodict
    from wechatpy.enterprise.crypto import WeChatCrypto

    crypto = WeChatCrypto(WECOM_TOKEN, WECOM_AES_KEY, fake_wecom.corp_id)
    bodies: list[tuple[str, dict[str, Any] | bytes, dict[str, str]]] = []
    msg_id = 9_100_000_000
    for k in range(1, EACH + 1):
        for n in range(PEOPLE):
            msg_id += 1
            xml = (
                f"<xml><ToUserName><![CDATA[{fake_wecom.corp_id}]]></ToUserName>"
                f"<FromUserName><![CDATA[u{n:03d}]]></FromUserName>"
                f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
                f"<Content><![CDATA[9 {k}%]]></Content><MsgId>{msg_id}</MsgId>"
                f"<AgentID>{fake_wecom.agent_id}</AgentID></xml>"
            )
            ts, nonce = str(int(time.time())), f"n{msg_id}"
            encrypted = crypto.encrypt_message(xml, nonce, ts)
            parsed = xmltodict.parse(encrypted)["xml"]
            params = {"msg_signature": parsed["MsgSignature"], "timestamp": ts, "nonce": nonce}
            bodies.append((str(msg_id), encrypted.encode(), params))
    bot = bot_process(
        {
            "DATABASE_URL": crash_db,
            "WECOM_CORP_ID": fake_wecom.corp_id,
            "WECOM_AGENT_ID": str(fake_wecom.agent_id),
            "WECOM_SECRET": fake_wecom.secret,
            "WECOM_TOKEN": WECOM_TOKEN,
            "WECOM_AES_KEY": WECOM_AES_KEY,
            "WECOM_API_BASE_URL": fake_wecom.api_base,
            "OUTBOX_LEASE_SECONDS": "3",
            "SCHEDULER_TICK_SECONDS": "1",
        }
    )
    _kill_midway_then_deliver_the_rest(bot, "/wecom/callback", bodies, crash_db)
    _check_recorded_once(crash_db)
    answers: Counter[tuple[str, int]] = Counter()
    for n in range(PEOPLE):
        for message in fake_wecom.messages_to(f"u{n:03d}"):
            percent = _percent_of(str(message.content))
            if percent is not None:
                answers[(str(n), percent)] += 1
    _check_answered(answers)
    assert "Traceback" not in bot.log()
