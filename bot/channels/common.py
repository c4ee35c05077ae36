"""What the channels share: pacing sends per recipient, storing a burst of events in a few
transactions, and handling stored events in tracked tasks, each in its person's turn."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from bot.events import IncomingMessage
from bot.ordering import ChatLocks

if TYPE_CHECKING:
    from bot.chat import ChatCore
    from bot.inbox import Received


class Pacer:
    """At most `limit` messages per `window` seconds to one recipient: waits for a free slot.
    With `forget_over`, once it counts more recipients than that, it forgets those quiet for
    a window."""

    def __init__(self, limit: int, window: float, *, forget_over: int | None = None) -> None:
        self.limit = limit
        self.window = window
        self._forget_over = forget_over
        self._sent: dict[str, deque[float]] = {}
        self._locks = ChatLocks()

    async def wait(self, key: str) -> None:
        """Return when one more message to `key` stays within the limit (and count it)."""
        async with self._locks.hold(key):
            sent = self._sent.setdefault(key, deque())
            now = time.monotonic()
            while sent and now - sent[0] >= self.window:
                sent.popleft()
            if len(sent) >= self.limit:
                await asyncio.sleep(self.window - (now - sent[0]))
                sent.popleft()
            sent.append(time.monotonic())
            if self._forget_over is not None and len(self._sent) > self._forget_over:
                cutoff = time.monotonic() - self.window
                for quiet in [k for k, v in self._sent.items() if not v or v[-1] < cutoff]:
                    del self._sent[quiet]


class EventHandling:
    """For a channel that stores events before it answers for them: each event is stored in
    the inbox with those that came while the store before was in flight (`_store`), and
    handled by `core` in a tracked task (`_tasks`), in its person's turn, at most `workers` at
    once, and only once it is stored and new. A subclass calls `_init_handling` in its
    __init__."""

    core: ChatCore

    def _init_handling(self, logger: logging.Logger, what: str, workers: int) -> None:
        """`what` names one event in the log ("WeCom message")."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._users = ChatLocks()
        self._working = asyncio.Semaphore(workers)
        self._handling_log = logger
        self._handling_what = what
        self._to_store: list[tuple[Received, asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def _store(self, platform: str, received: Received) -> bool:
        """Store one event in the inbox, in one transaction with the events that came while the
        store before was in flight (a burst takes a few transactions, not one each); whether it
        is new. Raises what the store raised."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._to_store.append((received, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_stores(platform))
        return await done

    async def _flush_stores(self, platform: str) -> None:
        while self._to_store:
            batch, self._to_store = self._to_store, []
            try:
                new = await self.core.store(platform, [received for received, _ in batch])
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            seen: set[str] = set()
            for (received, done), fresh in zip(batch, new, strict=True):
                # an event delivered twice in one batch is new once
                if not done.done():
                    done.set_result(fresh and received.update_key not in seen)
                seen.add(received.update_key)

    async def _hand_over(
        self,
        platform: str,
        to_event: Callable[[str], IncomingMessage | None],
        refused: type[Exception],
        said: str,
    ) -> None:
        """Handle what the inbox holds unhandled, in order (payloads `to_event` refuses or
        finds nothing in are skipped); when there was any, log `said` % how many."""
        entries = await asyncio.to_thread(self.core.pending, platform)
        for entry in entries:
            try:
                event = to_event(entry.payload)
            except refused:
                event = None
            if event is not None:
                self._spawn(event)
        if entries:
            self._handling_log.info(said, len(entries))

    def _spawn(self, event: IncomingMessage, stored: asyncio.Future[bool] | None = None) -> None:
        """Handle an event in a tracked task, once it is stored (per person in order)."""
        task = asyncio.create_task(self._handle(event, stored))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, event: IncomingMessage, stored: asyncio.Future[bool] | None) -> None:
        """Handle an event in its person's turn, once it is stored (and new)."""
        async with self._users.hold(event.chat_id):
            if stored is not None and not await stored:
                return  # a redelivery, or it could not be stored
            async with self._working:
                try:
                    await self.core.handle(event)
                except Exception:
                    self._handling_log.exception("handling a %s failed", self._handling_what)
