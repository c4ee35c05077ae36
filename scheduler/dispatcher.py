"""The dispatcher: delivers due outbox rows through each contact's channel, at least once.

A row is claimed by pushing its next attempt time past a lease before it is sent, so a
second dispatcher (or a restart during the lease) does not send it at the same time; on
PostgreSQL the claim uses FOR UPDATE SKIP LOCKED. A failed send is retried with exponential
backoff, then marked failed. Rows without a contact go to the leaders' group robot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.channels.registry import markup_of
from bot.chat import chat_address
from bot.clock import Clock, system_clock
from bot.events import Messenger, Outgoing, SentMessage, deliver
from bot.i18n import Translator
from bot.models import Contact, Outbox, Role
from bot.outbox import REPLY, Message, enqueue, outgoing_of
from bot.redaction import Redactor
from bot.services.accounts import accounts_of
from bot.services.links import insert_links, link_row
from scheduler.calendar import WorkCalendar

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)
BASE_BACKOFF = timedelta(seconds=30)
MAX_ATTEMPTS = 6
KINDS = ("ask", "deadline", "overdue", "escalation", "followup", "digest")
# Scheduled kinds go out only in working time; notices and replies to a person's own action
# go at once.
SCHEDULED = frozenset({"ask", "deadline", "overdue", "escalation", "followup", "digest", "group"})
GROUP = "group"


class GroupSender(Protocol):
    """Where rows for the leaders' group go (the group robots)."""

    async def send_markdown(self, text: str) -> int:
        """Send markdown; returns the number of messages."""
        ...


@dataclass(frozen=True)
class Claimed:
    """An outbox row claimed for sending, with where it goes and what it says."""

    outbox_id: int
    platform: str
    chat_id: str
    text: str
    markup: str
    photo: str | None
    contact_id: int | None
    item_id: int | None
    reply: dict[str, Any] | None = None  # a reply's payload (buttons, file ...), else None


class Dispatcher:
    """Sends due outbox rows; safe to run from several processes on PostgreSQL."""

    def __init__(
        self,
        engine: Engine,
        messengers: dict[str, Messenger],
        *,
        t: Translator,
        clock: Clock = system_clock,
        group: GroupSender | None = None,
        calendar: WorkCalendar | None = None,
        batch: int = 100,
        concurrency: int = 8,
        lease: timedelta = LEASE,
        redact: Callable[[str], str] | None = None,
        busy: set[str] | None = None,
    ) -> None:
        self.engine = engine
        self.messengers = messengers
        self.t = t
        self.clock = clock
        self.group = group
        self.batch = batch
        self.concurrency = concurrency
        self.lease = lease
        self.calendar = calendar
        # error text is stored and shown to admins: never with a secret in it
        self.redact = redact or Redactor()
        self.lock = asyncio.Lock()
        # Replies the chat core of this process is sending right now: not claimed here.
        self.busy: set[str] = busy if busy is not None else set()
        self.stopping = False  # set on shutdown: finish the batch in hand, claim no more

    def _content(self, payload: dict[str, Any], platform: str) -> tuple[str, str]:
        """The text to send and its markup, for the channel it goes out on."""
        markup = "markdown" if platform == GROUP else markup_of(platform)
        if markup in payload:
            return str(payload[markup]), markup
        if "text" in payload:
            return str(payload["text"]), "text"
        params = {
            # a parameter that is itself a catalog message ({"key": ..., "params": {...}}) is
            # said in this locale
            name: self.t(value["key"], **value.get("params", {}))
            if isinstance(value, dict) and "key" in value
            else value
            for name, value in payload.get("params", {}).items()
        }
        return self.t(str(payload["message"]), **params), "text"

    def _claim(self, now: datetime) -> list[Claimed]:
        claimed: list[Claimed] = []
        with Session(self.engine) as session:
            query = (
                select(Outbox, Contact)
                .outerjoin(Contact, col(Contact.id) == Outbox.contact_id)
                .where(
                    Outbox.state == "pending",
                    col(Outbox.due_at) <= now,
                    or_(col(Outbox.next_attempt_at).is_(None), col(Outbox.next_attempt_at) <= now),
                )
                .order_by(col(Outbox.due_at), col(Outbox.id))
                .limit(self.batch)
            )
            if self.engine.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True, of=Outbox)
            working = self.calendar is None or self.calendar.is_working_time(now)
            rows = session.exec(query).all()
            held = accounts_of(session, {c.id for _, c in rows if c is not None and c.id})
            for row, contact in rows:
                if row.expires_at is not None and row.expires_at <= now:
                    row.state = "dropped"  # it no longer means anything: never a stale burst
                    continue
                if row.kind in SCHEDULED and not working:
                    continue  # waits for the next working slot
                if row.kind == REPLY:
                    # an answer the core could not send (a crash, a failed send): same chat
                    if row.dedupe_key in self.busy or row.channel not in self.messengers:
                        continue
                    row.next_attempt_at = now + self.lease
                    assert row.id is not None and row.channel is not None
                    claimed.append(
                        Claimed(
                            row.id,
                            row.channel,
                            str(row.payload.get("chat_id", "")),
                            str(row.payload.get("text", "")),
                            str(row.payload.get("markup", "text")),
                            None,
                            row.contact_id,
                            row.item_id,
                            reply=row.payload,
                        )
                    )
                    continue
                if contact is None:
                    if self.group is None:
                        continue  # no group robot configured: stays pending
                    address: tuple[str, str] | None = (GROUP, GROUP)
                else:
                    address = chat_address(contact, held.get(contact.id or 0, {}), self.messengers)
                if address is None:
                    continue  # not reachable on a running channel: stays pending
                row.next_attempt_at = now + self.lease
                row.channel = address[0]
                assert row.id is not None
                text, markup = self._content(row.payload, address[0])
                photo = row.payload.get("photo")
                if photo and not Path(photo).is_file():
                    photo = None  # the chart was cleaned away: the text still goes
                claimed.append(
                    Claimed(
                        row.id,
                        address[0],
                        address[1],
                        text,
                        markup,
                        photo,
                        contact.id if contact else None,
                        row.item_id,
                    )
                )
            session.commit()
        return claimed

    def _finish(self, results: list[tuple[Claimed, SentMessage | None, str | None]]) -> None:
        """Record a batch's outcomes in one transaction: sent (with the message link that ties
        a reply back to its item), or an attempt that failed."""
        now = self.clock()
        links: list[dict[str, Any]] = []
        with Session(self.engine) as session:
            rows = {
                row.id: row
                for row in session.exec(
                    select(Outbox).where(col(Outbox.id).in_([c.outbox_id for c, _, _ in results]))
                )
            }
            for claimed, sent, error in results:
                row = rows[claimed.outbox_id]
                if error is None:
                    row.state = "sent"
                    row.sent_at = now
                    row.platform_message_id = sent.message_id if sent else None
                    row.last_error = None
                    if sent is not None and claimed.item_id is not None:
                        links.append(
                            link_row(
                                sent,
                                item_id=claimed.item_id,
                                contact_id=claimed.contact_id,
                                now=now,
                                outbox_id=claimed.outbox_id,
                            )
                        )
                else:
                    row.attempts += 1
                    row.last_error = error[:500]
                    if row.attempts >= MAX_ATTEMPTS:
                        row.state = "failed"
                        self._tell_admins(session, row, now)
                    else:
                        row.next_attempt_at = now + BASE_BACKOFF * (2 ** (row.attempts - 1))
            insert_links(session, links)  # insert-or-ignore: never undoes the batch
            session.commit()

    def _tell_admins(self, session: Session, row: Outbox, now: datetime) -> None:
        """Tell every admin, once, that a message could not be delivered."""
        if row.kind == "failure":
            return  # a failure notice that fails is not announced again
        person = session.get(Contact, row.contact_id) if row.contact_id else None
        admins = session.exec(
            select(Contact).where(Contact.role == Role.admin, col(Contact.active).is_(True))
        )
        params = {
            "kind": self.t(f"kind.{row.kind}") if row.kind in KINDS else row.kind,
            "name": person.name if person else "-",
            "error": (row.last_error or "")[:200],
        }
        notices = [
            Message(
                # the failed row's own key: unique and never reused, unlike its id
                key=f"failure:{row.dedupe_key}:{admin.id}",
                kind="failure",
                contact_id=admin.id,
                payload={"message": "outbox.failed", "params": params},
                due_at=now,
            )
            for admin in admins
        ]
        enqueue(session, notices, now=now)

    async def _send(self, claimed: Claimed) -> SentMessage | None:
        if claimed.platform == GROUP:
            assert self.group is not None
            await self.group.send_markdown(claimed.text)
            return None
        messenger = self.messengers[claimed.platform]
        if claimed.reply is not None:
            return await deliver(
                messenger,
                outgoing_of(claimed.reply, item_id=claimed.item_id, contact_id=claimed.contact_id),
            )
        out = Outgoing(
            chat_id=claimed.chat_id,
            text=claimed.text,
            markup=claimed.markup,
            link_item_id=claimed.item_id,
            link_contact_id=claimed.contact_id,
        )
        sent = await deliver(messenger, out)
        if claimed.photo:
            await messenger.send_photo(claimed.chat_id, Path(claimed.photo))
        return sent

    async def _send_chat(
        self, rows: list[Claimed], gate: asyncio.Semaphore
    ) -> list[tuple[Claimed, SentMessage | None, str | None]]:
        """One chat's rows, in order (a person never gets them shuffled)."""
        results: list[tuple[Claimed, SentMessage | None, str | None]] = []
        async with gate:
            for claimed in rows:
                try:
                    sent = await self._send(claimed)
                except Exception as exc:
                    log.warning("outbox %s: send failed: %s", claimed.outbox_id, exc)
                    results.append((claimed, None, self.redact(repr(exc))))
                    continue
                results.append((claimed, sent, None))
        return results

    async def deliver_due(self) -> int:
        """Send every due row, chats side by side and each chat in order; returns how many."""
        async with self.lock:
            sent = 0
            while True:
                batch = await asyncio.to_thread(self._claim, self.clock())
                if not batch:
                    return sent
                chats: dict[tuple[str, str], list[Claimed]] = {}
                for claimed in batch:
                    chats.setdefault((claimed.platform, claimed.chat_id), []).append(claimed)
                gate = asyncio.Semaphore(self.concurrency)
                done = await asyncio.gather(*(self._send_chat(r, gate) for r in chats.values()))
                results = [result for chat in done for result in chat]
                await asyncio.to_thread(self._finish, results)
                sent += sum(1 for _, _, error in results if error is None)
                if len(batch) < self.batch or self.stopping:
                    return sent
