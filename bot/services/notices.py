"""Notices to contacts (new assignment, changed deadline): queued in the outbox, so never lost.

A notice stores its message key and parameters; the dispatcher renders it in the bot's
locale when it sends it.

Dedupe keys are never built from a row id that can be deleted: SQLite gives the largest
row id again after a delete, so such a key would collide with an old notice's. A message
planned for a moment or a cycle (a weekly ask, a digest) is keyed by what it is about and
when, so planning it twice plans it once; a message caused by one change (a new
assignment, an ask on demand) is written in that change's transaction and gets a
`fresh_key`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlmodel import Session

from bot.models import Contact
from bot.outbox import OUTBOX_TOUCHED, Message, enqueue

__all__ = ["OUTBOX_TOUCHED", "fresh_key", "queue_notice"]


def fresh_key(kind: str, *about: object) -> str:
    """A dedupe key used once: `kind:about...:random`, never equal to an earlier one."""
    return ":".join([kind, *(str(a) for a in about), uuid.uuid4().hex])


def queue_notice(
    session: Session,
    contact: Contact,
    message: str,
    *,
    key: str,
    now: datetime,
    item_id: int | None = None,
    **params: Any,
) -> None:
    """Plan message `message` (a catalog key) to a contact, once per dedupe `key`."""
    notice = Message(
        key=key,
        kind="notice",
        contact_id=contact.id,
        item_id=item_id,
        payload={"message": message, "params": params},
        due_at=now,
    )
    enqueue(session, [notice], now=now)
