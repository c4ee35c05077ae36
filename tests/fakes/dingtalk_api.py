"""A fake DingTalk (钉钉) for end-to-end tests and benchmarks: the OpenAPI, the old API, the
Stream gateway and its websocket, and the group custom robot -- what Duban calls, no more.

A :class:`tests.fakes.base.FakeServer` (real HTTP on 127.0.0.1 and a free port, served from a
background thread with its own event loop).  The base's uvicorn runs without websockets, so the
Stream websocket is a ``websockets`` server on a second port in the same thread and loop.
Point Duban at it with ``DINGTALK_API_BASE_URL = DINGTALK_OAPI_BASE_URL = fake.url``::

    with FakeDingTalk() as fake:
        ...  # Duban with fake.client_id / fake.client_secret, both base URLs fake.url
        fake.wait_connected()
        pushed = fake.user_says("zhangsan01", "9 60% 主体完工")
        ack = fake.wait_for_ack(pushed.message_id)
        (reply,) = fake.wait_for_messages("zhangsan01")

Construction: ``FakeDingTalk(client_id="dingfakeclientid", client_secret="fake-client-secret",
robot_code=None (the client id), group_token="fake-group-token", group_secret="SECfake...",
*, token_ttl=7200, members=None, corp_id="dingfakecorp", redeliver_unacked=False)``.
``members`` (userIds) turns on recipient checking (others come back in
``invalidStaffIdList``); ``redeliver_unacked`` turns on redelivery after a connection closes
(below).

HTTP endpoints (endpoint names for faults in brackets):

- ``POST /v1.0/oauth2/accessToken`` [``oauth2/accessToken``] ``{"appKey","appSecret"}`` ->
  ``{"accessToken","expireIn"}``; a still-valid token is handed out again.  Wrong key or
  secret: HTTP 400 ``invalidClientIdOrSecret``.
- ``POST /v1.0/gateway/connections/open`` [``gateway/connections/open``] ``{"clientId",
  "clientSecret","subscriptions",...}`` -> ``{"endpoint": "ws://127.0.0.1:PORT/connect",
  "ticket"}`` (a ticket opens one connection, within 90 s).  Wrong credentials: HTTP 401.
- OpenAPI calls take the token in ``x-acs-dingtalk-access-token``; missing, unknown or
  expired: HTTP 401 ``InvalidAuthentication``.
- ``POST /v1.0/robot/oToMessages/batchSend`` [``robot/oToMessages/batchSend``]
  ``{"robotCode","userIds" (1..20),"msgKey","msgParam" (a JSON string)}`` for ``sampleText``
  (content), ``sampleMarkdown`` (title, text), ``sampleImageMsg`` (photoURL: an uploaded
  media_id or a URL), ``sampleFile`` (mediaId, fileName, fileType) -> ``{"processQueryKey",
  "invalidStaffIdList", "flowControlledStaffIdList"}``.  Text or markdown over
  :data:`TEXT_LIMIT` characters, a missing field, an unknown msgKey or media: HTTP 400
  ``invalidParameter``; another robotCode: HTTP 400 ``resource.not.found``.
- ``POST /v1.0/im/v1.0/robot/interactiveCards/send`` [``robot/interactiveCards/send``]
  StandardCard (``cardTemplateId`` "StandardCard", ``singleChatReceiver`` '{"userId":...}',
  ``cardBizId`` unique, ``cardData`` a JSON string with ``header.title`` and ``contents``;
  buttons ``{"type":"button","label":{"text"},"actionType":"request"|"openLink","id"}`` with
  unique ids) -> ``{"processQueryKey"}``; anything malformed is HTTP 400 ``invalidParameter``.
- ``POST /v1.0/robot/messageFiles/download`` [``robot/messageFiles/download``]
  ``{"downloadCode","robotCode"}`` -> ``{"downloadUrl"}`` for a file made with
  :meth:`FakeDingTalk.user_file` (served by the base at that URL, endpoint ``download``);
  unknown codes: HTTP 400 ``invalidParameter.downloadCode``.
- ``POST /media/upload?access_token=&type=image|file`` [``media/upload``] (the old API,
  multipart ``media``) -> ``{"errcode":0,"media_id","type","created_at"}``; errcode 40014
  (unknown token), 42001 (expired), 40004 (type), 41005 (no media), 40006 (empty or over 20 MB).
- ``POST /robot/send?access_token=&timestamp=&sign=`` [``robot/send``] (the group robot):
  300001 unknown token; with a group secret, 310000 ``invalid timestamp`` (missing, not a
  number, more than an hour off) and ``sign not match`` (checked as DingTalk does: base64
  HMAC-SHA256 of "timestamp\\nsecret"); 130101 past 20 messages a minute; 460101 for a body
  over 20000 bytes; 40035 for markdown without title or text.  All with HTTP 200.

The Stream websocket: frames go out as DingTalk sends them (``specVersion``, ``type``,
``headers`` with ``messageId``, ``topic``, ``contentType``, ``time``, and ``data`` a JSON
string).  Acks the client sends back are recorded (:class:`Ack`) with the time they came.
Frames pushed while no connection subscribes to their topic wait and go out on the next.

Test-facing API:

- pushing: ``user_says(user, text, msg_id=None)``, ``user_sends(user, msgtype, content)``
  (picture/file/video/audio/richText), ``user_file(data, filename, content_type)`` (a
  downloadCode), ``click(user, card, action_id)``, ``group_says(user, text)`` (an @-message in
  a group), ``push(frame)``, ``push_raw(text)``, ``ping()``, ``redeliver(message_id)``,
  ``disconnect()`` (a SYSTEM disconnect, then the server closes the connection); frame builders
  ``robot_frame(...)``, ``card_frame(...)``.  Each push returns a :class:`Pushed`.
- redelivery: with ``redeliver_unacked=True`` the fake does what DingTalk does with a CALLBACK
  frame no ack with code 200 came for: when the connection it went out on closes (the client
  crashed, or the network failed), the frame is sent again, the same frame with the same
  messageId and msgId, on another open connection subscribed to its topic, or on the next
  one.  (DingTalk also retries a frame a live connection leaves unanswered; the fake does that
  only when asked, with ``redeliver``.)  ``redelivered`` lists the frames sent again so.
- acks: ``acks``, ``ack_of(message_id)``, ``wait_for_ack(message_id)``, ``on_ack`` (called in
  the fake's thread with each :class:`Ack` as it comes, before anything else happens there).
- ``wait_connected(count=1)``, ``connections_made``, ``open_connections``, ``subscriptions``.
- sent: ``sent`` (every accepted robot message and card, :class:`Sent`),
  ``messages_to(user)``, ``wait_for_messages(user, count)``, ``group_messages``
  (:class:`GroupMessage`), ``wait_for_group_messages(count)``, ``uploads``.
- tokens: ``tokens_issued``, ``token_ttl``, ``expire_tokens()``.
- faults: the base's ``http_error_next``, ``delay_next``, ``latency``, ``clear_faults`` and
  ``fail_next(endpoint, count=1, *, status=403, code=QPS_LIMIT, errcode=None)`` (an OpenAPI
  error, or an old-API/robot errcode), ``flow_control_next(count=1)`` (batchSend accepts but
  lists the person in ``flowControlledStaffIdList`` and does not deliver).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import math
import secrets
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import websockets
from starlette.responses import Response
from starlette.routing import BaseRoute
from websockets.asyncio.server import Server, ServerConnection, serve

from .base import (
    FakeApiError,
    FilePart,
    Incoming,
    JSONDict,
    SlidingWindow,
    TokenServer,
)

TEXT_LIMIT = 5000
"""Most characters of a sampleText content or a sampleMarkdown text (held to the limit the
channel assumes)."""
GROUP_BODY_LIMIT = 20000
"""Most bytes of a group robot message body."""
GROUP_PER_MINUTE = 20
QPS_LIMIT = "Forbidden.AccessDenied.QpsLimitForApi"
ROBOT_TOPIC = "/v1.0/im/bot/messages/get"
CARD_TOPIC = "/v1.0/card/instances/callback"
TICKET_TTL = 90.0
MEDIA_LIMIT = 20 * 1024 * 1024

_MSG_KEYS = frozenset({"sampleText", "sampleMarkdown", "sampleImageMsg", "sampleFile"})
_OAPI_ERRMSGS = {
    40004: "不合法的媒体文件类型",
    40006: "不合法的文件大小",
    40014: "不合法的access_token",
    40035: "缺少参数 json",
    41005: "缺少多媒体文件数据",
    42001: "access_token超时",
    90018: "当前企业调用该接口的请求次数超过限制",
    130101: "send too fast, exceed 20 times per minute",
    300001: "token is not exist",
    310000: "sign not match",
    460101: "message too long, exceed 20000 bytes",
}


class OpenApiError(FakeApiError):
    """An OpenAPI error: an HTTP status with ``{"code","requestid","message"}``."""

    def __init__(self, status: int, code: str, message: str = "") -> None:
        super().__init__(status, message or code, status)
        self.api_code = code

    def payload(self) -> JSONDict:
        """The JSON body DingTalk sends with this error."""
        return {"code": self.api_code, "requestid": uuid.uuid4().hex, "message": self.message}


class OapiError(FakeApiError):
    """An old-API or group robot error: ``{"errcode","errmsg"}`` with HTTP 200."""

    def __init__(self, errcode: int, errmsg: str | None = None) -> None:
        msg = errmsg if errmsg is not None else _OAPI_ERRMSGS.get(errcode, f"error {errcode}")
        super().__init__(errcode, msg)

    def payload(self) -> JSONDict:
        """The JSON body DingTalk sends with this error."""
        return {"errcode": self.code, "errmsg": self.message}


def _invalid(what: str) -> OpenApiError:
    return OpenApiError(400, f"invalidParameter.{what}", f"参数错误: {what}")


@dataclass
class Sent:
    """A robot message or card the fake accepted for one person."""

    kind: str  # text | markdown | image | file | card
    to: str
    text: str | None  # content / markdown text / the card's markdown (None for media)
    raw: JSONDict
    key: str  # processQueryKey
    title: str | None = None  # markdown title, card title
    param: JSONDict = field(default_factory=dict)  # msgParam, or the card's cardData
    buttons: list[tuple[str, str]] = field(default_factory=list)  # (label, id) of a card
    card_biz_id: str | None = None
    media_id: str | None = None
    at: float = field(default_factory=time.monotonic)


@dataclass
class GroupMessage:
    """One accepted group robot message."""

    msgtype: str
    title: str | None
    text: str | None
    raw: JSONDict
    query: dict[str, str]
    at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Upload:
    """One accepted media upload."""

    media_id: str
    type: str
    filename: str
    content_type: str
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class Pushed:
    """A frame the fake pushed: its stream messageId, the robot msgId (if any), the frame."""

    message_id: str
    frame: JSONDict
    msg_id: str | None = None

    @property
    def text(self) -> str:
        """The frame as sent on the websocket."""
        return json.dumps(self.frame, ensure_ascii=False)


@dataclass(frozen=True)
class Ack:
    """An ack the client sent back."""

    message_id: str | None
    code: Any
    message: Any
    data: Any
    raw: str
    at: float = field(default_factory=time.monotonic)


@dataclass
class _Connection:
    ws: ServerConnection
    topics: frozenset[str]
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    open: bool = True
    # CALLBACK frames sent on this connection that no ack with code 200 came for (in order)
    unacked: dict[str, Pushed] = field(default_factory=dict)


class FakeDingTalk(TokenServer[Sent]):
    """A fake DingTalk; see the module docstring for the test-facing API."""

    label = "DingTalk"
    thread_name = "fake-dingtalk"

    def __init__(
        self,
        client_id: str = "dingfakeclientid",
        client_secret: str = "fake-client-secret-0123456789",
        robot_code: str | None = None,
        group_token: str = "fake-group-token-0123456789",
        group_secret: str | None = "SECfakegroupsecret0123456789",
        *,
        token_ttl: int = 7200,
        members: Iterable[str] | None = None,
        corp_id: str = "dingfakecorp",
        redeliver_unacked: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(token_ttl=token_ttl, host=host, port=port)
        self.client_id = client_id
        self.client_secret = client_secret
        self.robot_code = robot_code or client_id
        self.group_token = group_token
        self.group_secret = group_secret
        self.corp_id = corp_id
        self.members: frozenset[str] | None = None if members is None else frozenset(members)
        self.redeliver_unacked = redeliver_unacked
        self._endpoint("oauth2/accessToken", self._access_token, methods=("POST",))
        self._endpoint("gateway/connections/open", self._open_connection, methods=("POST",))
        self._endpoint("robot/oToMessages/batchSend", self._batch_send, methods=("POST",))
        self._endpoint("robot/interactiveCards/send", self._card_send, methods=("POST",))
        self._endpoint("robot/messageFiles/download", self._file_download, methods=("POST",))
        self._endpoint("media/upload", self._media_upload, methods=("POST",))
        self._endpoint("robot/send", self._group_send, methods=("POST",))
        self._ids = itertools.count(1)
        self._ws_server: Server | None = None
        self.ws_port = 0
        self.on_ack: Callable[[Ack], None] | None = None
        self.reset()

    # ------------------------------------------------------------------ base hooks

    def _routes(self) -> list[BaseRoute]:
        return [
            self._api_route("/v1.0/{path:path}", lambda r: _openapi_name(r.path_params["path"])),
            self._api_route("/media/upload", lambda r: "media/upload"),
            self._api_route("/robot/send", lambda r: "robot/send"),
        ]

    def _canonical_endpoint(self, name: str) -> str:
        name = name.strip("/")
        name = name.removeprefix("v1.0/")
        return _openapi_name(name)

    def _wrong_method(self, call: Incoming) -> Response:
        raise OpenApiError(405, "MethodNotAllowed")

    def reset(self, *, keep_tokens: bool = True) -> None:
        """Forget messages, uploads, acks, pushes, calls, faults and counters (the
        connections stay; issued tokens stay valid unless keep_tokens is False)."""
        with self._lock:
            super().reset()
            self.sent: list[Sent] = []
            self.group_messages: list[GroupMessage] = []
            self.uploads: list[Upload] = []
            self.acks: list[Ack] = []
            self.pushed: list[Pushed] = []
            self.redelivered: list[Pushed] = []
            self.tokens_issued = 0
            self.subscriptions: list[JSONDict] = []
            self._media: dict[str, Upload] = {}
            self._downloads: dict[str, str] = {}
            self._card_ids: set[str] = set()
            self._flow_control = 0
            self._group_sends = SlidingWindow()
            self._tickets: dict[str, tuple[float, frozenset[str]]] = {}
            self._waiting: list[Pushed] = []
            if not hasattr(self, "_connections"):
                self._connections: list[_Connection] = []
                self.connections_made = 0
            if not keep_tokens:
                self._forget_tokens()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeDingTalk:
        """Serve HTTP and the Stream websocket; returns once both accept connections."""
        super().start()
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(self._start_ws(), self._loop)
        future.result(10)
        return self

    async def _start_ws(self) -> None:
        self._ws_server = await serve(
            self._ws_session,
            self.host,
            0,
            process_request=self._ws_check,
            max_size=1 << 20,
        )
        self.ws_port = next(iter(self._ws_server.sockets)).getsockname()[1]

    def stop(self) -> None:
        """Close the websocket server and its connections, then stop serving HTTP."""
        loop, server = self._loop, self._ws_server
        if loop is not None and server is not None and not loop.is_closed():

            async def close() -> None:
                for conn in list(self._connections):
                    conn.queue.put_nowait(None)
                server.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(server.wait_closed(), 3)

            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(close(), loop).result(5)
        self._ws_server = None
        super().stop()

    # ------------------------------------------------------------------ tokens

    def _access_token(self, call: Incoming) -> JSONDict:
        body = _object(call)
        if body.get("appKey") != self.client_id or body.get("appSecret") != self.client_secret:
            raise OpenApiError(400, "invalidClientIdOrSecret", "无效的clientId或者clientSecret")
        token, left, new = self._issue_token(
            lambda: f"fake-dt-token-{next(self._ids)}-{secrets.token_hex(16)}"
        )
        self.tokens_issued += new
        return {"accessToken": token, "expireIn": max(0, math.ceil(left))}

    def _check_header_token(self, call: Incoming) -> None:
        token = call.headers.get("x-acs-dingtalk-access-token", "")
        expires = self._tokens.get(token)
        if not token or expires is None:
            raise OpenApiError(401, "InvalidAuthentication", "不合法的access_token")
        if expires <= time.monotonic():
            raise OpenApiError(401, "InvalidAuthentication", "access_token已过期")

    def _check_query_token(self, call: Incoming) -> None:
        expires = self._tokens.get(call.query.get("access_token", ""))
        if expires is None:
            raise OapiError(40014)
        if expires <= time.monotonic():
            raise OapiError(42001)

    # ------------------------------------------------------------------ faults

    def fail_next(
        self,
        endpoint: str,
        count: int = 1,
        *,
        status: int = 403,
        code: str = QPS_LIMIT,
        errcode: int | None = None,
    ) -> None:
        """The next ``count`` calls of ``endpoint`` fail: with ``errcode`` (old API, group
        robot) or with HTTP ``status`` and ``code`` (OpenAPI; default: the QPS limit)."""

        def make() -> FakeApiError:
            if errcode is not None:
                return OapiError(errcode)
            return OpenApiError(status, code, "调用频率超过限制" if code == QPS_LIMIT else code)

        self._inject_error(endpoint, make, count)

    def flow_control_next(self, count: int = 1) -> None:
        """The next ``count`` batchSend calls accept but flow-control their recipients."""
        with self._lock:
            self._flow_control += count

    # ------------------------------------------------------------------ robot messages

    def _batch_send(self, call: Incoming) -> JSONDict:
        self._check_header_token(call)
        body = _object(call)
        if body.get("robotCode") != self.robot_code:
            raise OpenApiError(400, "resource.not.found", "机器人不存在")
        users = body.get("userIds")
        if (
            not isinstance(users, list)
            or not 1 <= len(users) <= 20
            or not all(isinstance(u, str) and u for u in users)
        ):
            raise _invalid("userIds")
        key = body.get("msgKey")
        if key not in _MSG_KEYS:
            raise _invalid("msgKey")
        raw_param = body.get("msgParam")
        try:
            param = json.loads(raw_param) if isinstance(raw_param, str) else None
        except ValueError:
            param = None
        if not isinstance(param, dict):
            raise _invalid("msgParam")
        kind, text, title, media = self._check_param(str(key), param)
        invalid = [u for u in users if self.members is not None and u not in self.members]
        flow: list[str] = []
        if self._flow_control > 0:
            self._flow_control -= 1
            flow = [u for u in users if u not in invalid]
        process_key = f"fake-pqk-{next(self._ids)}"
        for user in users:
            if user in invalid or user in flow:
                continue
            message = Sent(kind, user, text, body, process_key, title, param, media_id=media)
            self.sent.append(message)
            self._deliver(user, message)
        return {
            "processQueryKey": process_key,
            "invalidStaffIdList": invalid,
            "flowControlledStaffIdList": flow,
        }

    def _check_param(
        self, key: str, param: JSONDict
    ) -> tuple[str, str | None, str | None, str | None]:
        def text_of(name: str) -> str:
            value = param.get(name)
            if not isinstance(value, str) or not value.strip():
                raise _invalid(f"msgParam.{name}")
            if len(value) > TEXT_LIMIT:
                raise _invalid(f"msgParam.{name}.length")
            return value

        if key == "sampleText":
            return "text", text_of("content"), None, None
        if key == "sampleMarkdown":
            return "markdown", text_of("text"), text_of("title"), None
        if key == "sampleImageMsg":
            photo = param.get("photoURL")
            if not isinstance(photo, str) or not (
                photo in self._media or photo.startswith(("http://", "https://"))
            ):
                raise _invalid("msgParam.photoURL")
            return "image", None, None, photo
        media = param.get("mediaId")
        if not isinstance(media, str) or media not in self._media:
            raise _invalid("msgParam.mediaId")
        if not isinstance(param.get("fileName"), str) or not param.get("fileType"):
            raise _invalid("msgParam.fileName")
        return "file", None, None, media

    def _card_send(self, call: Incoming) -> JSONDict:
        self._check_header_token(call)
        body = _object(call)
        if body.get("robotCode") != self.robot_code:
            raise OpenApiError(400, "resource.not.found", "机器人不存在")
        if body.get("cardTemplateId") != "StandardCard":
            raise _invalid("cardTemplateId")
        try:
            receiver = json.loads(body.get("singleChatReceiver") or "")
            card = json.loads(body.get("cardData") or "")
        except (TypeError, ValueError):
            raise _invalid("cardData") from None
        user = receiver.get("userId") if isinstance(receiver, dict) else None
        if not isinstance(user, str) or not user:
            raise _invalid("singleChatReceiver")
        biz_id = body.get("cardBizId")
        if not isinstance(biz_id, str) or not biz_id or biz_id in self._card_ids:
            raise _invalid("cardBizId")
        title, text, buttons = _read_card(card)
        self._card_ids.add(biz_id)
        process_key = f"fake-pqk-{next(self._ids)}"
        if self.members is None or user in self.members:
            message = Sent(
                "card", user, text, body, process_key, title, card, buttons, card_biz_id=biz_id
            )
            self.sent.append(message)
            self._deliver(user, message)
        return {"processQueryKey": process_key}

    # ------------------------------------------------------------------ files

    def user_file(
        self, data: bytes, filename: str = "photo.jpg", content_type: str = "image/jpeg"
    ) -> str:
        """A file someone sends the robot; returns its downloadCode."""
        code = base64.b64encode(secrets.token_bytes(48)).decode()
        path = f"files/{secrets.token_hex(8)}/{filename}"
        url = self.serve_file(path, FilePart("file", filename, content_type, data))
        with self._lock:
            self._downloads[code] = url + f"?Expires={int(time.time()) + 3600}&Signature=fake"
        return code

    def _file_download(self, call: Incoming) -> JSONDict:
        self._check_header_token(call)
        body = _object(call)
        if body.get("robotCode") != self.robot_code:
            raise OpenApiError(400, "resource.not.found", "机器人不存在")
        url = self._downloads.get(str(body.get("downloadCode")))
        if url is None:
            raise _invalid("downloadCode")
        return {"downloadUrl": url}

    def _media_upload(self, call: Incoming) -> JSONDict:
        self._check_query_token(call)
        kind = call.query.get("type", "")
        if kind not in ("image", "file", "voice", "video"):
            raise OapiError(40004)
        try:
            _, files = call.multipart()
        except ValueError:
            raise OapiError(41005) from None
        media = files.get("media")
        if media is None:
            raise OapiError(41005)
        if media.size == 0 or media.size > MEDIA_LIMIT:
            raise OapiError(40006)
        media_id = f"@lAfake{next(self._ids)}{secrets.token_hex(6)}"
        upload = Upload(media_id, kind, media.filename, media.content_type, media.data)
        self.uploads.append(upload)
        self._media[media_id] = upload
        call.record.body = {"type": kind, "filename": media.filename, "size": media.size}
        return {
            "errcode": 0,
            "errmsg": "ok",
            "media_id": media_id,
            "type": kind,
            "created_at": int(time.time() * 1000),
        }

    # ------------------------------------------------------------------ the group robot

    def _group_send(self, call: Incoming) -> JSONDict:
        if call.query.get("access_token") != self.group_token:
            raise OapiError(300001)
        if self.group_secret is not None:
            stamp = call.query.get("timestamp", "")
            if not stamp.isdigit() or abs(time.time() * 1000 - int(stamp)) > 3600 * 1000:
                raise OapiError(310000, "invalid timestamp")
            expected = base64.b64encode(
                hmac.new(
                    self.group_secret.encode(),
                    f"{stamp}\n{self.group_secret}".encode(),
                    hashlib.sha256,
                ).digest()
            ).decode()
            if not hmac.compare_digest(expected, call.query.get("sign", "")):
                raise OapiError(310000, "sign not match")
        if len(call.body) > GROUP_BODY_LIMIT:
            raise OapiError(460101)
        body = call.json_or_none()
        if not isinstance(body, dict):
            raise OapiError(40035)
        msgtype = body.get("msgtype")
        title = text = None
        if msgtype == "markdown":
            section = body.get("markdown")
            title = section.get("title") if isinstance(section, dict) else None
            text = section.get("text") if isinstance(section, dict) else None
            if not isinstance(title, str) or not title or not isinstance(text, str) or not text:
                raise OapiError(40035)
        elif msgtype == "text":
            section = body.get("text")
            text = section.get("content") if isinstance(section, dict) else None
            if not isinstance(text, str) or not text:
                raise OapiError(40035)
        else:
            raise OapiError(40035)
        if not self._group_sends.take(time.monotonic(), 60.0, GROUP_PER_MINUTE):
            raise OapiError(130101)
        self.group_messages.append(GroupMessage(str(msgtype), title, text, body, call.query))
        self._changed.notify_all()
        return {"errcode": 0, "errmsg": "ok"}

    def wait_for_group_messages(self, count: int = 1, timeout: float = 5.0) -> list[GroupMessage]:
        """Block until the group robot accepted ``count`` messages; return them all."""
        self.wait_until(lambda s: len(s.group_messages) >= count, timeout)
        with self._lock:
            return list(self.group_messages)

    # ------------------------------------------------------------------ the stream gateway

    def _open_connection(self, call: Incoming) -> JSONDict:
        body = _object(call)
        if body.get("clientId") != self.client_id or body.get("clientSecret") != (
            self.client_secret
        ):
            raise OpenApiError(401, "InvalidAuthentication", "clientId或clientSecret错误")
        subscriptions = body.get("subscriptions")
        if not isinstance(subscriptions, list) or not subscriptions:
            raise _invalid("subscriptions")
        topics = frozenset(
            str(s.get("topic")) for s in subscriptions if isinstance(s, dict) and s.get("topic")
        )
        self.subscriptions = list(subscriptions)
        call.record.body = {"clientId": body.get("clientId"), "subscriptions": subscriptions}
        ticket = secrets.token_urlsafe(24)
        self._tickets[ticket] = (time.monotonic() + TICKET_TTL, topics)
        return {"endpoint": f"ws://{self.host}:{self.ws_port}/connect", "ticket": ticket}

    def _ws_check(self, connection: ServerConnection, request: Any) -> Any:
        parsed = urllib.parse.urlsplit(request.path)
        ticket = dict(urllib.parse.parse_qsl(parsed.query)).get("ticket", "")
        with self._lock:
            found = self._tickets.pop(ticket, None)
        if parsed.path != "/connect" or found is None or found[0] < time.monotonic():
            with self._lock:
                self.stats["ws:refused"] += 1
            return connection.respond(HTTPStatus.UNAUTHORIZED, "invalid ticket\n")
        connection.duban_topics = found[1]  # type: ignore[attr-defined]
        return None

    async def _ws_session(self, ws: ServerConnection) -> None:
        conn = _Connection(ws, getattr(ws, "duban_topics", frozenset()))
        with self._lock:
            self._connections.append(conn)
            self.connections_made += 1
            self.stats["ws:connect"] += 1
            waiting = [p for p in self._waiting if _topic(p.frame) in conn.topics]
            self._waiting = [p for p in self._waiting if p not in waiting]
            for pushed in waiting:
                _track(conn, pushed)
                conn.queue.put_nowait(pushed.text)
            self._changed.notify_all()
        sender = asyncio.create_task(self._ws_send(conn))
        try:
            async for raw in ws:
                self._on_client_frame(raw, conn)
        except websockets.exceptions.ConnectionClosed:
            pass
        finally:
            sender.cancel()
            with self._lock:
                conn.open = False
                if conn in self._connections:
                    self._connections.remove(conn)
                unacked = list(conn.unacked.values()) if self.redeliver_unacked else []
                conn.unacked.clear()
                self.redelivered.extend(unacked)
                self.stats["ws:redelivered"] += len(unacked)
                self._changed.notify_all()
            for pushed in unacked:  # DingTalk sends them again: the same frames
                self._route(pushed)

    async def _ws_send(self, conn: _Connection) -> None:
        while True:
            text = await conn.queue.get()
            if text is None:
                await conn.ws.close()
                return
            try:
                await conn.ws.send(text)
            except websockets.exceptions.ConnectionClosed:
                return

    def _on_client_frame(self, raw: str | bytes, conn: _Connection | None = None) -> None:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        headers = value.get("headers") if isinstance(value, dict) else None
        message_id = headers.get("messageId") if isinstance(headers, dict) else None
        ack = Ack(
            message_id if isinstance(message_id, str) else None,
            value.get("code") if isinstance(value, dict) else None,
            value.get("message") if isinstance(value, dict) else None,
            value.get("data") if isinstance(value, dict) else None,
            text,
        )
        hook = self.on_ack
        if hook is not None:
            hook(ack)
        with self._lock:
            self.acks.append(ack)
            self.stats["ws:ack"] += 1
            if conn is not None and ack.message_id is not None and ack.code == 200:
                conn.unacked.pop(ack.message_id, None)
            self._changed.notify_all()

    # ------------------------------------------------------------------ pushing

    def _frame(self, kind: str, topic: str, data: JSONDict | str) -> JSONDict:
        return {
            "specVersion": "1.0",
            "type": kind,
            "headers": {
                "appId": f"fake-app-{self.client_id}",
                "connectionId": "fake-connection",
                "contentType": "application/json",
                "messageId": f"fake-msg-{uuid.uuid4().hex}",
                "time": str(int(time.time() * 1000)),
                "topic": topic,
            },
            "data": data if isinstance(data, str) else json.dumps(data, ensure_ascii=False),
        }

    def robot_data(
        self,
        user: str,
        msgtype: str = "text",
        *,
        text: str | None = None,
        content: JSONDict | None = None,
        msg_id: str | None = None,
        conversation_type: str = "1",
        nick: str | None = None,
    ) -> JSONDict:
        """The data of a robot message as DingTalk writes it (1:1 unless told otherwise)."""
        now = int(time.time() * 1000)
        data: JSONDict = {
            "conversationId": f"cid{hashlib.sha1(user.encode()).hexdigest()[:20]}",
            "chatbotCorpId": self.corp_id,
            "chatbotUserId": f"$:LWCP_v1:$fakebot{self.robot_code}",
            "msgId": msg_id or f"msg{uuid.uuid4().hex}",
            "senderNick": nick if nick is not None else user,
            "isAdmin": False,
            "senderStaffId": user,
            "sessionWebhookExpiredTime": now + 5_400_000,
            "createAt": now,
            "senderCorpId": self.corp_id,
            "conversationType": conversation_type,
            "senderId": f"$:LWCP_v1:${hashlib.sha1(user.encode()).hexdigest()}",
            "sessionWebhook": f"{self.url}/robot/sendBySession?session={secrets.token_hex(16)}",
            "robotCode": self.robot_code,
            "msgtype": msgtype,
        }
        if msgtype == "text":
            data["text"] = {"content": text or ""}
        elif content is not None:
            data["content"] = content
        if conversation_type == "2":
            data["conversationTitle"] = "督办测试群"
            data["isInAtList"] = True
        return data

    def robot_frame(self, user: str, text: str | None = None, **kw: Any) -> JSONDict:
        """A robot-message CALLBACK frame (see robot_data for the keywords)."""
        msgtype = kw.pop("msgtype", "text")
        return self._frame("CALLBACK", ROBOT_TOPIC, self.robot_data(user, msgtype, text=text, **kw))

    def card_frame(self, user: str, out_track_id: str, action_id: str) -> JSONDict:
        """A card-callback CALLBACK frame: user clicked the button action_id."""
        content = {"cardPrivateData": {"actionIds": [action_id], "params": {}}}
        data = {
            "extension": "{}",
            "corpId": self.corp_id,
            "type": "actionCallback",
            "userId": user,
            "content": json.dumps(content),
            "outTrackId": out_track_id,
            "spaceType": "im",
            "userIdType": 1,
            "spaceId": f"dtv1.card//IM_ROBOT.{user}",
        }
        return self._frame("CALLBACK", CARD_TOPIC, data)

    def push(self, frame: JSONDict) -> Pushed:
        """Send a frame to a connection subscribed to its topic (the newest), or keep it for
        the next one."""
        headers = frame.get("headers") or {}
        data = frame.get("data")
        msg_id = None
        if isinstance(data, str):
            with contextlib.suppress(ValueError, AttributeError):
                msg_id = json.loads(data).get("msgId")
        pushed = Pushed(str(headers.get("messageId", "")), frame, msg_id)
        self._send_pushed(pushed)
        return pushed

    def _send_pushed(self, pushed: Pushed) -> None:
        with self._lock:
            self.pushed.append(pushed)
        self._route(pushed)

    def _route(self, pushed: Pushed) -> None:
        """Put a frame on the newest connection subscribed to its topic, or keep it for the
        next one."""
        with self._lock:
            topic = _topic(pushed.frame)
            targets = [
                c for c in self._connections if c.open and (topic is None or topic in c.topics)
            ]
            if not targets:
                self._waiting.append(pushed)
                return
            conn = targets[-1]
            _track(conn, pushed)
        self._call_soon(lambda: conn.queue.put_nowait(pushed.text))

    def push_raw(self, text: str) -> None:
        """Send any text on the newest connection (a frame DingTalk would never send)."""
        with self._lock:
            conn = self._connections[-1] if self._connections else None
        if conn is None:
            raise RuntimeError("no stream connection")
        self._call_soon(lambda: conn.queue.put_nowait(text))

    def redeliver(self, message_id: str) -> Pushed:
        """Send a pushed frame again, as DingTalk does when no ack came (the same ids)."""
        with self._lock:
            found = next((p for p in self.pushed if p.message_id == message_id), None)
        if found is None:
            raise KeyError(message_id)
        self._send_pushed(found)
        return found

    def user_says(self, user: str, text: str, *, msg_id: str | None = None) -> Pushed:
        """The person sends the robot a text message (1:1)."""
        return self.push(self.robot_frame(user, text, msg_id=msg_id))

    def user_sends(self, user: str, msgtype: str, content: JSONDict) -> Pushed:
        """The person sends a picture/file/video/audio/richText (content as DingTalk's)."""
        return self.push(self.robot_frame(user, msgtype=msgtype, content=content))

    def group_says(self, user: str, text: str) -> Pushed:
        """The person @-mentions the robot in a group."""
        return self.push(self.robot_frame(user, text, conversation_type="2"))

    def click(self, user: str, card: Sent, action_id: str) -> Pushed:
        """The person clicks a button of a card they were sent."""
        if card.kind != "card" or card.card_biz_id is None:
            raise ValueError("not a card")
        if card.to != user:
            raise ValueError(f"the card went to {card.to!r}, not {user!r}")
        if action_id not in {button_id for _, button_id in card.buttons}:
            raise ValueError(f"the card has no button {action_id!r}")
        return self.push(self.card_frame(user, card.card_biz_id, action_id))

    def ping(self) -> Pushed:
        """A SYSTEM ping (the client acks it with the same data)."""
        return self.push(self._frame("SYSTEM", "ping", {"opaque": secrets.token_hex(8)}))

    def disconnect(self) -> None:
        """A SYSTEM disconnect on every connection, then the server closes them."""
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            frame = self._frame("SYSTEM", "disconnect", {"reason": "fake restart"})
            self._call_soon(_closer(conn, json.dumps(frame)))

    # ------------------------------------------------------------------ waiting

    @property
    def open_connections(self) -> int:
        """The websocket connections open now."""
        with self._lock:
            return len(self._connections)

    def wait_connected(self, count: int = 1, timeout: float = 10.0) -> None:
        """Block until ``count`` connections were made since start (and one is open)."""
        self.wait_until(lambda s: s.connections_made >= count and bool(s._connections), timeout)

    async def await_connected(self, count: int = 1, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Async wrapper of :meth:`wait_connected`."""
        await asyncio.to_thread(self.wait_connected, count, timeout)

    def ack_of(self, message_id: str) -> Ack | None:
        """The first ack of a pushed frame, or None."""
        with self._lock:
            return next((a for a in self.acks if a.message_id == message_id), None)

    def acks_of(self, message_id: str) -> list[Ack]:
        """Every ack of a pushed frame (one per delivery that was acked)."""
        with self._lock:
            return [a for a in self.acks if a.message_id == message_id]

    def wait_for_ack(self, message_id: str, count: int = 1, timeout: float = 5.0) -> Ack:
        """Block until ``count`` acks of the frame came; return the last."""
        self.wait_until(lambda s: len(s.acks_of(message_id)) >= count, timeout)
        return self.acks_of(message_id)[-1]

    async def await_ack(self, message_id: str, count: int = 1, timeout: float = 5.0) -> Ack:  # noqa: ASYNC109
        """Async wrapper of :meth:`wait_for_ack`."""
        return await asyncio.to_thread(self.wait_for_ack, message_id, count, timeout)


def _track(conn: _Connection, pushed: Pushed) -> None:
    """Remember a CALLBACK frame sent on conn until its ack (code 200) comes."""
    if pushed.frame.get("type") == "CALLBACK" and pushed.message_id:
        conn.unacked[pushed.message_id] = pushed


def _closer(conn: _Connection, last: str) -> Callable[[], None]:
    def close() -> None:
        conn.queue.put_nowait(last)
        conn.queue.put_nowait(None)

    return close


def _openapi_name(path: str) -> str:
    path = path.strip("/")
    return path.removeprefix("im/v1.0/")


def _topic(frame: JSONDict) -> str | None:
    if frame.get("type") == "SYSTEM":
        return None
    headers = frame.get("headers")
    topic = headers.get("topic") if isinstance(headers, dict) else None
    return topic if isinstance(topic, str) else None


def _object(call: Incoming) -> JSONDict:
    body = call.json_or_none()
    if not isinstance(body, dict):
        raise OpenApiError(400, "InvalidParameter.body", "请求体不是JSON对象")
    return body


def _read_card(card: Any) -> tuple[str, str, list[tuple[str, str]]]:
    """A StandardCard's title, markdown text and buttons ((label, id)); 400 if malformed."""
    if not isinstance(card, dict):
        raise _invalid("cardData")
    header = card.get("header")
    title_node = header.get("title") if isinstance(header, dict) else None
    title = title_node.get("text") if isinstance(title_node, dict) else None
    if not isinstance(title, str) or not title:
        raise _invalid("cardData.header.title")
    contents = card.get("contents")
    if not isinstance(contents, list):
        raise _invalid("cardData.contents")
    texts: list[str] = []
    buttons: list[tuple[str, str]] = []
    for part in contents:
        if not isinstance(part, dict):
            raise _invalid("cardData.contents")
        if part.get("type") == "markdown":
            if not isinstance(part.get("text"), str):
                raise _invalid("cardData.markdown")
            texts.append(part["text"])
        elif part.get("type") == "action":
            actions = part.get("actions")
            if not isinstance(actions, list) or not actions:
                raise _invalid("cardData.actions")
            for action in actions:
                label = action.get("label") if isinstance(action, dict) else None
                text = label.get("text") if isinstance(label, dict) else None
                button_id = action.get("id") if isinstance(action, dict) else None
                if (
                    action.get("type") != "button"
                    or action.get("actionType") not in ("request", "openLink")
                    or not isinstance(text, str)
                    or not text
                    or not isinstance(button_id, str)
                    or not button_id
                    or button_id in {b for _, b in buttons}
                ):
                    raise _invalid("cardData.button")
                buttons.append((text, button_id))
    return title, "\n".join(texts), buttons
