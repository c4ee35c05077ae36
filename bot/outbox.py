"""The outbox: every outgoing message that must not be lost is written here, one way.

`enqueue` adds messages in the caller's transaction, each at most once by its dedupe key
(insert or ignore), so a message is planned with the change that causes it and survives a
crash. The dispatcher (scheduler/dispatcher.py) delivers due rows at least once. Replies to
a person's own message are rows too: the chat core sends them at once and records them sent
(`mark_sent`); what a crash interrupted, the dispatcher sends once the reply's lease is over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlmodel import Session

from bot.dialects import insert_for
from bot.events import Button, Outgoing
from bot.models import Outbox

__all__ = ["OUTBOX_TOUCHED", "Message", "enqueue", "mark_sent", "outgoing_of", "reply_message"]

OUTBOX_TOUCHED = "duban.outbox_touched"  # session.info flag: kick the dispatcher after commit
REPLY = "reply"

_TABLE: Any = Outbox.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Message:
    """One message to plan: what it is, to whom, when, and its dedupe key."""

    key: str
    kind: str
    payload: dict[str, Any]
    due_at: datetime
    contact_id: int | None = None
    item_id: int | None = None
    channel: str | None = None  # set for replies: the platform the person wrote on
    expires_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # more columns (planner bookkeeping)


@cache
def _insert_plain(dialect: str) -> Any:
    return insert_for(dialect)(_TABLE).on_conflict_do_nothing(index_elements=["dedupe_key"])


@cache
def _insert(dialect: str) -> Any:
    return (
        insert_for(dialect)(_TABLE)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(_TABLE.c.id, _TABLE.c.dedupe_key)
    )


def _row(message: Message, now: datetime) -> dict[str, Any]:
    return {
        "dedupe_key": message.key,
        "kind": message.kind,
        "contact_id": message.contact_id,
        "item_id": message.item_id,
        "channel": message.channel,
        "payload": message.payload,
        "due_at": message.due_at,
        "expires_at": message.expires_at,
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": None,
        "last_error": None,
        "sent_at": None,
        "platform_message_id": None,
        "created_at": now,
        **message.extra,
    }


def enqueue(
    session: Session,
    messages: Sequence[Message],
    *,
    now: datetime,
    touch: bool = True,
    ids: bool = True,
) -> dict[str, int]:
    """Plan messages in the session's transaction, each once by dedupe key; returns the ids
    of those that were new, by key (a key planned before is left as it was). touch: mark the
    session so the dispatcher is woken after the commit (replies need not be); ids: False
    when the caller needs no ids (the cheaper statement on the chat's hot path)."""
    if not messages:
        return {}
    if session.autoflush:
        session.flush()  # a Core statement: pending ORM changes go first, as the ORM would
    connection: Connection = session.connection()
    rows = [_row(m, now) for m in messages]
    if touch:
        session.info[OUTBOX_TOUCHED] = True
    if not ids:
        connection.execute(_insert_plain(connection.dialect.name), rows)
        return {}
    result = connection.execute(_insert(connection.dialect.name), rows)
    return {row.dedupe_key: row.id for row in result}


def reply_message(
    platform: str, update_id: str, index: int, out: Outgoing, *, due_at: datetime
) -> Message:
    """A handler's answer as an outbox row: sent by the core at once, by the dispatcher only
    if the core could not (after `due_at`, its lease)."""
    payload: dict[str, Any] = {
        "chat_id": out.chat_id,
        "text": out.text,
        "markup": out.markup,
        "buttons": [[[b.label, b.data] for b in row] for row in out.buttons],
    }
    if out.reply_to:
        payload["reply_to"] = out.reply_to
    if out.file is not None:
        payload["file"] = str(out.file)
    if out.photo is not None:
        payload["photo"] = str(out.photo)
    return Message(
        key=f"{REPLY}:{platform}:{update_id}:{index}",
        kind=REPLY,
        payload=payload,
        due_at=due_at,
        contact_id=out.link_contact_id,
        item_id=out.link_item_id,
        channel=platform,
    )


def outgoing_of(
    payload: dict[str, Any], *, item_id: int | None, contact_id: int | None
) -> Outgoing:
    """The Outgoing a reply row stands for."""
    return Outgoing(
        chat_id=str(payload["chat_id"]),
        text=str(payload.get("text", "")),
        markup=str(payload.get("markup", "text")),
        buttons=tuple(
            tuple(Button(label=str(label), data=str(data)) for label, data in row)
            for row in payload.get("buttons", [])
        ),
        reply_to=payload.get("reply_to"),
        file=Path(payload["file"]) if payload.get("file") else None,
        photo=Path(payload["photo"]) if payload.get("photo") else None,
        link_item_id=item_id,
        link_contact_id=contact_id,
    )


_MARK_SENT = (
    sa.update(_TABLE)
    .where(_TABLE.c.dedupe_key.in_(sa.bindparam("p_keys", expanding=True)))
    .where(_TABLE.c.state == "pending")
    .values(state="sent", sent_at=sa.bindparam("p_at"), last_error=None)
)


def mark_sent(connection: Connection, keys: Sequence[str], at: datetime) -> None:
    """Record rows delivered outside the dispatcher (the chat core's replies), by dedupe key,
    in one statement (the message ids are in the links)."""
    for start in range(0, len(keys), 500):
        connection.execute(_MARK_SENT, {"p_keys": list(keys[start : start + 500]), "p_at": at})
