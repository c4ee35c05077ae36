"""Feishu's server API as Duban uses it: the tenant token, messages, uploads, downloads.

One pooled aiohttp session against FEISHU_DOMAIN, reached directly (no proxy, as the SDK's
long connection). The official SDK's own async transport opens a new httpx client per call,
reads downloads whole and caches tokens process-wide by app id with no refresh when Feishu
revokes one; httpx's pool costs several times aiohttp's CPU per call under load. What Duban
needs of the API is small enough to do here.

- The tenant_access_token is fetched with the app id and secret, cached until 5 minutes
  before it expires (Feishu hands out a new one in its last 30 minutes) and fetched again,
  once per call, when Feishu answers that it is invalid (99991661, 99991663, 99991668).
- Rate limits (HTTP 429 or code 99991400 for the app, 230020 for one chat, 11232 for the
  tenant's message service) and server errors are retried with bounded exponential backoff;
  a 429's `x-ogw-ratelimit-reset` holds every call of this client back that long (capped).
  Messages carry a `uuid`, the same on each retry, so Feishu sends each part once.
- At most 5 messages a second go to one person (Feishu's limit for one chat).
- Error texts name the call, the code and Feishu's words, never the app secret or a token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import urllib.parse
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bot.channels.common import Pacer
from bot.events import Attachment, Button, Fetched, FileSink, SentMessage, clean_text, split_text
from bot.evidence import FetchFailed, FileTooBig

log = logging.getLogger(__name__)

PLATFORM = "feishu"
TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"
MESSAGES_PATH = "/open-apis/im/v1/messages"
IMAGES_PATH = "/open-apis/im/v1/images"
FILES_PATH = "/open-apis/im/v1/files"

TOKEN_CODES = frozenset({99991661, 99991663, 99991668})  # missing, invalid, expired token
RATE_LIMIT_CODES = frozenset({99991400, 230020, 11232})  # app, one chat, tenant messages
REPLY_GONE_CODES = frozenset({230001, 230011})  # the message replied to is unknown, recalled
TOKEN_EARLY = 300.0  # seconds before its expiry a token is fetched again
MAX_ATTEMPTS = 4
BASE_BACKOFF = 0.5  # seconds; doubled after each failed attempt
MAX_WAIT = 10.0  # the longest one wait before a retry (also of x-ogw-ratelimit-reset)
PER_CHAT_PER_SECOND = 5
# A message's text, measured as it travels: UTF-8 bytes plus what the two JSON encodings
# (the content string inside the request body) add. Text messages may be 150 KB, cards 30 KB:
# one size for both keeps a split reply looking the same whichever way it goes.
MAX_WIRE = 12_000
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_FILE_BYTES = 30 * 1024 * 1024
MAX_BUTTONS_PER_ROW = 5
MAX_BUTTON_LABEL = 100
DOWNLOAD_CHUNK = 64 * 1024
ERROR_BODY = 64 * 1024
TIMEOUT = aiohttp.ClientTimeout(total=30.0, sock_connect=10.0, sock_read=15.0)
DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10.0, sock_read=60.0)
POOL = 32  # connections open at once
# Upload file types Feishu knows; anything else is a "stream".
FILE_TYPES = {
    ".pdf": "pdf",
    ".doc": "doc",
    ".docx": "doc",
    ".xls": "xls",
    ".xlsx": "xls",
    ".ppt": "ppt",
    ".pptx": "ppt",
    ".mp4": "mp4",
    ".opus": "opus",
}
_DISPOSITION_UTF8 = re.compile(r"filename\*\s*=\s*UTF-8''([^;\s]+)", re.IGNORECASE)
_DISPOSITION_PLAIN = re.compile(r"filename\s*=\s*\"?([^\";]+)")
_ID = re.compile(r"[A-Za-z0-9_\-]{1,256}")


class FeishuApiError(Exception):
    """Feishu refused a call (or could not be reached); the text holds no secret."""

    def __init__(self, what: str, code: int | None, status: int | None, msg: str = "") -> None:
        self.what = what
        self.code = code
        self.status = status
        detail = f"code {code}" if code is not None else "no code"
        if status is not None:
            detail += f", HTTP {status}"
        if msg:
            detail += f": {msg[:200]}"
        super().__init__(f"Feishu {what} failed ({detail})")


def wire_size(text: str) -> int:
    """How many bytes text takes as a message's content inside a request body: UTF-8 plus
    the escapes of the content string and of the body around it."""
    return (
        len(text.encode("utf-8"))
        + 3 * (text.count('"') + text.count("\\"))
        + 2 * (text.count("\n") + text.count("\t") + text.count("\r"))
    )


def split_message(text: str) -> list[str]:
    """Text split into parts that fit one message, on line boundaries where possible."""
    return split_text(text, MAX_WIRE, size=wire_size) or [""]


def markdown_card(
    text: str, buttons: Sequence[Sequence[Button]] = (), *, plain: bool = False
) -> dict[str, Any]:
    """A card (JSON 2.0) showing text (markdown, or plain text) and rows of buttons whose
    clicks come back as card.action.trigger with the value {"data": button.data}."""
    body: list[dict[str, Any]] = []
    if plain:
        body.append({"tag": "div", "text": {"tag": "plain_text", "content": text}})
    else:
        body.append({"tag": "markdown", "content": text})
    for row in buttons:
        for start in range(0, len(row), MAX_BUTTONS_PER_ROW):
            part = row[start : start + MAX_BUTTONS_PER_ROW]
            columns = [
                {"tag": "column", "width": "auto", "elements": [_button(button)]} for button in part
            ]
            body.append({"tag": "column_set", "columns": columns})
    card: dict[str, Any] = {
        "schema": "2.0",
        "config": {"update_multi": True},
        "body": {"elements": body},
    }
    return card


def _button(button: Button) -> dict[str, Any]:
    label = button.label if len(button.label) <= MAX_BUTTON_LABEL else button.label[:99] + "…"
    return {
        "tag": "button",
        "text": {"tag": "plain_text", "content": label},
        "type": "default",
        "behaviors": [{"type": "callback", "value": {"data": button.data}}],
    }


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class ChatPacer(Pacer):
    """At most `limit` messages a second to one chat: waits for a free slot."""

    def __init__(self, limit: int = PER_CHAT_PER_SECOND, window: float = 1.0) -> None:
        super().__init__(limit, window, forget_over=10_000)


@dataclass
class _Answer:
    status: int
    code: int | None
    msg: str
    body: dict[str, Any]
    reset: float | None  # x-ogw-ratelimit-reset, in seconds


class FeishuApi:
    """Calls of Feishu's server API with the app's tenant token (see the module docstring)."""

    def __init__(
        self,
        domain: str,
        app_id: str,
        app_secret: str,
        *,
        backoff: float = BASE_BACKOFF,
    ) -> None:
        self.domain = domain.rstrip("/")
        self.app_id = app_id
        self._secret = app_secret
        self.backoff = backoff
        self._session: aiohttp.ClientSession | None = None
        self._token: str | None = None
        self._token_until = 0.0
        self._token_lock = asyncio.Lock()
        self._held_until = 0.0  # no call before this (monotonic): Feishu said to wait

    def _http(self) -> aiohttp.ClientSession:
        """The session (opened on first use: it belongs to the running loop)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=POOL, keepalive_timeout=30.0),
                headers={"User-Agent": "duban"},
                timeout=TIMEOUT,
                cookie_jar=aiohttp.DummyCookieJar(),
                raise_for_status=False,
                trust_env=False,
            )
        return self._session

    async def aclose(self) -> None:
        """Close the connections."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    # --- the token ---------------------------------------------------------------------

    async def token(self, *, stale: str | None = None) -> str:
        """The tenant_access_token: cached, fetched when there is none, it is about to
        expire, or it is `stale` (Feishu refused it) and no newer one was fetched since."""
        async with self._token_lock:
            fresh = self._token is not None and time.monotonic() < self._token_until
            if fresh and (stale is None or stale != self._token):
                assert self._token is not None
                return self._token
            answer = await self._post_token()
            token = answer.body.get("tenant_access_token")
            expire = answer.body.get("expire")
            if not isinstance(token, str) or not token or not isinstance(expire, int):
                raise FeishuApiError("tenant_access_token", answer.code, answer.status, "no token")
            self._token = token
            self._token_until = time.monotonic() + max(30.0, expire - TOKEN_EARLY)
            log.debug("Feishu tenant token fetched (valid %d s)", expire)
            return token

    async def _post_token(self) -> _Answer:
        payload = {"app_id": self.app_id, "app_secret": self._secret}
        for attempt in range(1, MAX_ATTEMPTS + 1):
            await self._hold()
            try:
                async with self._http().post(self.domain + TOKEN_PATH, json=payload) as response:
                    answer = self._read(response.status, response.headers, await response.read())
            except (aiohttp.ClientError, TimeoutError) as exc:
                if attempt == MAX_ATTEMPTS:
                    raise FeishuApiError(
                        "tenant_access_token", None, None, type(exc).__name__
                    ) from None
                await self._pause(attempt, None)
                continue
            if answer.status == 200 and answer.code == 0:
                return answer
            if self._retryable(answer) and attempt < MAX_ATTEMPTS:
                await self._pause(attempt, answer.reset)
                continue
            raise FeishuApiError("tenant_access_token", answer.code, answer.status, answer.msg)
        raise AssertionError("unreachable")

    # --- calls ---------------------------------------------------------------------------

    async def call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: dict[str, str] | None = None,
        json_body: dict[str, Any] | None = None,
        data: dict[str, str] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
    ) -> dict[str, Any]:
        """One API call with the tenant token; its `data` object. Retried on rate limits,
        server errors and network errors; the token fetched again once when refused."""
        refetched = False
        attempt = 0
        while True:
            attempt += 1
            token = await self.token()
            await self._hold()
            try:
                async with self._http().request(
                    method,
                    self.domain + path,
                    params=params,
                    json=json_body,
                    data=_form(data, files) if data is not None or files else None,
                    headers={"Authorization": f"Bearer {token}"},
                ) as response:
                    answer = self._read(response.status, response.headers, await response.read())
            except (aiohttp.ClientError, TimeoutError) as exc:
                if attempt >= MAX_ATTEMPTS:
                    raise FeishuApiError(what, None, None, type(exc).__name__) from None
                log.warning(
                    "Feishu %s: %s, retrying (attempt %d)", what, type(exc).__name__, attempt
                )
                await self._pause(attempt, None)
                continue
            if answer.status == 200 and answer.code == 0:
                found = answer.body.get("data")
                return found if isinstance(found, dict) else {}
            if answer.code in TOKEN_CODES and not refetched:
                refetched = True
                attempt -= 1  # a stale token is no failed attempt
                await self.token(stale=token)
                continue
            if self._retryable(answer) and attempt < MAX_ATTEMPTS:
                log.warning(
                    "Feishu %s: code %s (HTTP %d), retrying (attempt %d)",
                    what,
                    answer.code,
                    answer.status,
                    attempt,
                )
                await self._pause(attempt, answer.reset)
                continue
            raise FeishuApiError(what, answer.code, answer.status, answer.msg)

    def _read(self, status: int, headers: Mapping[str, str], raw: bytes) -> _Answer:
        """Feishu's answer: HTTP status, code, msg, the JSON body ({} when none)."""
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            body = {}
        code = body.get("code")
        msg = body.get("msg")
        reset: float | None = None
        header = headers.get("x-ogw-ratelimit-reset")
        if header is not None:
            try:
                reset = float(header)
            except ValueError:
                reset = None
        return _Answer(
            status=status,
            code=code if isinstance(code, int) else None,
            msg=self._scrub(msg) if isinstance(msg, str) else "",
            body=body,
            reset=reset,
        )

    def _scrub(self, text: str) -> str:
        """Text from Feishu with the app secret and the token masked (should it echo one)."""
        for secret in (self._secret, self._token):
            if secret:
                text = text.replace(secret, "***")
        return text

    @staticmethod
    def _retryable(answer: _Answer) -> bool:
        if answer.status == 429 or answer.code in RATE_LIMIT_CODES:
            return True
        return answer.status >= 500

    async def _pause(self, attempt: int, reset: float | None) -> None:
        """Wait before the next attempt: backoff, or as long as Feishu said (for every call
        of this client: a rate limit is the app's, not one call's)."""
        delay = min(MAX_WAIT, self.backoff * 2 ** (attempt - 1))
        if reset is not None:
            delay = min(MAX_WAIT, max(delay, reset))
            self._held_until = max(self._held_until, time.monotonic() + delay)
        await asyncio.sleep(delay)

    async def _hold(self) -> None:
        """Wait while Feishu asked the app to hold back."""
        wait = self._held_until - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    # --- downloads -------------------------------------------------------------------------

    async def download(self, message_id: str, key: str, kind: str, sink: FileSink) -> Fetched:
        """A file of a message someone sent (message resources), streamed into sink."""
        path = f"{MESSAGES_PATH}/{message_id}/resources/{key}"
        stale: str | None = None
        for _ in (1, 2):
            token = await self.token(stale=stale)
            try:
                async with self._http().get(
                    self.domain + path,
                    params={"type": kind},
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=DOWNLOAD_TIMEOUT,
                ) as response:
                    mime = response.headers.get("Content-Type", "")
                    if response.status != 200 or "json" in mime.lower():
                        code = _error_code(await response.content.read(ERROR_BODY))
                        if code in TOKEN_CODES and stale is None:
                            stale = token
                            continue
                        raise FetchFailed(
                            f"message resource answered HTTP {response.status}, code {code}"
                        )
                    async for chunk in response.content.iter_chunked(DOWNLOAD_CHUNK):
                        sink.write(chunk)
                    return Fetched(mime=mime, name=_disposition_name(response.headers))
            except (FileTooBig, FetchFailed):
                raise
            except FeishuApiError as exc:  # fetching the token
                raise FetchFailed(f"token: code {exc.code}") from None
            except Exception as exc:  # never the URL or a header in the text
                raise FetchFailed(f"message resource failed: {type(exc).__name__}") from None
        raise FetchFailed("message resource: the token was refused twice")


def _form(data: dict[str, str] | None, files: dict[str, tuple[str, bytes, str]] | None) -> Any:
    """A multipart body (made again for each attempt: aiohttp sends one once)."""
    form = aiohttp.FormData()
    for name, value in (data or {}).items():
        form.add_field(name, value)
    for name, (filename, content, mime) in (files or {}).items():
        form.add_field(name, content, filename=filename, content_type=mime)
    return form


def _error_code(body: bytes) -> int | None:
    """The code of an error answer, or None."""
    try:
        value = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        return None
    code = value.get("code") if isinstance(value, dict) else None
    return code if isinstance(code, int) else None


def _disposition_name(headers: Mapping[str, str]) -> str:
    """The file name a download's Content-Disposition gives ("" when none): display only."""
    disposition = headers.get("Content-Disposition", "")
    encoded = _DISPOSITION_UTF8.search(disposition)
    if encoded is not None:
        return clean_text(urllib.parse.unquote(encoded.group(1)))[:255]
    plain = _DISPOSITION_PLAIN.search(disposition)
    return clean_text(plain.group(1).strip())[:255] if plain is not None else ""


def file_id(message_id: str, key: str) -> str:
    """An Attachment's file_id: the message and the resource key it names."""
    return f"{message_id}/{key}"


class FeishuMessenger:
    """Sends for the core (text, markdown cards, buttons, files, pictures) and fetches the
    files people send."""

    platform = PLATFORM

    def __init__(self, api: FeishuApi) -> None:
        self.api = api
        self.pacer = ChatPacer()

    async def send_text(
        self,
        chat_id: str,
        text: str,
        *,
        buttons: tuple[tuple[Button, ...], ...] = (),
        reply_to: str | None = None,
        markup: str = "text",
    ) -> SentMessage:
        """Send text in parts of at most MAX_WIRE; markdown goes as cards, and buttons on a
        card after the last part. The first part replies to `reply_to` when given."""
        parts = split_message(text)
        sent: SentMessage | None = None
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if buttons and last:
                card = markdown_card(part, buttons, plain=markup != "markdown")
                msg_type, content = "interactive", card
            elif markup == "markdown":
                msg_type, content = "interactive", markdown_card(part)
            else:
                msg_type, content = "text", {"text": part}
            sent = await self._send(chat_id, msg_type, content, reply_to if index == 0 else None)
        assert sent is not None
        return sent

    async def _send(
        self, chat_id: str, msg_type: str, content: dict[str, Any], reply_to: str | None
    ) -> SentMessage:
        """One message: a reply to reply_to (sent plainly when that message is gone), else a
        new message to the person (receive_id_type=open_id)."""
        body = {"msg_type": msg_type, "content": _dumps(content), "uuid": uuid.uuid4().hex}
        await self.pacer.wait(chat_id)
        if reply_to is not None and _ID.fullmatch(reply_to):
            try:
                data = await self.api.call(
                    "POST", f"{MESSAGES_PATH}/{reply_to}/reply", what="reply", json_body=body
                )
                return self._sent(chat_id, data)
            except FeishuApiError as exc:
                if exc.code not in REPLY_GONE_CODES:
                    raise
                log.info("Feishu: the message replied to is gone (%s); sent plainly", exc.code)
        data = await self.api.call(
            "POST",
            MESSAGES_PATH,
            what="message create",
            params={"receive_id_type": "open_id"},
            json_body={"receive_id": chat_id, **body},
        )
        return self._sent(chat_id, data)

    @staticmethod
    def _sent(chat_id: str, data: dict[str, Any]) -> SentMessage:
        message_id = data.get("message_id")
        return SentMessage(PLATFORM, chat_id, str(message_id or uuid.uuid4().hex))

    async def send_file(
        self, chat_id: str, path: Path, *, caption: str | None = None
    ) -> SentMessage:
        """Upload a file (im/v1/files) and send it; the caption goes first as text."""
        if caption:
            await self.send_text(chat_id, caption)
        content = await asyncio.to_thread(_read, path, MAX_FILE_BYTES)
        file_type = FILE_TYPES.get(path.suffix.lower(), "stream")
        data = await self.api.call(
            "POST",
            FILES_PATH,
            what="file upload",
            data={"file_type": file_type, "file_name": path.name},
            files={"file": (path.name, content, "application/octet-stream")},
        )
        key = data.get("file_key")
        if not isinstance(key, str) or not key:
            raise FeishuApiError("file upload", 0, 200, "no file_key")
        return await self._send(chat_id, "file", {"file_key": key}, None)

    async def send_photo(
        self, chat_id: str, path: Path, *, caption: str | None = None
    ) -> SentMessage:
        """Upload a picture (im/v1/images) and send it; the caption goes first as text."""
        if caption:
            await self.send_text(chat_id, caption)
        content = await asyncio.to_thread(_read, path, MAX_IMAGE_BYTES)
        data = await self.api.call(
            "POST",
            IMAGES_PATH,
            what="image upload",
            data={"image_type": "message"},
            files={"image": (path.name, content, "application/octet-stream")},
        )
        key = data.get("image_key")
        if not isinstance(key, str) or not key:
            raise FeishuApiError("image upload", 0, 200, "no image_key")
        return await self._send(chat_id, "image", {"image_key": key}, None)

    async def fetch_file(self, attachment: Attachment, sink: FileSink) -> Fetched:
        """Download a file someone sent (message resources), streamed into sink, which
        stops it past the size cap."""
        message_id, _, key = attachment.file_id.partition("/")
        if not _ID.fullmatch(message_id) or not _ID.fullmatch(key):
            raise FetchFailed("malformed file id")
        kind = "image" if attachment.kind == "photo" else "file"
        return await self.api.download(message_id, key, kind, sink)


def _read(path: Path, limit: int) -> bytes:
    """A file to upload, refused before it is sent when Feishu would refuse its size."""
    size = path.stat().st_size
    if size == 0 or size > limit:
        raise FeishuApiError("upload", None, None, f"{path.name}: {size} bytes (1 to {limit})")
    return path.read_bytes()
