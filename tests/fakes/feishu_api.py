"""A fake Feishu (飞书) open platform for end-to-end tests and benchmarks: the long
connection, the server API and a group's custom bot, as Duban uses them, no more.

A :class:`tests.fakes.base.FakeServer`: real HTTP on 127.0.0.1 and a free port from a
background thread with its own event loop, plus a websocket server (the long connection) on
a second port in the same loop.  Point the official SDK (``lark_oapi.ws.Client(domain=...)``)
and Duban (``FEISHU_DOMAIN``) at ``fake.url``::

    with FakeFeishu() as fake:
        ...  # Duban with FEISHU_APP_ID=fake.app_id, FEISHU_APP_SECRET=fake.app_secret,
             # FEISHU_DOMAIN=fake.url
        fake.wait_connected()
        pushed = fake.user_says("ou_...", "9 60% 主体完工")
        ack = fake.wait_for_ack(pushed.frame_id)        # {"code": 200}
        fake.wait_for_messages("ou_...", 1)[0].text      # Duban's answer

Construction: ``FakeFeishu(app_id="cli_test_app", app_secret=..., *, group_token=...,
group_secret=... (None: the custom bot checks no signature), token_ttl=7200,
client_config=None (the ClientConfig handed to the SDK: ReconnectCount, ReconnectInterval,
ReconnectNonce, PingInterval; default Feishu's -1/120/30/120), users=None (open_ids the bot
may message; None: any), redeliver_unacked=False)``.

The long connection (as the SDK speaks it, with lark_oapi's own pbbp2 ``Frame``):

- ``POST /callback/ws/endpoint`` with ``{"AppID", "AppSecret"}`` answers
  ``{"code": 0, "data": {"URL": "ws://127.0.0.1:<ws port>/ws/v2?fpid=..&device_id=..&
  access_key=..&service_id=..&ticket=..", "ClientConfig": {...}}}``; a wrong app id or
  secret answers code 514 ``auth failed`` (the SDK raises ClientException).
- The websocket takes only a URL it handed out (else HTTP 403 with ``handshake-status`` /
  ``handshake-msg`` headers, as Feishu refuses); a ping (CONTROL frame, ``type: ping``) is
  answered with a pong carrying the ClientConfig.
- Events are DATA frames (``type: event``, ``message_id`` (the frame's id), ``trace_id``,
  ``sum``, ``seq``, payload the event JSON), split over ``parts`` frames when asked.  The
  client's acknowledgement is the same frame sent back with the payload ``{"code": ...}``
  (and ``biz_rt``); each is recorded as :class:`Ack` in ``fake.acks`` (frame id -> Ack) and
  passed to every callable in ``fake.on_ack`` (run in the fake's thread, at arrival).

Pushing (thread-safe; blocks until the frames are written, so never call it from
``on_ack``): ``user_says(open_id, text, *, parent_id=None, mention=False)``,
``user_sends_image(open_id, data)``, ``user_sends_file(open_id, data, name, kind="file"|
"media")``, ``user_sends(open_id, message_type, content)``, ``user_clicks(open_id, message,
data)`` (a ``card.action.trigger`` for a button of a card Duban sent), ``user_enters(open_id)``,
``push_event(payload, parts=1)`` (any dict or bytes), ``push_raw(data)`` (raw websocket
data), ``redeliver(pushed)`` (the same payload again, a new frame).  Each returns
:class:`Pushed` (event_id, message_id, frame_id, payload).  ``drop_connections()`` closes the
websockets (the SDK reconnects), ``connections_made``, ``wait_connected(count=1)``,
``wait_for_ack(frame_id)``.

Redelivery: with ``redeliver_unacked=True`` the fake does what Feishu does with an event that
was not acknowledged with code 200 (Feishu counts it as not delivered and pushes it again, the
same event_id in a new frame, first after 15 seconds): when the long connection an event
frame went out on closes before its acknowledgement (the client crashed, or the network
failed), the event is pushed again at once on the newest open connection, or on the next one
made.  ``redelivered`` lists those new frames.  (Feishu also retries an event a live connection
leaves unacknowledged for 3 seconds; the fake does that only when asked, with ``redeliver``.)

The server API (``Authorization: Bearer <tenant_access_token>``; answers ``{"code", "msg",
"data"}``):

- ``POST /open-apis/auth/v3/tenant_access_token/internal`` ``{"app_id", "app_secret"}`` ->
  ``tenant_access_token``, ``expire``; as Feishu, the same token again until its last 30
  minutes, then a new one.  10003 missing fields, 10014 ``app secret invalid``.
- ``POST /open-apis/im/v1/messages?receive_id_type=open_id`` (receive_id, msg_type, content
  (a JSON string), uuid) and ``POST /open-apis/im/v1/messages/{message_id}/reply`` (msg_type,
  content, uuid): text, interactive (cards JSON 1.0 or 2.0), image, file.  A uuid seen in
  the last hour sends nothing again (the first message is answered).  230025 when a text
  body is over 150 KB or a card's over 30 KB, 230001 for malformed parameters, 230099 for a
  card Feishu cannot build, 230011 replying to a recalled message (``recall(message_id)``),
  230013 for an open_id not in ``users``.
- ``POST /open-apis/im/v1/images`` (multipart image_type=message, image; at most 10 MB, a
  PNG, JPEG, GIF, BMP or WEBP) -> image_key; ``POST /open-apis/im/v1/files`` (file_type,
  file_name, file; at most 30 MB) -> file_key.  234001 invalid parameters, 234006 too big,
  234011 not an image.
- ``GET /open-apis/im/v1/messages/{message_id}/resources/{file_key}?type=image|file`` -> the
  file a user sent in that message (Content-Type, Content-Disposition); 234003 when the
  message has no such resource.
- Token errors: 99991661 missing token, 99991663 invalid or expired (HTTP 400).
  ``expire_tokens()`` makes every issued token invalid.

The group's custom bot, ``POST /open-apis/bot/v2/hook/{token}``: 19001 for another token,
9499 ``Bad Request`` for a body over 20 KB or a malformed one, and, when ``group_secret`` is
set, 19021 ``sign match fail or timestamp is not within one hour from current time`` unless
``timestamp`` is within an hour of now and ``sign`` = base64(HMAC-SHA256(key=f"{timestamp}
\\n{secret}", msg=b"")); more than 5 a second or 100 a minute answer 11232 ``frequency
limited``.  Success is ``{"StatusCode": 0, "StatusMessage": "success", "code": 0, "data":
{}, "msg": "success"}``.  What it took is in ``fake.group_messages`` (:class:`GroupMessage`).

Faults (endpoint names: ``tenant_access_token``, ``messages``, ``reply``, ``images``,
``files``, ``resources``, ``hook``, ``ws_endpoint``): ``fail_next(endpoint, code=99991400,
count=1)`` (99991400 comes as HTTP 429 with ``x-ogw-ratelimit-reset``), ``http_error_next``,
``delay_next``, ``latency``, ``clear_faults`` from the base; ``rate_limit(per_chat_per_second=5,
overall_per_second=50)`` turns Feishu's message limits on (230020 for one chat, 99991400 in
all).  Records: ``fake.sent`` (:class:`FeishuMessage`), ``messages_to(open_id)``,
``wait_for_messages``, ``uploads``, ``tokens_issued`` (every token handed out), ``stats``,
``requests``, ``internal_errors``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import secrets
import socket
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import uvicorn
import websockets
from lark_oapi.ws.pb.pbbp2_pb2 import Frame
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request as WsRequest
from websockets.http11 import Response as WsResponse

# (Also imports the SDK, and closes the loop it makes on import when the process exits.)
import bot.channels.feishu.longconn  # noqa: F401

from .base import (
    FakeApiError,
    FakeServer,
    FilePart,
    Incoming,
    JSONDict,
    SlidingWindow,
    TokenServer,
    file_response,
)

TEXT_BODY_LIMIT = 150 * 1024
CARD_BODY_LIMIT = 30 * 1024
HOOK_BODY_LIMIT = 20 * 1024
IMAGE_LIMIT = 10 * 1024 * 1024
FILE_LIMIT = 30 * 1024 * 1024
UUID_WINDOW = 3600.0
DEFAULT_CLIENT_CONFIG = {
    "ReconnectCount": -1,
    "ReconnectInterval": 120,
    "ReconnectNonce": 30,
    "PingInterval": 120,
}
FAST_CLIENT_CONFIG = {
    "ReconnectCount": -1,
    "ReconnectInterval": 1,
    "ReconnectNonce": 0,
    "PingInterval": 120,
}
"""A ClientConfig for tests: reconnect after a second, no random wait."""

CONTROL, DATA = 0, 1
MESSAGES = {
    514: "auth failed",
    9499: "Bad Request",
    10003: "invalid param",
    10014: "app secret invalid",
    11232: "frequency limited psm[lark.oapi.app_platform_runtime]",
    19001: "param invalid: incoming webhook access token invalid",
    19021: "sign match fail or timestamp is not within one hour from current time",
    230001: "Your request contains an invalid request parameter.",
    230011: "The message is recalled.",
    230013: "Bot has NO availability to this user.",
    230020: "This operation triggers the frequency limit.",
    230025: "The length of the message content reaches its limit.",
    230099: "Failed to create card content.",
    234001: "Invalid request param.",
    234003: "File not in msg.",
    234006: "The file size exceed the max value.",
    234011: "Can't recognize image format.",
    99991400: "request trigger frequency limit",
    99991661: "Missing access token for authorization. Please make a request with token attached.",
    99991663: "Invalid access token for authorization. Please make a request with token attached.",
}
# HTTP statuses of the error codes that do not come with 200.
STATUSES = {99991400: 429, 99991661: 400, 99991663: 400}
_CARD_TAGS = frozenset(
    {"markdown", "div", "button", "column_set", "column", "hr", "img", "action", "note"}
)
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"RIFF")
ENDPOINTS = ("tenant_access_token", "messages", "reply", "images", "files", "resources", "hook")


class ApiError(FakeApiError):
    """An error answer: ``{"code": ..., "msg": ...}``."""

    def __init__(self, code: int, msg: str | None = None, status: int | None = None) -> None:
        self.msg = msg if msg is not None else MESSAGES.get(code, f"error {code}")
        super().__init__(code, self.msg, status if status is not None else STATUSES.get(code, 400))

    def payload(self) -> JSONDict:
        """The JSON body Feishu sends with this error."""
        return {"code": self.code, "msg": self.msg, "error": {"log_id": uuid.uuid4().hex}}


@dataclass
class FeishuMessage:
    """One message Duban sent (create or reply)."""

    receive_id: str
    msg_type: str
    content: JSONDict
    message_id: str
    raw: JSONDict
    reply_to: str | None = None
    uuid: str | None = None
    at: float = field(default_factory=time.monotonic)

    @property
    def card(self) -> JSONDict | None:
        """The card of an interactive message."""
        return self.content if self.msg_type == "interactive" else None

    @property
    def text(self) -> str | None:
        """What it says: a text's text, a card's text elements joined by lines."""
        if self.msg_type == "text":
            return str(self.content.get("text", ""))
        if self.card is not None:
            return "\n".join(_card_texts(self.card))
        return None

    @property
    def markdown(self) -> bool:
        """Whether its text is markdown (a card's markdown element)."""
        return self.card is not None and any(
            e.get("tag") == "markdown" for e in _card_elements(self.card)
        )

    @property
    def buttons(self) -> list[tuple[str, str]]:
        """A card's buttons as (label, the data of their value), in order."""
        if self.card is None:
            return []
        found = []
        for element in _card_elements(self.card):
            if element.get("tag") == "button":
                value = _button_value(element)
                label = (element.get("text") or {}).get("content", "")
                found.append((str(label), str(value.get("data", ""))))
        return found


@dataclass(frozen=True)
class GroupMessage:
    """One message the group's custom bot took."""

    msg_type: str
    text: str
    raw: JSONDict
    at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Upload:
    """One accepted upload."""

    kind: str  # image | file
    key: str
    name: str
    file_type: str
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class Pushed:
    """An event pushed down the long connection."""

    event_id: str
    message_id: str | None
    frame_id: str
    payload: bytes = field(repr=False)


@dataclass(frozen=True)
class Ack:
    """A client's acknowledgement of an event frame."""

    frame_id: str
    code: int | None
    data: Any
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)


def _card_elements(card: JSONDict) -> list[JSONDict]:
    """Every element of a card (JSON 1.0 or 2.0), containers' children included."""
    top = card.get("body", {}).get("elements") if "body" in card else card.get("elements")
    found: list[JSONDict] = []

    def walk(elements: Any) -> None:
        for element in elements or []:
            if not isinstance(element, dict):
                continue
            found.append(element)
            walk(element.get("elements"))
            walk(element.get("actions"))
            for column in element.get("columns") or []:
                if isinstance(column, dict):
                    walk(column.get("elements"))

    walk(top)
    return found


def _card_texts(card: JSONDict) -> list[str]:
    texts = []
    for element in _card_elements(card):
        if element.get("tag") == "markdown":
            texts.append(str(element.get("content", "")))
        elif element.get("tag") == "div" and isinstance(element.get("text"), dict):
            texts.append(str(element["text"].get("content", "")))
    return texts


def _button_value(button: JSONDict) -> JSONDict:
    """What a button's click sends back: its callback behaviour's value (2.0) or value (1.0)."""
    for behavior in button.get("behaviors") or []:
        if isinstance(behavior, dict) and behavior.get("type") == "callback":
            value = behavior.get("value")
            return value if isinstance(value, dict) else {}
    value = button.get("value")
    return value if isinstance(value, dict) else {}


def sign(timestamp: str, secret: str) -> str:
    """The custom bot's signature (Feishu's own example, in Python)."""
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def new_open_id() -> str:
    """An open_id as Feishu makes them."""
    return "ou_" + secrets.token_hex(16)


class FakeFeishu(TokenServer[FeishuMessage]):
    """A fake Feishu open platform; see the module docstring."""

    label = "Feishu"
    thread_name = "fake-feishu"
    ok_code = 0
    json_media_type = "application/json; charset=utf-8"

    def __init__(
        self,
        app_id: str = "cli_test_app",
        app_secret: str = "test-app-secret-0123456789",
        *,
        group_token: str = "test-group-token-0123456789",
        group_secret: str | None = "test-group-secret-0123456789",
        token_ttl: int = 7200,
        client_config: dict[str, int] | None = None,
        users: Iterable[str] | None = None,
        redeliver_unacked: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(token_ttl=token_ttl, host=host, port=port)
        self.app_id = app_id
        self.app_secret = app_secret
        self.group_token = group_token
        self.group_secret = group_secret
        self.client_config = dict(client_config or DEFAULT_CLIENT_CONFIG)
        self.users: frozenset[str] | None = None if users is None else frozenset(users)
        self.redeliver_unacked = redeliver_unacked
        # event frames sent on each open connection and not acknowledged with code 200
        self._unacked: dict[ServerConnection, dict[str, Pushed]] = {}
        self._to_redeliver: list[Pushed] = []  # for the next connection
        self.tenant_key = "fake-tenant-" + secrets.token_hex(4)
        self._endpoint("tenant_access_token", self._tenant_token, methods=("POST",))
        self._endpoint("messages", self._create, methods=("POST",))
        self._endpoint("reply", self._reply, methods=("POST",))
        self._endpoint("images", self._upload_image, methods=("POST",))
        self._endpoint("files", self._upload_file, methods=("POST",))
        self._endpoint("resources", self._resource, methods=("GET",))
        self._endpoint("hook", self._hook, methods=("POST",))
        self._endpoint("ws_endpoint", self._ws_endpoint, methods=("POST",))
        self._ids = itertools.count(1)
        self._tickets: dict[str, str] = {}  # ticket -> service id
        self._ws_server: Server | None = None
        self._ws_port = 0
        self._connections: list[ServerConnection] = []
        self.connections_made = 0
        self.on_ack: list[Callable[[Ack], None]] = []
        self._tasks: set[asyncio.Future[Any]] = set()
        self.reset()

    # ------------------------------------------------------------------ base hooks

    def _routes(self) -> list[BaseRoute]:
        return [
            self._api_route("/callback/ws/endpoint", lambda r: "ws_endpoint"),
            self._api_route("/open-apis/{path:path}", _endpoint_of),
        ]

    def _unknown(self, call: Incoming) -> Response:
        return Response("404 page not found", 404, media_type="text/plain")

    def _wrong_method(self, call: Incoming) -> Response:
        return Response("404 page not found", 404, media_type="text/plain")

    def _error_answer(self, error: FakeApiError, record: Any) -> Response:
        response = super()._error_answer(error, record)
        if error.code == 99991400:
            response.headers["x-ogw-ratelimit-limit"] = "50"
            response.headers["x-ogw-ratelimit-reset"] = "1"
        return response

    async def _serve(self, server: uvicorn.Server, sock: socket.socket) -> None:  # type: ignore[override]
        """The HTTP server, and the long connection's websocket server beside it."""
        ws_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        ws_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ws_sock.bind((self.host, 0))
        ws_sock.listen(128)
        self._ws_port = ws_sock.getsockname()[1]
        self._ws_server = await serve(
            self._ws_session,
            sock=ws_sock,
            process_request=self._ws_handshake,
            ping_interval=None,
            max_size=4 << 20,
        )
        try:
            await FakeServer._serve(server, sock)
        finally:
            self._ws_server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws_server.wait_closed(), 2)

    def _on_stop(self) -> None:
        for connection in list(self._connections):
            self._background(connection.close())

    def _background(self, work: Any) -> None:
        """Run a coroutine in the fake's loop (called from it), kept until done."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def reset(self, *, keep_tokens: bool = True) -> None:
        """Forget messages, uploads, acks, calls, faults, limits and counters (issued tokens
        stay valid unless keep_tokens is False)."""
        with self._lock:
            super().reset()
            self.sent: list[FeishuMessage] = []
            self.group_messages: list[GroupMessage] = []
            self.uploads: list[Upload] = []
            self.acks: dict[str, Ack] = {}
            self.pushed: list[Pushed] = []
            self.redelivered: list[Pushed] = []
            self.pongs = 0
            self._messages: dict[str, str] = {}  # message id -> the open_id of its chat
            self._recalled: set[str] = set()
            self._resources: dict[tuple[str, str], tuple[str, FilePart]] = {}
            self._uploaded: dict[str, Upload] = {}
            self._uuids: dict[str, tuple[float, JSONDict]] = {}
            self._chat_limit: float | None = None
            self._overall_limit: float | None = None
            self._chat_sends: dict[str, SlidingWindow] = {}
            self._all_sends = SlidingWindow()
            self._hook_sends = SlidingWindow()
            if not keep_tokens:
                self._forget_tokens()
            self.tokens_issued: list[str] = list(self._tokens)

    # ------------------------------------------------------------------ test-facing API

    def fail_next(self, endpoint: str, code: int = 99991400, count: int = 1) -> None:
        """The next ``count`` calls of ``endpoint`` answer ``code``."""
        self._inject_error(endpoint, lambda: ApiError(code), count)

    def rate_limit(
        self, per_chat_per_second: float | None = 5, overall_per_second: float | None = 50
    ) -> None:
        """Feishu's message limits: 230020 past per_chat_per_second to one chat, 99991400
        (HTTP 429) past overall_per_second; None turns one off."""
        with self._lock:
            self._chat_limit = per_chat_per_second
            self._overall_limit = overall_per_second

    def recall(self, message_id: str) -> None:
        """The message is recalled: replying to it answers 230011."""
        with self._lock:
            self._recalled.add(message_id)

    @property
    def ws_url(self) -> str:
        """The websocket server's root."""
        return f"ws://{self.host}:{self._ws_port}"

    @property
    def hook_url(self) -> str:
        """The group's custom bot webhook."""
        return f"{self.url}/open-apis/bot/v2/hook/{self.group_token}"

    @property
    def connected(self) -> bool:
        """Whether a client holds a long connection now."""
        with self._lock:
            return bool(self._connections)

    def wait_connected(self, count: int = 1, timeout: float = 10.0) -> None:
        """Block until ``count`` connections were made in all and one is open."""
        self.wait_until(lambda f: f.connections_made >= count and bool(f._connections), timeout)

    def wait_for_ack(self, frame_id: str, timeout: float = 5.0) -> Ack:
        """Block until the frame was acknowledged; its Ack."""
        self.wait_until(lambda f: frame_id in f.acks, timeout)
        with self._lock:
            return self.acks[frame_id]

    async def await_ack(self, frame_id: str, timeout: float = 5.0) -> Ack:  # noqa: ASYNC109
        """Async wrapper of :meth:`wait_for_ack`."""
        return await asyncio.to_thread(self.wait_for_ack, frame_id, timeout)

    def wait_for_group_messages(self, count: int = 1, timeout: float = 5.0) -> list[GroupMessage]:
        """Block until the group bot took ``count`` messages; return them all."""
        self.wait_until(lambda f: len(f.group_messages) >= count, timeout)
        with self._lock:
            return list(self.group_messages)

    def drop_connections(self) -> None:
        """Close every long connection (the client reconnects)."""
        self._run(self._close_all())

    async def _close_all(self) -> None:
        for connection in list(self._connections):
            await connection.close(1001, "going away")

    # --- events -----------------------------------------------------------------------------

    def _header(self, event_type: str) -> tuple[str, JSONDict]:
        event_id = uuid.uuid4().hex
        header = {
            "event_id": event_id,
            "token": "",
            "create_time": str(int(time.time() * 1000)),
            "event_type": event_type,
            "tenant_key": self.tenant_key,
            "app_id": self.app_id,
        }
        return event_id, header

    def message_event(
        self,
        open_id: str,
        message_type: str,
        content: JSONDict,
        *,
        parent_id: str | None = None,
        mentions: list[JSONDict] | None = None,
        chat_type: str = "p2p",
        message_id: str | None = None,
    ) -> tuple[str, str, JSONDict]:
        """An ``im.message.receive_v1`` event as Feishu sends it: (event_id, message_id,
        payload)."""
        event_id, header = self._header("im.message.receive_v1")
        message_id = message_id or f"om_{uuid.uuid4().hex}"
        now = str(int(time.time() * 1000))
        message: JSONDict = {
            "message_id": message_id,
            "root_id": parent_id or "",
            "parent_id": parent_id or "",
            "create_time": now,
            "update_time": now,
            "chat_id": "oc_" + hashlib.md5(open_id.encode()).hexdigest(),
            "chat_type": chat_type,
            "message_type": message_type,
            "content": json.dumps(content, ensure_ascii=False),
        }
        if mentions:
            message["mentions"] = mentions
        payload = {
            "schema": "2.0",
            "header": header,
            "event": {
                "sender": {
                    "sender_id": {
                        "union_id": "on_" + hashlib.md5(open_id.encode()).hexdigest(),
                        "user_id": hashlib.md5(open_id.encode()).hexdigest()[:8],
                        "open_id": open_id,
                    },
                    "sender_type": "user",
                    "tenant_key": self.tenant_key,
                },
                "message": message,
            },
        }
        with self._lock:
            self._messages[message_id] = open_id
        return event_id, message_id, payload

    def user_sends(
        self, open_id: str, message_type: str, content: JSONDict, **options: Any
    ) -> Pushed:
        """The person sends a message of any type to the bot (a one-to-one chat)."""
        parts = options.pop("parts", 1)
        event_id, message_id, payload = self.message_event(
            open_id, message_type, content, **options
        )
        return self._push(event_id, message_id, _dumps(payload), parts)

    def user_says(
        self,
        open_id: str,
        text: str,
        *,
        parent_id: str | None = None,
        mention: bool = False,
        parts: int = 1,
    ) -> Pushed:
        """The person sends text (with ``mention``: it @-mentions the bot first, as a
        client writes it: ``@_user_1 text``)."""
        mentions = None
        if mention:
            text = f"@_user_1 {text}"
            mentions = [
                {
                    "key": "@_user_1",
                    "id": {"open_id": "ou_" + "b" * 32, "union_id": "", "user_id": ""},
                    "name": "督办",
                    "tenant_key": self.tenant_key,
                }
            ]
        return self.user_sends(
            open_id, "text", {"text": text}, parent_id=parent_id, mentions=mentions, parts=parts
        )

    def user_resource(
        self,
        open_id: str,
        data: bytes,
        *,
        name: str = "",
        content_type: str = "application/octet-stream",
        kind: str = "file",
    ) -> tuple[str, str, str, JSONDict]:
        """A message with a file the person sent (``kind`` image, file or media), its file
        downloadable with the message resources API; not pushed: (event_id, message_id,
        key, payload)."""
        if kind == "image":
            key = f"img_v3_{uuid.uuid4()}"
            content: JSONDict = {"image_key": key}
        else:
            key = f"file_v3_{uuid.uuid4()}"
            content = {"file_key": key, "file_name": name}
            if kind == "media":
                content.update(image_key=f"img_v3_{uuid.uuid4()}", duration=3000)
        event_id, message_id, payload = self.message_event(open_id, kind, content)
        resource = "image" if kind == "image" else "file"
        with self._lock:
            self._resources[(message_id, key)] = (
                resource,
                FilePart(resource, name, content_type, data),
            )
        return event_id, message_id, key, payload

    def user_sends_image(
        self, open_id: str, data: bytes, content_type: str = "image/png"
    ) -> Pushed:
        """The person sends a picture (downloadable with the message resources API)."""
        event_id, message_id, _, payload = self.user_resource(
            open_id, data, content_type=content_type, kind="image"
        )
        return self._push(event_id, message_id, _dumps(payload), 1)

    def user_sends_file(
        self,
        open_id: str,
        data: bytes,
        name: str,
        content_type: str = "application/octet-stream",
        kind: str = "file",
    ) -> Pushed:
        """The person sends a file (``kind="media"``: a video)."""
        event_id, message_id, _, payload = self.user_resource(
            open_id, data, name=name, content_type=content_type, kind=kind
        )
        return self._push(event_id, message_id, _dumps(payload), 1)

    def user_clicks(self, open_id: str, message: FeishuMessage, data: str) -> Pushed:
        """The person clicks the button with this data on a card Duban sent them."""
        if message.card is None:
            raise ValueError("not a card")
        buttons = [e for e in _card_elements(message.card) if e.get("tag") == "button"]
        values = [_button_value(b) for b in buttons]
        value = next((v for v in values if v.get("data") == data), None)
        if value is None:
            raise ValueError(f"no button with data {data!r} on that card: {message.buttons!r}")
        event_id, header = self._header("card.action.trigger")
        payload = {
            "schema": "2.0",
            "header": header,
            "event": {
                "operator": {
                    "tenant_key": self.tenant_key,
                    "user_id": hashlib.md5(open_id.encode()).hexdigest()[:8],
                    "open_id": open_id,
                    "union_id": "on_" + hashlib.md5(open_id.encode()).hexdigest(),
                },
                "token": "c-" + secrets.token_hex(20),
                "action": {"value": value, "tag": "button"},
                "host": "im_message",
                "context": {
                    "open_message_id": message.message_id,
                    "open_chat_id": "oc_" + hashlib.md5(open_id.encode()).hexdigest(),
                },
            },
        }
        return self._push(event_id, None, _dumps(payload), 1)

    def user_enters(self, open_id: str) -> Pushed:
        """The person opens the one-to-one chat with the bot."""
        event_id, header = self._header("im.chat.access_event.bot_p2p_chat_entered_v1")
        payload = {
            "schema": "2.0",
            "header": header,
            "event": {
                "chat_id": "oc_" + hashlib.md5(open_id.encode()).hexdigest(),
                "operator_id": {"open_id": open_id, "union_id": "", "user_id": ""},
            },
        }
        return self._push(event_id, None, _dumps(payload), 1)

    def push_event(self, payload: JSONDict | bytes, parts: int = 1) -> Pushed:
        """Any event payload (a dict, or bytes as they are) in DATA frames."""
        raw = payload if isinstance(payload, bytes) else _dumps(payload)
        event_id = ""
        if isinstance(payload, dict):
            event_id = str((payload.get("header") or {}).get("event_id", ""))
        return self._push(event_id, None, raw, parts)

    def redeliver(self, pushed: Pushed) -> Pushed:
        """Feishu pushes the same event again (a new frame)."""
        return self._push(pushed.event_id, pushed.message_id, pushed.payload, 1)

    def push_raw(self, data: bytes | str) -> None:
        """Raw websocket data (not necessarily a frame) to the client."""
        self._run(self._send_all([data]))

    def _push(self, event_id: str, message_id: str | None, payload: bytes, parts: int) -> Pushed:
        frame_id = f"fake-frame-{next(self._ids)}-{uuid.uuid4().hex[:8]}"
        pushed = Pushed(event_id, message_id, frame_id, payload)
        frames = self._frames(frame_id, payload, parts)
        with self._lock:
            self.pushed.append(pushed)
        self._run(self._send_all(frames, pushed))
        return pushed

    def _frames(self, frame_id: str, payload: bytes, parts: int) -> list[bytes]:
        size = max(1, -(-len(payload) // parts))
        chunks = [payload[i : i + size] for i in range(0, len(payload), size)] or [b""]
        trace = uuid.uuid4().hex
        frames = []
        for seq, chunk in enumerate(chunks):
            frame = Frame()
            frame.SeqID = next(self._ids)
            frame.LogID = next(self._ids)
            frame.service = int(self._service_id or 1)
            frame.method = DATA
            for key, value in (
                ("type", "event"),
                ("message_id", frame_id),
                ("trace_id", trace),
                ("sum", str(len(chunks))),
                ("seq", str(seq)),
            ):
                header = frame.headers.add()
                header.key, header.value = key, value
            frame.payload = chunk
            frames.append(frame.SerializeToString())
        return frames

    def _run(self, work: Any, timeout: float = 5.0) -> Any:
        loop = self._loop
        if loop is None:
            work.close()
            raise RuntimeError("the fake Feishu is not running")
        return asyncio.run_coroutine_threadsafe(work, loop).result(timeout)

    async def _send_all(self, frames: Sequence[bytes | str], pushed: Pushed | None = None) -> None:
        with self._lock:
            if not self._connections:
                raise RuntimeError("no long connection to push to")
            connection = self._connections[-1]
            if pushed is not None:  # an event: kept until acknowledged
                self._unacked.setdefault(connection, {})[pushed.frame_id] = pushed
        try:
            for data in frames:
                await connection.send(data)
        except websockets.exceptions.ConnectionClosed:
            if pushed is None or not self.redeliver_unacked:
                raise
            # the connection died under it: pushed again with what it left unacknowledged

    async def _redeliver_all(self, pending: list[Pushed]) -> None:
        """Push unacknowledged events again, each in a new frame, on the newest connection
        (or keep them for the next one)."""
        for old in pending:
            frame_id = f"fake-frame-{next(self._ids)}-{uuid.uuid4().hex[:8]}"
            again = Pushed(old.event_id, old.message_id, frame_id, old.payload)
            with self._lock:
                if not self._connections:
                    self._to_redeliver.append(old)
                    continue
                self.pushed.append(again)
                self.redelivered.append(again)
                self.stats["ws:redelivered"] += 1
            # a connection that closes meanwhile hands what it was sent to the next one
            with contextlib.suppress(Exception):
                await self._send_all(self._frames(frame_id, old.payload, 1), again)

    # --- the long connection ------------------------------------------------------------------

    _service_id: str | None = None

    def _ws_endpoint(self, call: Incoming) -> JSONDict:
        body = call.json_or_none()
        if not isinstance(body, dict):
            raise ApiError(10003, status=200)
        if body.get("AppID") != self.app_id or body.get("AppSecret") != self.app_secret:
            raise ApiError(514, status=200)
        ticket = secrets.token_hex(16)
        service_id = self._service_id = self._service_id or str(30000 + next(self._ids))
        self._tickets[ticket] = service_id
        query = urllib.parse.urlencode(
            {
                "fpid": "493",
                "aid": "552564",
                "device_id": str(7_000_000 + next(self._ids)),
                "access_key": secrets.token_hex(16),
                "service_id": service_id,
                "ticket": ticket,
            }
        )
        return {
            "code": 0,
            "msg": "ok",
            "data": {"URL": f"{self.ws_url}/ws/v2?{query}", "ClientConfig": self.client_config},
        }

    def _ws_handshake(self, connection: ServerConnection, request: WsRequest) -> WsResponse | None:
        parsed = urllib.parse.urlsplit(request.path)
        query = dict(urllib.parse.parse_qsl(parsed.query))
        with self._lock:
            known = parsed.path == "/ws/v2" and query.get("ticket") in self._tickets
            if known:
                del self._tickets[query["ticket"]]  # a ticket is used once
        if known:
            return None
        response = connection.respond(403, "forbidden\n")
        response.headers["handshake-status"] = "403"
        response.headers["handshake-msg"] = "invalid ticket"
        return response

    async def _ws_session(self, connection: ServerConnection) -> None:
        with self._lock:
            self._connections.append(connection)
            self._unacked[connection] = {}
            self.connections_made += 1
            pending, self._to_redeliver = self._to_redeliver, []
            self._changed.notify_all()
        if pending:
            self._background(self._redeliver_all(pending))
        try:
            async for message in connection:
                self._on_frame(connection, message)
        except Exception:  # the client went away
            pass
        finally:
            with self._lock:
                if connection in self._connections:
                    self._connections.remove(connection)
                left = list(self._unacked.pop(connection, {}).values())
                self._changed.notify_all()
            if left and self.redeliver_unacked:  # Feishu pushes them again
                self._background(self._redeliver_all(left))

    def _on_frame(self, connection: ServerConnection, message: bytes | str) -> None:
        frame = Frame()
        try:
            frame.ParseFromString(message if isinstance(message, bytes) else message.encode())
        except Exception as exc:
            with self._lock:
                self.internal_errors.append(exc)
            return
        headers = {h.key: h.value for h in frame.headers}
        if frame.method == CONTROL and headers.get("type") == "ping":
            pong = Frame()
            pong.SeqID, pong.LogID, pong.service, pong.method = 0, 0, frame.service, CONTROL
            header = pong.headers.add()
            header.key, header.value = "type", "pong"
            pong.payload = _dumps(self.client_config)
            self._background(connection.send(pong.SerializeToString()))
            with self._lock:
                self.pongs += 1
                self._changed.notify_all()
            return
        if frame.method == DATA:
            try:
                answer = json.loads(frame.payload.decode("utf-8"))
            except ValueError:
                answer = {}
            data = answer.get("data")
            if isinstance(data, str):
                with contextlib.suppress(ValueError):
                    data = json.loads(base64.b64decode(data))
            ack = Ack(headers.get("message_id", ""), answer.get("code"), data, headers)
            for hook in list(self.on_ack):
                try:
                    hook(ack)
                except Exception as exc:  # a test's hook: kept, as a bug of the fake
                    with self._lock:
                        self.internal_errors.append(exc)
            with self._lock:
                self.acks[ack.frame_id] = ack
                if ack.code == 200:
                    self._unacked.get(connection, {}).pop(ack.frame_id, None)
                self._changed.notify_all()

    # --- tokens -------------------------------------------------------------------------------

    def _tenant_token(self, call: Incoming) -> JSONDict:
        body = call.json_or_none()
        if not isinstance(body, dict) or not body.get("app_id") or not body.get("app_secret"):
            raise ApiError(10003)
        if body["app_id"] != self.app_id or body["app_secret"] != self.app_secret:
            raise ApiError(10014)
        token, left, new = self._issue_token(
            lambda: "t-" + secrets.token_hex(20), renew_within=1800
        )
        if new:
            self.tokens_issued.append(token)
        return {"code": 0, "msg": "ok", "tenant_access_token": token, "expire": max(0, int(left))}

    def _check_token(self, call: Incoming) -> None:
        value = call.headers.get("authorization", "")
        if not value.startswith("Bearer ") or not value[7:].strip():
            raise ApiError(99991661)
        expires = self._tokens.get(value[7:].strip())
        if expires is None or expires <= time.monotonic():
            raise ApiError(99991663)

    # --- messages -----------------------------------------------------------------------------

    def _create(self, call: Incoming) -> JSONDict:
        self._check_token(call)
        if call.query.get("receive_id_type") != "open_id":
            raise ApiError(230001, "receive_id_type must be open_id here")
        body = _json_body(call)
        receive_id = body.get("receive_id")
        if not isinstance(receive_id, str) or not receive_id.startswith("ou_"):
            raise ApiError(230001, "invalid receive_id")
        if self.users is not None and receive_id not in self.users:
            raise ApiError(230013)
        return self._accept_message(call, body, receive_id, None)

    def _reply(self, call: Incoming) -> JSONDict:
        self._check_token(call)
        parent = str(call.path_params.get("message_id", ""))
        if parent in self._recalled:
            raise ApiError(230011)
        receive_id = self._messages.get(parent)
        if receive_id is None:
            raise ApiError(230001, "invalid message_id")
        return self._accept_message(call, _json_body(call), receive_id, parent)

    def _accept_message(
        self, call: Incoming, body: JSONDict, receive_id: str, parent: str | None
    ) -> JSONDict:
        msg_type = body.get("msg_type")
        raw_content = body.get("content")
        if not isinstance(msg_type, str) or not isinstance(raw_content, str):
            raise ApiError(230001, "msg_type and content (a string) are required")
        try:
            content = json.loads(raw_content)
        except ValueError:
            raise ApiError(230001, "content is not JSON") from None
        if not isinstance(content, dict):
            raise ApiError(230001, "content is not an object")
        limit = TEXT_BODY_LIMIT if msg_type == "text" else CARD_BODY_LIMIT
        if len(call.body) > limit:
            raise ApiError(230025)
        self._check_content(msg_type, content)
        key = body.get("uuid")
        now = time.monotonic()
        if isinstance(key, str) and key:
            if len(key) > 50:
                raise ApiError(230001, "uuid is longer than 50")
            seen = self._uuids.get(key)
            if seen is not None and now - seen[0] < UUID_WINDOW:
                return {"code": 0, "msg": "success", "data": seen[1]}
        self._apply_limits(receive_id, now)
        message_id = f"om_{uuid.uuid4().hex}"
        message = FeishuMessage(
            receive_id=receive_id,
            msg_type=msg_type,
            content=content,
            message_id=message_id,
            raw=body,
            reply_to=parent,
            uuid=key if isinstance(key, str) else None,
        )
        self.sent.append(message)
        self._messages[message_id] = receive_id
        self._deliver(receive_id, message)
        data = {
            "message_id": message_id,
            "root_id": parent or "",
            "parent_id": parent or "",
            "msg_type": msg_type,
            "create_time": str(int(time.time() * 1000)),
            "update_time": str(int(time.time() * 1000)),
            "deleted": False,
            "updated": False,
            "chat_id": "oc_" + hashlib.md5(receive_id.encode()).hexdigest(),
            "sender": {"id": self.app_id, "id_type": "app_id", "sender_type": "app"},
            "body": {"content": raw_content},
        }
        if isinstance(key, str) and key:
            self._uuids[key] = (now, data)
        return {"code": 0, "msg": "success", "data": data}

    def _check_content(self, msg_type: str, content: JSONDict) -> None:
        if msg_type == "text":
            text = content.get("text")
            if not isinstance(text, str) or not text.strip():
                raise ApiError(230001, "text is empty")
        elif msg_type == "interactive":
            self._check_card(content)
        elif msg_type in ("image", "file"):
            key = content.get("image_key" if msg_type == "image" else "file_key")
            upload = self._uploaded.get(str(key))
            if upload is None or upload.kind != msg_type:
                raise ApiError(230001, f"invalid {msg_type} key")
        else:
            raise ApiError(230001, f"msg_type {msg_type} is not taken by this fake")

    @staticmethod
    def _check_card(card: JSONDict) -> None:
        if card.get("schema") == "2.0":
            body = card.get("body")
            if not isinstance(body, dict) or not isinstance(body.get("elements"), list):
                raise ApiError(230099, "card body.elements is missing")
            if any(e.get("tag") == "action" for e in _card_elements(card)):
                raise ApiError(230099, "the action module is not in card JSON 2.0")
        elif not isinstance(card.get("elements"), list):
            raise ApiError(230099, "card elements are missing")
        elements = _card_elements(card)
        if not elements:
            raise ApiError(230099, "the card is empty")
        for element in elements:
            tag = element.get("tag")
            if tag not in _CARD_TAGS:
                raise ApiError(230099, f"unknown card element {tag!r}")
            if tag == "markdown" and not isinstance(element.get("content"), str):
                raise ApiError(230099, "markdown content is missing")
            if tag == "button":
                text = element.get("text")
                label = text.get("content") if isinstance(text, dict) else None
                if not isinstance(label, str) or not label or len(label) > 100:
                    raise ApiError(230099, "a button's text is missing or over 100 characters")
                if card.get("schema") == "2.0" and "value" in element:
                    raise ApiError(230099, "a JSON 2.0 button takes behaviors, not value")

    def _apply_limits(self, receive_id: str, now: float) -> None:
        if self._chat_limit is not None:
            window = self._chat_sends.setdefault(receive_id, SlidingWindow())
            if not window.take(now, 1.0, self._chat_limit):
                raise ApiError(230020)
        if self._overall_limit is not None and not self._all_sends.take(
            now, 1.0, self._overall_limit
        ):
            raise ApiError(99991400)

    # --- uploads and resources ------------------------------------------------------------------

    def _upload_image(self, call: Incoming) -> JSONDict:
        self._check_token(call)
        fields, files = _multipart(call)
        part = files.get("image")
        if fields.get("image_type") not in ("message", "avatar") or part is None:
            raise ApiError(234001)
        if not part.data:
            raise ApiError(234001, "empty image")
        if len(part.data) > IMAGE_LIMIT:
            raise ApiError(234006)
        if not part.data.startswith(_IMAGE_MAGIC):
            raise ApiError(234011)
        key = f"img_v3_{uuid.uuid4()}"
        self._keep_upload(Upload("image", key, part.filename, "image", part.data))
        return {"code": 0, "msg": "success", "data": {"image_key": key}}

    def _upload_file(self, call: Incoming) -> JSONDict:
        self._check_token(call)
        fields, files = _multipart(call)
        part = files.get("file")
        file_type = fields.get("file_type", "")
        if file_type not in ("opus", "mp4", "pdf", "doc", "xls", "ppt", "stream"):
            raise ApiError(234001, "invalid file_type")
        if part is None or not fields.get("file_name") or not part.data:
            raise ApiError(234001, "file and file_name are required")
        if len(part.data) > FILE_LIMIT:
            raise ApiError(234006)
        key = f"file_v3_{uuid.uuid4()}"
        self._keep_upload(Upload("file", key, fields["file_name"], file_type, part.data))
        return {"code": 0, "msg": "success", "data": {"file_key": key}}

    def _keep_upload(self, upload: Upload) -> None:
        self.uploads.append(upload)
        self._uploaded[upload.key] = upload

    def _resource(self, call: Incoming) -> Response:
        self._check_token(call)
        found = self._resources.get(
            (str(call.path_params.get("message_id")), str(call.path_params.get("file_key")))
        )
        kind = call.query.get("type")
        if kind not in ("image", "file"):
            raise ApiError(234001, "type must be image or file")
        if found is None or found[0] != kind:
            raise ApiError(234003)
        part = found[1]
        if part.filename:
            return file_response(part)
        return Response(part.data, media_type=part.content_type)

    # --- the group's custom bot -------------------------------------------------------------------

    def _hook(self, call: Incoming) -> JSONDict:
        if call.path_params.get("token") != self.group_token:
            raise ApiError(19001, status=200)
        if len(call.body) > HOOK_BODY_LIMIT:
            raise ApiError(9499, status=200)
        body = call.json_or_none()
        if not isinstance(body, dict):
            raise ApiError(9499, status=200)
        if self.group_secret is not None:
            timestamp = body.get("timestamp")
            given = body.get("sign")
            stamp = str(timestamp) if isinstance(timestamp, str | int) else ""
            fresh = stamp.isdigit() and abs(time.time() - int(stamp)) <= 3600
            expected = sign(stamp, self.group_secret)
            if not fresh or not isinstance(given, str) or not hmac.compare_digest(given, expected):
                raise ApiError(19021, status=200)
        msg_type = body.get("msg_type")
        if msg_type == "interactive":
            card = body.get("card")
            if not isinstance(card, dict):
                raise ApiError(9499, status=200)
            self._check_card(card)
            text = "\n".join(_card_texts(card))
        elif msg_type == "text":
            content = body.get("content")
            said = content.get("text") if isinstance(content, dict) else None
            if not isinstance(said, str):
                raise ApiError(9499, status=200)
            text = said
        else:
            raise ApiError(9499, status=200)
        now = time.monotonic()
        if self._hook_sends.count(now, 1.0) >= 5 or self._hook_sends.count(now, 60.0) >= 100:
            raise ApiError(11232, status=200)
        self._hook_sends.events.append(now)
        self.group_messages.append(GroupMessage(str(msg_type), text, body))
        return {
            "StatusCode": 0,
            "StatusMessage": "success",
            "code": 0,
            "data": {},
            "msg": "success",
        }


def _endpoint_of(request: Request) -> str:
    """The endpoint name of an /open-apis/ path (path parameters kept for the handler)."""
    path = str(request.path_params["path"]).strip("/")
    parts = path.split("/")
    if path == "auth/v3/tenant_access_token/internal":
        return "tenant_access_token"
    if path == "im/v1/messages":
        return "messages"
    if path == "im/v1/images":
        return "images"
    if path == "im/v1/files":
        return "files"
    if len(parts) == 5 and parts[:3] == ["im", "v1", "messages"] and parts[4] == "reply":
        request.path_params["message_id"] = parts[3]
        return "reply"
    if len(parts) == 6 and parts[:3] == ["im", "v1", "messages"] and parts[4] == "resources":
        request.path_params["message_id"] = parts[3]
        request.path_params["file_key"] = parts[5]
        return "resources"
    if len(parts) == 4 and parts[:3] == ["bot", "v2", "hook"]:
        request.path_params["token"] = parts[3]
        return "hook"
    return "unknown"


def _json_body(call: Incoming) -> JSONDict:
    value = call.json_or_none()
    if not isinstance(value, dict):
        raise ApiError(230001, "the body is not a JSON object")
    return value


def _multipart(call: Incoming) -> tuple[dict[str, str], dict[str, FilePart]]:
    try:
        return call.multipart()
    except ValueError:
        raise ApiError(234001, "not a multipart/form-data body") from None


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
