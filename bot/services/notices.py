"""Notices to contacts (new assignment, changed deadline): queued in the outbox, so never lost.

A notice stores its message key and parameters; the dispatcher renders it in the bot's
locale when it sends it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from bot.models import Contact, Outbox

OUTBOX_TOUCHED = "duban.outbox_touched"


def queue_notice(
    session: Session,
    contact: Contact,
    message: str,
    *,
    key: str,
    now: datetime,
    item_id: int | None = None,
    **params: Any,
) -> Outbox:
    """Plan message `message` (a catalog key) to a contact, once per dedupe `key`."""
    row = Outbox(
        dedupe_key=key,
        kind="notice",
        contact_id=contact.id,
        item_id=item_id,
        payload={"message": message, "params": params},
        due_at=now,
    )
    session.add(row)
    session.info[OUTBOX_TOUCHED] = True  # so the caller knows to kick the dispatcher
    return row
