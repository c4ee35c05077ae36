"""The core's own event and message types: channel adapters translate to and from these."""

from __future__ import annotations

import enum
import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable


class EventKind(enum.StrEnum):
    """What an incoming event is."""

    text = "text"  # a text message (commands included)
    button = "button"  # a click on one of the bot's buttons
    enter = "enter"  # the user opened the chat with the bot (WeCom enter_agent)
    file = "file"  # a photo, document or video (the caption, if any, is the text)
    voice = "voice"  # a voice message (the text is the platform's speech recognition, if any)
    unsupported = "unsupported"  # a sticker, location, audio ...: the bot asks for text


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
    attachment: Attachment | None = None  # the file of a `file` event


@dataclass(frozen=True)
class StoredFile:
    """A file kept as evidence: its content's SHA-256 (also where it lies), size and type."""

    sha256: str
    size: int
    mime: str  # the type its content shows, not what the sender said
    ext: str  # the usual extension of that type (pdf, docx, jpg ...)
    name: str  # a display name (the sender's, cleaned), never used as a path


@dataclass(frozen=True)
class Attachment:
    """A file someone sent: where the platform keeps it, what the sender said it is, and,
    once the chat core fetched it (before the handler's transaction), the stored file or
    why it was refused."""

    kind: str  # photo | document | video
    file_id: str  # the platform's id to fetch it by (Telegram file_id, WeCom MediaId)
    name: str = ""  # the file name as sent: display text only
    mime: str = ""  # the MIME type the sender declared ("" when none)
    size: int | None = None  # the size the platform declared (never trusted alone)
    stored: StoredFile | None = None
    refused: str | None = None  # too_big | type | failed


@dataclass(frozen=True)
class Fetched:
    """What a download's answer said of the file (display and type checks only)."""

    mime: str = ""
    name: str = ""


class FileSink(Protocol):
    """Where a channel writes a download, chunk by chunk (it refuses what goes past the cap)."""

    def write(self, chunk: bytes) -> None:
        """Take the next chunk (raises once the file is over the size cap)."""
        ...


@runtime_checkable
class FileFetcher(Protocol):
    """A channel that can fetch the files people send (Telegram getFile, WeCom media/get)."""

    platform: str

    async def fetch_file(self, attachment: Attachment, sink: FileSink) -> Fetched:
        """Download the attachment into sink; FileTooBig past the cap, FetchFailed otherwise
        (its text never holds a token or a URL)."""
        ...


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
    outbox_key: str | None = None  # the outbox row that keeps a reply until it is sent


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


def utf16_size(text: str) -> int:
    """The length of text in UTF-16 code units (Telegram measures its limits so)."""
    return len(text.encode("utf-16-le")) // 2


# A tag, an entity, a line break, a run of plain text, or a stray "<" or "&".
_HTML_TOKEN = re.compile(r"<[^<>]*>|&#?\w+;|\n|[^<&\n]+|[<&]")
_HTML_TAG = re.compile(r"<(/?)([A-Za-z][\w-]*)")


def split_html(text: str, limit: int, *, size: Callable[[str], int] = len) -> list[str]:
    """Split Telegram HTML into well-formed chunks within limit, on line boundaries if possible.

    The limit is on the text a reader sees (Telegram's "after entities parsing"): tags count
    nothing, an entity as its character. Tags and entities are never cut. A tag open where a
    chunk ends is closed there and opened again at the start of the next chunk, so a line
    longer than the limit (a very long title in <b>) is cut inside the line and each part
    still parses. `size` must add up over concatenation (len, UTF-8 bytes, UTF-16 units).
    """

    def measure(token: str) -> int:
        if token.startswith("<") and len(token) > 1:
            return 0
        return size(html.unescape(token)) if token.startswith("&") else size(token)

    tokens = [m.group(0) for m in _HTML_TOKEN.finditer(text)]
    if sum(measure(token) for token in tokens) <= limit:
        return [text]
    chunks: list[str] = []
    open_tags: list[tuple[str, str]] = []  # (name, opening tag) open at the end of `parts`
    parts: list[str] = []
    used = 0
    start = 0  # parts[:start] are tags reopened from the chunk before, not content
    line_break: tuple[int, list[tuple[str, str]]] | None = None  # last "\n" in parts

    def closing(tags: list[tuple[str, str]]) -> str:
        return "".join(f"</{name}>" for name, _ in reversed(tags))

    def begin(tags: list[tuple[str, str]], rest: list[str]) -> None:
        nonlocal parts, used, start, line_break
        parts = [tag for _, tag in tags]
        start = len(parts)
        parts += rest
        used = sum(measure(part) for part in parts)
        line_break = None

    def flush(upto: int, tags: list[tuple[str, str]]) -> None:
        chunks.append("".join(parts[:upto]) + closing(tags))

    index = 0
    while index < len(tokens):
        token = tokens[index]
        after = _after(open_tags, token)
        if used + measure(token) <= limit:
            parts.append(token)
            used += measure(token)
            open_tags = after
            if token == "\n":
                line_break = (len(parts) - 1, list(open_tags))
            index += 1
            continue
        if line_break is not None and line_break[0] > start:
            at, tags = line_break  # cut at the last line break: the line before stays whole
            flush(at, tags)
            begin(tags, parts[at + 1 :])
            continue
        # No line break to cut at: cut here, inside the line (never inside a tag or entity).
        room = limit - used
        cut = _fitting_prefix(token, room, size) if token[0] not in "<&\n" else 0
        if cut:
            parts.append(token[:cut])
            tokens[index] = token[cut:]
        elif token == "\n":
            index += 1  # the line break is where the chunk ends
        elif len(parts) == start:  # nothing fits beside the reopened tags: send it oversized
            parts.append(token)
            open_tags = after
            index += 1
        if len(parts) > start:
            flush(len(parts), open_tags)
            begin(open_tags, [])
    if len(parts) > start:
        flush(len(parts), open_tags)
    return chunks


def _fitting_prefix(text: str, room: int, size: Callable[[str], int]) -> int:
    """How many leading characters of text fit in room (0 when not even one does)."""
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if size(text[:mid]) <= room:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _after(open_tags: list[tuple[str, str]], token: str) -> list[tuple[str, str]]:
    """The tags open after token, given those open before it."""
    match = _HTML_TAG.match(token) if token.startswith("<") else None
    if match is None:
        return open_tags
    closing, name = match.group(1), match.group(2).lower()
    if not closing:
        return [*open_tags, (name, token)]
    if open_tags and open_tags[-1][0] == name:
        return open_tags[:-1]
    return open_tags


def clean_text(text: str) -> str:
    """User text as it may be stored and shown: no control characters but line breaks and tabs.

    PostgreSQL refuses NUL in text, a spreadsheet may read what follows one as a formula,
    and none of them is anything a person meant to write.
    """
    if text.isprintable():
        return text
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
