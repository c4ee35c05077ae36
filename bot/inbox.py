"""The inbox: every incoming update is stored before the platform is told we have it.

A channel calls `store` (one transaction for a batch) before it acknowledges: before the 200 of
a WeCom callback or a Telegram webhook call, before the polling offset that confirms updates
to Telegram. The chat core marks a row handled in the very transaction that has the update's
effect (`mark_handled`), which is also the dedupe: a platform's second delivery of the same
update is stored once and handled once. On start a channel hands over whatever is stored and
not handled, oldest first, so each chat's updates keep their order. Handled rows are pruned
after INBOX_RETENTION_DAYS.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy import bindparam
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, col, select

from bot.dialects import insert_for
from bot.models import InboxEntry
from bot.refcache import CACHE_VERSION

log = logging.getLogger(__name__)

__all__ = ["Received", "mark_handled", "pending", "prune", "store"]


@dataclass(frozen=True)
class Received:
    """One update as a channel received it."""

    update_key: str  # the platform's id for it (Telegram update_id, WeCom MsgId)
    chat_key: str  # the chat it belongs to (per-chat order on recovery)
    payload: str  # the update as received, enough to handle it again after a crash


_TABLE: Any = InboxEntry.__table__  # type: ignore[attr-defined]
_MARK = (
    sa.update(InboxEntry)
    .where(
        col(InboxEntry.platform) == bindparam("p_platform"),
        col(InboxEntry.update_key) == bindparam("p_key"),
        col(InboxEntry.handled_at).is_(None),
    )
    .values(handled_at=bindparam("p_now"))
    .returning(CACHE_VERSION.label("cache_version"))
)


@cache
def _insert(dialect: str) -> Any:
    return (
        insert_for(dialect)(_TABLE)
        .on_conflict_do_nothing(index_elements=["platform", "update_key"])
        .returning(_TABLE.c.update_key)
    )


@cache
def _insert_handled(dialect: str) -> Any:
    """An event no channel stored (the console, a test, the demo): stored and handled at once,
    unless it is there already (then nothing is returned)."""
    return (
        insert_for(dialect)(_TABLE)
        .values(
            platform=bindparam("p_platform"),
            update_key=bindparam("p_key"),
            chat_key=bindparam("p_chat"),
            payload="",
            received_at=bindparam("p_now"),
            handled_at=bindparam("p_now"),
        )
        .on_conflict_do_nothing(index_elements=["platform", "update_key"])
        .returning(CACHE_VERSION.label("cache_version"))
    )


def store(engine: Engine, platform: str, received: Sequence[Received], now: datetime) -> list[bool]:
    """Store a batch durably in one transaction; for each, whether it is new (False: a
    re-delivery of an update stored before)."""
    if not received:
        return []
    rows = [
        {
            "platform": platform,
            "update_key": r.update_key,
            "chat_key": r.chat_key,
            "payload": r.payload,
            "received_at": now,
            "handled_at": None,
        }
        for r in received
    ]
    with engine.begin() as conn:
        new = {row[0] for row in conn.execute(_insert(engine.dialect.name), rows)}
    return [r.update_key in new for r in received]


def mark_handled(
    conn: Connection, platform: str, key: str, chat: str, now: datetime
) -> tuple[bool, int | None]:
    """Mark an update handled in the caller's transaction: (False, None) when it was handled
    already (a duplicate), else (True, the reference cache's version as this transaction
    sees it, None when its row is gone)."""
    params = {"p_platform": platform, "p_key": key, "p_chat": chat, "p_now": now}
    row = conn.execute(_MARK, params).first()
    if row is not None:
        return True, row.cache_version
    inserted = conn.execute(_insert_handled(conn.dialect.name), params).first()
    if inserted is None:
        return False, None
    return True, inserted.cache_version


def pending(engine: Engine, platform: str) -> list[InboxEntry]:
    """What is stored and not handled yet for a platform, oldest first."""
    query = (
        select(InboxEntry)
        .where(InboxEntry.platform == platform, col(InboxEntry.handled_at).is_(None))
        .order_by(col(InboxEntry.id))
    )
    with Session(engine, expire_on_commit=False) as session:
        return list(session.exec(query))


def prune(engine: Engine, before: datetime) -> int:
    """Delete rows handled before a moment; returns how many."""
    query = sa.delete(InboxEntry).where(
        col(InboxEntry.handled_at).is_not(None), col(InboxEntry.handled_at) < before
    )
    with engine.begin() as conn:
        count = conn.execute(query).rowcount or 0
    if count:
        log.info("inbox: pruned %d handled updates", count)
    return count
