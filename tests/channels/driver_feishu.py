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
import re
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager, suppress
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from bot import inbox
from bot.app import DubanApp
from bot.clock import FakeClock
from bot.events import IncomingMessage
from bot.inbox import Received
from bot.settings import Settings
from tests.channels.driver import CAST, STRANGER, Said, seed_cast
from tests.fakes.feishu_api import FAST_CLIENT_CONFIG, FakeFeishu, FeishuMessage, Pushed

NAME = "feishu"


def open_id_of(name: str) -> str:
    """A stable open_id for a name, shaped as Feishu's."""
    return "ou_" + hashlib.md5(f"duban-test:{name}".encode()).hexdigest()


ACCOUNTS: dict[str, str] = {name: open_id_of(name) for name in [*CAST, STRANGER]}

WAIT_SECONDS = 10.0  # the longest the driver waits for the app to handle something


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


class FeishuDriver:
    """A running Duban on the fake Feishu, and the cast's hands on it."""

    platform = NAME
    group_robot = True  # the leaders' group bot posts to the fake's webhook

    def __init__(self, fake: FakeFeishu, settings: Settings, clock: FakeClock) -> None:
        self.fake = fake
        self.settings = settings
        self.clock = clock
        self.codes: dict[str, str] = {}
        self.app = self._new_app()
        self._handled: set[str] = set()
        self._changed = asyncio.Event()
        self._last: dict[str, Pushed] = {}  # person -> their last event

    # --- the app --------------------------------------------------------------------------

    def _new_app(self) -> DubanApp:
        return DubanApp(self.settings, clock=self.clock, run_scheduler=False)

    def _observe(self, event: IncomingMessage) -> None:
        self._handled.add(event.update_id)
        self._changed.set()

    async def start(self) -> None:
        """Start the app, wait for its long connection and until what the inbox held
        unhandled has been handled."""
        self.app.core.observers.append(self._observe)
        waiting = {entry.update_key for entry in inbox.pending(self.app.engine, NAME)}
        made = self.fake.connections_made
        await self.app.start()
        await asyncio.to_thread(self.fake.wait_connected, made + 1, WAIT_SECONDS)
        await self._wait_handled(waiting)

    async def restart(self) -> None:
        """Stop the app, start a new one on the same settings and fake, and wait until it has
        handled what the inbox held unhandled."""
        await self.app.stop()
        self.app = self._new_app()
        await self.start()

    @property
    def engine(self) -> Engine:
        """The app's database."""
        return self.app.engine

    # --- waiting --------------------------------------------------------------------------

    async def _wait_handled(self, update_ids: Iterable[str]) -> None:
        """Wait until the app has handled these events (its observers saw them)."""
        wanted = set(update_ids)
        deadline = time.monotonic() + WAIT_SECONDS
        while not wanted <= self._handled:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                missing = sorted(wanted - self._handled)
                raise TimeoutError(f"Feishu events {missing} were not handled")
            self._changed.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))
        await asyncio.sleep(0)  # let notices kicked by the handler go out

    async def _wait_quiet(self) -> None:
        """Wait until no channel has an event in hand."""
        deadline = time.monotonic() + WAIT_SECONDS
        while any(getattr(channel, "_tasks", None) for channel in self.app.channels):
            if time.monotonic() > deadline:
                raise TimeoutError("Feishu events still in hand")
            await asyncio.sleep(0.005)
        await asyncio.sleep(0)

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

    def account(self, person: str) -> str:
        """The open_id of a cast member (also of STRANGER)."""
        return ACCOUNTS[person]

    def _said(self, user: str, before: int) -> list[Said]:
        return [_said(message) for message in self.fake.messages_to(user)[before:]]

    async def say(self, person: str, text: str) -> list[Said]:
        """The person sends text to the bot; returns the messages sent back to them."""
        return await self._send(person, self.fake.user_says, text)

    async def click(self, person: str, said: Said, data: str) -> list[Said]:
        """The person clicks the card's button with this data."""
        if data not in [d for _, d in said.choices]:
            raise ValueError(f"{data!r} is not a choice of that message: {said.choices!r}")
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


_MARKDOWN = [
    (re.compile(r"^#{1,6}\s*", re.MULTILINE), ""),
    (re.compile(r"^>\s?", re.MULTILINE), ""),
    (re.compile(r"\*\*(.*?)\*\*", re.DOTALL), r"\1"),
    (re.compile(r"\[([^\]]*)\]\([^)]*\)"), r"\1"),
    (re.compile(r"<font[^>]*>(.*?)</font>", re.DOTALL), r"\1"),
]


def plain(markdown: str) -> str:
    """What a reader sees of card markdown, near enough: the markup removed."""
    for pattern, replacement in _MARKDOWN:
        markdown = pattern.sub(replacement, markdown)
    return markdown


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
        failed = False
        try:
            driver.codes = seed_cast(driver.app.engine, NAME, ACCOUNTS)
            await driver.start()
            try:
                yield driver
            finally:
                await driver.app.stop()
        except BaseException:
            failed = True
            raise
        finally:
            if not failed:
                assert fake.internal_errors == [], fake.internal_errors
