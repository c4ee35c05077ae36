"""Message links: which item a message the bot sent was about, so a reply to it ties back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from bot.dialects import insert_for
from bot.events import SentMessage
from bot.models import MessageLink


def link_row(
    sent: SentMessage,
    *,
    item_id: int | None,
    contact_id: int | None,
    now: datetime,
    outbox_id: int | None = None,
) -> dict[str, Any]:
    """The message_link row for a sent message."""
    return {
        "platform": sent.platform,
        "chat_id": sent.chat_id,
        "message_id": sent.message_id,
        "item_id": item_id,
        "contact_id": contact_id,
        "outbox_id": outbox_id,
        "created_at": now,
    }


def insert_links(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert links in the session's transaction; a message recorded already is left as is
    (insert-or-ignore, so it never undoes the rest of the transaction)."""
    if not rows:
        return
    connection = session.connection()
    insert = insert_for(connection.dialect.name)
    statement = insert(MessageLink).on_conflict_do_nothing(
        index_elements=["platform", "chat_id", "message_id"]
    )
    connection.execute(statement, rows)
