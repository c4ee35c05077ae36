"""The chat core: deduplicate an update, find its sender, run its handler, deliver the replies.

A handler runs in one database transaction together with the processed-update row, so an
update has its effect once or not at all. Replies are sent after the commit; notices to other
people go through the outbox in the same transaction, so they are never lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

import sqlalchemy as sa
from sqlalchemy import bindparam
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from bot.clock import Clock, system_clock
from bot.events import (
    Button,
    EventKind,
    IncomingMessage,
    Messenger,
    Outgoing,
    SentMessage,
    deliver,
)
from bot.i18n import Translator, UserError
from bot.models import Contact, MessageLink, Plan, ProcessedUpdate, Role
from bot.router import Router
from bot.services import audit
from bot.services.items import ItemView, item_views
from bot.services.notices import OUTBOX_TOUCHED, queue_notice
from bot.services.plans import current_plan
from bot.services.progress import StatusRules
from bot.settings import Settings

log = logging.getLogger(__name__)

MAX_TEXT = 4000


_ACTIVE = select(Contact).where(Contact.active == True)  # noqa: E712
_SENDER_QUERIES = {
    "telegram": _ACTIVE.where(Contact.telegram_id == bindparam("sender")),
    "wecom": _ACTIVE.where(Contact.wecom_userid == bindparam("sender")),
    "console": _ACTIVE.where(Contact.name == bindparam("sender")),
}
_INSERT_PROCESSED = sa.insert(ProcessedUpdate).values(
    platform=bindparam("platform"),
    update_key=bindparam("update_key"),
    processed_at=bindparam("processed_at"),
)


def find_sender(session: Session, platform: str, sender_id: str) -> Contact | None:
    """The active contact behind a platform account, or None."""
    query = _SENDER_QUERIES.get(platform)
    if query is None:
        return None
    sender: str | int = sender_id
    if platform == "telegram":
        if not sender_id.lstrip("-").isdigit():
            return None
        sender = int(sender_id)
    return session.exec(query, params={"sender": sender}).first()


def chat_address(contact: Contact, platforms: Iterable[str]) -> tuple[str, str] | None:
    """Where a contact is reached privately on the running platforms (WeCom first), or None."""
    running = set(platforms)
    if contact.wecom_userid and "wecom" in running:
        return "wecom", contact.wecom_userid
    if contact.telegram_id is not None and "telegram" in running:
        return "telegram", str(contact.telegram_id)
    if "console" in running:
        return "console", contact.name
    return None


@dataclass
class ChatContext:
    """What a handler sees: the event, the sender, the database, and a way to answer."""

    event: IncomingMessage
    contact: Contact | None
    session: Session
    settings: Settings
    t: Translator
    now: datetime
    router: Router
    args: str = ""
    outgoing: list[Outgoing] = field(default_factory=list)
    notices: int = 0

    @property
    def role(self) -> Role | None:
        """The sender's role, or None for an unknown sender."""
        return self.contact.role if self.contact else None

    @property
    def actor(self) -> str:
        """The sender as the audit log names them."""
        return audit.actor_of(self.contact.id if self.contact else None)

    @cached_property
    def plan(self) -> Plan:
        """The current plan (a UserError when none is imported)."""
        return current_plan(self.session)

    def views(self) -> list[ItemView]:
        """Where every item of the current plan stands now."""
        return item_views(
            self.session,
            self.plan,
            now=self.now,
            tz=self.settings.tz,
            rules=StatusRules.from_settings(self.settings),
        )

    def reply(
        self,
        text: str,
        *,
        buttons: tuple[tuple[Button, ...], ...] = (),
        link_item_id: int | None = None,
    ) -> None:
        """Answer in the sender's chat."""
        self.outgoing.append(
            Outgoing(
                chat_id=self.event.chat_id,
                text=text,
                buttons=buttons,
                link_item_id=link_item_id,
                link_contact_id=self.contact.id if self.contact else None,
            )
        )

    def say(self, key: str, **params: Any) -> None:
        """Answer with a catalog message."""
        self.reply(self.t(key, **params))

    def notify(
        self, contact: Contact, message: str, *, item_id: int | None = None, **params: Any
    ) -> None:
        """Tell another contact something, through the outbox (delivered even after a crash)."""
        self.notices += 1
        key = f"notice:{self.event.platform}:{self.event.update_id}:{contact.id}:{self.notices}"
        queue_notice(
            self.session, contact, message, key=key, now=self.now, item_id=item_id, **params
        )

    def audit(self, action: str, **detail: Any) -> None:
        """Write an admin action to the audit log."""
        audit.record(self.session, actor=self.actor, action=action, **detail)


def record_link(engine: Engine, sent: SentMessage, out: Outgoing) -> None:
    """Remember which item a sent message was about, so a reply to it ties back."""
    with Session(engine) as session:
        session.add(
            MessageLink(
                platform=sent.platform,
                chat_id=sent.chat_id,
                message_id=sent.message_id,
                item_id=out.link_item_id,
                contact_id=out.link_contact_id,
            )
        )
        try:
            session.commit()
        except IntegrityError:  # the same message recorded already
            session.rollback()


Notify = Callable[[], Awaitable[object]]


class ChatCore:
    """Runs every incoming event through dedupe, sender lookup, the router and delivery."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        router: Router,
        *,
        clock: Clock = system_clock,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.router = router
        self.clock = clock
        self.t = Translator(settings.locale)
        # SQLite takes one writer at a time: one database thread avoids lock waits entirely.
        workers = 1 if engine.dialect.name == "sqlite" else 8
        self._db = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="duban-db")
        self.messengers: dict[str, Messenger] = {}
        self.after_commit: list[Notify] = []  # e.g. the outbox dispatcher's kick
        # Called with each event once it is fully handled (tests and benchmarks wait on it).
        self.observers: list[Callable[[IncomingMessage], None]] = []

    def add_messenger(self, messenger: Messenger) -> None:
        """Make a channel available for replies and notices."""
        self.messengers[messenger.platform] = messenger

    async def handle(self, event: IncomingMessage) -> list[Outgoing] | None:
        """Process one event and deliver its replies; None when it was a duplicate."""
        try:
            return await self._handle(event)
        finally:
            for observe in self.observers:
                observe(event)

    async def _handle(self, event: IncomingMessage) -> list[Outgoing] | None:
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._db, self.process, event)
        if result is None:
            return None
        outgoing, noticed = result
        messenger = self.messengers.get(event.platform)
        for out in outgoing:
            if messenger is None:
                log.warning("no messenger for %s; reply dropped", event.platform)
                break
            try:
                sent = await deliver(messenger, out)
            except Exception:
                log.exception("sending a reply on %s failed", event.platform)
                continue
            if out.link_item_id is not None:
                await loop.run_in_executor(self._db, record_link, self.engine, sent, out)
        if noticed:
            for kick in self.after_commit:
                await kick()
        return outgoing

    def close(self) -> None:
        """Finish the database work in flight and release its thread."""
        self._db.shutdown(wait=True)

    def _mark_processed(self, session: Session, event: IncomingMessage, now: datetime) -> bool:
        params = {"platform": event.platform, "update_key": event.update_id, "processed_at": now}
        try:
            session.connection().execute(_INSERT_PROCESSED, params)
        except IntegrityError:
            session.rollback()
            return False
        return True

    def process(self, event: IncomingMessage) -> tuple[list[Outgoing], bool] | None:
        """Dedupe and handle an event in one transaction.

        Returns the replies to send and whether notices were queued in the outbox, or None
        for a duplicate.
        """
        now = self.clock()
        with Session(self.engine, expire_on_commit=False) as session:
            if not self._mark_processed(session, event, now):
                log.info("duplicate update %s:%s ignored", event.platform, event.update_id)
                return None
            ctx = ChatContext(
                event=event,
                contact=find_sender(session, event.platform, event.sender_id),
                session=session,
                settings=self.settings,
                t=self.t,
                now=now,
                router=self.router,
            )
            try:
                self._dispatch(ctx)
                session.commit()
                return ctx.outgoing, bool(session.info.pop(OUTBOX_TOUCHED, False))
            except UserError as exc:
                message = exc.render(self.t)
            except Exception:
                log.exception("handler failed for %s update %s", event.platform, event.update_id)
                message = self.t("chat.internal_error")
            # Bad input or a failure changes nothing but still counts as processed.
            session.rollback()
            if not self._mark_processed(session, event, now):
                return None
            session.commit()
            return [Outgoing(chat_id=event.chat_id, text=message)], False

    def _dispatch(self, ctx: ChatContext) -> None:
        event = ctx.event
        if event.kind == EventKind.unsupported:
            ctx.say("chat.text_only")
            return
        if event.kind == EventKind.text and len(event.text) > MAX_TEXT:
            raise UserError("chat.too_long", max=MAX_TEXT, length=len(event.text))
        match = self.router.match(event)
        if ctx.contact is None:
            if match is not None and match.route.unbound:
                ctx.args = match.args
                match.route.handler(ctx)
            else:
                ctx.say("chat.unknown_sender")
            return
        if match is None:
            if event.kind == EventKind.button:
                raise UserError("chat.stale_button")
            raise UserError("chat.unknown_command", command=event.text.split()[0][:32])
        if ctx.contact.role not in match.route.roles:
            raise UserError("chat.not_allowed", command=match.route.name)
        ctx.args = match.args
        match.route.handler(ctx)
