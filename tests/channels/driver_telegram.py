"""The Telegram driver of the shared dialog suite: Duban long-polls a fake Bot API server.

One `FakeTelegram` serves every `running` of the process (started on first use, reset for each
run, stopped when the process exits: starting and stopping one costs more than most dialogs).
People are private chats whose ids are the numeric account ids of `ACCOUNTS`; choices are
inline keyboards (`Said.choices` = (button text, callback_data)) and a click is a
callback_query. Telegram has no group robot here: `group_messages()` is always [].

A redelivery is what Telegram does when the offset that confirms an update never reached it
(the process stopped between storing the update and the next getUpdates): the driver stops
the app, queues the same update (same update_id) at the fake again and starts a new app,
whose first getUpdates (offset 0) hands it over again. A restart is a clean stop and a new
`DubanApp` on the same settings, database and fake.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import httpx

from bot.clock import FakeClock
from bot.inbox import Received
from bot.settings import Settings
from tests.channels.driver import STRANGER, WAIT_SECONDS, ChatDriver, DriverBase, Said, serving
from tests.fakes.telegram_api import FakeTelegram, SentCall, _command_entities
from tests.harness import settings_for

NAME = "telegram"

ACCOUNTS: dict[str, str] = {
    "张三": "1001",
    "李四": "1002",
    "王局": "2001",
    "赵主任": "3001",
    "陈五": "4001",
    STRANGER: "9999",
}

FIRST_STORED_UPDATE = 800_000_000  # update ids of events made by received(): never the fake's
FIRST_STORED_MESSAGE = 900_000


def available() -> str | None:
    """Why the Telegram channel cannot run here (None: it can)."""
    try:
        import telegram  # noqa: F401

        import bot.channels.telegram  # noqa: F401
    except ImportError as exc:
        return f"the Telegram channel cannot be imported: {exc}"
    return None


class TelegramDriver(DriverBase):
    """A running Duban on the fake Bot API, and the cast's hands on it."""

    platform = NAME
    accounts = ACCOUNTS
    events = "Telegram updates"
    group_robot = False  # no leaders' group robot on Telegram

    def __init__(self, server: FakeTelegram, settings: Settings, clock: FakeClock) -> None:
        self.server = server
        super().__init__(settings, clock)
        self._last: dict[str, int] = {}  # person -> update_id of their last event
        self._update_ids = itertools.count(FIRST_STORED_UPDATE)
        self._message_ids = itertools.count(FIRST_STORED_MESSAGE)

    # --- the cast's hands ------------------------------------------------------------------

    def _chat(self, person: str) -> int:
        return int(ACCOUNTS[person])

    def _said(self, chat: int, before: int) -> list[Said]:
        return [_said(call) for call in self.server.messages_to(chat)[before:]]

    async def say(self, person: str, text: str) -> list[Said]:
        """The person sends text in their private chat; returns the bot's answer."""
        chat = self._chat(person)
        before = len(self.server.messages_to(chat))
        update_id = self.server.user_says(chat, text, first_name=person)
        self._last[person] = update_id
        await self._wait_handled({str(update_id)})
        return self._said(chat, before)

    async def click(self, person: str, said: Said, data: str) -> list[Said]:
        """The person clicks the inline button with this callback_data."""
        self._check_choice(said, data)
        chat = self._chat(person)
        assert isinstance(said.raw, SentCall) and said.raw.message_id is not None
        before = len(self.server.messages_to(chat))
        update_id = self.server.user_clicks(chat, said.raw.message_id, data)
        self._last[person] = update_id
        await self._wait_handled({str(update_id)})
        return self._said(chat, before)

    async def redeliver(self, person: str) -> list[Said]:
        """Telegram hands the person's last update over again (same update_id) to a new
        poller; returns what the bot sent in answer."""
        update_id = self._last[person]
        update = next(u for u in reversed(self.server.pushed) if u["update_id"] == update_id)
        chat = self._chat(person)
        before = len(self.server.messages_to(chat))
        await self._stop()
        # The stopped app's long poll is still open at the fake, with the offset that
        # confirmed the update: a new getUpdates ends it (409), or it would take the update
        # again and drop it unseen.
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"{self.server.url}/bot{self.server.token}/getUpdates", json={"timeout": 0}
            )
        assert response.status_code == 200, response.text
        delivered = self.server.stats["updates_delivered"]
        self.server.push_raw_update(update)
        self.app = self._new_app()
        await self._start()
        # The poller stores a batch before its next getUpdates confirms it (and drops it from
        # the fake's queue): once the queue is empty the update was stored, or found stored.
        deadline = time.monotonic() + WAIT_SECONDS
        while self.server.pending_updates:
            if time.monotonic() > deadline:
                raise TimeoutError("the redelivered update was not fetched")
            await asyncio.sleep(0.005)
        assert self.server.stats["updates_delivered"] > delivered, "the new poller got it"
        await self._wait_quiet()
        return self._said(chat, before)

    def received(self, person: str, text: str) -> Received:
        """A private text message as the channel stores it: the raw update's JSON."""
        chat = self._chat(person)
        user = {"id": chat, "is_bot": False, "first_name": person, "language_code": "zh-hans"}
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "from": user,
            "chat": {"id": chat, "type": "private", "first_name": person},
            "date": int(time.time()),
            "text": text,
        }
        entities = _command_entities(text)
        if entities:
            message["entities"] = entities
        data = {"update_id": next(self._update_ids), "message": message}
        return Received(
            update_key=str(data["update_id"]),
            chat_key=str(chat),
            payload=json.dumps(data, ensure_ascii=False, separators=(",", ":")),
        )

    def group_messages(self) -> list[str]:
        """No group robot on Telegram."""
        return []

    def sent_to(self, person: str) -> list[Said]:
        """Everything the bot sent to the person's private chat, oldest first (optional)."""
        return self._said(self._chat(person), 0)


def _said(call: SentCall) -> Said:
    text = call.plain_text if call.plain_text is not None else (call.text or "")
    choices = [(label, data) for label, data in call.buttons if data is not None]
    return Said(text=text, choices=choices, raw=call)


def _conforms(driver: TelegramDriver) -> ChatDriver:
    """(For mypy: the driver meets the suite's contract.)"""
    return driver


_shared: FakeTelegram | None = None


def _fake() -> FakeTelegram:
    """The process's fake Bot API, reset: started on first use, stopped at exit."""
    global _shared
    if _shared is None:
        _shared = FakeTelegram().start()
        atexit.register(_shared.stop)
    _shared.reset()
    _shared.clear_faults()
    return _shared


@asynccontextmanager
async def running(
    db_url: str, *, start: datetime, **settings: Any
) -> AsyncIterator[TelegramDriver]:
    """Duban polling the fake Bot API, the cast seeded with Telegram accounts."""
    server = _fake()
    driver = TelegramDriver(server, settings_for(server, db_url, **settings), FakeClock(start))
    async with serving(driver, server):
        yield driver
