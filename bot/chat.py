"""The chat core: deduplicate an update, find its sender, run its handler, deliver the replies.

A handler runs in one database transaction together with the processed-update row, so an
update has its effect once or not at all. Replies are sent after the commit; notices to other
people go through the outbox in the same transaction, so they are never lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot import inbox, outbox
from bot.channels import registry
from bot.chat_wording import for_chat
from bot.clock import Clock, system_clock
from bot.dblane import DatabaseLane
from bot.events import (
    Button,
    EventKind,
    FileFetcher,
    IncomingMessage,
    Messenger,
    Outgoing,
    SentMessage,
    deliver,
)
from bot.evidence import EvidenceStore
from bot.i18n import Translator, UserError
from bot.inbox import Received, mark_handled
from bot.models import (
    Account,
    Assignment,
    Contact,
    InboxEntry,
    Plan,
    PlanKind,
    Report,
    Role,
    WorkItem,
)
from bot.progress_parser import MAX_REPORT_LENGTH
from bot.refcache import MISSING, ReferenceCache, attach, detached_copy
from bot.router import Router
from bot.services import audit
from bot.services.items import ItemView, item_views
from bot.services.links import insert_links, link_row
from bot.services.notices import OUTBOX_TOUCHED, queue_notice
from bot.services.plans import (
    active_plans,
    all_plans,
    current_plan,
    find_item,
    plan_by_code,
    split_ref,
    written_ref,
)
from bot.services.progress import StatusRules
from bot.services.reports import is_assigned, item_done
from bot.settings import Settings

log = logging.getLogger(__name__)

MAX_TEXT = MAX_REPORT_LENGTH  # the longest message handled (one home: the parser)


_ACTIVE = Contact.active == True  # noqa: E712
# The sender by a platform account, or by name (the console).
_BY_ACCOUNT = (
    select(Contact)
    .join(Account, col(Account.contact_id) == Contact.id)
    .where(
        _ACTIVE,
        Account.platform == bindparam("platform"),
        Account.account_id == bindparam("sender"),
    )
)
_BY_NAME = select(Contact).where(_ACTIVE, Contact.name == bindparam("sender"))
# The sender and the current plan in one round trip (every handled update needs both).
_CURRENT_PLAN_ID = (
    select(Plan.id)
    .where(col(Plan.closed_at).is_(None), Plan.kind == PlanKind.plan)
    .order_by(col(Plan.id))
    .limit(1)
).scalar_subquery()
# A contact's live items of one number across the open plans (a number without a code).
_MINE_BY_NUMBER = (
    select(WorkItem)
    .join(Assignment, col(Assignment.item_id) == WorkItem.id)
    .join(Plan, col(Plan.id) == WorkItem.plan_id)
    .where(
        Assignment.contact_id == bindparam("contact_id"),
        WorkItem.number == bindparam("number"),
        col(WorkItem.removed_at).is_(None),
        col(Plan.closed_at).is_(None),
        Plan.kind == PlanKind.plan,  # a task is always written with its code (J3)
    )
    .order_by(col(Plan.id))
)
_SENDER_AND_PLAN_BY_ACCOUNT = (
    select(Contact, Plan)
    .join(Account, col(Account.contact_id) == Contact.id)
    .outerjoin(Plan, col(Plan.id) == _CURRENT_PLAN_ID)
    .where(
        _ACTIVE,
        Account.platform == bindparam("platform"),
        Account.account_id == bindparam("sender"),
    )
)
_SENDER_AND_PLAN_BY_NAME = (
    select(Contact, Plan)
    .outerjoin(Plan, col(Plan.id) == _CURRENT_PLAN_ID)
    .where(_ACTIVE, Contact.name == bindparam("sender"))
)


def _sender_param(platform: str, sender_id: str) -> tuple[bool, str] | None:
    """(by name?, the stored form of the sender's id), or None when no channel has such an
    account (an unknown platform, an id that cannot be one)."""
    spec = registry.spec_of(platform)
    if spec is None:
        return None
    if spec.by_name:
        return True, sender_id
    account = spec.account(sender_id)
    return None if account is None else (False, account)


def find_sender(session: Session, platform: str, sender_id: str) -> Contact | None:
    """The active contact behind a platform account, or None."""
    found = _sender_param(platform, sender_id)
    if found is None:
        return None
    by_name, sender = found
    query = _BY_NAME if by_name else _BY_ACCOUNT
    return session.exec(query, params={"sender": sender, "platform": platform}).first()


def find_sender_and_plan(
    session: Session, platform: str, sender_id: str
) -> tuple[Contact | None, Plan | None]:
    """The active contact behind a platform account and the current plan (when both exist;
    the plan is None also when the sender is unknown)."""
    found = _sender_param(platform, sender_id)
    if found is None:
        return None, None
    by_name, sender = found
    query = _SENDER_AND_PLAN_BY_NAME if by_name else _SENDER_AND_PLAN_BY_ACCOUNT
    row = session.exec(query, params={"sender": sender, "platform": platform}).first()
    return (None, None) if row is None else (row[0], row[1])


def chat_address(
    contact: Contact, held: dict[str, str], platforms: Iterable[str]
) -> tuple[str, str] | None:
    """Where a contact is reached privately on the running platforms, or None: of the
    accounts they hold ({platform: account id}), the one whose channel comes first by
    priority; the console (people known by name) last."""
    running = set(platforms)
    for platform in registry.by_priority(running & set(held)):
        return platform, held[platform]
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
    known_plan: Plan | None = None  # the current plan when the caller loaded it already
    cache: ReferenceCache | None = None  # reference rows as of cache_version (bot/refcache.py)
    cache_version: int = 0
    # What this transaction loaded for the cache: stored by the core once it has committed.
    cache_loaded: dict[Hashable, tuple[int, Any]] = field(default_factory=dict)
    recorded: list[Report] = field(default_factory=list)  # reports this update recorded
    files: EvidenceStore | None = None  # the evidence files (bot/evidence.py)

    @property
    def role(self) -> Role | None:
        """The sender's role, or None for an unknown sender."""
        return self.contact.role if self.contact else None

    @property
    def actor(self) -> str:
        """The sender as the audit log names them."""
        return audit.actor_of(self.contact.id if self.contact else None)

    @property
    def plan(self) -> Plan:
        """The current plan (a UserError when none is imported)."""
        if self.known_plan is None:
            self.known_plan = current_plan(self.session)
        return self.known_plan

    def cached(self, key: Hashable, load: Callable[[], Any]) -> Any:
        """A value through the reference cache: loaded in this transaction on a miss (and
        kept for the cache once it commits), else the cached value (no query)."""
        if self.cache is None:
            return load()
        value = self.cache.lookup(key, self.cache_version)
        if value is MISSING:
            value = load()
            self.cache_loaded[key] = (self.cache_version, value)
        return value

    def cached_rows(self, key: Hashable, load: Callable[[], tuple[Any, ...]]) -> tuple[Any, ...]:
        """Reference rows through the cache (None where there is no row): on a miss those
        this session loaded, on a hit the session's own copies of the cached ones."""
        if self.cache is None:
            return load()
        found: list[tuple[Any, ...]] = []

        def fetch() -> tuple[Any, ...]:
            rows = load()
            found.append(rows)
            return tuple(detached_copy(row) if row is not None else None for row in rows)

        copies = self.cached(key, fetch)
        return found[0] if found else tuple(attach(self.session, row) for row in copies)

    def open_plans(self) -> list[Plan]:
        """The plans not closed (imported plans first, then the tasks)."""
        rows = self.cached_rows(("open_plans",), lambda: tuple(active_plans(self.session)))
        return [p for p in rows if p is not None]

    def refs(self, items: Iterable[WorkItem]) -> dict[int, str]:
        """How each item is written in chat: its number in the current plan, CODE+NUMBER in
        any other (民生3, J3)."""
        default = self.known_plan.id if self.known_plan is not None else None
        if default is None:
            try:
                default = self.plan.id
            except UserError:
                default = None
        return {
            item.id or 0: str(item.number)  # the common case, without a lookup
            if item.plan_id == default
            else written_ref(self.session.get(Plan, item.plan_id), item.number, default)
            for item in items
        }

    def ref(self, item: WorkItem) -> str:
        """How one item is written in chat (see refs)."""
        return self.refs([item])[item.id or 0]

    def codes(self) -> tuple[str, ...]:
        """The codes of the plans (references may carry one: 民生3, J3)."""
        # closed plans' codes too: "民生3" of a closed plan is refused as read-only, not misread
        return tuple(
            self.cached(("codes",), lambda: tuple(p.code for p in all_plans(self.session)))
        )

    def find_item(self, ref: str) -> WorkItem:
        """The live item a person means (a UserError when none): CODE+NUMBER in that plan,
        anything else in the current plan."""
        ref = ref.strip()
        plain = ref.lstrip("#＃").isdecimal()  # the common case: no plan code to look for
        coded = None if plain else split_ref(ref, self.codes())
        if coded is not None:
            code, number = coded
            key: Hashable = ("coded", code, number)
            (item,) = self.cached_rows(
                key,
                lambda: (find_item(self.session, plan_by_code(self.session, code), str(number)),),
            )
        else:
            plan = self.plan
            key = ("item", plan.id, ref)
            (item,) = self.cached_rows(key, lambda: (find_item(self.session, plan, ref),))
        assert isinstance(item, WorkItem)
        return item

    def resolve(self, ref: str, owner: Contact | None = None) -> list[WorkItem]:
        """The items a reference may mean for a person (default: the sender): one, or several
        when a number without a code names their items in more than one plan (ask which)."""
        ref = ref.strip()
        owner = owner or self.contact
        number = ref.lstrip("#＃").removeprefix("第").removesuffix("项").removesuffix("号")
        if owner is None or not number.isdecimal() or len(number) > 6:
            return [self.find_item(ref)]
        params = {"contact_id": owner.id, "number": int(number)}
        rows = self.cached_rows(
            ("mine", owner.id, int(number)),
            lambda: tuple(self.session.exec(_MINE_BY_NUMBER, params=params)),
        )
        mine = [i for i in rows if isinstance(i, WorkItem)]
        if len(mine) > 1:
            open_ones = [i for i in mine if not item_done(self.session, i)]
            return open_ones if len(open_ones) == 1 else mine
        return mine or [self.find_item(ref)]

    def is_assigned(self, item: WorkItem, contact: Contact | None = None) -> bool:
        """Whether the contact (default: the sender) answers for the item."""
        contact = contact or self.contact
        assert contact is not None
        key = ("assigned", item.id, contact.id)
        return bool(self.cached(key, lambda: is_assigned(self.session, item, contact)))

    def views(self, plan: Plan | None = None) -> list[ItemView]:
        """Where every item of a plan (default: the current plan) stands now."""
        return item_views(
            self.session,
            plan or self.plan,
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


Delivered = tuple[SentMessage, Outgoing, datetime]


def write_delivered(engine: Engine, delivered: list[Delivered]) -> None:
    """Record sent replies in one transaction: their outbox rows as sent, and which items
    they were about (so that a reply to one ties back to its item)."""
    rows = [
        link_row(sent, item_id=out.link_item_id, contact_id=out.link_contact_id, now=at)
        for sent, out, at in delivered
        if out.link_item_id is not None
    ]
    keys = [out.outbox_key for _, out, _ in delivered if out.outbox_key is not None]
    with Session(engine) as session:
        insert_links(session, rows)
        if keys:
            outbox.mark_sent(session.connection(), keys, max(at for _, _, at in delivered))
        session.commit()


Notify = Callable[[], Awaitable[object]]


def _outcome(fn: Callable[[IncomingMessage], Any], event: IncomingMessage) -> tuple[bool, Any]:
    """fn(event) as a grouped job's outcome (bot.dblane.Outcome): (True, its result) or
    (False, its exception)."""
    try:
        return True, fn(event)
    except Exception as exc:
        return False, exc


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
        self.cache = ReferenceCache()
        self.files = EvidenceStore.from_settings(settings)
        # SQLite takes one writer at a time: one database thread avoids lock waits entirely,
        # and it takes whatever queued up in one hand-off. PostgreSQL gets parallel workers.
        sqlite = engine.dialect.name == "sqlite"
        # On SQLite the updates queued together are handled in one transaction (one COMMIT,
        # a savepoint each: `process_group`); PostgreSQL keeps one transaction per update.
        self._group_commit = sqlite
        self._db = DatabaseLane(
            workers=1 if sqlite else 8,
            batch=64 if sqlite else 1,  # several workers: a slow job holds up no other
            deferred=lambda delivered: write_delivered(engine, delivered),
        )
        self.messengers: dict[str, Messenger] = {}
        # Outbox keys of replies this process is sending now (the dispatcher leaves them be).
        self.sending: set[str] = set()
        self.lease = timedelta(seconds=settings.outbox_lease_seconds)
        self.after_commit: list[Notify] = []  # e.g. the outbox dispatcher's kick
        # Called with each event once it is fully handled (tests and benchmarks wait on it).
        self.observers: list[Callable[[IncomingMessage], None]] = []

    async def store(self, platform: str, received: Sequence[Received]) -> list[bool]:
        """Store incoming updates in the inbox before they are acknowledged (one transaction);
        for each, whether it is new. On SQLite it runs on the database lane, the one writer
        (a second writer would wait on the lock); on PostgreSQL on a thread of its own."""
        if self.engine.dialect.name == "sqlite":
            return await self._db.run(inbox.store, self.engine, platform, received, self.clock())
        return await asyncio.to_thread(inbox.store, self.engine, platform, received, self.clock())

    def pending(self, platform: str) -> list[InboxEntry]:
        """The platform's stored updates not handled yet, oldest first."""
        return inbox.pending(self.engine, platform)

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
        if event.attachment is not None:
            event = await self._fetch(event)
        stored = event.attachment.stored if event.attachment is not None else None
        try:
            result = await self.processed(event)
        finally:
            if stored is not None:
                self.files.handled(stored.sha256)
            if self.files.has_released:  # files no row took (refused, cancelled): deleted
                try:
                    await self._db.run(self.files.prune, self.engine)
                except Exception as exc:  # tried again after the next file
                    log.warning("pruning evidence files failed: %s", type(exc).__name__)
        if result is None:
            return None
        outgoing, noticed = result
        messenger = self.messengers.get(event.platform)
        for out in outgoing:
            if messenger is None:
                log.warning("no messenger for %s; the reply waits in the outbox", event.platform)
                break
            if out.outbox_key is not None:
                self.sending.add(out.outbox_key)
            try:
                sent = await deliver(messenger, out)
            except Exception as exc:  # kept in the outbox: the dispatcher tries again
                log.warning("sending a reply on %s failed: %s", event.platform, exc)
                self.sending.discard(out.outbox_key or "")
                continue
            # Recorded behind, batched with other replies: sent, and the link to its item (a
            # reply to this message comes seconds later at the earliest). A crash in between
            # sends the reply again after its lease; it never loses it.
            self._db.defer((sent, out, self.clock()))
            self.sending.discard(out.outbox_key or "")
        if noticed:
            for kick in self.after_commit:
                await kick()
        return outgoing

    async def _fetch(self, event: IncomingMessage) -> IncomingMessage:
        """Download a file someone sent, before its transaction (never inside it): stored, or
        refused with nothing kept. Only for known senders; a stranger's file is not fetched."""
        fetcher = self.messengers.get(event.platform)
        if not isinstance(fetcher, FileFetcher):
            return event
        known = await self._db.run(self._known_sender, event)
        return await self.files.receive(fetcher, event) if known else event

    async def processed(self, event: IncomingMessage) -> tuple[list[Outgoing], bool] | None:
        """`process` on the database lane (on SQLite grouped with the updates queued beside
        it); its result only once its transaction has committed."""
        if self._group_commit:
            result: tuple[list[Outgoing], bool] | None
            result = await self._db.run_grouped(self.process_group, event)
            return result
        return await self._db.run(self.process, event)

    def _known_sender(self, event: IncomingMessage) -> bool:
        with Session(self.engine) as session:
            return find_sender(session, event.platform, event.sender_id) is not None

    def close(self) -> None:
        """Finish the database work in flight (links included) and release its threads."""
        self._db.close()

    def _mark_processed(
        self, session: Session, event: IncomingMessage, now: datetime
    ) -> tuple[bool, int | None]:
        """Mark the event's inbox row handled: (False, None) for a duplicate, else (True,
        the reference cache's version as this transaction sees it)."""
        return mark_handled(
            session.connection(), event.platform, event.update_id, event.chat_id, now
        )

    def process(self, event: IncomingMessage) -> tuple[list[Outgoing], bool] | None:
        """Dedupe and handle an event in one transaction.

        Returns the replies to send and whether notices were queued in the outbox, or None
        for a duplicate.
        """
        now = self.clock()
        with Session(self.engine, expire_on_commit=False) as session:
            fresh, version = self._mark_processed(session, event, now)
            if not fresh:
                log.info("duplicate update %s:%s ignored", event.platform, event.update_id)
                return None
            ctx = self._context(session, event, now, version)
            try:
                self._dispatch(ctx)
                replies = self._keep(session, event, ctx.outgoing, now)
                session.commit()
                self.cache.store(ctx.cache_loaded)
                return replies, bool(session.info.pop(OUTBOX_TOUCHED, False))
            except UserError as exc:
                message = for_chat(exc).render(self.t)  # in chat, the chat's wording
            except Exception:
                log.exception("handler failed for %s update %s", event.platform, event.update_id)
                message = self.t("chat.internal_error")
            # Bad input or a failure changes nothing but still counts as processed (and what
            # the failed transaction loaded is not cached: it may have seen its own writes).
            session.rollback()
            if not self._mark_processed(session, event, now)[0]:
                return None
            replies = self._keep(
                session, event, [Outgoing(chat_id=event.chat_id, text=message)], now
            )
            session.commit()
            return replies, False

    def process_group(self, events: list[IncomingMessage]) -> list[tuple[bool, Any]]:
        """`process` for several events in one SQLite transaction: one COMMIT for all of them
        (the largest single cost of an update), a savepoint for each.

        Each event is marked handled, then handled within its own savepoint: one whose handler
        fails is rolled back to it and answered with its error, as `process` would, and leaves
        the others be. Nothing is handed back before the COMMIT, so no reply goes out before
        its rows are durable; what the transaction loaded is cached only after it. When the
        transaction as a whole fails (its COMMIT, a statement outside any handler, a failed
        flush, which rolls back more than the savepoint), nothing of it is kept and each event
        is processed again on its own.
        """
        if len(events) == 1 or not self._group_commit:
            return [_outcome(self.process, event) for event in events]
        loaded: list[dict[Hashable, tuple[int, Any]]] = []
        try:
            results = self._process_together(events, loaded)
        except Exception:
            log.warning("%d updates failed together; each is handled on its own", len(events))
            log.debug("the group failed", exc_info=True)
            return [_outcome(self.process, event) for event in events]
        for entries in loaded:
            self.cache.store(entries)
        return [(True, result) for result in results]

    def _process_together(
        self, events: list[IncomingMessage], loaded: list[dict[Hashable, tuple[int, Any]]]
    ) -> list[tuple[list[Outgoing], bool] | None]:
        with self.engine.connect() as conn:
            try:
                conn.begin()
                raw: Any = conn.connection.driver_connection  # the sqlite3 connection
                # The sqlite3 module's legacy transaction control begins a transaction only
                # before INSERT/UPDATE/DELETE: a SAVEPOINT before it would be a transaction of
                # its own, and its RELEASE a COMMIT.
                if not raw.in_transaction:
                    raw.execute("BEGIN IMMEDIATE")

                def session() -> Session:  # joins the group's transaction; commit flushes
                    return Session(
                        conn, expire_on_commit=False, join_transaction_mode="rollback_only"
                    )

                results = [
                    self._process_within(event, session, raw.execute, loaded) for event in events
                ]
                if not raw.in_transaction:  # SQLite rolled it back (a full disk, say)
                    raise RuntimeError("the group's transaction ended before its COMMIT")
                conn.commit()
            except BaseException:
                # Closed, never back to the pool: after a failed COMMIT the pool may take the
                # connection for reset and hand it out again inside the failed transaction.
                conn.invalidate()
                raise
        return results

    def _process_within(
        self,
        event: IncomingMessage,
        session: Callable[[], Session],
        sql: Callable[[str], object],
        loaded: list[dict[Hashable, tuple[int, Any]]],
    ) -> tuple[list[Outgoing], bool] | None:
        """`process` inside the group's transaction (`session` makes a session in it, `sql`
        runs a statement on its connection), the handler within a savepoint. A savepoint
        that is gone (the transaction was rolled back under it) fails the whole group."""
        now = self.clock()
        with session() as s:
            fresh, version = self._mark_processed(s, event, now)
            if not fresh:
                log.info("duplicate update %s:%s ignored", event.platform, event.update_id)
                return None
            sql("SAVEPOINT duban_update")
            ctx = self._context(s, event, now, version)
            try:
                self._dispatch(ctx)
                replies = self._keep(s, event, ctx.outgoing, now)
                s.commit()
                sql("RELEASE duban_update")
                loaded.append(ctx.cache_loaded)
                return replies, bool(s.info.pop(OUTBOX_TOUCHED, False))
            except UserError as exc:
                message = for_chat(exc).render(self.t)  # in chat, the chat's wording
            except Exception:
                log.exception("handler failed for %s update %s", event.platform, event.update_id)
                message = self.t("chat.internal_error")
        # As in `process`: nothing of the handler's is kept, the mark (before the savepoint) is.
        sql("ROLLBACK TO duban_update")
        sql("RELEASE duban_update")
        with session() as s:
            replies = self._keep(s, event, [Outgoing(chat_id=event.chat_id, text=message)], now)
            s.commit()
        return replies, False

    def _context(
        self, session: Session, event: IncomingMessage, now: datetime, version: int | None
    ) -> ChatContext:
        """The handler's view of an update, with the sender and the current plan."""
        ctx = ChatContext(
            event=event,
            contact=None,
            session=session,
            settings=self.settings,
            t=self.t,
            now=now,
            router=self.router,
            files=self.files,
        )
        if version is None:  # the counter's row was deleted: no caching until it is back
            self.cache.clear()
        else:
            self.cache.seen(version)
            ctx.cache, ctx.cache_version = self.cache, version
        ctx.contact, ctx.known_plan = self._sender_and_plan(ctx)
        return ctx

    def _keep(
        self, session: Session, event: IncomingMessage, outgoing: list[Outgoing], now: datetime
    ) -> list[Outgoing]:
        """Write the replies to the outbox in the handler's transaction (so an answer is never
        lost), due only after their lease: the core sends them itself at once."""
        due = now + self.lease
        messages = [
            outbox.reply_message(event.platform, event.update_id, i, out, due_at=due)
            for i, out in enumerate(outgoing)
        ]
        outbox.enqueue(session, messages, now=now, touch=False, ids=False)
        return [replace(out, outbox_key=m.key) for out, m in zip(outgoing, messages, strict=True)]

    @staticmethod
    def _sender_and_plan(ctx: ChatContext) -> tuple[Contact | None, Plan | None]:
        event = ctx.event
        contact, plan = ctx.cached_rows(
            ("sender", event.platform, event.sender_id),
            lambda: find_sender_and_plan(ctx.session, event.platform, event.sender_id),
        )
        return contact, plan

    def _dispatch(self, ctx: ChatContext) -> None:
        event = ctx.event
        if event.kind == EventKind.text and len(event.text) > MAX_TEXT:
            raise UserError("chat.too_long", max=MAX_TEXT, length=len(event.text))
        match = self.router.match(event)
        if event.kind == EventKind.unsupported or (
            match is None and event.kind in (EventKind.file, EventKind.voice)
        ):
            ctx.say("chat.text_only")
            return
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
