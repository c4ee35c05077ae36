"""The Telegram channel on python-telegram-bot 22, used as the transport only.

Updates become the core's IncomingMessage at the edge. Long polling by default; webhook mode
when TELEGRAM_WEBHOOK_URL is set, served by the web app under /telegram/webhook with the
secret header checked in constant time before the body is read.

Every update is stored in the inbox before Telegram is told we have it: Duban drives
getUpdates itself and moves the offset (which confirms updates to Telegram) only past
updates that are stored; the webhook answers 200 only once the update is stored. Handling
reads them from PTB's update queue; on start, what is stored and not handled goes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from telegram import (
    BotCommand,
    BotCommandScopeChat,
    BotCommandScopeDefault,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, InvalidToken, RetryAfter, TelegramError
from telegram.ext import AIORateLimiter, ExtBot
from telegram.request import BaseRequest, HTTPXRequest
from telegram.warnings import PTBUserWarning

from bot.channels.aiohttp_request import AiohttpRequest
from bot.chat import ChatCore
from bot.events import (
    Attachment,
    Button,
    EventKind,
    Fetched,
    FileSink,
    IncomingMessage,
    SentMessage,
    clean_text,
    split_html,
    split_text,
    utf16_size,
)
from bot.evidence import FetchFailed, FileTooBig
from bot.i18n import Translator
from bot.inbox import Received
from bot.models import Account, Contact, Role
from bot.ordering import ChatLocks
from bot.router import Router
from bot.settings import Settings
from bot.web import RefusalLog, RequestRefused, read_limited

log = logging.getLogger(__name__)

PLATFORM = "telegram"
SEND_MESSAGE = "sendMessage"
GET_UPDATES = "getUpdates"
GET_FILE = "getFile"
ANSWER_CALLBACK = "answerCallbackQuery"
POLL_READ_MARGIN = 10.0  # seconds beyond the long-poll timeout before a read gives up
PACING_SECONDS = 0.1
MAX_MESSAGE = 4096
MAX_CAPTION = 1024
MAX_WEBHOOK_BODY = 1 << 20
STOP_GRACE_SECONDS = 10.0  # how long a stop waits for the updates in hand
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ["message", "callback_query"]
DOWNLOAD_SECONDS = 300.0  # a whole file download at most (20 MB on a slow line)
DOWNLOAD_CHUNK = 64 * 1024


def prepare_runtime() -> None:
    """Process-wide settings PTB needs, made by the composition root (not at import time).

    - PTB 22's timedelta durations (RetryAfter.retry_after and friends): PTB reads this when it
      builds such an object, and without it warns on every 429 it sees.
    - Bot.do_api_request("getUpdates"/"getFile"/...) asks politely for Bot.get_updates and
      the like instead; Duban calls it on purpose (the raw updates are stored as they came;
      getFile's answer keeps the file path without the token, which Bot.get_file would add
      and log), so that notice is silenced. (sendMessage, the hot path, goes through
      Bot._post: not even the silenced warning is built for every reply.)
    """
    os.environ.setdefault("PTB_TIMEDELTA", "1")
    warnings.filterwarnings(
        "ignore",
        message=r"Please use 'Bot\.(sendMessage|getUpdates|answerCallbackQuery|getFile)' instead",
        category=PTBUserWarning,
    )


def file_url_for(base_url: str) -> str:
    """The file download base that goes with a Bot API base (…/bot -> …/file/bot)."""
    head, sep, _ = base_url.rstrip("/").rpartition("/bot")
    return f"{head}/file/bot" if sep else base_url


def _full_name(user: dict[str, Any]) -> str:
    first = str(user.get("first_name") or "")
    last = user.get("last_name")
    return f"{first} {last}" if last else first


def _id(value: Any) -> str:
    """An id Telegram sends as an integer, as the core's string (ValueError when it is not)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("not a Telegram id")
    return str(value)


def to_event(data: dict[str, Any]) -> IncomingMessage | None:
    """Translate a raw Telegram update (as getUpdates or the webhook gave it) into the core's
    event; None when it is not for the bot (edits, groups, other bots). Read straight from the
    JSON: no PTB objects are built for an incoming update. ValueError/TypeError/KeyError when
    the update is malformed."""
    update_id = _id(data["update_id"])
    for key, part in data.items():
        if key != "update_id" and not isinstance(part, dict):
            raise ValueError(f"update part {key!r} is not an object")
    query = data.get("callback_query")
    if isinstance(query, dict):
        user = query["from"]
        if user.get("is_bot"):
            return None
        message = query.get("message")
        chat_id = message["chat"]["id"] if isinstance(message, dict) else user["id"]
        return IncomingMessage(
            platform=PLATFORM,
            chat_id=_id(chat_id),
            sender_id=_id(user["id"]),
            update_id=update_id,
            kind=EventKind.button,
            button_data=clean_text(str(query.get("data") or "")),
            message_id=_id(message["message_id"]) if isinstance(message, dict) else None,
            sender_name=clean_text(_full_name(user)),
        )
    message = data.get("message")
    if not isinstance(message, dict) or message["chat"].get("type") != "private":
        return None  # edits, channel posts and group chatter are not reports
    user = message.get("from")
    if not isinstance(user, dict) or user.get("is_bot"):
        return None
    text = message.get("text")
    kind = EventKind.text if isinstance(text, str) else EventKind.unsupported
    attachment = _attachment(message)
    if attachment is not None:  # the caption, if any, is what the sender wrote
        kind, text = EventKind.file, message.get("caption")
    elif isinstance(message.get("voice"), dict):
        kind, text = EventKind.voice, ""  # no transcript from the Bot API: cannot be read
    reply_to = message.get("reply_to_message")
    return IncomingMessage(
        platform=PLATFORM,
        chat_id=_id(message["chat"]["id"]),
        sender_id=_id(user["id"]),
        update_id=update_id,
        text=clean_text(text) if isinstance(text, str) else "",
        kind=kind,
        message_id=_id(message["message_id"]),
        reply_to_message_id=(_id(reply_to["message_id"]) if isinstance(reply_to, dict) else None),
        sender_name=clean_text(_full_name(user)),
        attachment=attachment,
    )


def _attachment(message: dict[str, Any]) -> Attachment | None:
    """The photo, document or video of a message (None for anything else). For a photo, the
    largest size Telegram offers; name, type and size as the sender's client declared them."""
    photo = message.get("photo")
    if isinstance(photo, list) and photo:
        sizes = [p for p in photo if isinstance(p, dict)]
        if not sizes:
            raise ValueError("photo without sizes")
        largest = max(sizes, key=lambda p: (_size(p) or 0, p.get("width") or 0))
        return Attachment("photo", _file_id(largest), size=_size(largest))
    for kind in ("document", "video"):
        part = message.get(kind)
        if isinstance(part, dict):
            name, mime = part.get("file_name"), part.get("mime_type")
            return Attachment(
                kind,
                _file_id(part),
                name=clean_text(name)[:255] if isinstance(name, str) else "",
                mime=mime[:127] if isinstance(mime, str) else "",
                size=_size(part),
            )
    return None


def _file_id(part: dict[str, Any]) -> str:
    value = part.get("file_id")
    if not isinstance(value, str) or not value or len(value) > 512 or not value.isprintable():
        raise ValueError("not a Telegram file_id")
    return value


def _size(part: dict[str, Any]) -> int | None:
    value = part.get("file_size")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def rate_limiter(settings: Settings) -> AIORateLimiter:
    """PTB's limiter at TELEGRAM_MAX_RATE, paced in tenths of a second.

    With a one-second period the limiter lets a whole second's worth out at once and a second
    later the next: arriving at a server that counts the same rate on its own clock, such bursts
    meet an emptied bucket now and then (429). A bucket of a tenth of a second keeps the same
    rate and never bursts more than a tenth of it.
    """
    rate = settings.telegram_max_rate
    burst = max(1.0, rate * PACING_SECONDS)
    return AIORateLimiter(
        overall_max_rate=burst,
        overall_time_period=burst / rate,
        max_retries=settings.telegram_max_retries,
    )


def _markup(buttons: tuple[tuple[Button, ...], ...]) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(b.label, callback_data=b.data) for b in row] for row in buttons]
    )


class TelegramMessenger:
    """Sends for the core through a PTB Bot (rate limited by PTB's AIORateLimiter), and
    fetches the files people send."""

    platform = PLATFORM

    def __init__(self, bot: ExtBot[Any], *, proxy: str | None = None) -> None:
        self._bot = bot
        self._proxy = proxy

    async def fetch_file(self, attachment: Attachment, sink: FileSink) -> Fetched:
        """Download a file someone sent: getFile, then its file URL, streamed into sink (which
        stops it past the size cap). The URL holds the bot token: it is never logged, and no
        error raised here carries it."""
        try:
            # The raw answer: Bot.get_file would put the token into the path, and log it.
            found = await self._bot.do_api_request(
                GET_FILE, api_kwargs={"file_id": attachment.file_id}
            )
        except BadRequest as exc:
            if "too big" in exc.message.lower():  # the Bot API hands out 20 MB at most
                raise FileTooBig("over the Bot API's download limit") from None
            raise FetchFailed(f"getFile refused: {exc.message[:200]}") from None
        except TelegramError as exc:
            raise FetchFailed(f"getFile failed: {type(exc).__name__}") from None
        path = found.get("file_path") if isinstance(found, dict) else None
        if not isinstance(path, str) or not path or path.startswith("/") or ".." in path:
            raise FetchFailed("getFile gave no usable file path")
        url = f"{self._bot.base_file_url}/{path}"
        timeout = aiohttp.ClientTimeout(total=DOWNLOAD_SECONDS, sock_connect=30, sock_read=60)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout, trust_env=self._proxy is None) as session,
                session.get(url, proxy=self._proxy, allow_redirects=False) as response,
            ):
                if response.status != 200:
                    raise FetchFailed(f"download answered HTTP {response.status}")
                async for chunk in response.content.iter_chunked(DOWNLOAD_CHUNK):
                    sink.write(chunk)
        except (FileTooBig, FetchFailed):
            raise
        except Exception as exc:  # its text may hold the URL, and so the token: not kept
            raise FetchFailed(f"download failed: {type(exc).__name__}") from None
        # Telegram's file server says little of the type: the message declared it already.
        return Fetched()

    def _sent(self, message: Message) -> SentMessage:
        return SentMessage(PLATFORM, str(message.chat.id), str(message.message_id))

    async def send_text(
        self,
        chat_id: str,
        text: str,
        *,
        buttons: tuple[tuple[Button, ...], ...] = (),
        reply_to: str | None = None,
        markup: str = "text",
    ) -> SentMessage:
        """Send text split at 4096 characters on line boundaries; buttons go on the last part.

        With markup "html" the text is Telegram HTML: it is split between tags, never inside
        one, and a tag open across a split is closed and opened again, so every part parses.
        """
        if markup == "html":
            chunks = split_html(text, MAX_MESSAGE, size=utf16_size)
        else:
            chunks = split_text(text, MAX_MESSAGE, size=utf16_size)
        sent: dict[str, Any] = {}
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            params: dict[str, Any] = {"chat_id": int(chat_id), "text": chunk}
            if reply_to and index == 0:
                params["reply_parameters"] = {
                    "message_id": int(reply_to),
                    "allow_sending_without_reply": True,
                }
            if last and buttons:
                params["reply_markup"] = _markup(buttons)
            if markup == "html":
                params["parse_mode"] = ParseMode.HTML
            # sendMessage through PTB (defaults, rate limiter, retries, errors as
            # TelegramError) but without building a Message from the answer: only its ids are
            # needed here. Bot._post is what every Bot method calls; do_api_request would add
            # a warning per call ("use Bot.send_message").
            try:
                sent = await self._bot._post(SEND_MESSAGE, api_kwargs=params)
            except InvalidToken as exc:  # PTB says "Unauthorized" or "Not Found"
                raise InvalidToken("the Bot API rejected the bot token (sendMessage)") from exc
        return SentMessage(PLATFORM, str(sent["chat"]["id"]), str(sent["message_id"]))

    async def send_file(
        self, chat_id: str, path: Path, *, caption: str | None = None
    ) -> SentMessage:
        """Send a document."""
        with path.open("rb") as handle:
            message = await self._bot.send_document(
                chat_id=int(chat_id),
                document=handle,
                filename=path.name,
                caption=caption[:MAX_CAPTION] if caption else None,
            )
        return self._sent(message)

    async def send_photo(
        self, chat_id: str, path: Path, *, caption: str | None = None
    ) -> SentMessage:
        """Send a picture."""
        with path.open("rb") as handle:
            message = await self._bot.send_photo(
                chat_id=int(chat_id),
                photo=handle,
                caption=caption[:MAX_CAPTION] if caption else None,
            )
        return self._sent(message)


class TelegramChannel:
    """Owns the PTB Bot: polling or webhook, the command menu, start and stop.

    PTB is the transport (requests, the rate limiter, retries, errors); incoming updates do
    not go through PTB's Application: they are read from their JSON into the core's events
    (building PTB objects for every update cost more than handling it) and handled here, those
    of one chat in order, different chats at once, at most TELEGRAM_CONCURRENT_UPDATES at a
    time. Polling waits while that many are in hand, so a backlog stays in the inbox and at
    Telegram rather than in memory.
    """

    platform = PLATFORM

    def __init__(self, settings: Settings, core: ChatCore, engine: Engine, router: Router) -> None:
        token = settings.telegram_bot_token
        if token is None:
            raise ValueError("TELEGRAM_BOT_TOKEN is not set")
        self.settings = settings
        self.core = core
        self.engine = engine
        self.router = router
        self.webhook = bool(settings.telegram_webhook_url)
        request, updates_request = self._transport()
        self.bot: ExtBot[Any] = ExtBot(
            token.get_secret_value(),
            base_url=settings.telegram_api_base_url,
            base_file_url=file_url_for(settings.telegram_api_base_url),
            request=request,
            get_updates_request=updates_request,
            rate_limiter=rate_limiter(settings),
        )
        self.messenger = TelegramMessenger(self.bot, proxy=settings.telegram_proxy_url or None)
        self._poller: asyncio.Task[None] | None = None
        self._refusals = RefusalLog(log, "Telegram webhook")
        self._chats = ChatLocks()
        self._slots = asyncio.Semaphore(settings.telegram_concurrent_updates)
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = False

    def _transport(self) -> tuple[BaseRequest, BaseRequest]:
        """The HTTP clients for the Bot API: aiohttp by default, PTB's httpx on request."""
        proxy = self.settings.telegram_proxy_url or None
        # Replies (one per concurrent update) and the outbox's sends share the pool.
        pool = self.settings.telegram_concurrent_updates + self.settings.outbox_concurrency
        if self.settings.telegram_http_client == "httpx":
            return (
                HTTPXRequest(connection_pool_size=pool, proxy=proxy),
                HTTPXRequest(connection_pool_size=1, proxy=proxy),
            )
        return (
            AiohttpRequest(connection_pool_size=pool, proxy=proxy),
            AiohttpRequest(connection_pool_size=1, proxy=proxy),
        )

    async def _take(self, data: dict[str, Any]) -> None:
        """Hand a stored update over for handling; waits while all slots are in use."""
        await self._slots.acquire()
        task = asyncio.create_task(self._run(data))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, data: dict[str, Any]) -> None:
        try:
            try:
                event = to_event(data)
            except (ValueError, TypeError, KeyError, AttributeError):
                log.warning("Telegram update %s cannot be read; skipped", data.get("update_id"))
                return
            if event is None:
                return
            async with self._chats.hold(event.chat_id):
                if event.kind == EventKind.button:
                    await self._answer_button(data)
                await self.core.handle(event)
        except Exception as exc:
            log.error("Telegram update failed: %s", exc, exc_info=exc)
        finally:
            self._slots.release()

    async def _answer_button(self, data: dict[str, Any]) -> None:
        """Tell Telegram the button click arrived (it stops the client's spinner)."""
        try:
            await self.bot.do_api_request(
                ANSWER_CALLBACK, api_kwargs={"callback_query_id": data["callback_query"]["id"]}
            )
        except TelegramError as exc:
            log.warning("answerCallbackQuery failed: %s", exc)

    def _command_sets(self) -> tuple[list[BotCommand], dict[int, list[BotCommand]]]:
        t = Translator(self.settings.locale)

        def commands(role: Role) -> list[BotCommand]:
            return [BotCommand(r.name, t(f"cmd.{r.name}")) for r in self.router.commands_for(role)]

        per_chat: dict[int, list[BotCommand]] = {}
        with Session(self.engine) as session:
            for role, account_id in session.exec(
                select(Contact.role, Account.account_id)
                .join(Account, col(Account.contact_id) == Contact.id)
                .where(Account.platform == PLATFORM, Contact.role != Role.official)
            ):
                per_chat[int(account_id)] = commands(Role(role))
        return commands(Role.official), per_chat

    async def _set_commands(self) -> None:
        default, per_chat = await asyncio.to_thread(self._command_sets)
        bot = self.bot
        await bot.set_my_commands(default, scope=BotCommandScopeDefault())
        for chat_id, commands in per_chat.items():
            try:
                await bot.set_my_commands(commands, scope=BotCommandScopeChat(chat_id))
            except TelegramError as exc:  # a chat the bot cannot reach yet
                log.warning("setMyCommands for a chat failed: %s", exc)

    async def start(self) -> None:
        """Connect, set the command menu, hand over what is stored and not handled, then
        start polling or register the webhook."""
        try:
            await self.bot.initialize()
            await self._set_commands()
        except BaseException:
            await self.bot.shutdown()  # close the HTTP sessions a failed start opened
            raise
        self._started = True
        await self._recover()
        if self.webhook:
            secret = self.settings.telegram_webhook_secret
            assert secret is not None
            await self.bot.set_webhook(
                url=str(self.settings.telegram_webhook_url),
                secret_token=secret.get_secret_value(),
                allowed_updates=ALLOWED_UPDATES,
            )
            log.info("Telegram webhook registered")
        else:
            await self.bot.delete_webhook()
            self._poller = asyncio.create_task(self._poll(), name="telegram-poll")
            log.info("Telegram long polling started")

    async def _recover(self) -> None:
        """Handle the updates stored before a stop or a crash and not handled yet, in order."""
        entries = await asyncio.to_thread(self.core.pending, PLATFORM)
        for entry in entries:
            try:
                data = json.loads(entry.payload)
                if not isinstance(data, dict):
                    raise ValueError("not an update object")
            except ValueError:
                log.warning("stored Telegram update %s cannot be read; skipped", entry.update_key)
                continue
            await self._take(data)
        if entries:
            log.info("Telegram: %d stored updates handed over after a restart", len(entries))

    async def _poll(self) -> None:
        """Fetch updates, store them, and only then let the offset confirm them to Telegram."""
        bot = self.bot
        timeout = self.settings.telegram_poll_timeout
        offset = 0
        pause = 1.0
        while True:
            try:
                # The raw updates: stored as they came, then read into the core's events.
                raw: list[dict[str, Any]] = await bot.do_api_request(
                    GET_UPDATES,
                    api_kwargs={
                        "offset": offset,
                        "timeout": timeout,
                        "allowed_updates": ALLOWED_UPDATES,
                    },
                    read_timeout=timeout + POLL_READ_MARGIN,
                )
                if raw:
                    received = [_received_raw(data) for data in raw]
                    fresh = await self.core.store(PLATFORM, received)
                    # stored: the next getUpdates may confirm them
                    offset = int(raw[-1]["update_id"]) + 1
                    for data, new in zip(raw, fresh, strict=True):
                        if new:
                            await self._take(data)
                pause = 1.0
            except asyncio.CancelledError:
                raise
            except InvalidToken:
                log.error("Telegram rejected the bot token; polling stopped")
                return
            except RetryAfter as exc:
                await asyncio.sleep(_seconds(exc.retry_after))
            except Exception as exc:  # network, server or database trouble: back off, retry
                log.warning("Telegram polling: %s; retrying in %.0f s", type(exc).__name__, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 30.0)

    async def stop(self) -> None:
        """Stop fetching, finish the updates in hand, and close the connections."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        if self._tasks:  # what is not finished stays in the inbox for the next start
            await asyncio.wait(set(self._tasks), timeout=STOP_GRACE_SECONDS)
        if self._started:
            self._started = False
            await self.bot.shutdown()

    def routes(self) -> list[BaseRoute]:
        """The webhook route for the web app (none in polling mode)."""
        if not self.webhook:
            return []
        return [Route("/telegram/webhook", self._webhook, methods=["POST"])]

    async def _webhook(self, request: Request) -> Response:
        """Check the secret header in constant time, then store the update; 4xx when refused."""
        secret = self.settings.telegram_webhook_secret
        given = request.headers.get(SECRET_HEADER, "")
        if secret is None or not hmac.compare_digest(
            given.encode(), secret.get_secret_value().encode()
        ):
            self._refusals.refused(403, "wrong or missing secret")
            return Response(status_code=403)
        try:
            body = await read_limited(request, MAX_WEBHOOK_BODY)
        except RequestRefused as exc:
            self._refusals.refused(exc.status, exc.reason)
            return Response(status_code=exc.status)
        try:
            data = json.loads(body)
            update_id = data.get("update_id") if isinstance(data, dict) else None
            if not isinstance(update_id, int) or isinstance(update_id, bool):
                raise ValueError("not an update object")
            to_event(data)  # readable, or refused here rather than failing later
            received = _received_raw(data)
        except Exception:  # bad JSON, nesting too deep, shapes PTB cannot read: not an update
            self._refusals.refused(400, "body is not an update")
            return Response(status_code=400)
        # Stored before the answer: a crash after it loses nothing, a crash before it makes
        # Telegram send the update again, and the inbox keeps it once.
        try:
            (new,) = await self.core.store(PLATFORM, [received])
        except Exception as exc:
            self._refusals.refused(503, f"storing the update failed ({type(exc).__name__})")
            return Response(status_code=503)
        if new:
            await self._take(data)
        return Response(status_code=200)


def _received_raw(data: dict[str, Any]) -> Received:
    """A raw update (from getUpdates or the webhook) as the inbox stores it: as it came, with
    no PTB object encoded again."""
    chat: Any = None
    for key in ("message", "edited_message", "callback_query"):
        part = data.get(key)
        if isinstance(part, dict):
            chat = (part.get("message") or part).get("chat", {}).get("id")
            if chat is None and key == "callback_query":
                chat = part.get("from", {}).get("id")
            break
    return Received(
        update_key=str(data["update_id"]),
        chat_key="" if chat is None else str(chat),
        payload=json.dumps(data, ensure_ascii=False, separators=(",", ":")),
    )


def _seconds(value: Any) -> float:
    """A retry_after as seconds (PTB gives a timedelta or a number)."""
    return float(value.total_seconds()) if hasattr(value, "total_seconds") else float(value)
