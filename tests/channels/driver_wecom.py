"""The WeCom driver of the shared dialog suite: encrypted callbacks in, a fake WeCom API out.

One `FakeWeCom` serves every `running` of the process (started on first use, reset for each run,
stopped when the process exits); each run is a Duban with the WeCom app and the leaders' group
robot (its key at the fake). People are WeCom userids (`ACCOUNTS`);
what they send is posted to the app's `/wecom/callback` encrypted with the real wechatpy
crypto, as WeCom does. Choices are template cards (`Said.choices` = (button text, key)); a
click is a `template_card_event` callback with the button's key as EventKey. A redelivery is
WeCom's retry: the same plain XML (same MsgId, or the same card event) posted again.
"""

from __future__ import annotations

import atexit
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import httpx

from bot.clock import FakeClock
from bot.inbox import Received
from bot.settings import Settings
from tests.channels.driver import (
    STRANGER,
    WAIT_SECONDS,
    ChatDriver,
    DriverBase,
    Said,
    plain,
    serving,
)
from tests.fakes.wecom_api import AppMessage, FakeWeCom
from tests.harness import WECOM_AES_KEY, WECOM_TOKEN, wecom_settings

NAME = "wecom"

ACCOUNTS: dict[str, str] = {
    "张三": "zhangsan",
    "李四": "lisi",
    "王局": "wangju",
    "赵主任": "zhaozhuren",
    "陈五": "chenwu",
    STRANGER: "passerby",
}

FIRST_MSG_ID = 7_000_000_000


def available() -> str | None:
    """Why the WeCom channel cannot run here (None: it can)."""
    try:
        import wechatpy.enterprise.crypto  # noqa: F401
        import xmltodict  # noqa: F401

        import bot.channels.wecom  # noqa: F401
    except ImportError as exc:
        return f"the WeCom channel cannot be imported: {exc}"
    return None


class WeComDriver(DriverBase):
    """A running Duban on the fake WeCom API, and the cast's hands on it."""

    platform = NAME
    accounts = ACCOUNTS
    events = "WeCom callbacks"
    group_robot = True  # the leaders' group robot posts to the fake's webhook/send

    def __init__(self, fake: FakeWeCom, settings: Settings, clock: FakeClock) -> None:
        from wechatpy.enterprise.crypto import WeChatCrypto

        self.fake = fake
        self.crypto = WeChatCrypto(WECOM_TOKEN, WECOM_AES_KEY, fake.corp_id)
        super().__init__(settings, clock)
        self._last: dict[str, str] = {}  # person -> the plain XML of their last callback
        self._ids = itertools.count(FIRST_MSG_ID)  # MsgIds, and CreateTimes of card events
        self._http = httpx.AsyncClient(timeout=WAIT_SECONDS)

    # --- callbacks ------------------------------------------------------------------------

    def _text_xml(self, user: str, text: str) -> str:
        return (
            f"<xml><ToUserName><![CDATA[{self.fake.corp_id}]]></ToUserName>"
            f"<FromUserName><![CDATA[{user}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime>"
            f"<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{text}]]></Content>"
            f"<MsgId>{next(self._ids)}</MsgId><AgentID>{self.fake.agent_id}</AgentID></xml>"
        )

    def _card_event_xml(self, user: str, key: str, task_id: str) -> str:
        return (
            f"<xml><ToUserName><![CDATA[{self.fake.corp_id}]]></ToUserName>"
            f"<FromUserName><![CDATA[{user}]]></FromUserName>"
            f"<CreateTime>{next(self._ids)}</CreateTime>"
            "<MsgType><![CDATA[event]]></MsgType>"
            "<Event><![CDATA[template_card_event]]></Event>"
            f"<EventKey><![CDATA[{key}]]></EventKey><TaskId><![CDATA[{task_id}]]></TaskId>"
            "<CardType><![CDATA[button_interaction]]></CardType>"
            f"<AgentID>{self.fake.agent_id}</AgentID></xml>"
        )

    async def _post(self, xml: str) -> None:
        """POST the callback encrypted as WeCom does; it must be taken (HTTP 200)."""
        import xmltodict

        timestamp, nonce = str(int(time.time())), f"n{next(self._ids)}"
        encrypted = self.crypto.encrypt_message(xml, nonce, timestamp)
        signature = xmltodict.parse(encrypted)["xml"]["MsgSignature"]
        response = await self._http.post(
            f"http://127.0.0.1:{self.app.web_port}/wecom/callback",
            params={"msg_signature": signature, "timestamp": timestamp, "nonce": nonce},
            content=encrypted.encode("utf-8"),
        )
        assert response.status_code == 200, f"the callback was answered {response.status_code}"

    @staticmethod
    def _update_id(xml: str) -> str:
        from bot.channels.wecom.channel import to_event

        event = to_event(xml)
        assert event is not None
        return event.update_id

    async def _send(self, person: str, xml: str) -> list[Said]:
        user = ACCOUNTS[person]
        before = len(self.fake.messages_to(user))
        self._last[person] = xml
        await self._post(xml)
        await self._wait_handled({self._update_id(xml)})
        return self._said(user, before)

    # --- the cast's hands ------------------------------------------------------------------

    def _said(self, user: str, before: int) -> list[Said]:
        return [_said(message) for message in self.fake.messages_to(user)[before:]]

    async def say(self, person: str, text: str) -> list[Said]:
        """The person sends text in the app; returns the app messages sent back to them."""
        return await self._send(person, self._text_xml(ACCOUNTS[person], text))

    async def click(self, person: str, said: Said, data: str) -> list[Said]:
        """The person clicks the card's button with this key."""
        self._check_choice(said, data)
        assert isinstance(said.raw, AppMessage) and said.raw.card is not None
        task_id = str(said.raw.card["task_id"])
        return await self._send(person, self._card_event_xml(ACCOUNTS[person], data, task_id))

    async def redeliver(self, person: str) -> list[Said]:
        """WeCom posts the person's last callback again; returns what the bot sent in
        answer."""
        user = ACCOUNTS[person]
        before = len(self.fake.messages_to(user))
        await self._post(self._last[person])  # stored (or found stored) before the 200
        await self._wait_quiet()
        return self._said(user, before)

    def received(self, person: str, text: str) -> Received:
        """A text message as the channel stores it: the decrypted callback XML."""
        xml = self._text_xml(ACCOUNTS[person], text)
        return Received(update_key=self._update_id(xml), chat_key=ACCOUNTS[person], payload=xml)

    def group_messages(self) -> list[str]:
        """The markdown the group robot posted, oldest first."""
        return [message.content or "" for message in self.fake.group_messages]

    def sent_to(self, person: str) -> list[Said]:
        """Every app message sent to the person, oldest first (optional)."""
        return self._said(ACCOUNTS[person], 0)


def _said(message: AppMessage) -> Said:
    text = message.content or ""
    if message.msgtype == "markdown":
        text = plain(text)
    return Said(text=text, choices=list(message.buttons), raw=message)


def _conforms(driver: WeComDriver) -> ChatDriver:
    """(For mypy: the driver meets the suite's contract.)"""
    return driver


_shared: FakeWeCom | None = None


def _fake() -> FakeWeCom:
    """The process's fake WeCom, reset: started on first use, stopped at exit."""
    global _shared
    if _shared is None:
        _shared = FakeWeCom().start()
        atexit.register(_shared.stop)
    _shared.reset(keep_tokens=False)
    _shared.clear_faults()
    return _shared


@asynccontextmanager
async def running(db_url: str, *, start: datetime, **settings: Any) -> AsyncIterator[WeComDriver]:
    """Duban on the fake WeCom with the group robot, the cast seeded with userids."""
    fake = _fake()
    values = {"wecom_group_webhook_key": fake.group_key, **settings}
    driver = WeComDriver(fake, wecom_settings(fake, db_url, **values), FakeClock(start))
    try:
        async with serving(driver, fake):
            yield driver
    finally:
        await driver._http.aclose()
