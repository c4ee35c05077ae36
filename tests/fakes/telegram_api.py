"""A fake Telegram Bot API server for end-to-end tests and benchmarks.

A :class:`tests.fakes.base.FakeServer`: real HTTP on 127.0.0.1 and a free port, served from a
background thread with its own event loop, so it answers a bot running on any event loop, in
any thread or in another process.  Point python-telegram-bot at it with::

    with FakeTelegram() as server:
        app = (
            ApplicationBuilder()
            .token(server.token)
            .base_url(f"{server.url}/bot")
            .base_file_url(f"{server.url}/file/bot")
            .build()
        )

Talking to the bot (each call queues one update and returns its ``update_id``):

- ``server.user_says(user_id, text, *, first_name=..., reply_to_message_id=None, chat_id=None)``
  queues a message in the private chat ``user_id`` (or in group ``chat_id``); a text starting
  with ``/command`` carries a ``bot_command`` entity (ASCII commands only, as in Telegram, so
  ``/导入`` is plain text); ``reply_to_message`` is filled from the recorded message.
- ``server.user_clicks(user_id, message_id, data, *, chat_id=None)`` queues a callback query
  for an inline button of a message in that chat; ``data`` is the button's callback_data or
  its visible text, and must belong to a button the message currently shows.
- ``server.user_sends_document(user_id, filename, content, *, caption=None)`` queues a
  document message; the bot can download it with ``getFile`` and the file URL.
  ``server.user_sends_file(user_id, kind, content, *, filename=None, caption=None,
  mime_type=None, file_size=None, reply_to_message_id=None)`` does the same for a ``photo``
  (two sizes), ``video``, ``voice`` or ``document``; ``file_size`` is the size the message
  declares (default: the real one).  getFile answers "file is too big" over 20 MB, as
  Telegram does.
- ``server.push_raw_update(update)`` queues any dict (an ``update_id`` is added when missing;
  duplicates are kept, updates below the confirmed offset are dropped by the next getUpdates).

What the bot did:

- ``server.sent``: every successful outgoing call as a :class:`SentCall` (method, chat_id,
  message_id, text (text or caption as sent), plain_text (as the user sees it), parse_mode,
  reply_markup (dict), reply_to_message_id, files, params, result).
- ``server.messages_to(chat_id)``: the sendMessage/sendDocument/sendPhoto calls to a chat.
- ``server.message(chat_id, message_id)``: the message as it looks now (after edits).
- ``server.wait_for_messages(chat_id, count, timeout=5.0)`` blocks (thread-safe) until at
  least ``count`` messages in total were sent to the chat and returns them, or raises
  ``TimeoutError``; ``await server.await_messages(...)`` does the same from a coroutine.
  ``wait_until(predicate)`` / ``await_until(predicate)`` wait for anything else.
- ``server.requests``: every HTTP call as an :class:`~tests.fakes.base.ApiCall` (path = the
  method, query, body = the decoded parameters, errcode = error_code, status), failed ones
  included; ``wait_for_requests(method, count)`` waits for answered calls.
- ``server.webhook`` (setWebhook's url, secret_token, allowed_updates, ...; None after
  deleteWebhook), ``server.commands`` (setMyCommands per scope/language),
  ``server.callback_answers`` (answerCallbackQuery calls), ``server.pending_updates``.
- ``server.stats``: a Counter of calls per method name (failed ones included), of error
  answers by code (``stats["429"]``), of HTTP faults (``stats["http:502"]``) and of
  ``updates_delivered`` (redeliveries included).
- ``server.calls(method)``, ``server.commands_for(scope, language_code)``, ``server.pushed``
  (every queued update), ``server.internal_errors`` (bugs of the fake itself, answered 500).
- ``server.reset()`` forgets everything, for a server shared by several tests.

Faults:

- ``server.fail_next(method, count=1, error_code=429, retry_after=1, description=None)``:
  the next ``count`` calls of ``method`` fail; 429 carries ``parameters.retry_after`` (PTB
  raises RetryAfter), 400 BadRequest, 403 Forbidden, 409 Conflict, 5xx NetworkError.
- ``server.rate_limit(per_second, per_chat=None)``: a token bucket over every method but
  getUpdates (and optionally per chat); calls beyond it get 429 with retry_after;
  ``rate_limit(None)`` turns it off.
- ``server.block(user_id)``: sends to that chat get 403 "bot was blocked by the user".
- From the base: ``http_error_next(method, status=502, count=1)``, ``delay_next(method,
  seconds, count=1)``, ``latency(seconds)`` and ``clear_faults()``.

Methods: the ones Duban calls (getMe, getUpdates, setWebhook, deleteWebhook, sendMessage,
sendDocument, sendPhoto, answerCallbackQuery, setMyCommands) and the ones tests call
(getWebhookInfo, getMyCommands, deleteMyCommands, editMessageText, getFile, close); any other is
an unknown method.  Files (sent by the bot or by ``user_sends_document``) are downloadable at
``/file/bot<token>/<file_path>`` (the base's ``serve_file``).

Behaviour copied from the real API: methods are case-insensitive and take query strings,
form-encoded, JSON or multipart bodies; a malformed token gets 404 and a wrong one 401 (PTB
raises InvalidToken for both); an unknown method gets 404 ``Not Found`` (PTB raises
InvalidToken, or EndPointNotFound from ``do_api_request`` once initialised); getUpdates
confirms updates below ``offset``, waits up to ``timeout`` seconds and answers at once when an
update arrives, and gets 409 while a webhook is set or when a newer getUpdates replaces it;
message ids count up per chat (shared by the user's and the bot's messages); HTML
``parse_mode`` is checked (unsupported or unbalanced tags, e.g. ``<br>``, give "can't parse
entities"); texts over 4096 and captions over 1024 UTF-16 units, empty texts, callback_data
over 64 bytes, invalid command names, replies to unknown messages and unchanged edits all
give 400 as Telegram does; editMessageText without reply_markup drops the inline keyboard.
MarkdownV2 is not checked.  Nothing is ever delivered to a webhook: tests post to the bot's
webhook themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import re
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute

from .base import (
    FakeApiError,
    FakeServer,
    FilePart,
    Incoming,
    JSONDict,
    TokenBucket,
)

DEFAULT_TOKEN = "123456789:AAHfakeTokenForDubanTests_0123456789"
"""A well-formed token: its numeric prefix is the bot's user id."""

_TOKEN_SHAPE = re.compile(r"^\d+:[A-Za-z0-9_-]+$")
_COMMAND_ENTITY = re.compile(r"(?<![\w/<>])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/<>])")
_COMMAND_NAME = re.compile(r"^[a-z0-9_]{1,32}$")
_SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_HTML_TAGS = frozenset(
    {
        "a",
        "b",
        "blockquote",
        "code",
        "del",
        "em",
        "i",
        "ins",
        "pre",
        "s",
        "span",
        "strike",
        "strong",
        "tg-emoji",
        "tg-spoiler",
        "tg-time",
        "u",
    }
)
_HTML_ENTITY = re.compile(r"&(lt|gt|amp|quot|#[0-9]+|#[xX][0-9a-fA-F]+);")
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_NOT_BY_DEFAULT = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
_JSON_PARAMS = frozenset(
    {
        "allowed_updates",
        "caption_entities",
        "commands",
        "entities",
        "link_preview_options",
        "reply_markup",
        "reply_parameters",
        "scope",
    }
)
_INT_PARAMS = frozenset(
    {"message_id", "limit", "max_connections", "message_thread_id", "reply_to_message_id"}
)
_BOOL_PARAMS = frozenset(
    {
        "allow_sending_without_reply",
        "disable_notification",
        "drop_pending_updates",
        "protect_content",
        "show_alert",
    }
)
_BUTTON_ACTIONS = (
    "callback_data",
    "url",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
_SENDING_METHODS = frozenset({"sendMessage", "sendDocument", "sendPhoto"})
_MAX_TEXT = 4096
_MAX_CAPTION = 1024
_MAX_UPLOAD = 50 * 1024 * 1024
_MAX_DOWNLOAD = 20 * 1024 * 1024  # getFile refuses bigger files ("file is too big")
_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request: injected failure",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


class ApiError(FakeApiError):
    """An error answer of the Bot API: ``{"ok": false, "error_code": ..., ...}``."""

    def __init__(self, code: int, description: str, parameters: JSONDict | None = None) -> None:
        super().__init__(code, description, status=code)
        self.description = description
        self.parameters = parameters

    def payload(self) -> JSONDict:
        """The JSON body Telegram sends with this error."""
        payload: JSONDict = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            payload["parameters"] = self.parameters
        return payload


@dataclass
class SentCall:
    """One successful call the bot made (sending, editing, answering, configuring)."""

    method: str
    chat_id: int | str | None = None
    message_id: int | None = None
    text: str | None = None
    plain_text: str | None = None
    parse_mode: str | None = None
    reply_markup: JSONDict | None = None
    reply_to_message_id: int | None = None
    files: list[FilePart] = field(default_factory=list)
    params: JSONDict = field(default_factory=dict)
    result: Any = None
    at: float = field(default_factory=time.monotonic)

    @property
    def caption(self) -> str | None:
        """The caption of a sent document or photo (same as ``text``)."""
        return self.text if self.method in {"sendDocument", "sendPhoto"} else None

    @property
    def buttons(self) -> list[tuple[str, str | None]]:
        """The inline buttons as (text, callback_data or url), row by row."""
        return _buttons(self.reply_markup)


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _buttons(markup: JSONDict | None) -> list[tuple[str, str | None]]:
    rows = (markup or {}).get("inline_keyboard") or []
    return [
        (str(b.get("text", "")), b.get("callback_data", b.get("url"))) for row in rows for b in row
    ]


def _command_entities(text: str) -> list[JSONDict]:
    entities = []
    for m in _COMMAND_ENTITY.finditer(text):
        entities.append(
            {
                "type": "bot_command",
                "offset": _utf16_len(text[: m.start()]),
                "length": _utf16_len(m.group(0)),
            }
        )
    return entities


def _unescape_html(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in _NAMED_ENTITIES:
            return _NAMED_ENTITIES[name]
        try:
            code = int(name[2:], 16) if name[1] in "xX" else int(name[1:])
            return chr(code)
        except (ValueError, OverflowError):
            return m.group(0)

    return _HTML_ENTITY.sub(repl, text)


def html_to_plain(text: str) -> str:
    """The text a user sees for an HTML-formatted message, or ApiError as Telegram would."""

    def fail(reason: str, at: int) -> ApiError:
        offset = len(text[:at].encode())
        return ApiError(400, f"Bad Request: can't parse entities: {reason} at byte offset {offset}")

    out: list[str] = []
    stack: list[tuple[str, int]] = []
    i, n = 0, len(text)
    while i < n:
        lt = text.find("<", i)
        if lt < 0:
            out.append(_unescape_html(text[i:]))
            break
        out.append(_unescape_html(text[i:lt]))
        j = lt + 1
        closing = j < n and text[j] == "/"
        if closing:
            j += 1
        start = j
        while j < n and (text[j].isascii() and (text[j].isalnum() or text[j] == "-")):
            j += 1
        name = text[start:j].lower()
        # skip attributes, honouring quotes
        quote = ""
        while j < n and (quote or text[j] != ">"):
            if quote:
                if text[j] == quote:
                    quote = ""
            elif text[j] in "\"'":
                quote = text[j]
            j += 1
        if j >= n:
            raise fail("Unclosed start tag", lt)
        attrs = text[start + len(name) : j]
        if closing:
            if not stack:
                raise fail(f'Unexpected end tag "{name}"', lt)
            expected = stack[-1][0]
            if name and name != expected:
                raise fail(f'Unmatched end tag, expected "</{expected}>", found "</{name}>"', lt)
            stack.pop()
        else:
            if name not in _HTML_TAGS:
                raise fail(f'Unsupported start tag "{name}"', lt)
            if name == "span" and "tg-spoiler" not in attrs:
                raise fail('Tag "span" must have class "tg-spoiler"', lt)
            stack.append((name, lt))
        i = j + 1
    if stack:
        name, at = stack[-1]
        raise fail(f'Can\'t find end tag corresponding to start tag "{name}"', at)
    return "".join(out)


def _png_size(data: bytes) -> tuple[int, int]:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return 0, 0


class FakeTelegram(FakeServer[SentCall]):
    """A fake Telegram Bot API server; see the module docstring for the test-facing API."""

    label = "Telegram"
    thread_name = "fake-telegram"

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        bot_username: str = "duban_test_bot",
        bot_first_name: str = "Duban",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.bot_user: JSONDict = {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        self._pollers: set[asyncio.Event] = set()
        self._poll_generation = 0
        self._closing = False
        methods: dict[str, Callable[[JSONDict, dict[str, FilePart]], Any]] = {
            "getMe": self._get_me,
            "close": self._true,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "sendMessage": self._send_message,
            "sendDocument": self._send_document,
            "sendPhoto": self._send_photo,
            "editMessageText": self._edit_message_text,
            "answerCallbackQuery": self._answer_callback_query,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "getFile": self._get_file,
        }
        for name, handler in methods.items():
            self._endpoint(name, self._method(handler))
        self._endpoint("getUpdates", self._get_updates_endpoint)
        self._canonical = {name.lower(): name for name in [*methods, "getUpdates"]}
        self.reset()

    # ------------------------------------------------------------------ base hooks

    def _routes(self) -> list[BaseRoute]:
        def method_of(request: Any) -> str:
            raw: str = request.path_params["method"]
            return self._canonical.get(raw.lower(), raw)

        return [self._api_route("/bot{token}/{method}", method_of)]

    def _canonical_endpoint(self, name: str) -> str:
        return self._canonical.get(name.lower(), name)

    def _unknown(self, call: Incoming) -> Response:
        self._check_token(call)
        raise ApiError(404, "Not Found")

    def _internal_error(self, exc: Exception) -> ApiError:
        return ApiError(500, f"Internal Server Error: fake server bug: {exc!r}")

    def _file_not_found(self, call: Incoming) -> Response:
        return self.json_response(ApiError(404, "Not Found").payload(), 404)

    def _on_stop(self) -> None:
        self._closing = True
        self._wake_pollers()

    def start(self) -> FakeTelegram:
        """Bind a port and serve from a background thread; returns once it accepts requests."""
        self._closing = False
        return super().start()

    def reset(self) -> None:
        """Forget all updates, messages, calls, faults and counters (keeps the bot identity)."""
        with self._lock:
            super().reset()
            self.sent: list[SentCall] = []
            self.webhook: JSONDict | None = None
            self.commands: dict[tuple[str, str], list[JSONDict]] = {}
            self.callback_answers: list[JSONDict] = []
            self.pushed: list[JSONDict] = []
            self._queue: list[JSONDict] = []
            self._next_update_id = 1
            self._allowed: frozenset[str] | None = None
            self._messages: dict[tuple[int, int], JSONDict] = {}
            self._next_message_id: dict[int, int] = {}
            self._chats: dict[int, JSONDict] = {}
            self._users: dict[int, JSONDict] = {}
            self._blocked: set[int] = set()
            self._open_queries: set[str] = set()
            self._bucket: TokenBucket | None = None
            self._chat_rate: float | None = None
            self._chat_buckets: dict[int | str, TokenBucket] = {}
            self._files: dict[str, tuple[FilePart, str]] = {}
            self._ids = itertools.count(1)
            # A long poll still open from before the reset (a stopped bot's request that the
            # client gave up on) is superseded: it ends with 409 and takes nothing.
            self._poll_generation += 1
        self._notify_update()

    # ------------------------------------------------------------------ test-facing API

    def user_says(
        self,
        user_id: int,
        text: str,
        *,
        first_name: str = "Test",
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "zh-hans",
        reply_to_message_id: int | None = None,
        chat_id: int | None = None,
    ) -> int:
        """Queue a text message from a user (private chat unless chat_id); returns update_id."""
        with self._lock:
            message = self._user_message(
                user_id, first_name, last_name, username, language_code, chat_id
            )
            message["text"] = text
            entities = _command_entities(text)
            if entities:
                message["entities"] = entities
            if reply_to_message_id is not None:
                target = self._messages.get((message["chat"]["id"], reply_to_message_id))
                if target is None:
                    raise ValueError(
                        f"no message {reply_to_message_id} in chat {message['chat']['id']}"
                    )
                message["reply_to_message"] = _without_reply(target)
            return self._store_and_queue(message)

    def user_sends_document(
        self,
        user_id: int,
        filename: str,
        content: bytes,
        *,
        caption: str | None = None,
        mime_type: str = "application/octet-stream",
        first_name: str = "Test",
        chat_id: int | None = None,
        file_size: int | None = None,
    ) -> int:
        """Queue a document message from a user (downloadable via getFile); returns update_id.
        ``file_size`` overrides the size the message declares (a client may lie)."""
        return self.user_sends_file(
            user_id,
            "document",
            content,
            filename=filename,
            caption=caption,
            mime_type=mime_type,
            first_name=first_name,
            chat_id=chat_id,
            file_size=file_size,
        )

    def user_sends_file(
        self,
        user_id: int,
        kind: str,
        content: bytes,
        *,
        filename: str | None = None,
        caption: str | None = None,
        mime_type: str | None = None,
        first_name: str = "Test",
        chat_id: int | None = None,
        file_size: int | None = None,
        reply_to_message_id: int | None = None,
    ) -> int:
        """Queue a ``document``, ``photo``, ``video`` or ``voice`` message from a user, its
        file downloadable via getFile; returns update_id.  A photo comes in two sizes (a
        thumbnail, then the file) as Telegram sends it; a voice message carries no text.
        ``file_size`` overrides the size the message declares (a client may lie)."""
        if kind not in ("document", "photo", "video", "voice"):
            raise ValueError(f"unknown file kind {kind!r}")
        with self._lock:
            message = self._user_message(user_id, first_name, None, None, "zh-hans", chat_id)
            if reply_to_message_id is not None:
                target = self._messages.get((message["chat"]["id"], reply_to_message_id))
                if target is None:
                    raise ValueError(f"no message {reply_to_message_id} in that chat")
                message["reply_to_message"] = _without_reply(target)
            name = filename or f"{kind}.bin"
            upload = FilePart(kind, name, mime_type or "application/octet-stream", content)
            file_id, unique_id = self._store_file(upload, f"{kind}s")
            declared = len(content) if file_size is None else file_size
            meta: JSONDict = {"file_id": file_id, "file_unique_id": unique_id}
            if kind == "photo":
                thumb = FilePart("photo", "thumb.jpg", "image/jpeg", content[:64])
                thumb_id, thumb_unique = self._store_file(thumb, "photos")
                message["photo"] = [
                    {"file_id": thumb_id, "file_unique_id": thumb_unique, "width": 90,
                     "height": 67, "file_size": len(thumb.data)},
                    {**meta, "width": 1280, "height": 960, "file_size": declared},
                ]  # fmt: skip
            else:
                meta["file_size"] = declared
                if kind == "voice":
                    meta.update(duration=3, mime_type=mime_type or "audio/ogg")
                else:
                    if filename is not None:
                        meta["file_name"] = filename
                    if mime_type is not None:
                        meta["mime_type"] = mime_type
                    if kind == "video":
                        meta.update(width=1280, height=720, duration=5)
                message[kind] = meta
            if caption is not None:
                message["caption"] = caption
            return self._store_and_queue(message)

    def user_clicks(
        self, user_id: int, message_id: int, data: str, *, chat_id: int | None = None
    ) -> int:
        """Queue a click on an inline button (callback_data or text); returns update_id."""
        with self._lock:
            chat = user_id if chat_id is None else chat_id
            message = self._messages.get((chat, message_id))
            if message is None:
                raise ValueError(f"no message {message_id} in chat {chat}")
            rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
            buttons = [
                (b["text"], b["callback_data"]) for r in rows for b in r if "callback_data" in b
            ]
            if data not in [d for _, d in buttons]:
                by_text = [d for t, d in buttons if t == data]
                if len(by_text) != 1:
                    raise ValueError(
                        f"message {message_id} in chat {chat} has no button {data!r}; "
                        f"it shows {buttons!r}"
                    )
                data = str(by_text[0])
            user = self._users.get(user_id) or {
                "id": user_id,
                "is_bot": False,
                "first_name": "Test",
            }
            query_id = str(4_000_000_000_000_000 + next(self._ids))
            self._open_queries.add(query_id)
            query = {
                "id": query_id,
                "from": user,
                "message": _public(message),
                "chat_instance": str(-(10**18) - abs(chat)),
                "data": data,
            }
            return self._queue_update({"callback_query": query})

    def push_raw_update(self, update: JSONDict) -> int:
        """Queue any update dict (adds update_id when missing); returns its update_id."""
        with self._lock:
            update = copy.deepcopy(update)
            if "update_id" not in update:
                update["update_id"] = self._next_update_id
            self._next_update_id = max(self._next_update_id, int(update["update_id"]) + 1)
            for key in ("message", "edited_message", "channel_post", "edited_channel_post"):
                msg = update.get(key)
                if isinstance(msg, dict) and "chat" in msg and "message_id" in msg:
                    chat_id = int(msg["chat"]["id"])
                    self._messages[(chat_id, int(msg["message_id"]))] = msg
                    nxt = self._next_message_id.get(chat_id, 1)
                    self._next_message_id[chat_id] = max(nxt, int(msg["message_id"]) + 1)
            self.pushed.append(update)
            self._queue.append(update)
            self._notify_update()
            return int(update["update_id"])

    def message(self, chat_id: int, message_id: int) -> JSONDict | None:
        """The message as it looks now (after edits), or None when unknown."""
        with self._lock:
            found = self._messages.get((chat_id, message_id))
            return copy.deepcopy(_public(found)) if found is not None else None

    @property
    def pending_updates(self) -> int:
        """How many queued updates the bot has not confirmed yet."""
        with self._lock:
            return len(self._queue)

    def fail_next(
        self,
        method: str,
        count: int = 1,
        error_code: int = 429,
        retry_after: int = 1,
        description: str | None = None,
    ) -> None:
        """Make the next ``count`` calls of ``method`` fail with ``error_code``."""
        if description is None:
            if error_code == 429:
                description = f"Too Many Requests: retry after {retry_after}"
            else:
                description = _DEFAULT_DESCRIPTIONS.get(error_code, f"Error {error_code}")
        text = description
        parameters = {"retry_after": retry_after} if error_code == 429 else None
        self._inject_error(method, lambda: ApiError(error_code, text, parameters), count)

    def rate_limit(self, per_second: float | None, per_chat: float | None = None) -> None:
        """Answer 429 to calls beyond ``per_second`` (and ``per_chat`` per chat); None = off."""
        with self._lock:
            self._bucket = TokenBucket(per_second) if per_second else None
            self._chat_rate = per_chat
            self._chat_buckets = {}

    def block(self, chat_id: int) -> None:
        """Make every send to ``chat_id`` fail with 403 (the user blocked the bot)."""
        with self._lock:
            self._blocked.add(chat_id)

    # ------------------------------------------------------------------ update plumbing

    def _user(
        self,
        user_id: int,
        first_name: str,
        last_name: str | None,
        username: str | None,
        language_code: str | None,
    ) -> JSONDict:
        user: JSONDict = {"id": user_id, "is_bot": False, "first_name": first_name}
        if last_name:
            user["last_name"] = last_name
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        self._users[user_id] = user
        return user

    def _user_message(
        self,
        user_id: int,
        first_name: str,
        last_name: str | None,
        username: str | None,
        language_code: str | None,
        chat_id: int | None,
    ) -> JSONDict:
        user = self._user(user_id, first_name, last_name, username, language_code)
        if chat_id is None or chat_id == user_id:
            chat = {k: v for k, v in user.items() if k in ("first_name", "last_name", "username")}
            chat = {"id": user_id, "type": "private", **chat}
            self._chats[user_id] = chat
        else:
            chat = self._chat(chat_id)
        return {
            "message_id": self._take_message_id(chat["id"]),
            "from": user,
            "chat": chat,
            "date": int(time.time()),
        }

    def _store_and_queue(self, message: JSONDict) -> int:
        self._messages[(message["chat"]["id"], message["message_id"])] = message
        return self._queue_update({"message": message})

    def _queue_update(self, body: JSONDict) -> int:
        update_id = self._next_update_id
        self._next_update_id += 1
        update = {"update_id": update_id, **body}
        self.pushed.append(update)
        self._queue.append(update)
        self._notify_update()
        return update_id

    def _notify_update(self) -> None:
        self._call_soon(self._wake_pollers)

    def _wake_pollers(self) -> None:
        for event in self._pollers:
            event.set()

    def _take_message_id(self, chat_id: int) -> int:
        message_id = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = message_id + 1
        return message_id

    def _chat(self, chat_id: int) -> JSONDict:
        chat = self._chats.get(chat_id)
        if chat is None:
            if chat_id > 0:
                chat = {"id": chat_id, "type": "private", "first_name": f"User {chat_id}"}
            elif str(chat_id).startswith("-100"):
                chat = {"id": chat_id, "type": "supergroup", "title": f"Group {chat_id}"}
            else:
                chat = {"id": chat_id, "type": "group", "title": f"Group {chat_id}"}
            self._chats[chat_id] = chat
        return chat

    def _resolve_chat(self, raw: Any) -> int:
        if raw is None or raw == "":
            raise ApiError(400, "Bad Request: chat_id is empty")
        text = str(raw)
        if text.startswith("@"):
            for chat in self._chats.values():
                if chat.get("username") == text[1:]:
                    return int(chat["id"])
            raise ApiError(400, "Bad Request: chat not found")
        try:
            return int(text)
        except ValueError:
            raise ApiError(400, "Bad Request: chat not found") from None

    def _store_file(self, upload: FilePart, folder: str) -> tuple[str, str]:
        n = next(self._ids)
        file_id = f"FAKE{folder[:3].upper()}{n:08d}"
        unique_id = f"U{n:08d}"
        suffix = ""
        if "." in upload.filename:
            suffix = "." + upload.filename.rsplit(".", 1)[1]
        path = f"{folder}/file_{n}{suffix}"
        self._files[file_id] = (upload, path)
        self.serve_file(f"file/bot{self.token}/{path}", upload)
        return file_id, unique_id

    # ------------------------------------------------------------------ HTTP

    def _method(
        self, handler: Callable[[JSONDict, dict[str, FilePart]], Any]
    ) -> Callable[[Incoming], JSONDict]:
        """A Bot API method as a base endpoint: token, parameters, rate limit, ``ok`` answer."""

        def endpoint(call: Incoming) -> JSONDict:
            params, uploads = self._params(call)
            self._check_rate(params.get("chat_id"))
            return {"ok": True, "result": handler(params, uploads)}

        return endpoint

    async def _get_updates_endpoint(self, call: Incoming) -> JSONDict:
        params, _ = self._params(call)
        return {"ok": True, "result": await self._get_updates(params)}

    def _check_token(self, call: Incoming) -> None:
        token = str(call.path_params.get("token", ""))
        if token != self.token:
            if _TOKEN_SHAPE.match(token):
                raise ApiError(401, "Unauthorized")
            raise ApiError(404, "Not Found")

    def _params(self, call: Incoming) -> tuple[JSONDict, dict[str, FilePart]]:
        """The call's parameters (query string and body), decoded, and its uploaded files."""
        self._check_token(call)
        raw = dict(call.query)
        uploads: dict[str, FilePart] = {}
        body, content_type = call.body, call.content_type
        if call.method == "POST" and body:
            if content_type.startswith("multipart/form-data"):
                try:
                    fields, uploads = call.multipart()
                except ValueError as exc:
                    raise ApiError(400, f"Bad Request: {exc}") from None
                raw.update(fields)
            elif content_type.startswith("application/json"):
                decoded = call.json_or_none()
                if not isinstance(decoded, dict):
                    raise ApiError(400, "Bad Request: can't parse JSON object")
                for key, value in decoded.items():
                    raw[key] = value if isinstance(value, str) else json.dumps(value)
            else:
                raw.update(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
        try:
            params = _decode(raw)
        except ValueError:
            raise ApiError(400, "Bad Request: invalid parameter value") from None
        call.record.body = params
        return params, uploads

    def _check_rate(self, chat_id: Any) -> None:
        now = time.monotonic()
        wait = self._bucket.take(now) if self._bucket else 0
        if not wait and self._chat_rate and chat_id is not None:
            bucket = self._chat_buckets.get(chat_id)
            if bucket is None:
                bucket = self._chat_buckets[chat_id] = TokenBucket(self._chat_rate)
            wait = bucket.take(now)
        if wait:
            raise ApiError(429, f"Too Many Requests: retry after {wait}", {"retry_after": wait})

    # ------------------------------------------------------------------ getUpdates

    def _take_updates(self, offset: int, limit: int) -> list[JSONDict]:
        queue = self._queue
        if offset > 0:
            queue = [u for u in queue if int(u["update_id"]) >= offset]
        elif offset < 0:
            queue = queue[offset:]
        allowed = self._allowed
        if allowed is None:
            kept = [
                u for u in queue if any(k not in _NOT_BY_DEFAULT for k in u if k != "update_id")
            ]
        else:
            kept = [u for u in queue if any(k in allowed for k in u if k != "update_id")]
        self._queue = kept
        return kept[:limit]

    async def _get_updates(self, params: JSONDict) -> list[JSONDict]:
        offset = int(params.get("offset") or 0)
        limit = min(100, max(1, int(params.get("limit") or 100)))
        timeout = float(params.get("timeout") or 0)
        with self._lock:
            if self.webhook is not None:
                raise ApiError(
                    409,
                    "Conflict: can't use getUpdates method while webhook is active; "
                    "use deleteWebhook to delete the webhook first",
                )
            allowed = params.get("allowed_updates")
            if allowed is not None:
                self._allowed = frozenset(allowed) or None
            self._poll_generation += 1
            generation = self._poll_generation
            batch = self._take_updates(offset, limit)
        self._wake_pollers()  # an older long poll is now superseded
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not batch and not self._closing:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            event = asyncio.Event()
            self._pollers.add(event)
            try:
                with self._lock:
                    if generation != self._poll_generation:
                        raise ApiError(409, _DEFAULT_DESCRIPTIONS[409])
                    batch = self._take_updates(offset, limit)
                if batch:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), remaining)
            finally:
                self._pollers.discard(event)
        with self._lock:
            if generation != self._poll_generation and not batch:
                raise ApiError(409, _DEFAULT_DESCRIPTIONS[409])
            self.stats["updates_delivered"] += len(batch)
            self._changed.notify_all()
        return batch

    # ------------------------------------------------------------------ methods

    def _record(self, call: SentCall) -> None:
        self.sent.append(call)
        if call.method in _SENDING_METHODS and isinstance(call.chat_id, int):
            self._deliver(call.chat_id, call)

    def _true(self, params: JSONDict, uploads: dict[str, FilePart]) -> bool:
        return True

    def _get_me(self, params: JSONDict, uploads: dict[str, FilePart]) -> JSONDict:
        return self.bot_user

    def _set_webhook(self, params: JSONDict, uploads: dict[str, FilePart]) -> bool:
        url = params.get("url") or ""
        secret = params.get("secret_token")
        if secret is not None and not _SECRET_TOKEN.match(secret):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        if params.get("drop_pending_updates"):
            self._queue = []
        if not url:
            self.webhook = None
            return True
        if params.get("allowed_updates") is not None:
            self._allowed = frozenset(params["allowed_updates"]) or None
        self.webhook = {
            "url": url,
            "secret_token": secret,
            "allowed_updates": params.get("allowed_updates"),
            "max_connections": params.get("max_connections", 40),
            "ip_address": params.get("ip_address"),
            "drop_pending_updates": bool(params.get("drop_pending_updates")),
            "has_custom_certificate": "certificate" in uploads,
        }
        self._record(SentCall("setWebhook", params=params, result=True))
        return True

    def _delete_webhook(self, params: JSONDict, uploads: dict[str, FilePart]) -> bool:
        if params.get("drop_pending_updates"):
            self._queue = []
        self.webhook = None
        return True

    def _get_webhook_info(self, params: JSONDict, uploads: dict[str, FilePart]) -> JSONDict:
        info: JSONDict = {
            "url": "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._queue),
        }
        if self.webhook is not None:
            info["url"] = self.webhook["url"]
            info["has_custom_certificate"] = self.webhook["has_custom_certificate"]
            info["max_connections"] = self.webhook["max_connections"]
            if self.webhook["allowed_updates"] is not None:
                info["allowed_updates"] = self.webhook["allowed_updates"]
            if self.webhook["ip_address"]:
                info["ip_address"] = self.webhook["ip_address"]
        return info

    def _format(self, text: str, parse_mode: str | None, limit: int, what: str) -> str:
        plain = html_to_plain(text) if (parse_mode or "").lower() == "html" else text
        if what == "text" and not plain.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if _utf16_len(plain) > limit:
            raise ApiError(400, f"Bad Request: message {what} is too long")
        return plain

    @staticmethod
    def _check_markup(markup: JSONDict | None) -> None:
        for row in (markup or {}).get("inline_keyboard") or []:
            for button in row:
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode()) <= 64:
                    raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
                if not any(key in button for key in _BUTTON_ACTIONS):
                    raise ApiError(
                        400, "Bad Request: text buttons are unallowed in the inline keyboard"
                    )

    def _new_message(self, params: JSONDict) -> tuple[int, JSONDict]:
        """Check the common sending parameters; return the chat id and a message skeleton."""
        chat_id = self._resolve_chat(params.get("chat_id"))
        if chat_id in self._blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        markup = params.get("reply_markup")
        self._check_markup(markup)
        reply: JSONDict = dict(params.get("reply_parameters") or {})
        if "reply_to_message_id" in params:
            reply.setdefault("message_id", int(params["reply_to_message_id"]))
        message: JSONDict = {"message_id": 0, "from": self.bot_user, "chat": {}}
        if reply.get("message_id") is not None:
            reply_chat = self._resolve_chat(reply.get("chat_id", chat_id))
            target = self._messages.get((reply_chat, int(reply["message_id"])))
            if target is not None:
                message["reply_to_message"] = _without_reply(target)
            elif not (
                reply.get("allow_sending_without_reply")
                or params.get("allow_sending_without_reply")
            ):
                raise ApiError(400, "Bad Request: message to be replied not found")
        return chat_id, message

    def _finish_message(self, chat_id: int, message: JSONDict, params: JSONDict) -> JSONDict:
        message["message_id"] = self._take_message_id(chat_id)
        message["chat"] = self._chat(chat_id)
        message["date"] = int(time.time())
        markup = params.get("reply_markup")
        if markup and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        keys = ("message_id", "from", "chat", "date")
        ordered: JSONDict = {k: message[k] for k in keys if k in message}
        ordered.update({k: v for k, v in message.items() if k not in ordered})
        self._messages[(chat_id, ordered["message_id"])] = ordered
        return _public(ordered)

    def _send_message(self, params: JSONDict, uploads: dict[str, FilePart]) -> JSONDict:
        text = params.get("text") or ""
        parse_mode = params.get("parse_mode")
        chat_id, message = self._new_message(params)
        plain = self._format(text, parse_mode, _MAX_TEXT, "text")
        message["text"] = plain
        message["_source"] = (text, parse_mode) if parse_mode else (plain, None)
        if params.get("entities"):
            message["entities"] = params["entities"]
        result = self._finish_message(chat_id, message, params)
        self._record(
            SentCall(
                "sendMessage",
                chat_id=chat_id,
                message_id=result["message_id"],
                text=text,
                plain_text=plain,
                parse_mode=parse_mode,
                reply_markup=params.get("reply_markup"),
                reply_to_message_id=(result.get("reply_to_message") or {}).get("message_id"),
                params=params,
                result=result,
            )
        )
        return result

    def _send_file(
        self, method: str, kind: str, params: JSONDict, uploads: dict[str, FilePart]
    ) -> JSONDict:
        chat_id, message = self._new_message(params)
        caption = params.get("caption")
        parse_mode = params.get("parse_mode")
        plain = None
        if caption is not None:
            plain = self._format(caption, parse_mode, _MAX_CAPTION, "caption")
            message["caption"] = plain
        value = params.get(kind)
        upload = uploads.get(kind)
        if isinstance(value, str) and value.startswith("attach://"):
            upload = uploads.get(value[len("attach://") :])
        if upload is not None:
            if upload.size > _MAX_UPLOAD:
                raise ApiError(413, "Request Entity Too Large")
            file_id, unique_id = self._store_file(upload, f"{kind}s")
        elif isinstance(value, str) and value in self._files:
            upload = self._files[value][0]
            file_id, unique_id = value, f"U{value}"
        elif isinstance(value, str) and value.startswith(("http://", "https://")):
            name = value.rsplit("/", 1)[-1] or kind
            upload = FilePart(kind, name, "application/octet-stream", b"")
            file_id, unique_id = self._store_file(upload, f"{kind}s")
        else:
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        if kind == "document":
            message["document"] = {
                "file_id": file_id,
                "file_unique_id": unique_id,
                "file_name": upload.filename,
                "mime_type": upload.content_type,
                "file_size": upload.size,
            }
        else:
            width, height = _png_size(upload.data)
            message["photo"] = [
                {
                    "file_id": file_id,
                    "file_unique_id": unique_id,
                    "width": width,
                    "height": height,
                    "file_size": upload.size,
                }
            ]
        result = self._finish_message(chat_id, message, params)
        self._record(
            SentCall(
                method,
                chat_id=chat_id,
                message_id=result["message_id"],
                text=caption,
                plain_text=plain,
                parse_mode=parse_mode,
                reply_markup=params.get("reply_markup"),
                reply_to_message_id=(result.get("reply_to_message") or {}).get("message_id"),
                files=[upload, *(u for k, u in uploads.items() if u is not upload)],
                params=params,
                result=result,
            )
        )
        return result

    def _send_document(self, params: JSONDict, uploads: dict[str, FilePart]) -> JSONDict:
        return self._send_file("sendDocument", "document", params, uploads)

    def _send_photo(self, params: JSONDict, uploads: dict[str, FilePart]) -> JSONDict:
        return self._send_file("sendPhoto", "photo", params, uploads)

    def _editable(self, params: JSONDict) -> tuple[int, JSONDict]:
        if params.get("inline_message_id"):
            raise ApiError(400, "Bad Request: MESSAGE_ID_INVALID")
        chat_id = self._resolve_chat(params.get("chat_id"))
        message_id = params.get("message_id")
        message = self._messages.get((chat_id, int(message_id or 0)))
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        if message.get("from", {}).get("id") != self.bot_id:
            raise ApiError(400, "Bad Request: message can't be edited")
        return chat_id, message

    def _edit_message_text(self, params: JSONDict, uploads: dict[str, FilePart]) -> JSONDict:
        chat_id, message = self._editable(params)
        if "text" not in message:
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        text = params.get("text") or ""
        parse_mode = params.get("parse_mode")
        markup = params.get("reply_markup")
        self._check_markup(markup)
        plain = self._format(text, parse_mode, _MAX_TEXT, "text")
        new_markup = markup if markup and "inline_keyboard" in markup else None
        source = (text, parse_mode) if parse_mode else (plain, None)
        if source == message.get("_source", (message["text"], None)) and new_markup == message.get(
            "reply_markup"
        ):
            raise ApiError(400, _NOT_MODIFIED)
        message = {**message, "text": plain, "_source": source, "edit_date": int(time.time())}
        _set_markup(message, new_markup)
        self._messages[(chat_id, message["message_id"])] = message
        result = _public(message)
        self._record(
            SentCall(
                "editMessageText",
                chat_id=chat_id,
                message_id=message["message_id"],
                text=text,
                plain_text=plain,
                parse_mode=parse_mode,
                reply_markup=markup,
                params=params,
                result=result,
            )
        )
        return result

    def _answer_callback_query(self, params: JSONDict, uploads: dict[str, FilePart]) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        if query_id not in self._open_queries:
            raise ApiError(
                400,
                "Bad Request: query is too old and response timeout expired or query ID is invalid",
            )
        self._open_queries.discard(query_id)
        self.callback_answers.append(params)
        self._record(
            SentCall("answerCallbackQuery", text=params.get("text"), params=params, result=True)
        )
        return True

    @staticmethod
    def _command_key(params: JSONDict) -> tuple[str, str]:
        scope = params.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(params.get("language_code") or "")

    def _set_my_commands(self, params: JSONDict, uploads: dict[str, FilePart]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise ApiError(400, 'Bad Request: parameter "commands" is required')
        if len(commands) > 100:
            raise ApiError(400, "Bad Request: too many commands specified")
        for command in commands:
            if not _COMMAND_NAME.match(str(command.get("command", ""))):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", "")).strip()) <= 256:
                raise ApiError(400, "Bad Request: command description must be non-empty")
        key = self._command_key(params)
        if commands:
            self.commands[key] = commands
        else:
            self.commands.pop(key, None)
        self._record(SentCall("setMyCommands", params=params, result=True))
        return True

    def _get_my_commands(self, params: JSONDict, uploads: dict[str, FilePart]) -> list[JSONDict]:
        return list(self.commands.get(self._command_key(params), []))

    def _delete_my_commands(self, params: JSONDict, uploads: dict[str, FilePart]) -> bool:
        self.commands.pop(self._command_key(params), None)
        self._record(SentCall("deleteMyCommands", params=params, result=True))
        return True

    def _get_file(self, params: JSONDict, uploads: dict[str, FilePart]) -> JSONDict:
        file_id = str(params.get("file_id") or "")
        if file_id not in self._files:
            raise ApiError(400, "Bad Request: invalid file_id")
        upload, path = self._files[file_id]
        if upload.size > _MAX_DOWNLOAD:
            raise ApiError(400, "Bad Request: file is too big")
        return {
            "file_id": file_id,
            "file_unique_id": f"U{file_id}",
            "file_size": upload.size,
            "file_path": path,
        }

    # ------------------------------------------------------------------ for commands lookups

    def commands_for(
        self, scope: JSONDict | None = None, language_code: str = ""
    ) -> list[JSONDict]:
        """The commands set for a scope (default scope when None) and language."""
        with self._lock:
            return list(
                self.commands.get(
                    self._command_key({"scope": scope, "language_code": language_code}), []
                )
            )

    def calls(self, method: str) -> list[SentCall]:
        """The recorded calls of one method, in order."""
        with self._lock:
            return [c for c in self.sent if c.method == method]


def _decode(raw: dict[str, str]) -> JSONDict:
    """Turn wire parameters (all strings) into Python values for the known parameter names."""
    params: JSONDict = {}
    for key, value in raw.items():
        if key in _JSON_PARAMS:
            try:
                params[key] = json.loads(value)
            except ValueError:
                raise ApiError(400, f"Bad Request: can't parse {key} JSON object") from None
        elif key in _INT_PARAMS or (key in ("offset", "chat_id") and _looks_int(value)):
            params[key] = int(value)
        elif key in _BOOL_PARAMS:
            params[key] = value in ("true", "True", "1")
        else:
            params[key] = value
    return params


def _looks_int(value: str) -> bool:
    return value.lstrip("-").isdigit()


# Stored messages are never changed in place (edits store a new dict), so the answers, the
# recorded calls and the queued updates can share them without copying.


def _without_reply(message: JSONDict) -> JSONDict:
    return {k: v for k, v in message.items() if k not in ("reply_to_message", "_source")}


def _public(message: JSONDict) -> JSONDict:
    return {k: v for k, v in message.items() if not k.startswith("_")}


def _set_markup(message: JSONDict, markup: JSONDict | None) -> None:
    if markup:
        message["reply_markup"] = markup
    else:
        message.pop("reply_markup", None)
