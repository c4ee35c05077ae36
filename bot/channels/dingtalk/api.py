"""DingTalk's HTTP APIs as Duban calls them (the SDK has no call for these).

- OpenAPI (DINGTALK_API_BASE_URL, `api.dingtalk.com`): the app's access token from
  `/v1.0/oauth2/accessToken`, sent in the `x-acs-dingtalk-access-token` header; robot messages
  to one person (`/v1.0/robot/oToMessages/batchSend`), interactive cards
  (`/v1.0/im/v1.0/robot/interactiveCards/send`) and the download link of a file someone sent
  (`/v1.0/robot/messageFiles/download`). Errors are an HTTP status with
  `{"code": ..., "message": ...}`.
- The old API (DINGTALK_OAPI_BASE_URL, `oapi.dingtalk.com`): media upload, with the same token
  as `?access_token=`; errors are `{"errcode": ..., "errmsg": ...}` with HTTP 200.

The token is cached until five minutes before it expires and fetched again, at most once per
call, when DingTalk refuses it. A rate limit (HTTP 429, a 403 `...QpsLimit...` or
`Throttling...` code, the old API's 90002/90018, a person in `flowControlledStaffIdList`) holds
every call of this client for a while (Retry-After when given, else a doubling backoff) and is
tried again; so are network errors and 5xx. No error text carries the token, the secret or a
URL (the old API's URLs hold the token, a download link is itself a credential).

The HTTP client is aiohttp, not httpx: every reply is one call here, and httpcore's pool
spends about a millisecond of CPU per call on bookkeeping (the same finding that made the
Telegram channel move to aiohttp, see `bot/channels/aiohttp_request.py`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

TOKEN_PATH = "/v1.0/oauth2/accessToken"
BATCH_SEND_PATH = "/v1.0/robot/oToMessages/batchSend"
CARD_SEND_PATH = "/v1.0/im/v1.0/robot/interactiveCards/send"
FILE_DOWNLOAD_PATH = "/v1.0/robot/messageFiles/download"
MEDIA_UPLOAD_PATH = "/media/upload"
TOKEN_HEADER = "x-acs-dingtalk-access-token"

TOKEN_MARGIN = 300.0  # seconds before its expiry a token is fetched anew
MAX_ATTEMPTS = 5
BASE_BACKOFF = 0.5  # seconds; doubled after each failed attempt
MAX_BACKOFF = 30.0
TIMEOUT = aiohttp.ClientTimeout(total=60.0, connect=10.0, sock_read=30.0)
NETWORK_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)
ERROR_BODY = 64 * 1024  # the most of an error answer read

# The old API's error codes: a refused token, and "too many calls".
OAPI_TOKEN_ERRORS = frozenset({40014, 42001, 88})
OAPI_BUSY_ERRORS = frozenset({-1, 90002, 90018})
TOKEN_CODES = frozenset({"InvalidAuthentication", "Unauthorized", "InvalidAccessToken"})


class DingTalkError(Exception):
    """A DingTalk call failed: which call, the HTTP status and DingTalk's code (never a token,
    a secret or a URL)."""

    def __init__(self, what: str, status: int | None = None, code: str | int | None = None):
        self.what = what
        self.status = status
        self.code = code
        parts = [what]
        if status is not None:
            parts.append(f"HTTP {status}")
        if code is not None:
            parts.append(f"code {code}")
        super().__init__(": ".join([parts[0], ", ".join(parts[1:])]) if len(parts) > 1 else what)


class _TokenRefused(DingTalkError):
    """DingTalk refused the access token (expired or revoked)."""


class DownloadTooBig(Exception):
    """A download past its cap."""

    def __init__(self, size: int) -> None:
        super().__init__(f"{size} bytes or more")


class _Busy(DingTalkError):
    """A rate limit or a passing failure: tried again after `wait` seconds (None: backoff)."""

    def __init__(
        self,
        what: str,
        status: int | None = None,
        code: str | int | None = None,
        wait: float | None = None,
    ) -> None:
        super().__init__(what, status, code)
        self.wait: float | None = wait


@dataclass(frozen=True)
class Answer:
    """An HTTP answer, read whole (API answers are small)."""

    status: int
    headers: Mapping[str, str]
    content: bytes

    @property
    def is_error(self) -> bool:
        """An HTTP error status."""
        return self.status >= 400


def _retry_after(answer: Answer) -> float | None:
    value = answer.headers.get("Retry-After", "")
    try:
        return min(MAX_BACKOFF, max(0.0, float(value)))
    except ValueError:
        return None


def _json(answer: Answer) -> Any:
    try:
        return json.loads(answer.content[:ERROR_BODY] if answer.is_error else answer.content)
    except ValueError:
        return None


def _error_code(body: Any) -> str | None:
    if isinstance(body, dict):
        code = body.get("code")
        if isinstance(code, str | int) and not isinstance(code, bool):
            return str(code)
    return None


def check_openapi(what: str, answer: Answer) -> Any:
    """The JSON of an OpenAPI answer, or the error it stands for."""
    body = _json(answer)
    if not answer.is_error:
        if body is None and answer.content:
            raise _Busy(what, answer.status, "not JSON")
        return body
    code = _error_code(body)
    status = answer.status
    if status == 401 or code in TOKEN_CODES:
        raise _TokenRefused(what, status, code)
    limited = code is not None and ("QpsLimit" in code or code.startswith("Throttling"))
    if status == 429 or (status == 403 and limited):
        raise _Busy(what, status, code, _retry_after(answer))
    if status >= 500:
        raise _Busy(what, status, code)
    raise DingTalkError(what, status, code)


def check_oapi(what: str, answer: Answer) -> dict[str, Any]:
    """The JSON of an old-API answer (errcode 0), or the error it stands for."""
    if answer.status >= 500 or answer.status == 429:
        raise _Busy(what, answer.status, None, _retry_after(answer))
    body = _json(answer)
    if answer.is_error or not isinstance(body, dict):
        raise DingTalkError(what, answer.status, _error_code(body))
    code = body.get("errcode", 0)
    if code in OAPI_TOKEN_ERRORS:
        raise _TokenRefused(what, None, code)
    if code in OAPI_BUSY_ERRORS:
        raise _Busy(what, None, code)
    if code != 0:
        raise DingTalkError(what, None, code)
    return body


def _escape(value: str) -> str:
    """A multipart header parameter as browsers and httpx write it (UTF-8, HTML5 escapes)."""
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def multipart(field: str, filename: str, content_type: str, data: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body with one file, and its Content-Type (the file name as
    UTF-8, not percent-encoded: what DingTalk's upload shows as the name)."""
    boundary = uuid.uuid4().hex
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="{_escape(field)}"; '
        f'filename="{_escape(filename)}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    body = head + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


class WindowPacer:
    """At most `limit` events per `window` seconds for each key: waits for a free slot."""

    def __init__(
        self, limit: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ):
        self.limit = limit
        self.window = window
        self.clock = clock
        self._sent: dict[str, deque[float]] = {}
        self._lock = asyncio.Lock()

    async def wait(self, key: str = "") -> None:
        """Return when one more event for key stays within the limit (and count it)."""
        async with self._lock:
            sent = self._sent.setdefault(key, deque())
            while True:
                now = self.clock()
                while sent and now - sent[0] >= self.window:
                    sent.popleft()
                if len(sent) < self.limit:
                    break
                await asyncio.sleep(self.window - (now - sent[0]))
            sent.append(self.clock())


class DingTalkApi:
    """The app's token and the calls Duban makes, with retries; one aiohttp session."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        robot_code: str,
        *,
        api_base: str,
        oapi_base: str,
        backoff: float = BASE_BACKOFF,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client_id = client_id
        self._secret = client_secret
        self.robot_code = robot_code
        self.api_base = api_base.rstrip("/")
        self.oapi_base = oapi_base.rstrip("/")
        self.backoff = backoff
        self.clock = clock
        self._token: str | None = None
        self._expires = 0.0
        self._token_lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None
        self._paused_until = 0.0  # a rate limit holds every call until then
        self.tokens_fetched = 0

    def __repr__(self) -> str:
        return f"DingTalkApi(client_id={self.client_id!r}, api_base={self.api_base!r})"

    def session(self) -> aiohttp.ClientSession:
        """The HTTP session (made on first use, in the running loop; again after close)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=TIMEOUT,
                connector=aiohttp.TCPConnector(limit=32),
                raise_for_status=False,
            )
        return self._session

    async def close(self) -> None:
        """Close the HTTP connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, url: str, **kwargs: Any) -> Answer:
        """One HTTP call, its answer read whole; redirects are not followed."""
        async with self.session().request(method, url, allow_redirects=False, **kwargs) as response:
            content = await response.read()
            return Answer(response.status, response.headers, content)

    async def download(self, url: str, write: Callable[[bytes], None], cap: int) -> str:
        """GET url and hand its body to write chunk by chunk (never more than cap bytes);
        the Content-Type. DingTalkError for an HTTP error; network errors as they come."""
        async with self.session().get(url, allow_redirects=False) as response:
            if response.status != 200:
                raise DingTalkError("download", response.status)
            if response.content_length is not None and response.content_length > cap:
                raise DownloadTooBig(response.content_length)
            size = 0
            async for chunk in response.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > cap:
                    raise DownloadTooBig(size)
                write(chunk)
            return response.headers.get("Content-Type", "").split(";")[0].strip()

    # ------------------------------------------------------------------ the token

    async def token(self) -> str:
        """The app's access token (cached until shortly before it expires)."""
        if self._token is not None and self.clock() < self._expires:
            return self._token
        async with self._token_lock:
            if self._token is not None and self.clock() < self._expires:
                return self._token
            what = "accessToken"
            try:
                answer = await self.request(
                    "POST",
                    self.api_base + TOKEN_PATH,
                    json={"appKey": self.client_id, "appSecret": self._secret},
                )
            except NETWORK_ERRORS as exc:
                raise _Busy(what, None, type(exc).__name__) from None
            body = check_openapi(what, answer)
            token = body.get("accessToken") if isinstance(body, dict) else None
            expires_in = body.get("expireIn") if isinstance(body, dict) else None
            if not isinstance(token, str) or not token or not isinstance(expires_in, int):
                raise DingTalkError(what, answer.status, "no accessToken")
            self._token = token
            self._expires = self.clock() + max(0.0, expires_in - TOKEN_MARGIN)
            self.tokens_fetched += 1
            return token

    def _forget(self, token: str) -> None:
        if self._token == token:
            self._token = None
            self._expires = 0.0

    # ------------------------------------------------------------------ calling

    async def _pause(self) -> None:
        wait = self._paused_until - self.clock()
        if wait > 0:
            await asyncio.sleep(wait)

    async def call(
        self,
        what: str,
        send: Callable[[str], Awaitable[Any]],
        *,
        attempts: int = MAX_ATTEMPTS,
    ) -> Any:
        """Run `send(token)` (a coroutine that raises the errors of check_openapi/check_oapi)
        with the token, once more with a new one when it is refused, and again after a wait
        on rate limits, network errors and 5xx."""
        token_renewed = False
        for attempt in range(1, attempts + 1):
            await self._pause()
            token = await self._retrying_token(what, attempt, attempts)
            if token is None:
                continue
            try:
                return await send(token)
            except _TokenRefused:
                self._forget(token)
                if token_renewed:
                    raise
                token_renewed = True
                log.info("DingTalk refused the access token (%s); fetching a new one", what)
                continue
            except _Busy as exc:
                if attempt == attempts:
                    raise DingTalkError(exc.what, exc.status, exc.code) from None
                self._hold(exc.wait, attempt)
                log.warning("DingTalk %s busy (%s), retrying (attempt %d)", what, exc, attempt)
            except NETWORK_ERRORS as exc:  # its text may hold a URL: only the type is kept
                if attempt == attempts:
                    raise DingTalkError(what, None, type(exc).__name__) from None
                self._hold(None, attempt)
                log.warning(
                    "DingTalk %s network error %s, retrying (attempt %d)",
                    what,
                    type(exc).__name__,
                    attempt,
                )
        raise DingTalkError(what, None, "gave up")

    async def _retrying_token(self, what: str, attempt: int, attempts: int) -> str | None:
        try:
            return await self.token()
        except _Busy as exc:
            if attempt == attempts:
                raise DingTalkError(exc.what, exc.status, exc.code) from None
            self._hold(exc.wait, attempt)
            log.warning("DingTalk token fetch failed (%s), retrying", exc)
            return None

    def _hold(self, wait: float | None, attempt: int) -> None:
        if wait is None:
            wait = min(MAX_BACKOFF, self.backoff * 2 ** (attempt - 1))
            wait *= 1 + random.random() * 0.2
        self._paused_until = max(self._paused_until, self.clock() + wait)

    async def post_openapi(self, what: str, path: str, body: dict[str, Any]) -> Any:
        """POST JSON to an OpenAPI path with the token header."""

        async def send(token: str) -> Any:
            answer = await self.request(
                "POST", self.api_base + path, json=body, headers={TOKEN_HEADER: token}
            )
            return check_openapi(what, answer)

        return await self.call(what, send)

    # ------------------------------------------------------------------ what Duban sends

    async def send_robot_message(self, user: str, msg_key: str, param: dict[str, Any]) -> str:
        """One robot message to one person (batchSend); its processQueryKey."""
        body = {
            "robotCode": self.robot_code,
            "userIds": [user],
            "msgKey": msg_key,
            "msgParam": json.dumps(param, ensure_ascii=False),
        }
        what = "batchSend"

        async def send(token: str) -> Any:
            answer = await self.request(
                "POST", self.api_base + BATCH_SEND_PATH, json=body, headers={TOKEN_HEADER: token}
            )
            result = check_openapi(what, answer)
            if not isinstance(result, dict):
                raise DingTalkError(what, answer.status, "no result")
            if user in (result.get("invalidStaffIdList") or ()):
                raise DingTalkError(what, answer.status, "invalidStaffId")
            if user in (result.get("flowControlledStaffIdList") or ()):
                raise _Busy(what, answer.status, "flowControlled")
            return result

        result = await self.call(what, send)
        return str(result.get("processQueryKey") or "")

    async def send_card(self, user: str, card_biz_id: str, card: dict[str, Any]) -> str:
        """An interactive card (StandardCard) to one person; its processQueryKey."""
        body = {
            "cardTemplateId": "StandardCard",
            "robotCode": self.robot_code,
            "singleChatReceiver": json.dumps({"userId": user}),
            "cardBizId": card_biz_id,
            "cardData": json.dumps(card, ensure_ascii=False),
            "sendOptions": {},
            "pullStrategy": False,
        }
        result = await self.post_openapi("interactiveCards/send", CARD_SEND_PATH, body)
        data = result.get("result") if isinstance(result, dict) else None
        key = data.get("processQueryKey") if isinstance(data, dict) else None
        return str(key or (result or {}).get("processQueryKey") or card_biz_id)

    async def upload_media(self, path: Path, kind: str) -> str:
        """Upload a file (kind "image" or "file") to the old media API; its media_id."""
        what = "media/upload"
        data = await asyncio.to_thread(path.read_bytes)

        body, content_type = multipart("media", path.name, _mime(path), data)

        async def send(token: str) -> Any:
            answer = await self.request(
                "POST",
                self.oapi_base + MEDIA_UPLOAD_PATH,
                params={"access_token": token, "type": kind},
                data=body,
                headers={"Content-Type": content_type},
            )
            return check_oapi(what, answer)

        result = await self.call(what, send)
        media_id = result.get("media_id")
        if not isinstance(media_id, str) or not media_id:
            raise DingTalkError(what, None, "no media_id")
        return media_id

    async def download_url(self, download_code: str) -> str:
        """The temporary link of a file someone sent the robot."""
        body = {"downloadCode": download_code, "robotCode": self.robot_code}
        result = await self.post_openapi("messageFiles/download", FILE_DOWNLOAD_PATH, body)
        url = result.get("downloadUrl") if isinstance(result, dict) else None
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise DingTalkError("messageFiles/download", None, "no downloadUrl")
        return url


def _mime(path: Path) -> str:
    return {
        ".png": "image/png",
        ".jpg": "image/jpeg",
        ".jpeg": "image/jpeg",
        ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ".pdf": "application/pdf",
    }.get(path.suffix.lower(), "application/octet-stream")
