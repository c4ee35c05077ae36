"""The Stream-mode connection on the official SDK (`dingtalk-stream`): its client, frames,
handlers and acks, with the connection loop Duban needs.

What the SDK does not do the way Duban needs, and is done here:

- The endpoint. The SDK reads `DINGTALK_OPENAPI_ENDPOINT` from the environment once, when
  `dingtalk_stream.utils` is imported, and builds the class attribute
  `DingTalkStreamClient.OPEN_CONNECTION_API` from it; `open_connection` names that class
  attribute explicitly (a subclass attribute would not be seen). `DubanStreamClient` overrides
  `open_connection` to use DINGTALK_API_BASE_URL from the settings, per instance, so nothing
  process-wide (no environment variable, no module global) changes. The SDK's own HTTP helpers
  (`get_access_token`, `upload_to_dingtalk`: the latter hard-codes oapi.dingtalk.com) are
  refused: Duban's calls go through `bot.channels.dingtalk.api`.
- The loop. 0.24.3's `start()` catches CancelledError and sleeps 10 s before it reconnects (a
  cancelled client keeps running), opens the connection with blocking `requests` in the event
  loop, and logs whole frames (with the ticket and people's messages). `run()` here opens the
  connection in a worker thread, reconnects with a doubling backoff (1 s to 60 s) and stops
  when cancelled.
- Acks go back on the connection the frame came on, and only after the handler returned: the
  robot-message handler stores the message in the inbox first.

A frame that is not JSON, or whose `data` is not, is refused in one rate-limited log line
(answered 400 when it has a messageId); SYSTEM `ping` frames are answered with their data, a
`disconnect` makes the client connect anew.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote_plus

import httpx
import websockets
from dingtalk_stream import (
    AckMessage,
    CallbackHandler,
    CallbackMessage,
    Credential,
    DingTalkStreamClient,
    SystemMessage,
)
from dingtalk_stream.frames import Headers
from dingtalk_stream.version import VERSION_STRING

from bot.web import RefusalLog

log = logging.getLogger(__name__)
# The websocket library's DEBUG lines carry the connection ticket and every frame.
WS_LOG = logging.getLogger("bot.channels.dingtalk.websocket")
WS_LOG.setLevel(logging.INFO)

OPEN_CONNECTION_PATH = "/v1.0/gateway/connections/open"
RECONNECT_FIRST = 1.0  # seconds
RECONNECT_MAX = 60.0
MAX_FRAME = 1 << 20
OPEN_TIMEOUT = 10.0
STABLE_CONNECTION = 30.0  # seconds a connection must last for its end not to count as a failure

Accept = Callable[[CallbackMessage], Awaitable[tuple[int, Any]]]


class FrameRefused(Exception):
    """A frame (or a message in it) that cannot be read; the reason is a fixed phrase."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TopicHandler(CallbackHandler):
    """An SDK callback handler that hands the message to Duban's channel."""

    def __init__(self, accept: Accept) -> None:
        super().__init__()
        self.logger = log
        self._accept = accept

    async def process(self, message: CallbackMessage) -> tuple[int, Any]:
        """Duban's answer: (ack code, response)."""
        return await self._accept(message)


class DubanStreamClient(DingTalkStreamClient):
    """The SDK's stream client with Duban's endpoint and connection loop (see the module)."""

    websocket: Any  # the connection frames come on (None between connections)

    def __init__(
        self,
        credential: Credential,
        *,
        api_base: str,
        refusals: RefusalLog,
        reconnect_first: float = RECONNECT_FIRST,
    ) -> None:
        super().__init__(credential, logger=log)
        self.open_connection_api = api_base.rstrip("/") + OPEN_CONNECTION_PATH
        self.refusals = refusals
        self.reconnect_first = reconnect_first
        self.connected = asyncio.Event()
        self.connections = 0  # websocket connections made so far
        self._tasks: set[asyncio.Task[None]] = set()
        self._asked_to_reconnect = False

    # ------------------------------------------------------------------ the SDK's HTTP

    def open_connection(self) -> dict[str, Any] | None:
        """Ask the gateway for an endpoint and a ticket (blocking: run in a thread). The
        request is the SDK's, sent to DINGTALK_API_BASE_URL; None when it failed."""
        topics = []
        if self._is_event_required:
            topics.append({"type": "EVENT", "topic": "*"})
        for topic in self.callback_handler_map:
            topics.append({"type": "CALLBACK", "topic": topic})
        body = {
            "clientId": self.credential.client_id,
            "clientSecret": self.credential.client_secret,
            "subscriptions": topics,
            "ua": f"dingtalk-sdk-python/v{VERSION_STRING}-union",
            "localIp": "",
        }
        try:
            response = httpx.post(
                self.open_connection_api,
                json=body,
                headers={"Accept": "application/json"},
                timeout=OPEN_TIMEOUT,
            )
        except httpx.HTTPError as exc:
            log.warning("DingTalk stream: opening a connection failed: %s", type(exc).__name__)
            return None
        if response.status_code != 200:
            code = _code(response)
            log.warning(
                "DingTalk stream: the gateway refused a connection: HTTP %s%s",
                response.status_code,
                f", code {code}" if code else "",
            )
            return None
        try:
            found = response.json()
        except ValueError:
            found = None
        if (
            not isinstance(found, dict)
            or not isinstance(found.get("endpoint"), str)
            or not isinstance(found.get("ticket"), str)
            or not found["endpoint"].startswith(("wss://", "ws://"))
        ):
            log.warning("DingTalk stream: the gateway's answer has no endpoint and ticket")
            return None
        return found

    def get_access_token(self) -> str:
        """Not used: the SDK's token fetch would go to the endpoint fixed at import."""
        raise RuntimeError("Duban fetches DingTalk tokens in bot.channels.dingtalk.api")

    def upload_to_dingtalk(self, *args: Any, **kwargs: Any) -> str:
        """Not used: the SDK's upload hard-codes oapi.dingtalk.com."""
        raise RuntimeError("Duban uploads DingTalk media in bot.channels.dingtalk.api")

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        """Connect and receive until cancelled; reconnect when the connection ends: at once
        after DingTalk's `disconnect` or a connection that lasted, else after a doubling
        backoff (a gateway that keeps refusing or dropping us is not hammered)."""
        self.pre_start()
        failures = 0
        while True:
            connection = await asyncio.to_thread(self.open_connection)
            if connection is None:
                failures += 1
                await asyncio.sleep(self._delay(failures))
                continue
            uri = f"{connection['endpoint']}?ticket={quote_plus(connection['ticket'])}"
            self._asked_to_reconnect = False
            opened = time.monotonic()
            try:
                async with websockets.connect(
                    uri,
                    logger=WS_LOG,
                    max_size=MAX_FRAME,
                    open_timeout=OPEN_TIMEOUT,
                    user_agent_header=f"DingTalkStream/1.0 SDK/{VERSION_STRING} Duban",
                ) as ws:
                    self.websocket = ws
                    self.connections += 1
                    self.connected.set()
                    log.info("DingTalk stream connected")
                    async for raw in ws:
                        self._receive(raw, ws)
                log.info("DingTalk stream: the connection was closed; connecting anew")
                lasted = time.monotonic() - opened >= STABLE_CONNECTION
                failures = 0 if self._asked_to_reconnect or lasted else failures + 1
            except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
                failures = 1 if time.monotonic() - opened >= STABLE_CONNECTION else failures + 1
                log.warning(
                    "DingTalk stream: connection lost (%s); reconnecting", type(exc).__name__
                )
            finally:
                self.connected.clear()
                self.websocket = None
            await asyncio.sleep(self._delay(failures))

    def _delay(self, failures: int) -> float:
        if failures <= 0:
            return 0.0
        delay = min(RECONNECT_MAX, self.reconnect_first * 2 ** (failures - 1))
        return float(delay * (1 + random.random() * 0.1))

    def _receive(self, raw: str | bytes, ws: Any) -> None:
        """Take one frame: routed in a task of its own (created now, so that frames start in
        the order they came)."""
        try:
            frame = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            frame = None
        if not isinstance(frame, dict):
            self.refusals.refused(400, "a frame that is not a JSON object")
            return
        headers = frame.get("headers")
        if (
            frame.get("type") == SystemMessage.TYPE
            and isinstance(headers, dict)
            and headers.get("topic") == SystemMessage.TOPIC_DISCONNECT
        ):
            self._asked_to_reconnect = True  # before the server closes: connect again at once
        task = asyncio.create_task(self._route(frame, ws))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _route(self, frame: dict[str, Any], ws: Any) -> None:
        """Hand a frame to its handler and send the handler's ack on its connection."""
        ack: AckMessage | None = None
        close = False
        try:
            kind = frame.get("type")
            headers = frame.get("headers")
            if not isinstance(headers, dict) or not isinstance(headers.get("messageId"), str):
                raise FrameRefused("a frame without headers.messageId")
            if kind == SystemMessage.TYPE:
                system = _parse(SystemMessage, frame)
                ack = await self.system_handler.raw_process(system)
                close = system.headers.topic == SystemMessage.TOPIC_DISCONNECT
            elif kind == CallbackMessage.TYPE:
                message = _parse(CallbackMessage, frame)
                handler = self.callback_handler_map.get(message.headers.topic)
                if handler is None:
                    raise FrameRefused("a callback of a topic not subscribed")
                ack = await handler.raw_process(message)
            else:  # EVENT frames are not subscribed to; anything else is not DingTalk's
                raise FrameRefused("a frame of an unknown type")
        except FrameRefused as exc:
            self.refusals.refused(400, exc.reason)
            ack = _ack(frame, AckMessage.STATUS_BAD_REQUEST, "refused")
        except Exception as exc:  # a bug: one line, and DingTalk sends it again
            self.refusals.failed(500, exc)
            ack = _ack(frame, AckMessage.STATUS_SYSTEM_EXCEPTION, "failed")
        if ack is not None:
            try:
                await ws.send(json.dumps(ack.to_dict(), ensure_ascii=False))
            except websockets.exceptions.ConnectionClosed:
                return  # not acknowledged: DingTalk delivers it again
        if close:
            log.info("DingTalk stream: the server asked to reconnect")
            await ws.close()

    async def finish(self, grace: float) -> None:
        """Wait (at most grace seconds) for the frames in hand to be routed."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)


def _parse(kind: Any, frame: dict[str, Any]) -> Any:
    """A frame as the SDK's class; FrameRefused when its data is not a JSON object."""
    data = frame.get("data", "")
    if not isinstance(data, str):
        raise FrameRefused("frame data that is not a string")
    try:
        message = kind.from_dict(frame)
    except (ValueError, TypeError, UnicodeDecodeError):
        raise FrameRefused("frame data that is not JSON") from None
    if not isinstance(message.data, dict):
        raise FrameRefused("frame data that is not a JSON object")
    return message


def _ack(frame: dict[str, Any], code: int, text: str) -> AckMessage | None:
    headers = frame.get("headers")
    message_id = headers.get("messageId") if isinstance(headers, dict) else None
    if not isinstance(message_id, str):
        return None
    ack = AckMessage()
    ack.code = code
    ack.headers.message_id = message_id
    ack.headers.content_type = Headers.CONTENT_TYPE_APPLICATION_JSON
    ack.message = text
    ack.data = {"response": None}
    return ack


def _code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return str(code) if isinstance(code, str | int) else None
