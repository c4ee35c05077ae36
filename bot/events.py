"""The core's own event and message types: channel adapters translate to and from these."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


class EventKind(enum.StrEnum):
    """What an incoming event is."""

    text = "text"  # a text message (commands included)
    button = "button"  # a click on one of the bot's buttons
    enter = "enter"  # the user opened the chat with the bot (WeCom enter_agent)
    unsupported = "unsupported"  # an image, voice, sticker ...: the bot asks for text


@dataclass(frozen=True)
class IncomingMessage:
    """One update from a chat platform, made at the edge by its channel adapter."""

    platform: str  # telegram | wecom | console
    chat_id: str
    sender_id: str
    update_id: str  # the platform's id for deduplication (update_id, MsgId, ...)
    text: str = ""
    kind: EventKind = EventKind.text
    message_id: str | None = None
    reply_to_message_id: str | None = None
    button_data: str | None = None
    sender_name: str = ""


@dataclass(frozen=True)
class Button:
    """An inline button: what it says and the data it sends back (at most 64 bytes)."""

    label: str
    data: str


@dataclass(frozen=True)
class SentMessage:
    """A message a channel delivered: where, and its platform id (for reply links)."""

    platform: str
    chat_id: str
    message_id: str


@dataclass(frozen=True)
class Outgoing:
    """A message the core wants delivered."""

    chat_id: str
    text: str = ""
    buttons: tuple[tuple[Button, ...], ...] = ()
    reply_to: str | None = None
    file: Path | None = None
    photo: Path | None = None
    link_item_id: int | None = None  # record a message link so a reply ties back to the item
    link_contact_id: int | None = None
    markup: str = "text"  # text | html (Telegram) | markdown (WeCom)
    extra: dict[str, str] = field(default_factory=dict)
    outbox_id: int | None = None  # the outbox row that keeps a reply until it is sent


class Messenger(Protocol):
    """What a channel offers the core: send text (with optional buttons), a file or a photo."""

    platform: str

    async def send_text(
        self,
        chat_id: str,
        text: str,
        *,
        buttons: tuple[tuple[Button, ...], ...] = (),
        reply_to: str | None = None,
        markup: str = "text",
    ) -> SentMessage:
        """Send text (plain, or the platform's markup), split to its limit; the last part sent."""
        ...

    async def send_file(
        self, chat_id: str, path: Path, *, caption: str | None = None
    ) -> SentMessage:
        """Send a file (the ledger)."""
        ...

    async def send_photo(
        self, chat_id: str, path: Path, *, caption: str | None = None
    ) -> SentMessage:
        """Send a picture (the digest chart)."""
        ...


async def deliver(messenger: Messenger, out: Outgoing) -> SentMessage:
    """Send one Outgoing through a messenger."""
    if out.file is not None:
        return await messenger.send_file(out.chat_id, out.file, caption=out.text or None)
    if out.photo is not None:
        return await messenger.send_photo(out.chat_id, out.photo, caption=out.text or None)
    return await messenger.send_text(
        out.chat_id, out.text, buttons=out.buttons, reply_to=out.reply_to, markup=out.markup
    )


def split_text(text: str, limit: int, *, size: Callable[[str], int] = len) -> list[str]:
    """Split text into chunks within limit, on line boundaries where possible.

    `size` measures a string (len for characters, or a UTF-8 byte counter); a single line
    longer than the limit is cut inside the line.
    """
    measure = size
    if measure(text) <= limit:
        return [text]
    chunks: list[str] = []
    current = ""
    for line in text.split("\n"):
        candidate = f"{current}\n{line}" if current else line
        if measure(candidate) <= limit:
            current = candidate
            continue
        if current:
            chunks.append(current)
        while measure(line) > limit:
            cut = _longest_prefix(line, limit, measure)
            chunks.append(line[:cut])
            line = line[cut:]
        current = line
    if current:
        chunks.append(current)
    return chunks


def _longest_prefix(line: str, limit: int, measure: Callable[[str], int]) -> int:
    lo, hi = 1, len(line)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if measure(line[:mid]) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return lo


def utf8_size(text: str) -> int:
    """The length of text in UTF-8 bytes (WeCom measures its limits so)."""
    return len(text.encode("utf-8"))
