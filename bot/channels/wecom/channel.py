"""The WeCom (企业微信) channel on wechatpy 1.8: the callback endpoint and an app messenger.

Incoming: `/wecom/callback` on the web app. GET answers URL verification with the plain
echostr. POST checks the signature (in constant time), decrypts with wechatpy's crypto,
answers 200 with an empty body at once and handles the message in a background task that is
tracked and finished on shutdown. Messages of one user are handled in order.

Outgoing: `wechatpy.enterprise.WeChatClient` in a worker thread, pointed at
WECOM_API_BASE_URL for the API and the token fetch. The token is cached until 60 s before it
expires and refetched on 40014/42001 at most once per call; 45009, 45033 and network errors
are retried with bounded exponential backoff; each member gets at most 29 messages a minute
(WeCom silently drops past 30). Text and markdown are split at 2048 UTF-8 bytes on line
boundaries; choices become template_card button_interaction cards; files go by media upload.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import time
import urllib.parse
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import requests
import xmltodict
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from wechatpy.enterprise import WeChatClient, parse_message
from wechatpy.enterprise.crypto import PrpCrypto
from wechatpy.enterprise.exceptions import InvalidCorpIdException
from wechatpy.exceptions import WeChatClientException

from bot.channels.common import EventHandling, Pacer
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
    split_text,
    utf8_size,
)
from bot.evidence import FetchFailed, FileTooBig
from bot.inbox import Received
from bot.settings import Settings
from bot.web import RefusalLog, RequestRefused, read_limited

log = logging.getLogger(__name__)

PLATFORM = "wecom"
MAX_TEXT_BYTES = 2048
MAX_BODY = 1 << 20
# How old a callback's signed timestamp may be (WeCom calls at once and retries within
# seconds). Shorter than the inbox's retention, so a captured callback replayed later is
# either still known by its MsgId (stored once) or refused as stale.
MAX_CALLBACK_AGE = 12 * 3600


def _check_fresh(timestamp: str) -> None:
    """Refuse a callback whose signed timestamp is not a time within MAX_CALLBACK_AGE of now
    (the wall clock: WeCom's timestamps are real time)."""
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise CallbackRejected(400, "bad timestamp")
    if abs(time.time() - int(timestamp)) > MAX_CALLBACK_AGE:
        raise CallbackRejected(403, "stale timestamp")


MAX_CARD_BUTTONS = 6
CARD_TITLE = 36  # characters of a template card's main title
CARD_SUBTITLE = 112  # characters of its sub-title text
PER_MEMBER_PER_MINUTE = 29
TOKEN_ERRORS = (40014, 42001)
RETRY_ERRORS = (45009, 45033)
MAX_ATTEMPTS = 4
BASE_BACKOFF = 0.5  # seconds; doubled after each failed attempt
WORKERS = 4  # callbacks handled at once
# A DTD can declare entities (billion laughs) or fetch from elsewhere: WeCom never sends one.
DECLARATION = re.compile(r"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
ROOT_START = re.compile(r"<[^!?]")  # the first tag that is no declaration, comment or PI
# Media messages that are evidence files, and what Duban calls them.
MEDIA_KINDS = {"image": "photo", "video": "video", "file": "document"}
DOWNLOAD_TIMEOUT = (10.0, 60.0)  # connect, and each read of a media/get download
DOWNLOAD_CHUNK = 64 * 1024
ERROR_BODY = 64 * 1024  # the most of a JSON error answer read
# Content-Disposition's file name: RFC 5987 (filename*=UTF-8''...) first, else the plain one.
_DISPOSITION_UTF8 = re.compile(r"filename\*\s*=\s*UTF-8''([^;\s]+)", re.IGNORECASE)
_DISPOSITION_PLAIN = re.compile(r"filename\s*=\s*\"?([^\";]+)")

T = TypeVar("T")


def signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    """WeCom's msg_signature: SHA-1 over the sorted token, timestamp, nonce and ciphertext."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypted])).encode()).hexdigest()


def aes_key_bytes(aes_key: str) -> bytes:
    """The 32-byte key behind WeCom's 43-character EncodingAESKey."""
    try:
        key = base64.b64decode(aes_key + "=", validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(aes_key) != 43 or len(key) != 32:
        raise ValueError("WECOM_AES_KEY must be the 43-character EncodingAESKey")
    return key


class CallbackRejected(RequestRefused):
    """A callback that must not be processed; carries the HTTP status to answer."""


def refuse_declarations(text: str) -> None:
    """Refuse (400) XML that carries a DTD or an entity declaration, before any parser sees it.

    Only the prolog, before the root element, can hold one: someone who writes "<!DOCTYPE" in
    a message (inside its CDATA) declares nothing and is not refused.
    """
    root = ROOT_START.search(text)
    if DECLARATION.search(text, 0, root.start() if root else len(text)):
        raise CallbackRejected(400, "XML with a DTD or an entity declaration")


def parse_xml(text: str) -> Any:
    """XML from outside as xmltodict's dict; a DTD, an entity or anything unparsable is a 400."""
    refuse_declarations(text)
    try:
        return xmltodict.parse(text, disable_entities=True)
    except Exception:  # whatever expat makes of hostile bytes, it is malformed input
        raise CallbackRejected(400, "malformed XML") from None


class CallbackCrypto:
    """Verifies and decrypts WeCom callbacks (the ciphering is wechatpy's own)."""

    def __init__(self, token: str, aes_key: str, corp_id: str) -> None:
        self.token = token
        self.corp_id = corp_id
        self.key = aes_key_bytes(aes_key)

    def _verified(self, given: str, timestamp: str, nonce: str, encrypted: str) -> None:
        expected = signature(self.token, timestamp, nonce, encrypted)
        if not hmac.compare_digest(expected.encode(), given.encode()):
            raise CallbackRejected(403, "bad signature")

    def _decrypt(self, encrypted: str) -> str:
        try:
            return str(PrpCrypto(self.key).decrypt(encrypted, self.corp_id))
        except InvalidCorpIdException:
            raise CallbackRejected(403, "another corp id") from None
        except Exception:
            raise CallbackRejected(403, "payload does not decrypt") from None

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """The plain echostr for URL verification."""
        self._verified(msg_signature, timestamp, nonce, echostr)
        return self._decrypt(echostr)

    def decrypt(self, body: bytes, msg_signature: str, timestamp: str, nonce: str) -> str:
        """The plain XML of a POSTed callback."""
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise CallbackRejected(400, "body is not UTF-8") from None
        envelope = parse_xml(text)
        encrypted = envelope.get("xml") if isinstance(envelope, dict) else None
        if isinstance(encrypted, dict):
            encrypted = encrypted.get("Encrypt")
        if not isinstance(encrypted, str):
            raise CallbackRejected(400, "no Encrypt element")
        self._verified(msg_signature, timestamp, nonce, encrypted)
        return self._decrypt(encrypted)


def to_event(xml: str) -> IncomingMessage | None:
    """Translate a decrypted WeCom message into the core's event (None: not for the bot)."""
    refuse_declarations(xml)
    try:
        message = parse_message(xml)
    except Exception:  # odd shapes (an element where text belongs) break wechatpy's classes
        raise CallbackRejected(400, "malformed message XML") from None
    if message is None:
        raise CallbackRejected(400, "empty message")
    data: dict[str, Any] = message._data
    user = _text_field(data, "FromUserName")
    if not user:
        raise CallbackRejected(400, "no sender")
    created = _text_field(data, "CreateTime")
    msg_id = _text_field(data, "MsgId") or None
    update_id = f"msg:{msg_id}" if msg_id else f"event:{user}:{created}"
    base: dict[str, Any] = {
        "platform": PLATFORM,
        "chat_id": user,
        "sender_id": user,
        "update_id": update_id,
    }
    kind = _text_field(data, "MsgType").lower()
    if kind == "text":
        text = clean_text(_text_field(data, "Content"))
        return IncomingMessage(**base, text=text, message_id=msg_id)
    media = _text_field(data, "MediaId")
    if kind in MEDIA_KINDS and media:
        attachment = Attachment(
            MEDIA_KINDS[kind],
            _media_id(media),
            name=clean_text(_text_field(data, "FileName"))[:255],
        )
        return IncomingMessage(
            **base, kind=EventKind.file, message_id=msg_id, attachment=attachment
        )
    if kind == "voice":  # with the app's speech recognition on, WeCom sends what it heard
        text = clean_text(_text_field(data, "Recognition")).strip()
        return IncomingMessage(**base, kind=EventKind.voice, text=text, message_id=msg_id)
    if kind == "event":
        event = _text_field(data, "Event").lower()
        if event == "template_card_event":
            key = _text_field(data, "EventKey")
            task = _text_field(data, "TaskId")
            return IncomingMessage(
                **{**base, "update_id": f"card:{user}:{task}:{created}"},
                kind=EventKind.button,
                button_data=key,
            )
        if event == "enter_agent":
            return IncomingMessage(**base, kind=EventKind.enter)
        return None  # subscribe, location, menu views ...: nothing to answer
    return IncomingMessage(**base, kind=EventKind.unsupported, message_id=msg_id)


def _media_id(value: str) -> str:
    """A MediaId as WeCom sends it (letters, digits, - and _), else a 400."""
    if len(value) > 512 or not re.fullmatch(r"[A-Za-z0-9_\-@.=]+", value):
        raise CallbackRejected(400, "malformed MediaId")
    return value


def _text_field(data: dict[str, Any], name: str) -> str:
    """A field of a WeCom message as text ("" when absent); an element in its place is a 400."""
    value = data.get(name)
    if value is None:
        return ""
    if isinstance(value, dict | list):
        raise CallbackRejected(400, "malformed message field")
    return str(value)


class DubanWeComClient(WeChatClient):
    """wechatpy's client pointed at WECOM_API_BASE_URL, with token retries bounded by us."""

    def __init__(self, corp_id: str, secret: str, api_base: str, timeout: float = 10.0) -> None:
        super().__init__(corp_id, secret, timeout=timeout, auto_retry=False)
        self.API_BASE_URL = api_base if api_base.endswith("/") else api_base + "/"

    def fetch_access_token(self) -> dict[str, Any]:
        """Fetch a token from the configured host (wechatpy hard-codes the real one)."""
        result: dict[str, Any] = self._fetch_access_token(
            url=f"{self.API_BASE_URL}gettoken",
            params={"corpid": self.corp_id, "corpsecret": self.secret},
        )
        return result


class MemberPacer(Pacer):
    """At most `limit` messages a minute to each member: waits for a free slot."""

    def __init__(self, limit: int = PER_MEMBER_PER_MINUTE, window: float = 60.0) -> None:
        super().__init__(limit, window)


class WeComMessenger:
    """Sends for the core through WeChatClient, in a worker thread."""

    platform = PLATFORM

    def __init__(self, client: DubanWeComClient, agent_id: int, *, backoff: float = BASE_BACKOFF):
        self.client = client
        self.agent_id = agent_id
        self.backoff = backoff
        self.pacer = MemberPacer()

    def _call(self, action: Callable[[], T]) -> T:
        """Run one API call: refetch the token once on 40014/42001, back off on limits."""
        token_refetched = False
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                return action()
            except WeChatClientException as exc:
                code = exc.errcode
                if code in TOKEN_ERRORS and not token_refetched:
                    token_refetched = True
                    self.client.fetch_access_token()
                    continue
                retryable = code is None or code in RETRY_ERRORS  # None: an HTTP status error
                if not retryable or attempt == MAX_ATTEMPTS:
                    raise
                log.warning("WeCom API error %s, retrying (attempt %d)", code, attempt)
            except requests.RequestException as exc:
                if attempt == MAX_ATTEMPTS:
                    raise
                log.warning(
                    "WeCom network error %s, retrying (attempt %d)", type(exc).__name__, attempt
                )
            time.sleep(self.backoff * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    async def fetch_file(self, attachment: Attachment, sink: FileSink) -> Fetched:
        """Download a file someone sent (media/get), streamed into sink (which stops it past
        the size cap), in a worker thread: the client is blocking."""
        return await asyncio.to_thread(self._download, attachment.file_id, sink)

    def _download(self, media_id: str, sink: FileSink) -> Fetched:
        """media/get with the app's token (refetched once when WeCom says it expired). The
        URL holds the token: no error raised here carries it."""
        for attempt in (1, 2):
            try:
                token = self.client.access_token
                with requests.get(
                    f"{self.client.API_BASE_URL}media/get",
                    params={"access_token": token, "media_id": media_id},
                    stream=True,
                    timeout=DOWNLOAD_TIMEOUT,
                    allow_redirects=False,
                ) as response:
                    if response.status_code != 200:
                        raise FetchFailed(f"media/get answered HTTP {response.status_code}")
                    mime = response.headers.get("Content-Type", "")
                    if "json" in mime.lower():  # an error answer, not the file
                        code = _errcode(response.raw.read(ERROR_BODY, decode_content=True))
                        if code in TOKEN_ERRORS and attempt == 1:
                            self.client.fetch_access_token()
                            continue
                        raise FetchFailed(f"media/get answered errcode {code}")
                    for chunk in response.iter_content(DOWNLOAD_CHUNK):
                        sink.write(chunk)
                    return Fetched(mime=mime, name=_disposition_name(response.headers))
            except (FileTooBig, FetchFailed):
                raise
            except WeChatClientException as exc:  # fetching the token
                raise FetchFailed(f"token: errcode {exc.errcode}") from None
            except Exception as exc:  # requests' text holds the URL, and so the token
                raise FetchFailed(f"media/get failed: {type(exc).__name__}") from None
        raise FetchFailed("media/get: the token was refused twice")

    async def _send(self, user: str, action: Callable[[], dict[str, Any]]) -> SentMessage:
        await self.pacer.wait(user)
        result = await asyncio.to_thread(self._call, action)
        return SentMessage(PLATFORM, user, str(result.get("msgid") or uuid.uuid4().hex))

    async def send_text(
        self,
        chat_id: str,
        text: str,
        *,
        buttons: tuple[tuple[Button, ...], ...] = (),
        reply_to: str | None = None,
        markup: str = "text",
    ) -> SentMessage:
        """Send text split at 2048 bytes; buttons become button_interaction cards."""
        flat = [b for row in buttons for b in row]
        if flat:
            return await self._send_cards(chat_id, text, flat)
        if markup == "markdown":
            return await self.send_markdown(chat_id, text)
        sent: SentMessage | None = None
        for chunk in split_text(text, MAX_TEXT_BYTES, size=utf8_size):
            send = partial(self.client.message.send_text, self.agent_id, chat_id, chunk)
            sent = await self._send(chat_id, send)
        assert sent is not None
        return sent

    async def send_markdown(self, chat_id: str, text: str) -> SentMessage:
        """Send markdown split at 2048 bytes."""
        sent: SentMessage | None = None
        for chunk in split_text(text, MAX_TEXT_BYTES, size=utf8_size):
            send = partial(self.client.message.send_markdown, self.agent_id, chat_id, chunk)
            sent = await self._send(chat_id, send)
        assert sent is not None
        return sent

    async def _send_cards(self, user: str, text: str, buttons: list[Button]) -> SentMessage:
        parts = card_text(text)
        if parts is None:
            # Too long for a card: the whole text goes first as a message of its own (nothing
            # of a question is cut), the card under it carries the buttons.
            await self.send_text(user, text)
            title, rest = _clip(text.partition("\n")[0], CARD_TITLE), ""
        else:
            title, rest = parts
        sent: SentMessage | None = None
        for start in range(0, len(buttons), MAX_CARD_BUTTONS):
            part = buttons[start : start + MAX_CARD_BUTTONS]
            card: dict[str, Any] = {
                "card_type": "button_interaction",
                "main_title": {"title": title},
                **({"sub_title_text": rest} if rest else {}),
                "task_id": f"duban-{uuid.uuid4().hex}",
                "button_list": [
                    {"text": _clip(b.label, 10), "style": 1, "key": b.data} for b in part
                ],
            }
            data = {
                "touser": user,
                "msgtype": "template_card",
                "agentid": self.agent_id,
                "template_card": card,
            }
            sent = await self._send(user, partial(self.client.post, "message/send", data=data))
        assert sent is not None
        return sent

    async def _upload_and_send(self, user: str, path: Path, kind: str) -> SentMessage:
        def upload() -> dict[str, Any]:
            with path.open("rb") as handle:
                result: dict[str, Any] = self.client.media.upload(kind, (path.name, handle))
                return result

        media = await asyncio.to_thread(self._call, upload)
        media_id = media["media_id"]
        if kind == "image":
            return await self._send(
                user, lambda: self.client.message.send_image(self.agent_id, user, media_id)
            )
        return await self._send(
            user, lambda: self.client.message.send_file(self.agent_id, user, media_id)
        )

    async def send_file(
        self, chat_id: str, path: Path, *, caption: str | None = None
    ) -> SentMessage:
        """Upload a file and send it; the caption goes first as text."""
        if caption:
            await self.send_text(chat_id, caption)
        return await self._upload_and_send(chat_id, path, "file")

    async def send_photo(
        self, chat_id: str, path: Path, *, caption: str | None = None
    ) -> SentMessage:
        """Upload a picture and send it; the caption goes first as text."""
        if caption:
            await self.send_text(chat_id, caption)
        return await self._upload_and_send(chat_id, path, "image")


def _errcode(body: bytes) -> int | None:
    """The errcode of a JSON error answer, or None."""
    try:
        value = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        return None
    code = value.get("errcode") if isinstance(value, dict) else None
    return code if isinstance(code, int) else None


def _disposition_name(headers: Any) -> str:
    """The file name a download's Content-Disposition gives ("" when none): display only."""
    disposition = headers.get("Content-Disposition", "")
    encoded = _DISPOSITION_UTF8.search(disposition)
    if encoded is not None:
        return clean_text(urllib.parse.unquote(encoded.group(1)))[:255]
    plain = _DISPOSITION_PLAIN.search(disposition)
    return clean_text(plain.group(1).strip())[:255] if plain is not None else ""


def card_text(text: str) -> tuple[str, str] | None:
    """A text as a template card's title and sub-title (a title cut after a sentence of its
    first line), or None when it does not fit whole."""
    head, _, tail = text.partition("\n")
    if len(head) > CARD_TITLE:
        cut = max(head.rfind(mark, 0, CARD_TITLE) for mark in "？。！：；?!:;")
        if cut < 0:
            return None
        head, tail = head[: cut + 1], f"{head[cut + 1 :]}\n{tail}"
    tail = tail.strip()
    return (head, tail) if len(tail) <= CARD_SUBTITLE else None


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class WeComChannel(EventHandling):
    """The callback endpoint and the messenger; callbacks run in tracked background tasks."""

    platform = PLATFORM

    def __init__(self, settings: Settings, core: ChatCore) -> None:
        missing = missing_wecom_settings(settings)
        if missing:
            raise ValueError(f"WeCom settings missing: {', '.join(missing)}")
        assert settings.wecom_corp_id and settings.wecom_agent_id is not None
        assert settings.wecom_secret and settings.wecom_token and settings.wecom_aes_key
        self.core = core
        self.crypto = CallbackCrypto(
            settings.wecom_token.get_secret_value(),
            settings.wecom_aes_key.get_secret_value(),
            settings.wecom_corp_id,
        )
        client = DubanWeComClient(
            settings.wecom_corp_id,
            settings.wecom_secret.get_secret_value(),
            settings.wecom_api_base_url,
        )
        self.messenger = WeComMessenger(client, settings.wecom_agent_id)
        # Few messages in work at once: the rest wait cheaply, and answering callbacks stays
        # fast under a burst (the work competes with the event loop for the interpreter).
        self._init_handling(log, "WeCom message", WORKERS)
        self._accepting = False  # until start() has handed over what was stored before
        self._refusals = RefusalLog(log, "WeCom callback")

    async def start(self) -> None:
        """Hand over what was stored and not handled (in order), then take callbacks."""
        await self._hand_over(
            PLATFORM,
            to_event,
            CallbackRejected,
            "WeCom: %d stored messages handed over after a restart",
        )
        self._accepting = True
        log.info("WeCom callback ready at /wecom/callback")

    async def stop(self) -> None:
        """Refuse new callbacks and finish the ones in flight."""
        self._accepting = False
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def routes(self) -> list[BaseRoute]:
        """The callback route."""
        return [Route("/wecom/callback", self._callback, methods=["GET", "POST"])]

    async def _callback(self, request: Request) -> Response:
        """Answer WeCom: 4xx for anything refused, 503 when it cannot be taken now, never 500."""
        try:
            return await self._answer(request)
        except CallbackRejected as exc:
            self._refusals.refused(exc.status, exc.reason)
            return Response(status_code=exc.status)
        except Exception as exc:  # a bug or an outage: one line, no traceback per request
            self._refusals.failed(503, exc)
            return Response(status_code=503)

    async def _answer(self, request: Request) -> Response:
        params = request.query_params
        sig, ts, nonce = (params.get(k) for k in ("msg_signature", "timestamp", "nonce"))
        if not (sig and ts and nonce):
            raise CallbackRejected(400, "missing parameters")
        _check_fresh(ts)
        if request.method == "GET":
            echostr = params.get("echostr")
            if not echostr:
                raise CallbackRejected(400, "missing echostr")
            return PlainTextResponse(self.crypto.verify_url(sig, ts, nonce, echostr))
        try:
            body = await read_limited(request, MAX_BODY)
        except RequestRefused as exc:  # WeCom's refusals of a body are all 400s
            raise CallbackRejected(400, exc.reason) from None
        xml = self.crypto.decrypt(body, sig, ts, nonce)
        event = to_event(xml)
        if event is None:
            return Response(status_code=200)  # nothing for the bot (subscribe, location ...)
        if not self._accepting:
            return Response(status_code=503)  # stopping: WeCom sends it again later
        # Stored before the 200: what WeCom was told we have survives a crash.
        received = Received(event.update_id, event.chat_id, xml)
        try:
            (new,) = await self.core.store(PLATFORM, [received])
        except Exception as exc:
            self._refusals.refused(503, f"storing the message failed ({type(exc).__name__})")
            return Response(status_code=503)
        if new:
            self._spawn(event)
        return Response(status_code=200)


def missing_wecom_settings(settings: Settings) -> list[str]:
    """The WeCom settings still unset (empty when WeCom is fully configured)."""
    values = {
        "WECOM_CORP_ID": settings.wecom_corp_id,
        "WECOM_AGENT_ID": settings.wecom_agent_id,
        "WECOM_SECRET": settings.wecom_secret,
        "WECOM_TOKEN": settings.wecom_token,
        "WECOM_AES_KEY": settings.wecom_aes_key,
    }
    return [name for name, value in values.items() if value is None]
