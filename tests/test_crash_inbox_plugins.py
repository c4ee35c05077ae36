"""kill -9 with progress replies in flight, then a restart: every reply recorded exactly once
and answered -- on DingTalk (Stream mode) and Feishu (the long connection), on SQLite and
PostgreSQL. Marked `slow`: `uv run pytest` skips them, `.ci/run` runs them.

The same 150 officials × 10 reports as tests/test_crash_inbox.py (its database, fixtures and
checks are reused), now bound to DingTalk userIds and Feishu open_ids. The fake platform
pushes the reports down the long connection as people send them, keeping at most WINDOW of
them unacknowledged (so some are always in flight), and, as the real platforms do, pushes
again whatever the connection was sent and did not acknowledge when it closes (the fakes'
`redeliver_unacked`). `duban run` is killed with SIGKILL once a quarter is acknowledged; at that
moment every message the platform holds an acknowledgement for must already be in the inbox;
after the restart every message must be recorded once and answered.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from bot import db
from bot.models import Account, Contact
from tests.fakes.dingtalk_api import FakeDingTalk
from tests.fakes.feishu_api import FAST_CLIENT_CONFIG, FakeFeishu
from tests.test_crash_inbox import (  # noqa: F401  (crash_db, bot_process: fixtures)
    EACH,
    PEOPLE,
    TOTAL,
    Bot,
    _check_answered,
    _check_recorded_once,
    _count,
    _percent_of,
    _wait,
    bot_process,
    crash_db,
)

pytestmark = pytest.mark.slow

WINDOW = 300  # the most messages the fake keeps pushed and not acknowledged
MESSAGES = [(n, k) for k in range(1, EACH + 1) for n in range(PEOPLE)]  # in the order sent


def dingtalk_user(n: int) -> str:
    return f"dt{n:03d}"


def feishu_user(n: int) -> str:
    return "ou_" + hashlib.md5(f"crash:{n}".encode()).hexdigest()


def _key(n: int, k: int) -> str:
    """A message's own id part: msgId (DingTalk) and message_id (Feishu) are made of it."""
    return f"{n:03d}k{k:02d}"


@pytest.fixture
def plugin_db(crash_db: str) -> str:  # noqa: F811
    """crash_db's officials, each bound to a DingTalk userId and a Feishu open_id too."""
    engine = db.make_engine(crash_db)
    try:
        with Session(engine) as session:
            for person in session.exec(select(Contact)).all():
                n = int(person.name.removeprefix("联络员"))
                for platform, account in (
                    ("dingtalk", dingtalk_user(n)),
                    ("feishu", feishu_user(n)),
                ):
                    session.add(
                        Account(contact_id=person.id or 0, platform=platform, account_id=account)
                    )
            session.commit()
    finally:
        engine.dispose()
    return crash_db


def _inbox_keys(url: str, platform: str) -> set[str]:
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT update_key FROM inbox WHERE platform = :p"), {"p": platform}
            ).all()
    finally:
        engine.dispose()
    return {row[0] for row in rows}


@dataclass
class Sender:
    """People sending their reports as the platform takes them: in MESSAGES order, in a
    thread, never more than WINDOW unacknowledged (a push that finds no connection is tried
    again)."""

    push: Callable[[int, int], None]  # (official, k): push one message
    acked: Callable[[], int]  # how many messages the platform holds an ack for
    connected: Callable[[], bool]
    sent: int = 0
    failed: list[BaseException] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, name="crash-sender", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            for n, k in MESSAGES:
                while True:
                    if self._stop.is_set():
                        return
                    if self.sent - self.acked() >= WINDOW or not self.connected():
                        time.sleep(0.01)
                        continue
                    try:
                        self.push(n, k)
                    except RuntimeError:  # the connection went away meanwhile
                        time.sleep(0.05)
                        continue
                    self.sent += 1
                    break
            self.done.set()
        except BaseException as exc:  # pragma: no cover - reported by the test
            self.failed.append(exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def _crash_and_recover(
    bot: Bot,
    url: str,
    platform: str,
    sender: Sender,
    acked_keys: Callable[[], set[str]],
    disconnected: Callable[[], bool],
) -> tuple[int, int]:
    """Start, send, kill -9 once a quarter is acknowledged, check that what was acknowledged is
    stored, restart, wait for every report and reply; stop. (in flight, acknowledged) at the
    kill."""
    bot.start()
    sender.start()
    try:
        _wait(lambda: sender.acked() >= TOTAL // 4, 60, "a quarter acknowledged")
        in_flight_before = sender.sent - sender.acked()
        bot.kill9()
        # Acks the process wrote before it died may still be on their way: the connection's
        # end is the last of them.
        _wait(disconnected, 10, "the fake saw the connection close")
        acked = acked_keys()
        assert _count(url, "SELECT count(*) FROM report") < TOTAL, "killed part of the way"
        stored = _inbox_keys(url, platform)
        lost = acked - stored
        assert not lost, f"{len(lost)} acknowledged messages not stored, e.g. {sorted(lost)[:3]}"
        bot.start()
        assert sender.done.wait(60), (
            f"the sender did not get every message out: {sender.sent} sent, "
            f"{sender.acked()} acknowledged, {sender.failed}; log: {bot.log()[-3000:]}"
        )
        _wait(lambda: _count(url, "SELECT count(*) FROM report") >= TOTAL, 90, "all recorded")
        _wait(
            lambda: _count(url, "SELECT count(*) FROM outbox WHERE state != 'sent'") == 0,
            60,
            "every reply sent",
        )
        _wait(lambda: sender.acked() >= TOTAL, 10, "every message acknowledged")
        bot.stop()
    finally:
        sender.stop()
    assert not sender.failed, sender.failed
    return in_flight_before, len(acked)


# --- DingTalk ------------------------------------------------------------------------------


@pytest.fixture
def fake_dingtalk() -> Iterator[FakeDingTalk]:
    with FakeDingTalk(redeliver_unacked=True) as fake:
        yield fake


def _dingtalk_msg_id(n: int, k: int) -> str:
    return f"msgcrash{_key(n, k)}"


def test_kill_9_with_frames_in_flight_on_dingtalk(
    fake_dingtalk: FakeDingTalk,
    plugin_db: str,
    bot_process: Callable[[dict[str, str]], Bot],  # noqa: F811
) -> None:
    fake = fake_dingtalk
    msg_of: dict[str, str] = {}  # stream messageId -> msgId

    def push(n: int, k: int) -> None:
        pushed = fake.user_says(dingtalk_user(n), f"9 {k}%", msg_id=_dingtalk_msg_id(n, k))
        assert pushed.msg_id is not None
        msg_of[pushed.message_id] = pushed.msg_id

    def acked_ids() -> set[str]:
        with fake._lock:
            return {a.message_id for a in fake.acks if a.code == 200 and a.message_id}

    sender = Sender(
        push,
        lambda: len(acked_ids()),
        lambda: fake.open_connections > 0,
    )
    bot = bot_process(
        {
            "DATABASE_URL": plugin_db,
            "DINGTALK_CLIENT_ID": fake.client_id,
            "DINGTALK_CLIENT_SECRET": fake.client_secret,
            "DINGTALK_API_BASE_URL": fake.url,
            "DINGTALK_OAPI_BASE_URL": fake.url,
            "OUTBOX_LEASE_SECONDS": "3",
            "SCHEDULER_TICK_SECONDS": "1",
        }
    )
    in_flight, acked = _crash_and_recover(
        bot,
        plugin_db,
        "dingtalk",
        sender,
        lambda: {f"msg:{msg_of[m]}" for m in acked_ids()},
        lambda: fake.open_connections == 0,
    )
    assert in_flight > 0 and acked < TOTAL, "nothing was in flight at the kill"
    assert fake.redelivered, "the kill left no frame unacknowledged"
    _check_recorded_once(plugin_db)
    answers: Counter[tuple[str, int]] = Counter()
    for n in range(PEOPLE):
        for message in fake.messages_to(dingtalk_user(n)):
            percent = _percent_of(message.text or "")
            if percent is not None:
                answers[(str(n), percent)] += 1
    _check_answered(answers)
    assert "Traceback" not in bot.log()


# --- Feishu --------------------------------------------------------------------------------


@pytest.fixture
def fake_feishu() -> Iterator[FakeFeishu]:
    with FakeFeishu(client_config=FAST_CLIENT_CONFIG, redeliver_unacked=True) as fake:
        yield fake


def test_kill_9_with_events_in_flight_on_feishu(
    fake_feishu: FakeFeishu,
    plugin_db: str,
    bot_process: Callable[[dict[str, str]], Bot],  # noqa: F811
) -> None:
    fake = fake_feishu
    message_of: dict[str, str] = {}  # frame id -> message_id (redeliveries too)

    def push(n: int, k: int) -> None:
        fake.user_sends(feishu_user(n), "text", {"text": f"9 {k}%"}, message_id=f"om_{_key(n, k)}")

    def acked_messages() -> set[str]:
        with fake._lock:
            for pushed in fake.pushed:
                if pushed.message_id is not None:
                    message_of[pushed.frame_id] = pushed.message_id
            return {
                message_of[frame]
                for frame, ack in fake.acks.items()
                if ack.code == 200 and frame in message_of
            }

    sender = Sender(push, lambda: len(acked_messages()), lambda: fake.connected)
    bot = bot_process(
        {
            "DATABASE_URL": plugin_db,
            "FEISHU_APP_ID": fake.app_id,
            "FEISHU_APP_SECRET": fake.app_secret,
            "FEISHU_DOMAIN": fake.url,
            "OUTBOX_LEASE_SECONDS": "3",
            "SCHEDULER_TICK_SECONDS": "1",
        }
    )
    in_flight, acked = _crash_and_recover(
        bot, plugin_db, "feishu", sender, acked_messages, lambda: not fake.connected
    )
    assert in_flight > 0 and acked < TOTAL, "nothing was in flight at the kill"
    assert fake.redelivered, "the kill left no event unacknowledged"
    _check_recorded_once(plugin_db)
    answers: Counter[tuple[str, int]] = Counter()
    for n in range(PEOPLE):
        for message in fake.messages_to(feishu_user(n)):
            percent = _percent_of(message.text or "")
            if percent is not None:
                answers[(str(n), percent)] += 1
    _check_answered(answers)
    assert "Traceback" not in bot.log()
