"""The Feishu (飞书) / Lark channel: a custom app's bot on the long connection.

Incoming: the official SDK's long connection (`longconn.py`, in a thread of its own) hands
each event frame to this channel on Duban's loop. The channel reads the event
(`events.py`), stores it in the inbox (with the events that came while the store before was in
flight, in one transaction) and only then lets the frame be acknowledged: what Feishu was
told Duban has survives a crash. A redelivered event is stored once and handled
once. Each person's events are handled in the order they arrived (their handling is queued
before the store, so a slow store cannot reorder them); events of different people at once,
a few at a time. On start, what the inbox holds unhandled is handed over first, in order. An
event that cannot be read is refused in one rate-limited log line and acknowledged with 400.

Outgoing: `api.py` (FeishuMessenger on the im/v1 API: text, markdown cards, buttons,
replies, files and pictures; FileFetcher through the message resources API).
No web routes: the long connection needs no public address.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from typing import Any

from bot.channels.common import EventHandling
from bot.channels.feishu.api import PLATFORM, FeishuApi, FeishuMessenger
from bot.channels.feishu.events import EventRefused, to_event
from bot.chat import ChatCore
from bot.inbox import Received
from bot.settings import Settings
from bot.web import RefusalLog

log = logging.getLogger(__name__)

WORKERS = 16  # events handled at once (as TELEGRAM_CONCURRENT_UPDATES)
TAKEN, REFUSED, FAILED, STOPPING = 200, 400, 500, 503


class FeishuChannel(EventHandling):
    """The long connection in and the messenger out (see the module docstring)."""

    platform = PLATFORM

    def __init__(
        self, settings: Settings, core: ChatCore, *, connect_wait: float | None = None
    ) -> None:
        if not settings.feishu_app_id or settings.feishu_app_secret is None:
            raise ValueError("Feishu settings missing: FEISHU_APP_ID, FEISHU_APP_SECRET")
        self.core = core
        self.app_id = settings.feishu_app_id
        self._secret = settings.feishu_app_secret.get_secret_value()
        self.domain = settings.feishu_domain.rstrip("/")
        self.api = FeishuApi(self.domain, self.app_id, self._secret)
        self.messenger = FeishuMessenger(self.api)
        self.connection: Any = None  # the LongConnection, once started
        self._connect_wait = connect_wait
        self._init_handling(log, "Feishu event", WORKERS)
        self._accepting = False  # until start() has handed over what was stored before
        self._refusals = RefusalLog(log, "Feishu event")

    async def start(self) -> None:
        """Hand over what was stored and not handled (in order), then connect."""
        await self._hand_over(
            PLATFORM, to_event, EventRefused, "Feishu: %d stored events handed over after a restart"
        )
        self._accepting = True
        # The SDK takes seconds to import: not on the event loop.
        module = await asyncio.to_thread(importlib.import_module, "bot.channels.feishu.longconn")
        options = {} if self._connect_wait is None else {"connect_wait": self._connect_wait}
        self.connection = module.LongConnection(
            self.app_id, self._secret, self.domain, self.accept, **options
        )
        await self.connection.start()

    async def stop(self) -> None:
        """Stop taking events (those in hand are acknowledged), finish the handling in
        flight, close the connections."""
        if self.connection is not None:
            await self.connection.stop()
        self._accepting = False
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.api.aclose()

    def routes(self) -> list[Any]:
        """None: the long connection needs no callback URL."""
        return []

    async def accept(self, payload: bytes) -> int:
        """One event frame's payload: read, queued for its person, stored; the code of its
        acknowledgement (200 taken, 400 refused, 500 not stored, 503 stopping)."""
        try:
            text = payload.decode("utf-8")
            event = to_event(text)
        except UnicodeDecodeError:
            self._refusals.refused(REFUSED, "payload is not UTF-8")
            return REFUSED
        except EventRefused as exc:
            self._refusals.refused(REFUSED, exc.reason)
            return REFUSED
        if event is None:
            return TAKEN  # nothing for Duban (a group chat, another event type)
        if not self._accepting:
            return STOPPING  # Feishu sends it again
        stored: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._spawn(event, stored)  # its turn is kept from now on
        received = Received(event.update_id, event.chat_id, text)
        try:
            stored.set_result(await self._store(PLATFORM, received))
        except Exception as exc:
            self._refusals.refused(FAILED, f"storing the event failed ({type(exc).__name__})")
            return FAILED
        finally:
            if not stored.done():  # failed or cancelled: its turn passes
                stored.set_result(False)
        return TAKEN
