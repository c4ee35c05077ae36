"""The Feishu driver of the shared dialog suite: events down a fake long connection, a fake
Feishu server API out.

Each `running` starts its own `FakeFeishu` (stopped at the end) and a Duban with the Feishu
app and the leaders' group bot (its token and signing secret at the fake). People are
open_ids (`ACCOUNTS`); what they send is pushed as `im.message.receive_v1` events over the
websocket the official SDK keeps open, as Feishu does. Choices are card buttons
(`Said.choices` = (label, data)); a click is a `card.action.trigger` event carrying the
button's value. A redelivery is Feishu's: the same event payload in a new frame.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from bot.clock import FakeClock
from bot.inbox import Received
from bot.settings import Settings
from tests.channels.driver import CAST, STRANGER, WAIT_SECONDS, DriverBase, Said, plain, serving
from tests.fakes.feishu_api import FAST_CLIENT_CONFIG, FakeFeishu, FeishuMessage, Pushed

NAME = "feishu"


def open_id_of(name: str) -> str:
    """A stable open_id for a name, shaped as Feishu's."""
    return "ou_" + hashlib.md5(f"duban-test:{name}".encode()).hexdigest()


ACCOUNTS: dict[str, str] = {name: open_id_of(name) for name in [*CAST, STRANGER]}


def available() -> str | None:
    """Why the Feishu channel cannot run here (None: it can)."""
    try:
        import lark_oapi.ws.client  # noqa: F401

        import bot.channels.feishu  # noqa: F401
    except ImportError as exc:
        return f"the Feishu channel cannot be imported: {exc}"
    return None


def feishu_settings(fake: FakeFeishu, db_url: str, **extra: Any) -> Settings:
    """Settings for a Feishu-only Duban pointed at the fake (with its group bot)."""
    values: dict[str, Any] = {
        "database_url": db_url,
        "feishu_app_id": fake.app_id,
        "feishu_app_secret": fake.app_secret,
        "feishu_domain": fake.url,
        "feishu_group_webhook_token": fake.group_token,
        "feishu_group_secret": fake.group_secret,
        "web_host": "127.0.0.1",
        "web_port": 0,
        "locale": "zh-CN",
    }
    values.update(extra)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class FeishuDriver(DriverBase):
    """A running Duban on the fake Feishu, and the cast's hands on it."""

    platform = NAME
    accounts = ACCOUNTS
    events = "Feishu events"
    group_robot = True  # the leaders' group bot posts to the fake's webhook

    def __init__(self, fake: FakeFeishu, settings: Settings, clock: FakeClock) -> None:
        self.fake = fake
        super().__init__(settings, clock)
        self._last: dict[str, Pushed] = {}  # person -> their last event

    async def _start_app(self) -> None:
        """Start the app and wait for its long connection."""
        made = self.fake.connections_made
        await self.app.start()
        await asyncio.to_thread(self.fake.wait_connected, made + 1, WAIT_SECONDS)

    # --- events ---------------------------------------------------------------------------

    async def _send(self, person: str, push: Any, *args: Any) -> list[Said]:
        user = ACCOUNTS[person]
        before = len(self.fake.messages_to(user))
        pushed: Pushed = await asyncio.to_thread(push, user, *args)
        self._last[person] = pushed
        ack = await self.fake.await_ack(pushed.frame_id, WAIT_SECONDS)
        assert ack.code == 200, f"the event was acknowledged with {ack.code}"
        await self._wait_handled({pushed.message_id or pushed.event_id})
        return self._said(user, before)

    # --- the cast's hands ------------------------------------------------------------------

    def _said(self, user: str, before: int) -> list[Said]:
        return [_said(message) for message in self.fake.messages_to(user)[before:]]

    async def say(self, person: str, text: str) -> list[Said]:
        """The person sends text to the bot; returns the messages sent back to them."""
        return await self._send(person, self.fake.user_says, text)

    async def click(self, person: str, said: Said, data: str) -> list[Said]:
        """The person clicks the card's button with this data."""
        self._check_choice(said, data)
        assert isinstance(said.raw, FeishuMessage)
        return await self._send(person, self.fake.user_clicks, said.raw, data)

    async def redeliver(self, person: str) -> list[Said]:
        """Feishu pushes the person's last event again; returns what the bot sent in
        answer."""
        user = ACCOUNTS[person]
        before = len(self.fake.messages_to(user))
        pushed = await asyncio.to_thread(self.fake.redeliver, self._last[person])
        ack = await self.fake.await_ack(pushed.frame_id, WAIT_SECONDS)
        assert ack.code == 200, f"the redelivery was acknowledged with {ack.code}"
        await self._wait_quiet()
        return self._said(user, before)

    def received(self, person: str, text: str) -> Received:
        """A text message as the channel stores it: the event's JSON."""
        user = ACCOUNTS[person]
        _, message_id, payload = self.fake.message_event(user, "text", {"text": text})
        return Received(message_id, user, json.dumps(payload, ensure_ascii=False))

    def group_messages(self) -> list[str]:
        """The markdown the group bot posted, oldest first."""
        return [message.text for message in self.fake.group_messages]

    def sent_to(self, person: str) -> list[Said]:
        """Every message sent to the person, oldest first (optional)."""
        return self._said(ACCOUNTS[person], 0)


def _said(message: FeishuMessage) -> Said:
    text = message.text or ""
    if message.markdown:
        text = plain(text)
    return Said(text=text, choices=list(message.buttons), raw=message)


@asynccontextmanager
async def running(db_url: str, *, start: datetime, **settings: Any) -> AsyncIterator[FeishuDriver]:
    """Duban on its own fake Feishu with the group bot, the cast seeded with open_ids."""
    with FakeFeishu(client_config=FAST_CLIENT_CONFIG) as fake:
        driver = FeishuDriver(fake, feishu_settings(fake, db_url, **settings), FakeClock(start))
        async with serving(driver, fake):
            yield driver
