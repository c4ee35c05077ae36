"""A running Duban on a fake Telegram server, with a transcript-style API for dialog tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from bot.app import DubanApp
from bot.clock import FakeClock
from bot.events import IncomingMessage
from bot.importer.parse import parse_plan_file
from bot.models import Assignment, AssignmentRole, Report, Role
from bot.services import audit, contacts, plans
from bot.settings import Settings
from tests.fakes import FakeTelegram
from tests.fakes.telegram_api import SentCall

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "jiangmen-edu-2023-workpoints.txt"
SHANGHAI = ZoneInfo("Asia/Shanghai")

# The cast of the dialogs: Telegram ids.
ZHANG = 1001  # official, items 9 and 10
LI = 1002  # official, item 22 only
WANG = 2001  # leader
ZHAO = 3001  # admin
STRANGER = 9999  # not a contact


def seed(engine: Engine) -> dict[str, str]:
    """Import the sample plan and register the cast; returns invite codes by name."""
    parsed = parse_plan_file(SAMPLE)
    with Session(engine, expire_on_commit=False) as session:
        plan = plans.import_plan(session, parsed, source_file=SAMPLE.name, actor="cli").plan
        cast = [
            ("张三", "基础教育科", Role.official, ZHANG, "zhangsan"),
            ("李四", "教师发展科", Role.official, LI, "lisi"),
            ("王局", "局领导", Role.leader, WANG, "wangju"),
            ("赵主任", "办公室", Role.admin, ZHAO, "zhaozhuren"),
            ("陈五", "计财科", Role.official, None, None),
        ]
        people = {}
        for name, unit, role, tg, wecom in cast:
            people[name] = contacts.add_contact(
                session,
                name=name,
                unit=unit,
                role=role,
                accounts={
                    **({"telegram": str(tg)} if tg is not None else {}),
                    **({"wecom": wecom} if wecom is not None else {}),
                },
                actor=audit.CLI_ACTOR,
            )
        for number, name in [(9, "张三"), (10, "张三"), (22, "李四"), (8, "陈五")]:
            item = plans.find_item(session, plan, str(number))
            session.add(
                Assignment(
                    item_id=item.id or 0, contact_id=people[name].id or 0, role=AssignmentRole.lead
                )
            )
        code, _ = contacts.create_invite(
            session,
            people["陈五"],
            valid_days=7,
            actor="cli",
            now=datetime(2023, 6, 1, 2, tzinfo=ZoneInfo("UTC")),
        )
        session.commit()
    return {"陈五": code}


class Dialog:
    """Talk to the running bot as a person would, and read what it answered."""

    def __init__(
        self, app: DubanApp, server: FakeTelegram, clock: FakeClock, codes: dict[str, str]
    ):
        self.app = app
        self.server = server
        self.clock = clock
        self.codes = codes
        self.engine = app.engine
        self._handled: set[str] = set()
        app.core.observers.append(self._observe)

    def _observe(self, event: IncomingMessage) -> None:
        self._handled.add(event.update_id)

    async def _settle(self, update_id: int, chat_id: int, before: int) -> list[SentCall]:
        for _ in range(1000):
            if str(update_id) in self._handled:
                break
            await asyncio.sleep(0.005)
        else:
            raise TimeoutError(f"update {update_id} was not handled")
        await asyncio.sleep(0)  # let notices go out
        return self.server.messages_to(chat_id)[before:]

    async def say(self, user: int, text: str, *, reply_to: int | None = None) -> list[SentCall]:
        """The user sends text; returns the bot's messages to them in answer."""
        before = len(self.server.messages_to(user))
        update_id = self.server.user_says(user, text, reply_to_message_id=reply_to)
        return await self._settle(update_id, user, before)

    async def says_one(self, user: int, text: str, **kw: Any) -> str:
        """The user sends text and the bot answers with exactly one message; returns its text."""
        answers = await self.say(user, text, **kw)
        assert len(answers) == 1, [a.text for a in answers]
        return answers[0].plain_text

    async def click(self, user: int, message_id: int, data: str) -> list[SentCall]:
        """The user clicks a button on one of the bot's messages."""
        before = len(self.server.messages_to(user))
        update_id = self.server.user_clicks(user, message_id, data)
        return await self._settle(update_id, user, before)

    def reports(self, **where: Any) -> list[Report]:
        """Report rows, optionally filtered by column values."""
        with Session(self.engine) as session:
            query = select(Report)
            for name, value in where.items():
                query = query.where(getattr(Report, name) == value)
            return list(session.exec(query.order_by(Report.id)))  # type: ignore[arg-type]

    def count(self, table: type[Any]) -> int:
        """How many rows a table holds."""
        with Session(self.engine) as session:
            return session.exec(select(func.count()).select_from(table)).one()

    def scalar(self, sql: str) -> Any:
        """One value from a raw query."""
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql)).scalar()


def settings_for(server: FakeTelegram, db_url: str, **extra: Any) -> Settings:
    """Settings that point Duban at the fake server and the test database."""
    values: dict[str, Any] = {
        "database_url": db_url,
        "telegram_bot_token": server.token,
        "telegram_api_base_url": f"{server.url}/bot",
        "web_host": "127.0.0.1",
        "web_port": 0,
        "telegram_poll_timeout": 1,
        "telegram_max_rate": 1000,
        "locale": "zh-CN",
    }
    values.update(extra)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@asynccontextmanager
async def running_bot(
    server: FakeTelegram, db_url: str, *, start: datetime | None = None, **extra: Any
) -> AsyncIterator[Dialog]:
    """Duban running against the fake server, seeded with the sample plan and the cast."""
    settings = settings_for(server, db_url, **extra)
    clock = FakeClock(start or datetime(2023, 6, 1, 10, 0, tzinfo=SHANGHAI))
    app = DubanApp(settings, clock=clock, run_scheduler=False)
    codes = seed(app.engine)
    await app.start()
    try:
        yield Dialog(app, server, clock, codes)
    finally:
        await app.stop()


__all__ = ["LI", "STRANGER", "WANG", "ZHANG", "ZHAO", "Dialog", "running_bot", "timedelta"]


# --- WeCom -----------------------------------------------------------------------------

WECOM_TOKEN = "duban-callback-token"
WECOM_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters


class WeComDialog:
    """Talk to Duban as WeCom would: encrypted callbacks in, app messages out at the fake."""

    def __init__(self, app: DubanApp, fake: Any, clock: FakeClock) -> None:
        from wechatpy.enterprise.crypto import WeChatCrypto

        self.app = app
        self.fake = fake
        self.clock = clock
        self.engine = app.engine
        self.crypto = WeChatCrypto(WECOM_TOKEN, WECOM_AES_KEY, fake.corp_id)
        self._handled: list[str] = []
        self._msg_ids = iter(range(7_000_000_000, 8_000_000_000))
        app.core.observers.append(lambda event: self._handled.append(event.update_id))

    @property
    def url(self) -> str:
        """The callback URL of the running bot."""
        return f"http://127.0.0.1:{self.app.web_port}/wecom/callback"

    def envelope(
        self, xml: str, *, nonce: str = "nonce123", timestamp: str | None = None
    ) -> tuple[dict[str, str], bytes]:
        """Encrypt a plain callback XML as WeCom does; returns (query params, body)."""
        import xmltodict

        timestamp = timestamp or str(int(time.time()))
        encrypted = self.crypto.encrypt_message(xml, nonce, timestamp)
        parsed = xmltodict.parse(encrypted)["xml"]
        params = {"msg_signature": parsed["MsgSignature"], "timestamp": timestamp, "nonce": nonce}
        return params, encrypted.encode("utf-8")

    def text_xml(self, user: str, text: str, msg_id: int | None = None) -> str:
        """A plain text-message callback."""
        msg_id = msg_id or next(self._msg_ids)
        return (
            f"<xml><ToUserName><![CDATA[{self.fake.corp_id}]]></ToUserName>"
            f"<FromUserName><![CDATA[{user}]]></FromUserName><CreateTime>{int(time.time())}</CreateTime>"
            f"<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{text}]]></Content>"
            f"<MsgId>{msg_id}</MsgId><AgentID>{self.fake.agent_id}</AgentID></xml>"
        )

    def event_xml(self, user: str, event: str, **fields: str) -> str:
        """A plain event callback (enter_agent, template_card_event, ...)."""
        extra = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items())
        return (
            f"<xml><ToUserName><![CDATA[{self.fake.corp_id}]]></ToUserName>"
            f"<FromUserName><![CDATA[{user}]]></FromUserName><CreateTime>{next(self._msg_ids)}</CreateTime>"
            f"<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{event}]]></Event>{extra}"
            f"<AgentID>{self.fake.agent_id}</AgentID></xml>"
        )

    async def post(self, xml: str) -> int:
        """POST an encrypted callback; returns the HTTP status."""
        import httpx

        params, body = self.envelope(xml)
        async with httpx.AsyncClient() as client:
            response = await client.post(self.url, params=params, content=body)
        return response.status_code

    async def handled(self, count: int) -> None:
        """Wait until `count` events have been handled in all."""
        for _ in range(2000):
            if len(self._handled) >= count:
                await asyncio.sleep(0)
                return
            await asyncio.sleep(0.005)
        raise TimeoutError(f"{len(self._handled)} of {count} events handled")

    async def say(self, user: str, text: str) -> list[Any]:
        """The user sends text in the app; returns the app messages sent back to them."""
        before = len(self.fake.messages_to(user))
        done = len(self._handled)
        assert await self.post(self.text_xml(user, text)) == 200
        await self.handled(done + 1)
        return list(self.fake.messages_to(user)[before:])

    async def says_one(self, user: str, text: str) -> str:
        """The user sends text and gets exactly one text answer; returns it."""
        answers = await self.say(user, text)
        assert len(answers) == 1, answers
        return str(answers[0].content)

    def reports(self) -> list[Report]:
        """Every report row."""
        with Session(self.engine) as session:
            return list(session.exec(select(Report).order_by(Report.id)))  # type: ignore[arg-type]


def wecom_settings(fake: Any, db_url: str, **extra: Any) -> Settings:
    """Settings for a WeCom-only Duban pointed at the fake WeCom API."""
    values: dict[str, Any] = {
        "database_url": db_url,
        "wecom_corp_id": fake.corp_id,
        "wecom_agent_id": fake.agent_id,
        "wecom_secret": fake.secret,
        "wecom_token": WECOM_TOKEN,
        "wecom_aes_key": WECOM_AES_KEY,
        "wecom_api_base_url": fake.api_base,
        "web_host": "127.0.0.1",
        "web_port": 0,
        "locale": "zh-CN",
    }
    values.update(extra)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@asynccontextmanager
async def running_wecom_bot(
    fake: Any, db_url: str, *, start: datetime | None = None, **extra: Any
) -> AsyncIterator[WeComDialog]:
    """Duban on WeCom only, seeded with the sample plan and the cast."""
    clock = FakeClock(start or datetime(2023, 6, 1, 10, 0, tzinfo=SHANGHAI))
    app = DubanApp(wecom_settings(fake, db_url, **extra), clock=clock, run_scheduler=False)
    seed(app.engine)
    await app.start()
    try:
        yield WeComDialog(app, fake, clock)
    finally:
        await app.stop()
