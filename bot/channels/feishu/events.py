"""Feishu events (schema 2.0, as the long connection delivers them) into the core's events.

- `im.message.receive_v1` in a one-to-one chat (chat_type p2p): text (its @-mentions taken
  out), rich text (`post`, its text), pictures, files and videos (an Attachment to fetch
  through the message resources API), voice (no text: Feishu sends none), anything else
  unsupported. The update id is the message_id; a reply names its parent_id. Group chats are
  not Duban's (private notices only): they are left alone.
- `card.action.trigger`: a click on one of Duban's card buttons, whose value is
  {"data": ...}; the update id is the event_id.
- `im.chat.access_event.bot_p2p_chat_entered_v1`: the person opened the chat with the bot.

A payload that cannot be read raises EventRefused with a fixed phrase (never payload text);
events Duban has nothing to do with give None.
"""

from __future__ import annotations

import json
import re
from typing import Any

from bot.channels.feishu.api import PLATFORM, file_id
from bot.events import Attachment, EventKind, IncomingMessage, clean_text

MESSAGE = "im.message.receive_v1"
CARD_ACTION = "card.action.trigger"
CHAT_ENTERED = "im.chat.access_event.bot_p2p_chat_entered_v1"
MAX_PAYLOAD = 1 << 20  # the largest event read (Feishu's are a few KB)

_OPEN_ID = re.compile(r"ou_[A-Za-z0-9_\-]{1,61}")
_MESSAGE_ID = re.compile(r"om_[A-Za-z0-9_\-]{1,125}")
_EVENT_ID = re.compile(r"[A-Za-z0-9_\-:.]{1,128}")
_KEY = re.compile(r"[A-Za-z0-9_\-]{1,256}")
_MENTION = re.compile(r"@_(?:user_\d+|all)")
_SPACES = re.compile(r"[ \t]{2,}")
# Media messages that are evidence files, and what Duban calls them.
MEDIA_KINDS = {"image": "photo", "file": "document", "media": "video"}


class EventRefused(Exception):
    """An event payload that cannot be read; carries a fixed phrase saying why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def open_id(value: str) -> str | None:
    """A Feishu open_id as typed or received (ou_ and letters, digits, - or _), else None."""
    value = value.strip()
    return value if _OPEN_ID.fullmatch(value) else None


def to_event(payload: str | bytes) -> IncomingMessage | None:
    """The core's event for a Feishu event payload (None: nothing for Duban)."""
    if len(payload) > MAX_PAYLOAD:
        raise EventRefused("payload too large")
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise EventRefused("payload is not JSON") from None
    if not isinstance(data, dict):
        raise EventRefused("payload is not an object")
    header = data.get("header")
    if data.get("schema") != "2.0" or not isinstance(header, dict):
        raise EventRefused("not a schema 2.0 event")
    event_type = _string(header, "event_type")
    event_id = _string(header, "event_id")
    if not _EVENT_ID.fullmatch(event_id):
        raise EventRefused("malformed event_id")
    body = data.get("event")
    if not isinstance(body, dict):
        raise EventRefused("no event object")
    if event_type == MESSAGE:
        return _message(body)
    if event_type == CARD_ACTION:
        return _card_action(event_id, body)
    if event_type == CHAT_ENTERED:
        user = _user(body.get("operator_id"))
        return IncomingMessage(PLATFORM, user, user, event_id, kind=EventKind.enter)
    return None


def _message(body: dict[str, Any]) -> IncomingMessage | None:
    sender = _object(body, "sender")
    if _string(sender, "sender_type") not in ("user", ""):
        return None  # another app's message
    user = _user(sender.get("sender_id"))
    message = _object(body, "message")
    message_id = _string(message, "message_id")
    if not _MESSAGE_ID.fullmatch(message_id):
        raise EventRefused("malformed message_id")
    if _string(message, "chat_type") != "p2p":
        return None  # group chats are not Duban's
    parent = _string(message, "parent_id")
    if parent and not _MESSAGE_ID.fullmatch(parent):
        raise EventRefused("malformed parent_id")
    raw_content = _string(message, "content")
    try:
        content = json.loads(raw_content) if raw_content else {}
    except ValueError:
        raise EventRefused("message content is not JSON") from None
    if not isinstance(content, dict):
        raise EventRefused("message content is not an object")
    base: dict[str, Any] = {
        "platform": PLATFORM,
        "chat_id": user,
        "sender_id": user,
        "update_id": message_id,
        "message_id": message_id,
        "reply_to_message_id": parent or None,
    }
    kind = _string(message, "message_type")
    if kind == "text":
        return IncomingMessage(**base, text=_without_mentions(_string(content, "text")))
    if kind == "post":
        return IncomingMessage(**base, text=_without_mentions(_post_text(content)))
    if kind in MEDIA_KINDS:
        key = _string(content, "image_key" if kind == "image" else "file_key")
        if not _KEY.fullmatch(key):
            raise EventRefused("malformed resource key")
        name = clean_text(_string(content, "file_name"))[:255]
        attachment = Attachment(MEDIA_KINDS[kind], file_id(message_id, key), name=name)
        return IncomingMessage(**base, kind=EventKind.file, attachment=attachment)
    if kind == "audio":
        return IncomingMessage(**base, kind=EventKind.voice)
    return IncomingMessage(**base, kind=EventKind.unsupported)


def _card_action(event_id: str, body: dict[str, Any]) -> IncomingMessage:
    operator = _object(body, "operator")
    user = open_id(_string(operator, "open_id"))
    if user is None:
        raise EventRefused("malformed open_id")
    action = _object(body, "action")
    value = action.get("value")
    data = value.get("data") if isinstance(value, dict) else None
    if not isinstance(data, str):
        raise EventRefused("card action without data")
    context = body.get("context")
    message_id = context.get("open_message_id") if isinstance(context, dict) else None
    if not isinstance(message_id, str) or not _MESSAGE_ID.fullmatch(message_id):
        message_id = None
    return IncomingMessage(
        PLATFORM,
        user,
        user,
        event_id,
        kind=EventKind.button,
        button_data=clean_text(data)[:1024],
        message_id=message_id,
    )


def _user(ids: Any) -> str:
    """The open_id of a user id object ({"open_id": ..., "union_id": ..., "user_id": ...})."""
    value = ids.get("open_id") if isinstance(ids, dict) else None
    user = open_id(value) if isinstance(value, str) else None
    if user is None:
        raise EventRefused("malformed open_id")
    return user


def _without_mentions(text: str) -> str:
    """Text as the person typed it, without the @-mentions Feishu puts in (@_user_1)."""
    text = clean_text(text)
    if "@_" in text:
        text = _SPACES.sub(" ", _MENTION.sub("", text))
    return text.strip()


def _post_text(content: dict[str, Any]) -> str:
    """The text of a rich text message: its title and paragraphs, one line each."""
    if "content" not in content:  # {"zh_cn": {...}}: the first language given
        inner = next((v for v in content.values() if isinstance(v, dict)), {})
        content = inner
    lines = []
    title = content.get("title")
    if isinstance(title, str) and title.strip():
        lines.append(title)
    paragraphs = content.get("content")
    if not isinstance(paragraphs, list):
        raise EventRefused("malformed rich text")
    for paragraph in paragraphs:
        if not isinstance(paragraph, list):
            raise EventRefused("malformed rich text")
        parts = []
        for element in paragraph:
            if not isinstance(element, dict):
                raise EventRefused("malformed rich text")
            if element.get("tag") in ("text", "a", "code_block", "md"):
                text = element.get("text")
                if isinstance(text, str):
                    parts.append(text)
        lines.append("".join(parts))
    return "\n".join(lines)


def _object(parent: dict[str, Any], name: str) -> dict[str, Any]:
    value = parent.get(name)
    if not isinstance(value, dict):
        raise EventRefused(f"no {name} object")
    return value


def _string(parent: dict[str, Any], name: str) -> str:
    """A string field ("" when absent); anything else in its place is refused."""
    value = parent.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise EventRefused(f"malformed {name}")
    return value
