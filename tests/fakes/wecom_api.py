"""A fake WeCom (企业微信) server API for end-to-end tests and benchmarks.

A :class:`tests.fakes.base.FakeServer`: real HTTP on 127.0.0.1 and a free port, served from a
background thread with its own event loop, so any client in any thread or process can call it.
It has what Duban (and its tests) use, no more.  Point
wechatpy 1.8's ``wechatpy.enterprise.WeChatClient`` at it by setting the instance attribute
``client.API_BASE_URL = fake.api_base`` and overriding ``fetch_access_token`` (wechatpy
hard-codes ``https://qyapi.weixin.qq.com/cgi-bin/gettoken`` there)::

    class Client(WeChatClient):
        def fetch_access_token(self):
            return self._fetch_access_token(
                url=f"{fake.api_base}gettoken",
                params={"corpid": self.corp_id, "corpsecret": self.secret},
            )

    with FakeWeCom() as fake:
        client = Client(fake.corp_id, fake.secret)
        client.API_BASE_URL = fake.api_base
        client.message.send_text(fake.agent_id, "alice", "你好")
        assert fake.messages_to("alice")[0].content == "你好"

Construction: ``FakeWeCom(corp_id="ww-test-corp", secret="test-secret", agent_id=1000002,
group_key="robot-key", *, token_ttl=7200, members=None)``.  ``members`` (an iterable of userids)
turns on recipient checking: unknown userids come back in ``invaliduser``.  ``fake.url`` is
e.g. ``http://127.0.0.1:54321``, ``fake.api_base`` is ``f"{url}/cgi-bin/"`` and
``fake.webhook_url`` the group robot's ``.../cgi-bin/webhook/send?key=...``.

Endpoints (every answer is HTTP 200 with ``{"errcode": ..., "errmsg": ...}`` unless a fault
says otherwise):

- ``GET gettoken?corpid=&corpsecret=`` -> ``access_token`` + ``expires_in``.  As the real API,
  a still-valid token is handed out again (``expires_in`` is its remaining lifetime); a new one
  is issued only when there is none or it expired.  41002/41004 missing corpid/corpsecret,
  40013 wrong corpid, 40001 wrong secret.
- ``POST message/send?access_token=`` (JSON body, any Content-Type: wechatpy sends none) for
  msgtype text, markdown, image, file and template_card (other msgtypes: 40008) ->
  ``invaliduser``/``invalidparty``/``invalidtag``/``unlicenseduser``/``msgid`` (+
  ``response_code`` for template cards).
- ``POST media/upload?access_token=&type=image|file`` (multipart field ``media``) -> ``type``,
  ``media_id``, ``created_at`` (a string, as in the real API).
- ``GET media/get?access_token=&media_id=`` -> the file (its Content-Type, and a
  Content-Disposition with its name) of a media a user sent (``user_media``) or the app
  uploaded; 40007 ``invalid media_id`` (as JSON) for any other.
- ``POST webhook/send?key=`` (group robot) for text, markdown, markdown_v2 and image.
- Anything else under ``/cgi-bin/`` is an HTTP 404.

Error answers (errcode, errmsg as the real API words them unless marked *):

- tokens: 41001 ``access_token missing``, 40014 ``invalid access_token`` (never issued),
  42001 ``access_token expired``; 43002 ``require POST method``; 47001 ``data format error``
  (body is not a JSON object).
- message/send: 40056 ``invalid agentid``; 81013 ``user & party & tag all invalid`` (no valid
  recipient); 40008 ``invalid message type``; 44004 ``empty content``; 40007 ``invalid
  media_id``; 40058 ``<field> ... invalid Request Parameter`` for malformed fields and template
  cards; **45002** ``content size out of limit`` when text or markdown ``content`` exceeds
  2048 UTF-8 bytes (:data:`CONTENT_TOO_LONG`).  The real API documents that text over 2048
  bytes is *truncated* and answers 45002 only for much larger bodies; the fake refuses
  everything over the documented limit so that a test catches messages a user would see cut.
- template_card: ``card_type`` must be known; a ``button_interaction`` card needs
  ``main_title`` (title or desc), ``task_id`` (``[A-Za-z0-9_@-]``, at most 128 bytes, unique
  per app* as documented) and 1 to 6 ``button_list`` entries each with ``text`` and ``key``
  (at most 1024 bytes); ``vote_interaction``/``multiple_interaction`` need a ``task_id``.
  Anything missing is 40058.
- media/upload: 40004 ``invalid media type``, 41005 ``media data missing``, 44001 ``empty media
  data``, 40006 ``invalid file size`` (under 5 bytes, or over 10 MB image or 20 MB file),
  40005 ``invalid file type`` (an image that is neither PNG nor JPEG by name or content).
- group robot: 93000 ``invalid webhook url`` (wrong or missing key); 40058
  ``markdown.content exceed max length 4096. invalid Request Parameter`` (markdown and
  markdown_v2 over 4096 bytes) and ``text.content exceed max length 2048`` (text, the
  documented limit; the live server was seen to accept up to 5120).

Test-facing API:

- ``fake.sent``: every accepted app message as :class:`AppMessage` (touser (list), toparty,
  totag, msgtype, agentid, ``content`` (text/markdown content; for a template card its main
  title and description joined by ``\\n``; None for media), ``card`` (the template_card dict),
  ``media_id``, ``raw`` (the JSON body), ``msgid``, ``invaliduser``, ``dropped_for``,
  ``response_code``; properties ``text`` (= content), ``buttons`` ((text, key) pairs) and
  ``delivered_to``).
- ``fake.messages_to(userid)``: the messages delivered to a userid, in order (``"@all"`` is
  its own key; silently dropped messages are not delivered).
  ``fake.wait_for_messages(userid, count, timeout=5.0)`` blocks (thread-safe) until at least
  ``count`` were delivered and returns them all, else ``TimeoutError``;
  ``await fake.await_messages(...)`` is the coroutine version; ``wait_until(predicate)`` /
  ``await_until(predicate)`` wait for anything else (re-checked after every call).
- ``fake.group_messages``: what the group robot received (:class:`GroupMessage`: msgtype,
  content, mentioned_list, mentioned_mobile_list, raw);
  ``fake.wait_for_group_messages(count, timeout=5.0)``.
- ``fake.uploads``: media uploads (:class:`Upload`: filename, size, type, media_id,
  content_type, data).
- ``fake.user_media(data, filename="", content_type="image/jpeg")``: a media a user sent in
  the app (an image, a video, a voice message); returns its media_id for a callback's
  ``MediaId``, downloadable with ``media/get`` (until reset).
- ``fake.requests``: every call as :class:`~tests.fakes.base.ApiCall` (path, method, query,
  body, errcode, status), faults included, e.g. to see which access_token a retry used;
  ``wait_for_requests(path, count)`` waits for answered calls.
- ``fake.tokens_issued`` (new tokens since start/reset), ``fake.current_token``,
  ``fake.token_ttl`` (the ``expires_in`` of new tokens; settable), ``fake.expire_tokens()``
  (every issued token answers 42001 from now on; the next gettoken issues a new one).
- ``fake.stats``: a Counter of calls per path (``stats["message/send"]``, faults included), of
  error answers per errcode (``stats["42001"]``) and HTTP faults (``stats["http:502"]``),
  messages per member (``stats["to:alice"]``), ``stats["dropped"]`` and
  ``stats["member_minute_peak"]`` (most messages one member got within a rate window).
- ``fake.internal_errors``: bugs of the fake itself (answered HTTP 500).
- ``fake.reset(keep_tokens=True)`` forgets messages, uploads, requests, faults, limits and
  counters; issued tokens stay valid unless ``keep_tokens=False``.

Faults (``path`` is ``"gettoken"``, ``"message/send"``, ``"media/upload"``, ``"media/get"``
or ``"webhook/send"``; a leading ``/cgi-bin/`` is accepted; others raise ValueError):

- ``fail_next(path, count=1, errcode=45009, errmsg=None)``: the next ``count`` calls answer
  that errcode (errmsg defaults to the real wording), before any other check.
- ``always_fail(path, errcode, errmsg=None)``: every call answers it until
  ``clear_faults()`` (which also drops pending ``fail_next``/``http_error_next`` faults).
- ``http_error_next(path, status=502, count=1)``: the next calls get that HTTP status with an
  HTML body (a gateway failure).  Queued faults of a path are taken in order, one per call.
- ``delay_next(path, seconds, count=1)``: the next calls are answered that much later.
- ``latency(seconds)``: every call waits that long before it is answered (0 turns it off).
- ``rate_limit_per_member(n_per_minute, *, silent=False, errcode=45033, window=60.0)``: more
  than ``n`` messages to one member within ``window`` seconds answer ``errcode`` (45033 ``api
  concurrent out of limit``; pass 45009 for ``api freq out of limit``); with ``silent=True`` the
  call succeeds but the member does not get it (recorded in ``dropped_for``,
  ``fake.dropped`` and ``stats["dropped"]``) -- what the real WeCom does past 30 a minute.
  ``None`` turns it off.  Refused calls do not count; dropped ones do.
- ``rate_limit_group(n_per_minute=20, *, window=60.0)``: the robot answers 45009 beyond it
  (the documented 20 a minute); ``None`` turns it off.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import math
import re
import secrets
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute

from .base import (
    FakeApiError,
    FilePart,
    Incoming,
    JSONDict,
    SlidingWindow,
    TokenServer,
    file_response,
)

APP_CONTENT_LIMIT = 2048
"""Most UTF-8 bytes of an app text or markdown ``content``."""
GROUP_TEXT_LIMIT = 2048
"""Most UTF-8 bytes of a group robot text ``content``."""
GROUP_MARKDOWN_LIMIT = 4096
"""Most UTF-8 bytes of a group robot markdown ``content``."""
CONTENT_TOO_LONG = 45002
"""The errcode for app text/markdown content over :data:`APP_CONTENT_LIMIT`."""
MAX_CARD_BUTTONS = 6

ERRMSGS: dict[int, str] = {
    -1: "system busy",
    40001: "invalid credential",
    40004: "invalid media type",
    40005: "invalid file type",
    40006: "invalid file size",
    40007: "invalid media_id",
    40008: "invalid message type",
    40013: "invalid corpid",
    40014: "invalid access_token",
    40056: "invalid agentid",
    40058: "invalid Request Parameter",
    41001: "access_token missing",
    41002: "corpid missing",
    41004: "corpsecret missing",
    41005: "media data missing",
    41011: "agentid missing",
    42001: "access_token expired",
    43002: "require POST method",
    44001: "empty media data",
    44004: "empty content",
    45002: "content size out of limit",
    45009: "api freq out of limit",
    45033: "api concurrent out of limit",
    47001: "data format error",
    81013: "user & party & tag all invalid",
    93000: "invalid webhook url",
}

_APP_MSGTYPES = frozenset({"text", "markdown", "image", "file", "template_card"})
_GROUP_MSGTYPES = frozenset({"text", "markdown", "markdown_v2", "image"})
_CARD_TYPES = frozenset(
    {
        "text_notice",
        "news_notice",
        "button_interaction",
        "vote_interaction",
        "multiple_interaction",
    }
)
_TASK_ID = re.compile(r"^[A-Za-z0-9_@-]{1,128}$")
_MEDIA_LIMITS = {"image": 10 * 1024 * 1024, "file": 20 * 1024 * 1024}
_MIN_MEDIA = 5


class ApiError(FakeApiError):
    """An error answer: ``{"errcode": ..., "errmsg": ...}`` with HTTP 200."""

    def __init__(self, errcode: int, errmsg: str | None = None) -> None:
        self.errcode = errcode
        self.errmsg = errmsg if errmsg is not None else ERRMSGS.get(errcode, f"error {errcode}")
        super().__init__(errcode, f"{self.errcode}: {self.errmsg}")

    def payload(self) -> JSONDict:
        """The JSON body WeCom sends with this error."""
        return {"errcode": self.errcode, "errmsg": self.errmsg}


def _invalid(what: str) -> ApiError:
    return ApiError(40058, f"{what}. invalid Request Parameter")


@dataclass
class AppMessage:
    """One accepted ``message/send`` call."""

    touser: list[str]
    msgtype: str
    agentid: int
    content: str | None
    raw: JSONDict
    msgid: str
    toparty: list[str] = field(default_factory=list)
    totag: list[str] = field(default_factory=list)
    card: JSONDict | None = None
    media_id: str | None = None
    invaliduser: list[str] = field(default_factory=list)
    dropped_for: list[str] = field(default_factory=list)
    response_code: str | None = None
    at: float = field(default_factory=time.monotonic)

    @property
    def text(self) -> str | None:
        """Same as ``content``."""
        return self.content

    @property
    def buttons(self) -> list[tuple[str, str]]:
        """A template card's buttons as (text, key)."""
        rows = (self.card or {}).get("button_list") or []
        return [(str(b.get("text", "")), str(b.get("key", ""))) for b in rows]

    @property
    def delivered_to(self) -> list[str]:
        """The userids that got it (not invalid, not silently dropped)."""
        return [u for u in self.touser if u not in self.invaliduser and u not in self.dropped_for]


@dataclass
class GroupMessage:
    """One accepted group robot ``webhook/send`` call."""

    msgtype: str
    content: str | None
    raw: JSONDict
    mentioned_list: list[str] = field(default_factory=list)
    mentioned_mobile_list: list[str] = field(default_factory=list)
    at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Upload:
    """One accepted media upload."""

    filename: str
    size: int
    type: str
    media_id: str
    content_type: str
    data: bytes = field(repr=False)
    created_at: int = 0


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def _is_picture(filename: str, data: bytes) -> bool:
    name = filename.lower()
    if name.endswith((".png", ".jpg", ".jpeg")):
        return True
    return data.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"))


def _split_ids(value: Any, what: str) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise _invalid(f"{what} must be a string of ids joined by '|'")
    return [part.strip() for part in value.split("|") if part.strip()]


def _content(body: JSONDict, key: str, limit: int, too_long: Callable[[], ApiError]) -> str:
    section = body.get(key)
    if section is not None and not isinstance(section, dict):
        raise _invalid(f"{key} must be an object")
    content = (section or {}).get("content")
    if content is None or content == "":
        raise ApiError(44004)
    if not isinstance(content, str):
        raise _invalid(f"{key}.content must be a string")
    if _utf8_len(content) > limit:
        raise too_long()
    return content


class FakeWeCom(TokenServer[AppMessage]):
    """A fake WeCom server API; see the module docstring for the test-facing API."""

    label = "WeCom"
    thread_name = "fake-wecom"
    ok_code = 0
    json_media_type = "application/json; charset=UTF-8"

    def __init__(
        self,
        corp_id: str = "ww-test-corp",
        secret: str = "test-secret",
        agent_id: int = 1000002,
        group_key: str = "robot-key",
        *,
        token_ttl: int = 7200,
        members: Iterable[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(token_ttl=token_ttl, host=host, port=port)
        self.corp_id = corp_id
        self.secret = secret
        self.agent_id = agent_id
        self.group_key = group_key
        self.members: frozenset[str] | None = None if members is None else frozenset(members)
        self._endpoint("gettoken", self._gettoken)
        self._endpoint("message/send", self._message_send, methods=("POST",))
        self._endpoint("media/upload", self._media_upload, methods=("POST",))
        self._endpoint("media/get", self._media_get, methods=("GET",))
        self._endpoint("webhook/send", self._webhook_send, methods=("POST",))
        self._ids = itertools.count(1)
        self.reset()

    # ------------------------------------------------------------------ base hooks

    def _routes(self) -> list[BaseRoute]:
        return [self._api_route("/cgi-bin/{path:path}", lambda r: str(r.path_params["path"]))]

    def _canonical_endpoint(self, name: str) -> str:
        name = name.strip("/")
        return name[len("cgi-bin/") :] if name.startswith("cgi-bin/") else name

    def _wrong_method(self, call: Incoming) -> Response:
        raise ApiError(43002)

    @property
    def api_base(self) -> str:
        """The API root to use as wechatpy's ``API_BASE_URL`` (ends with ``/cgi-bin/``)."""
        return f"{self.url}/cgi-bin/"

    @property
    def webhook_url(self) -> str:
        """The group robot's webhook URL with the right key."""
        return f"{self.api_base}webhook/send?key={urllib.parse.quote(self.group_key)}"

    def reset(self, *, keep_tokens: bool = True) -> None:
        """Forget messages, uploads, calls, faults, limits and counters.

        Issued tokens stay valid unless ``keep_tokens`` is False (then every client gets 40014
        once and refetches).  ``tokens_issued`` starts again from 0 either way.
        """
        with self._lock:
            super().reset()
            self.sent: list[AppMessage] = []
            self.group_messages: list[GroupMessage] = []
            self.uploads: list[Upload] = []
            self.dropped: list[tuple[str, AppMessage]] = []
            self.tokens_issued = 0
            self._media: dict[str, Upload] = {}
            self._task_ids: set[str] = set()
            self._member_limit: int | None = None
            self._member_silent = False
            self._member_errcode = 45033
            self._member_window = 60.0
            self._member_sends: dict[str, SlidingWindow] = {}
            self._group_limit: int | None = None
            self._group_window = 60.0
            self._group_sends = SlidingWindow()
            if not keep_tokens:
                self._forget_tokens()

    # ------------------------------------------------------------------ test-facing API

    def fail_next(
        self, path: str, count: int = 1, errcode: int = 45009, errmsg: str | None = None
    ) -> None:
        """The next ``count`` calls of ``path`` answer ``errcode``."""
        self._inject_error(path, lambda: ApiError(errcode, errmsg), count)

    def always_fail(self, path: str, errcode: int, errmsg: str | None = None) -> None:
        """Every call of ``path`` answers ``errcode`` until :meth:`clear_faults`."""
        self._inject_error(path, lambda: ApiError(errcode, errmsg), None)

    def rate_limit_per_member(
        self,
        n_per_minute: int | None,
        *,
        silent: bool = False,
        errcode: int = 45033,
        window: float = 60.0,
    ) -> None:
        """Limit messages per member per ``window``: answer ``errcode``, or drop if silent."""
        with self._lock:
            self._member_limit = n_per_minute
            self._member_silent = silent
            self._member_errcode = errcode
            self._member_window = window
            self._member_sends = {}

    def rate_limit_group(self, n_per_minute: int | None = 20, *, window: float = 60.0) -> None:
        """Limit group robot messages per ``window``; beyond it they answer 45009."""
        with self._lock:
            self._group_limit = n_per_minute
            self._group_window = window
            self._group_sends = SlidingWindow()

    def sent_in_window(self, userid: str) -> int:
        """Messages sent to ``userid`` within the current rate window (dropped included)."""
        with self._lock:
            win = self._member_sends.get(userid)
            return win.count(time.monotonic(), self._member_window) if win else 0

    # ------------------------------------------------------------------ tokens

    def _gettoken(self, req: Incoming) -> JSONDict:
        corpid = req.query.get("corpid", "")
        secret = req.query.get("corpsecret", "")
        if not corpid:
            raise ApiError(41002)
        if not secret:
            raise ApiError(41004)
        if corpid != self.corp_id:
            raise ApiError(40013)
        if secret != self.secret:
            raise ApiError(40001)
        token, left, new = self._issue_token(
            lambda: f"fake-token-{next(self._ids)}-{secrets.token_urlsafe(24)}"
        )
        self.tokens_issued += new
        remaining = max(0, math.ceil(left))
        return {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": remaining}

    def _check_token(self, req: Incoming) -> None:
        token = req.query.get("access_token", "")
        if not token:
            raise ApiError(41001)
        expires = self._tokens.get(token)
        if expires is None:
            raise ApiError(40014)
        if expires <= time.monotonic():
            raise ApiError(42001)

    # ------------------------------------------------------------------ app messages

    def _message_send(self, req: Incoming) -> JSONDict:
        self._check_token(req)
        body = _json_body(req)
        agentid = body.get("agentid")
        if agentid is None or agentid == "":
            raise ApiError(41011)
        if str(agentid).strip() != str(self.agent_id):
            raise ApiError(40056)
        touser = _split_ids(body.get("touser"), "touser")
        toparty = _split_ids(body.get("toparty"), "toparty")
        totag = _split_ids(body.get("totag"), "totag")
        invalid: list[str] = []
        if self.members is not None:
            invalid = [u for u in touser if u != "@all" and u not in self.members]
        if not toparty and not totag and len(invalid) == len(touser):
            raise ApiError(81013)
        msgtype = body.get("msgtype")
        if msgtype not in _APP_MSGTYPES:
            raise ApiError(40008)
        content, card, media_id = self._check_app_payload(str(msgtype), body)
        valid = [u for u in touser if u not in invalid]
        dropped = self._apply_member_limit(valid)
        task_id = (card or {}).get("task_id")
        if task_id:
            self._task_ids.add(str(task_id))
        message = AppMessage(
            touser=touser,
            msgtype=str(msgtype),
            agentid=int(str(agentid)),
            content=content,
            raw=body,
            msgid=f"fake-msgid-{next(self._ids)}",
            toparty=toparty,
            totag=totag,
            card=card,
            media_id=media_id,
            invaliduser=invalid,
            dropped_for=dropped,
            response_code=secrets.token_urlsafe(16) if card is not None else None,
        )
        self.sent.append(message)
        for user in message.delivered_to:
            self._deliver(user, message)
        for user in dropped:
            self.dropped.append((user, message))
        result: JSONDict = {
            "errcode": 0,
            "errmsg": "ok",
            "invaliduser": "|".join(invalid),
            "invalidparty": "",
            "invalidtag": "",
            "unlicenseduser": "",
            "msgid": message.msgid,
        }
        if message.response_code is not None:
            result["response_code"] = message.response_code
        return result

    def _check_app_payload(
        self, msgtype: str, body: JSONDict
    ) -> tuple[str | None, JSONDict | None, str | None]:
        """Validate one message body; returns (content, card, media_id)."""

        def too_long() -> ApiError:
            return ApiError(CONTENT_TOO_LONG)

        if msgtype in ("text", "markdown"):
            return _content(body, msgtype, APP_CONTENT_LIMIT, too_long), None, None
        if msgtype in ("image", "file"):
            section = body.get(msgtype)
            media_id = section.get("media_id") if isinstance(section, dict) else None
            upload = self._media.get(str(media_id)) if media_id else None
            if upload is None:
                raise ApiError(40007)
            if msgtype == "image" and upload.type != msgtype:
                raise ApiError(40007, f"invalid media_id: not a {msgtype}")
            return None, None, str(media_id)
        card = self._check_card(body.get("template_card"))  # the last known msgtype
        main = card.get("main_title") or {}
        # What a member sees: WeCom shows a title of 36 characters, a description of 44 and a
        # sub-title of 112 (the rest is cut off in the client).
        parts = [
            str(main.get("title") or "")[:36],
            str(main.get("desc") or "")[:44],
            str(card.get("sub_title_text") or "")[:112],
        ]
        text = "\n".join(part for part in parts if part)
        return text or None, card, None

    def _check_card(self, card: Any) -> JSONDict:
        if not isinstance(card, dict):
            raise _invalid("template_card is missing")
        card_type = card.get("card_type")
        if card_type not in _CARD_TYPES:
            raise _invalid(f"template_card.card_type {card_type!r} is invalid")
        if card_type in ("text_notice", "news_notice", "button_interaction"):
            main = card.get("main_title")
            if not isinstance(main, dict) or not (main.get("title") or main.get("desc")):
                raise _invalid("template_card.main_title is missing")
        if card_type in ("button_interaction", "vote_interaction", "multiple_interaction"):
            task_id = card.get("task_id")
            if not task_id:
                raise _invalid("template_card.task_id is missing")
            if not isinstance(task_id, str) or not _TASK_ID.match(task_id):
                raise _invalid("template_card.task_id is invalid")
            if task_id in self._task_ids:
                raise _invalid("template_card.task_id is duplicated")
        if card_type == "button_interaction":
            buttons = card.get("button_list")
            if not isinstance(buttons, list) or not buttons:
                raise _invalid("template_card.button_list is missing")
            if len(buttons) > MAX_CARD_BUTTONS:
                raise _invalid("template_card.button_list exceed max size 6")
            for i, button in enumerate(buttons):
                if not isinstance(button, dict) or not button.get("text"):
                    raise _invalid(f"template_card.button_list[{i}].text is missing")
                key = button.get("key")
                if not key or not isinstance(key, str):
                    raise _invalid(f"template_card.button_list[{i}].key is missing")
                if _utf8_len(key) > 1024:
                    raise _invalid(f"template_card.button_list[{i}].key exceed max length 1024")
        return card

    def _apply_member_limit(self, users: list[str]) -> list[str]:
        """Count the send for each member; returns the members it is silently dropped for."""
        now = time.monotonic()
        limit, window = self._member_limit, self._member_window
        counts = {}
        for user in users:
            win = self._member_sends.setdefault(user, SlidingWindow())
            counts[user] = win.count(now, window)
        over = [u for u in users if limit is not None and counts[u] >= limit]
        if over and not self._member_silent:
            raise ApiError(self._member_errcode)
        for user in users:
            self._member_sends[user].events.append(now)
            self.stats[f"to:{user}"] += 1
            peak = counts[user] + 1
            if peak > self.stats["member_minute_peak"]:
                self.stats["member_minute_peak"] = peak
        self.stats["dropped"] += len(over)
        return over

    # ------------------------------------------------------------------ media

    def _media_upload(self, req: Incoming) -> JSONDict:
        self._check_token(req)
        media_type = req.query.get("type", "")
        if media_type not in _MEDIA_LIMITS:
            raise ApiError(40004)
        try:
            part = req.multipart()[1].get("media")
        except ValueError:
            part = None
        if part is None:
            raise ApiError(41005)
        filename = part.filename or "media"
        size = part.size
        if size == 0:
            raise ApiError(44001)
        if size < _MIN_MEDIA or size > _MEDIA_LIMITS[media_type]:
            raise ApiError(40006)
        if media_type == "image" and not _is_picture(filename, part.data):
            raise ApiError(40005)
        media_id = f"fake-media-{next(self._ids)}-{secrets.token_urlsafe(12)}"
        created = int(time.time())
        upload = Upload(
            filename=filename,
            size=size,
            type=media_type,
            media_id=media_id,
            content_type=part.content_type,
            data=part.data,
            created_at=created,
        )
        self.uploads.append(upload)
        self._media[media_id] = upload
        return {
            "errcode": 0,
            "errmsg": "",
            "type": media_type,
            "media_id": media_id,
            "created_at": str(created),
        }

    def user_media(self, data: bytes, filename: str = "", content_type: str = "image/jpeg") -> str:
        """Keep a media a user sent (for a callback's MediaId); returns its media_id."""
        with self._lock:
            media_id = f"user-media-{next(self._ids)}-{secrets.token_urlsafe(12)}"
            self._media[media_id] = Upload(
                filename=filename,
                size=len(data),
                type="user",
                media_id=media_id,
                content_type=content_type,
                data=data,
                created_at=int(time.time()),
            )
            return media_id

    def _media_get(self, req: Incoming) -> Response:
        self._check_token(req)
        upload = self._media.get(req.query.get("media_id", ""))
        if upload is None:
            raise ApiError(40007)
        part = FilePart("media", upload.filename, upload.content_type, upload.data)
        if upload.filename:
            return file_response(part)
        return Response(upload.data, media_type=upload.content_type)

    # ------------------------------------------------------------------ group robot

    def _check_key(self, req: Incoming) -> None:
        if req.query.get("key", "") != self.group_key:
            raise ApiError(93000)

    def _webhook_send(self, req: Incoming) -> JSONDict:
        self._check_key(req)
        body = _json_body(req)
        msgtype = body.get("msgtype")
        if msgtype not in _GROUP_MSGTYPES:
            raise ApiError(40008)
        content: str | None = None
        section = body.get(msgtype)
        if msgtype in ("text", "markdown", "markdown_v2"):
            limit = GROUP_TEXT_LIMIT if msgtype == "text" else GROUP_MARKDOWN_LIMIT

            def too_long() -> ApiError:
                return _invalid(f"{msgtype}.content exceed max length {limit}")

            content = _content(body, str(msgtype), limit, too_long)
        else:  # image
            self._check_robot_image(section)
        if self._group_limit is not None and not self._group_sends.take(
            time.monotonic(), self._group_window, self._group_limit
        ):
            raise ApiError(45009)
        mentions = section.get("mentioned_list") if isinstance(section, dict) else None
        mobiles = section.get("mentioned_mobile_list") if isinstance(section, dict) else None
        self.group_messages.append(
            GroupMessage(
                msgtype=str(msgtype),
                content=content,
                raw=body,
                mentioned_list=list(mentions or []),
                mentioned_mobile_list=list(mobiles or []),
            )
        )
        return {"errcode": 0, "errmsg": "ok"}

    @staticmethod
    def _check_robot_image(section: Any) -> None:
        if not isinstance(section, dict) or not section.get("base64") or not section.get("md5"):
            raise _invalid("image.base64 or image.md5 is missing")
        try:
            data = base64.b64decode(str(section["base64"]), validate=True)
        except (binascii.Error, ValueError):
            raise _invalid("image.base64 is invalid") from None
        if hashlib.md5(data).hexdigest() != str(section["md5"]).lower():
            raise _invalid("image.md5 not match")
        if len(data) > 2 * 1024 * 1024:
            raise ApiError(40009, "invalid image size")

    # ------------------------------------------------------------------ convenience

    def wait_for_group_messages(self, count: int = 1, timeout: float = 5.0) -> list[GroupMessage]:
        """Block until the group robot received at least ``count`` messages; return them."""
        self.wait_until(lambda f: len(f.group_messages) >= count, timeout)
        with self._lock:
            return list(self.group_messages)


def _json_body(req: Incoming) -> JSONDict:
    """The body as a JSON object (whatever the Content-Type), else 47001."""
    value = req.json_or_none()
    if not isinstance(value, dict):
        raise ApiError(47001)
    return value
