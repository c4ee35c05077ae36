"""Secrets never logged or stored: the failure paths at DEBUG, with marker secrets configured.

Each scenario runs Duban against an unreachable or failing platform with every logger at
DEBUG, then reads what an operator could read: pytest's captured log, a stream handler that
was on the root logger before Duban started, a log file added after it started, what the
admins were told, and every column of every table. No marker may appear in any of them.
A control test runs two of the scenarios with the redactor turned off and finds the markers:
the scenarios reach real leaks.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import xmltodict
from sqlalchemy.engine import make_url
from sqlmodel import Session, select
from telegram.error import InvalidToken, NetworkError
from typer.testing import CliRunner
from wechatpy.enterprise.crypto import WeChatCrypto

from bot import db
from bot.app import DubanApp
from bot.channels.telegram.channel import TelegramChannel
from bot.clock import FakeClock
from bot.models import Contact, Outbox
from bot.redaction import MASK, Redactor, install_redaction, redact, remove_redaction
from bot.settings import Settings
from scheduler.dispatcher import MAX_ATTEMPTS
from tests.fakes import FakeTelegram
from tests.fakes.wecom_api import FakeWeCom
from tests.harness import SHANGHAI, seed
from tests.ports import free_port

# --- the marker secrets ---------------------------------------------------------------------

BOT_TOKEN = "5550001:SECRET-TOKEN-123-abc"
TOKEN_HALF = "SECRET-TOKEN-123-abc"  # the secret half, after the public bot id
WEBHOOK_SECRET = "tgWebhookSecretMARK77"
CORP_ID = "ww-hostile-corp"
AGENT_ID = 1000002
CORP_SECRET = "corpSecretMARK8c1e0a9b"
WECOM_TOKEN = "wecomTokenMARK41"
AES_KEY = "AesKeyMARK" + "q7R2s9T4u1" * 3 + "V6w"  # 43 letters and digits
ROBOT_KEY = "robotKeyMARK-5f3c-77aa"
DB_PASSWORD = "dbPassMARK9d2"
MARKERS = {
    "bot token": BOT_TOKEN,
    "bot token's secret half": TOKEN_HALF,
    "Telegram webhook secret": WEBHOOK_SECRET,
    "WeCom corp secret": CORP_SECRET,
    "WeCom callback token": WECOM_TOKEN,
    "WeCom AES key": AES_KEY,
    "robot key": ROBOT_KEY,
    "database password": DB_PASSWORD,
}
THIRD_PARTY = (
    "httpx",
    "httpcore",
    "aiohttp",
    "urllib3",
    "requests",
    "telegram",
    "wechatpy",
    "apscheduler",
    "uvicorn",
    "sqlalchemy",
    "asyncio",
)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
START = datetime(2023, 6, 1, 10, 0, tzinfo=SHANGHAI)  # a Thursday, in working hours


def with_password(db_url: str) -> str:
    """The test database's URL with the password marker in it (PostgreSQL trusts us anyway)."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite" or url.password is not None:
        return db_url  # a server that wants its real password keeps it
    return url.set(password=DB_PASSWORD).render_as_string(hide_password=False)


def hostile_settings(db_url: str, **values: Any) -> Settings:
    """Settings holding every marker secret; the channels come from `values`."""
    base: dict[str, Any] = {
        "database_url": with_password(db_url),
        "web_host": "127.0.0.1",
        "web_port": 0,
        "locale": "zh-CN",
        "log_level": "DEBUG",
        "telegram_poll_timeout": 1,
        "telegram_max_rate": 1000,
        "telegram_max_retries": 0,
    }
    return Settings(_env_file=None, **{**base, **values})  # type: ignore[call-arg]


def wecom_values(api_base: str) -> dict[str, Any]:
    """WeCom and its group robot, with marker secrets, at `api_base`."""
    return {
        "wecom_corp_id": CORP_ID,
        "wecom_agent_id": AGENT_ID,
        "wecom_secret": CORP_SECRET,
        "wecom_token": WECOM_TOKEN,
        "wecom_aes_key": AES_KEY,
        "wecom_api_base_url": api_base,
        "wecom_group_webhook_key": ROBOT_KEY,
    }


# --- what an operator could read ------------------------------------------------------------


@dataclass
class Readable:
    """Every place a secret must not reach: the logs, the database, what people were told."""

    caplog: pytest.LogCaptureFixture
    early: io.StringIO
    log_file: Path
    extra: dict[str, str] = field(default_factory=dict)
    late: logging.Handler | None = None

    def add_late_handler(self) -> None:
        """A log file handler added after Duban installed its redaction (as uvicorn does)."""
        if self.late is None:
            self.late = logging.FileHandler(self.log_file, encoding="utf-8")
            self.late.setFormatter(logging.Formatter(LOG_FORMAT))
            logging.getLogger().addHandler(self.late)

    def add_database(self, url: str) -> None:
        """Every row of every table, as text."""
        self.extra[f"database {make_url(url).get_backend_name()}"] = database_text(url)

    def texts(self) -> dict[str, str]:
        """Where to look, and what is there."""
        if self.late is not None:
            self.late.flush()
        logged = self.log_file.read_text("utf-8") if self.log_file.exists() else ""
        return {
            "caplog": self.caplog.text,
            "caplog messages": "\n".join(r.getMessage() for r in self.caplog.records),
            "stream handler added before start": self.early.getvalue(),
            "log file added after start": logged,
            **self.extra,
        }

    def leaks(self, markers: dict[str, str] = MARKERS) -> list[str]:
        """Which marker shows where, with a little context."""
        found = []
        for where, text in self.texts().items():
            for name, marker in markers.items():
                at = text.find(marker)
                if at >= 0:
                    found.append(f"{name} in {where}: …{text[max(0, at - 80) : at + 40]!r}…")
        return found

    def assert_clean(self, markers: dict[str, str] = MARKERS) -> None:
        """No marker anywhere (and every handler did log something)."""
        assert self.caplog.records, "nothing was logged: the scenario did not run"
        assert self.early.getvalue()
        assert self.late is None or self.log_file.read_text("utf-8")
        assert self.leaks(markers) == []


def database_text(url: str) -> str:
    """Every value of every table of the database at `url`, as text."""
    engine = sa.create_engine(db.normalize_url(url))
    parts: list[str] = []
    try:
        with engine.connect() as conn:
            for table in sa.inspect(conn).get_table_names():
                for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                    parts.append(f"{table}: {tuple(row)!r}")
    finally:
        engine.dispose()
    return "\n".join(parts)


@pytest.fixture
def readable(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> Iterator[Readable]:
    """Every logger at DEBUG, a stream handler on the root logger; no redaction yet."""
    remove_redaction()
    caplog.set_level(logging.DEBUG)
    for name in THIRD_PARTY:
        caplog.set_level(logging.DEBUG, logger=name)
    early = io.StringIO()
    handler = logging.StreamHandler(early)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    found = Readable(caplog, early, tmp_path / "duban.log")
    try:
        yield found
    finally:
        root.removeHandler(handler)
        if found.late is not None:
            root.removeHandler(found.late)
            found.late.close()
        remove_redaction()


@pytest.fixture
def no_redaction(monkeypatch: pytest.MonkeyPatch) -> None:
    """The redactor masks nothing (to show that a scenario reaches a real leak)."""
    monkeypatch.setattr(Redactor, "__call__", lambda self, text: text)


# --- driving Duban --------------------------------------------------------------------------


@asynccontextmanager
async def running(settings: Settings, found: Readable) -> AsyncIterator[DubanApp]:
    """Duban seeded with the sample plan and the cast, started; retries without waiting."""
    app = DubanApp(settings, clock=FakeClock(START), run_scheduler=False)
    found.add_late_handler()
    seed(app.engine)
    if "wecom" in app.core.messengers:
        app.core.messengers["wecom"].backoff = 0.001  # type: ignore[attr-defined]
    await app.start()
    try:
        yield app
    finally:
        await app.stop()
        found.add_database(settings.database_url)


async def wecom_says(app: DubanApp, user: str, text: str) -> None:
    """`user` writes `text` in the WeCom app: an encrypted callback, handled to the end."""
    handled = asyncio.Event()
    app.core.observers.append(lambda _event: handled.set())
    crypto = WeChatCrypto(WECOM_TOKEN, AES_KEY, CORP_ID)
    xml = (
        f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName>"
        f"<FromUserName><![CDATA[{user}]]></FromUserName><CreateTime>{int(time.time())}"
        f"</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{text}]]></Content>"
        f"<MsgId>{time.time_ns()}</MsgId><AgentID>{AGENT_ID}</AgentID></xml>"
    )
    timestamp, nonce = str(int(time.time())), "nonce42"
    encrypted = crypto.encrypt_message(xml, nonce, timestamp)
    envelope = xmltodict.parse(encrypted)["xml"]
    params = {"msg_signature": envelope["MsgSignature"], "timestamp": timestamp, "nonce": nonce}
    body = encrypted.encode()
    url = f"http://127.0.0.1:{app.web_port}/wecom/callback"
    async with httpx.AsyncClient() as client:
        assert (await client.post(url, params=params, content=body)).status_code == 200
        # a forged one too: refused, and the refusal is logged
        forged = {**params, "msg_signature": "0" * 40}
        assert (await client.post(url, params=forged, content=body)).status_code == 403
    await asyncio.wait_for(handled.wait(), 20)


def queue_group_message(app: DubanApp) -> None:
    """A row for the leaders' group robot, due now."""
    with Session(app.engine) as session:
        session.add(
            Outbox(
                dedupe_key="digest-group:hostile",
                kind="group",
                payload={"markdown": "**督办周报** 测试"},
                due_at=app.clock(),
            )
        )
        session.commit()


async def deliver_until_failed(app: DubanApp) -> list[Outbox]:
    """Run the dispatcher through every retry until the rows give up; returns the outbox."""
    clock = app.clock
    assert isinstance(clock, FakeClock)
    for _ in range(MAX_ATTEMPTS + 1):
        await app.dispatcher.deliver_due()
        clock.advance(timedelta(minutes=20))
    with Session(app.engine) as session:
        return list(session.exec(select(Outbox)))


async def wecom_unreachable(db_url: str, found: Readable) -> None:
    """WeCom's API is down: token fetches, replies, notices and the group robot all fail."""
    base = f"http://127.0.0.1:{free_port()}/cgi-bin/"
    async with running(hostile_settings(db_url, **wecom_values(base)), found) as app:
        await wecom_says(app, "zhangsan", "9 60% 华侨实验小学主体完工")
        await wecom_says(app, "zhaozhuren", "/assign 22 张三")
        queue_group_message(app)
        rows = await deliver_until_failed(app)
    assert any(row.state == "failed" and row.last_error for row in rows)
    assert any(row.kind == "failure" for row in rows)  # the admins are told


async def group_robot_failing(db_url: str, found: Readable) -> list[str]:
    """The group robot's webhook answers 500; returns what the admins were told."""
    with FakeWeCom(CORP_ID, CORP_SECRET, AGENT_ID, ROBOT_KEY) as fake:
        async with running(hostile_settings(db_url, **wecom_values(fake.api_base)), found) as app:
            fake.http_error_next("webhook/send", status=500, count=100)
            queue_group_message(app)
            rows = await deliver_until_failed(app)
        told = [str(m.content) for m in fake.messages_to("zhaozhuren")]
    (group,) = [row for row in rows if row.kind == "group"]
    assert group.state == "failed" and "500" in (group.last_error or "")
    assert told  # the admins heard of it, and what went wrong
    found.extra["what the admins were told"] = "\n".join(told)
    return told


# --- the scenarios --------------------------------------------------------------------------


async def test_wecom_api_unreachable(db_url: str, readable: Readable) -> None:
    await wecom_unreachable(db_url, readable)
    readable.assert_clean()
    assert "corpsecret=" + MASK in readable.caplog.text


async def test_wecom_unreachable_once_a_token_exists(db_url: str, readable: Readable) -> None:
    with FakeWeCom(CORP_ID, CORP_SECRET, AGENT_ID, ROBOT_KEY) as fake:
        settings = hostile_settings(db_url, **wecom_values(fake.api_base))
        async with running(settings, readable) as app:
            await wecom_says(app, "zhangsan", "9 10%")
            assert fake.messages_to("zhangsan")  # a token was fetched and used
            access_token = fake.current_token
            assert access_token
            fake.stop()  # the API goes away; the token stays in the client
            await wecom_says(app, "zhangsan", "9 20%")
            await wecom_says(app, "zhaozhuren", "/assign 22 张三")
            await deliver_until_failed(app)
    readable.assert_clean({**MARKERS, "access token": access_token})
    assert "access_token=" + MASK in readable.caplog.text


async def test_wecom_api_answering_errors(db_url: str, readable: Readable) -> None:
    with FakeWeCom(CORP_ID, CORP_SECRET, AGENT_ID, ROBOT_KEY) as fake:
        settings = hostile_settings(db_url, **wecom_values(fake.api_base))
        async with running(settings, readable) as app:
            fake.always_fail("gettoken", 40001)  # the secret is refused
            await wecom_says(app, "zhangsan", "9 10%")
            fake.clear_faults()
            fake.always_fail("message/send", 42001)  # tokens keep expiring
            fake.http_error_next("gettoken", status=502, count=3)
            await wecom_says(app, "zhaozhuren", "/assign 22 张三")
            await deliver_until_failed(app)
    readable.assert_clean()


async def test_group_robot_webhook_failing(db_url: str, readable: Readable) -> None:
    told = await group_robot_failing(db_url, readable)
    readable.assert_clean()
    assert any("key=" + MASK in text for text in told)


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_telegram_api_unreachable(db_url: str, readable: Readable, transport: str) -> None:
    settings = hostile_settings(
        db_url,
        telegram_bot_token=BOT_TOKEN,
        telegram_api_base_url=f"http://127.0.0.1:{free_port()}/bot",
        telegram_http_client=transport,
    )
    app = DubanApp(settings, clock=FakeClock(START), run_scheduler=False)
    readable.add_late_handler()
    with pytest.raises(NetworkError):
        await app.start()
    await stop_quietly(app)
    readable.add_database(settings.database_url)
    readable.assert_clean()


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_telegram_rejecting_the_token(
    db_url: str, readable: Readable, server: FakeTelegram, transport: str
) -> None:
    settings = hostile_settings(
        db_url,
        telegram_bot_token=BOT_TOKEN,  # not the fake's: it answers 404, PTB says InvalidToken
        telegram_api_base_url=f"{server.url}/bot",
        telegram_http_client=transport,
    )
    app = DubanApp(settings, clock=FakeClock(START), run_scheduler=False)
    readable.add_late_handler()
    with pytest.raises(InvalidToken):
        await app.start()
    await stop_quietly(app)
    readable.add_database(settings.database_url)
    readable.assert_clean()


async def test_telegram_webhook_then_the_api_goes_away(db_url: str, readable: Readable) -> None:
    with FakeTelegram(BOT_TOKEN) as fake:
        settings = hostile_settings(
            db_url,
            telegram_bot_token=BOT_TOKEN,
            telegram_api_base_url=f"{fake.url}/bot",
            telegram_webhook_url="https://duban.example/telegram/webhook",
            telegram_webhook_secret=WEBHOOK_SECRET,
        )
        async with running(settings, readable) as app:
            assert fake.calls("setWebhook")  # its secret went out in a logged call
            fake.stop()
            with Session(app.engine) as session:
                zhang = session.exec(select(Contact).where(Contact.name == "张三")).one()
                session.add(
                    Outbox(
                        dedupe_key="hostile:telegram",
                        kind="notice",
                        contact_id=zhang.id,
                        payload={"text": "测试通知"},
                        due_at=app.clock(),
                    )
                )
                session.commit()
            rows = await deliver_until_failed(app)
    assert any(row.last_error for row in rows)
    readable.assert_clean()


@pytest.mark.parametrize("telegram", ["unreachable", "rejecting the token"])
def test_cli_run_failing_at_start(
    db_url: str,
    readable: Readable,
    server: FakeTelegram,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    telegram: str,
) -> None:
    from bot.cli import app as cli

    monkeypatch.chdir(tmp_path)  # no .env from the checkout
    api = f"http://127.0.0.1:{free_port()}" if telegram == "unreachable" else server.url
    settings = hostile_settings(
        db_url,
        telegram_bot_token=BOT_TOKEN,
        telegram_api_base_url=f"{api}/bot",
        **wecom_values(f"http://127.0.0.1:{free_port()}/cgi-bin/"),
    )
    for name, value in settings.model_dump().items():
        if value is not None:
            raw = value.get_secret_value() if hasattr(value, "get_secret_value") else value
            monkeypatch.setenv(name.upper(), str(raw))
    real_start = DubanApp.start

    async def start_or_clean_up(self: DubanApp) -> None:
        # `duban run` leaves PTB's HTTP sessions open when the bot fails to start (the process
        # ends there); a test process goes on, and would warn of them in some later test.
        try:
            await real_start(self)
        except Exception:
            await stop_quietly(self)
            raise

    monkeypatch.setattr(DubanApp, "start", start_or_clean_up)
    result = CliRunner().invoke(cli, ["run"])
    assert result.exit_code == 1, result.output
    readable.extra["the terminal"] = result.output + result.stderr
    if telegram == "rejecting the token":  # PTB's own words quote the token
        assert "InvalidToken: The token `***` was rejected" in result.stderr
    readable.add_database(settings.database_url)
    readable.assert_clean()


async def stop_quietly(app: DubanApp) -> None:
    """Stop an app whose start failed half way (PTB leaves the bot's HTTP clients open)."""
    for channel in app.channels:
        if isinstance(channel, TelegramChannel):
            await channel.bot.shutdown()
    try:
        await app.stop()
    except Exception:
        logging.getLogger(__name__).debug("stopping a half-started app", exc_info=True)


# --- the control: without the redactor, the same paths leak --------------------------------


@pytest.mark.usefixtures("no_redaction")
async def test_wecom_unreachable_leaks_without_the_redactor(
    db_url: str, readable: Readable
) -> None:
    await wecom_unreachable(db_url, readable)
    leaks = "\n".join(readable.leaks())
    assert "WeCom corp secret in caplog" in leaks
    assert "WeCom corp secret in log file added after start" in leaks
    assert "WeCom corp secret in database" in leaks


@pytest.mark.usefixtures("no_redaction")
async def test_a_failing_group_robot_leaks_without_the_redactor(
    db_url: str, readable: Readable
) -> None:
    await group_robot_failing(db_url, readable)
    leaks = "\n".join(readable.leaks())
    assert "robot key in database" in leaks
    assert "robot key in what the admins were told" in leaks


# --- the redactor itself --------------------------------------------------------------------


@pytest.fixture
def redactor() -> Redactor:
    return Redactor.from_settings(
        hostile_settings(
            "postgresql://duban:" + DB_PASSWORD + "@db:5432/duban",
            telegram_bot_token=BOT_TOKEN,
            telegram_webhook_secret=WEBHOOK_SECRET,
            telegram_proxy_url="http://proxyuser:proxyPassMARK@proxy:3128",
            **wecom_values("https://qyapi.weixin.qq.com/cgi-bin/"),
        )
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (  # the token in a Bot API path, and in a file URL
            f"POST http://api/bot{BOT_TOKEN}/getMe and http://api/file/bot{BOT_TOKEN}/a.png",
            "POST http://api/bot***/getMe and http://api/file/bot***/a.png",
        ),
        (  # a real-looking token nobody configured
            "https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/getMe",
            "https://api.telegram.org/bot***/getMe",
        ),
        ("token half alone: " + TOKEN_HALF, "token half alone: ***"),
        (  # URL-encoded, upper and lower hex
            "cb=https%3A%2F%2Fx%2F%3Fkey%3D" + ROBOT_KEY + "%26a%3D1",
            "cb=https%3A%2F%2Fx%2F%3Fkey%3D***%26a%3D1",
        ),
        (
            "corpsecret%3d" + CORP_SECRET.lower(),  # an unknown secret, by shape
            "corpsecret%3d***",
        ),
        (  # requests' error text for the token fetch
            "HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: "
            "/cgi-bin/gettoken?corpid=ww&corpsecret=anyUnknownValue (Caused by NewConnectionError)",
            "HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: "
            "/cgi-bin/gettoken?corpid=ww&corpsecret=*** (Caused by NewConnectionError)",
        ),
        (
            "/cgi-bin/message/send?access_token=Tk_9-x.Y&debug=1",
            "/cgi-bin/message/send?access_token=***&debug=1",
        ),
        (  # the repr of an httpx request and of an error carrying it
            "<Request('POST', 'http://h/cgi-bin/webhook/send?key=unknownRobotKey')>",
            "<Request('POST', 'http://h/cgi-bin/webhook/send?key=***')>",
        ),
        (
            "HTTPStatusError(\"Server error '500' for url 'http://h/webhook/send?key=k1k2k3k4'"
            '\\nFor more information check: https://x")',
            "HTTPStatusError(\"Server error '500' for url 'http://h/webhook/send?key=***'"
            '\\nFor more information check: https://x")',
        ),
        (  # PTB's debug line for setWebhook, and a conninfo string
            f"parameters `{{'url': 'u', 'secret_token': '{WEBHOOK_SECRET}'}}` password=hunter2",
            "parameters `{'url': 'u', 'secret_token': '***'}` password=***",
        ),
        (
            "postgresql+psycopg://duban:other-pass@db/duban and http://proxyuser:proxyPassMARK@p",
            "postgresql+psycopg://duban:***@db/duban and http://proxyuser:***@p",
        ),
        ("the AES key " + AES_KEY + ".", "the AES key ***."),
        (  # ordinary text stays as it was
            'FATAL: password authentication failed for user "duban" at 12:30:45, key 9',
            'FATAL: password authentication failed for user "duban" at 12:30:45, key 9',
        ),
    ],
)
def test_redactor_on_tricky_text(redactor: Redactor, text: str, expected: str) -> None:
    assert redactor(text) == expected


def test_a_secret_in_every_line_of_a_chained_traceback(
    redactor: Redactor, readable: Readable
) -> None:
    install_redaction(redactor)

    def fetch() -> None:
        raise ConnectionError(f"url: /gettoken?corpid=ww&corpsecret={CORP_SECRET}\n{AES_KEY}")

    try:
        try:
            fetch()
        except ConnectionError as exc:
            raise RuntimeError(f"sending failed ({DB_PASSWORD!r})") from exc
    except RuntimeError:
        logging.getLogger("wechatpy").exception("token %s failed", BOT_TOKEN)
    logging.getLogger("urllib3").debug("stack", stack_info=True)
    logging.getLogger("telegram").info("%d%% of %s", 50, f"/bot{BOT_TOKEN}/getMe")
    record, _stack, percent = readable.caplog.records
    assert record.exc_info is None and record.exc_text and MASK in record.exc_text
    assert percent.args == (50, "/bot***/getMe")  # the arguments masked, not flattened
    assert "The above exception was the direct cause" in readable.caplog.text
    assert "50% of /bot***/getMe" in readable.caplog.text
    readable.assert_clean()


def test_a_record_made_past_the_factory_is_redacted_by_the_handlers(
    readable: Readable,
) -> None:
    install_redaction(Redactor([CORP_SECRET]))
    record = logging.makeLogRecord(  # as a queue or socket listener rebuilds one
        {"name": "elsewhere", "levelno": logging.WARNING, "levelname": "WARNING"}
        | {"msg": "fetched with %s", "args": (CORP_SECRET,)}
    )
    for handler in logging.getLogger().handlers:
        handler.handle(record)
    assert readable.caplog.records[0].getMessage() == "fetched with ***"
    readable.assert_clean()


def test_a_record_without_secrets_is_left_alone(readable: Readable) -> None:
    install_redaction(Redactor([CORP_SECRET]))
    try:
        raise ValueError("nothing secret")
    except ValueError:
        logging.getLogger("bot.test").exception("item %d: %s", 9, "ok")
    (record,) = readable.caplog.records
    assert record.msg == "item %d: %s" and record.args == (9, "ok")
    assert record.exc_info is not None  # kept for whoever reads it


def test_installing_again_keeps_the_secrets_already_known(readable: Readable) -> None:
    install_redaction(Redactor([CORP_SECRET]))
    install_redaction(Redactor([ROBOT_KEY]))
    logging.getLogger("bot.test").warning("%s and %s", CORP_SECRET, ROBOT_KEY)
    assert readable.caplog.records[0].getMessage() == "*** and ***"
    assert redact(f"?key={ROBOT_KEY}") == "?key=***"  # by shape, without settings


def test_short_secrets_are_left_to_the_shapes() -> None:
    assert Redactor(["abc"])("abc abcdef") == "abc abcdef"
