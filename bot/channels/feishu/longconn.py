"""The Feishu long connection: the official SDK's websocket client in a thread of its own.

`lark_oapi.ws.Client` finds its websocket with FEISHU_DOMAIN's `/callback/ws/endpoint`,
speaks Feishu's protobuf frames, pings and reconnects as the server configures it. It runs
its tasks on a module-level event loop (`lark_oapi.ws.client.loop`, whatever loop was current
when the module was imported) and `start()` blocks forever, so it cannot share Duban's loop:
here it runs in a thread with a loop of its own, set as that module-level loop (so one client
per process at a time, which `_ONE_CLIENT` ensures), and `stop()` ends it.

Each event frame is handed to Duban's loop (`run_coroutine_threadsafe`), where the channel
stores it in the inbox; the frame's acknowledgement is written only when that is done, with
the code the channel answered (200 taken, 4xx refused, 5xx Feishu should send it again). A
frame that cannot be read is refused in one rate-limited log line.

Importing this module imports the SDK (about 3 seconds and 100 MB: it loads every API's
models); the channel imports it in a worker thread when it starts.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import lark_oapi.ws.client as sdk_ws
from lark_oapi.core import log as sdk_log
from lark_oapi.core.enum import LogLevel
from lark_oapi.ws.const import HEADER_BIZ_RT, HEADER_MESSAGE_ID, HEADER_SEQ, HEADER_SUM, HEADER_TYPE
from lark_oapi.ws.enum import FrameType, MessageType
from lark_oapi.ws.pb.pbbp2_pb2 import Frame

from bot.web import RefusalLog

log = logging.getLogger(__name__)

Accept = Callable[[bytes], Coroutine[Any, Any, int]]  # on Duban's loop: the ack's code

CONNECT_WAIT = 10.0  # seconds start() waits for the first connection (then it goes on trying)
WATCH = 2.0  # seconds between looks at whether the SDK gave up reconnecting
RETRY_FIRST, RETRY_MAX = 1.0, 60.0  # seconds between our own connection attempts
GRACE = 3.0  # seconds stop() lets frames in hand finish (their acknowledgements written)
JOIN_TIMEOUT = 8.0
MAX_PARTS = 64  # the most frames one payload may be split into
_ONE_CLIENT = threading.Lock()
_URL_QUERY = re.compile(r"(wss?://[^\s?'\"]+)\?[^\s'\"]*")


class _QueryMask(logging.Filter):
    """Masks the query of websocket URLs in the SDK's log lines (it holds the connection's
    access key and ticket)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = _URL_QUERY.sub(r"\1?***", message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


def _quiet_sdk_logger() -> None:
    """The SDK's logger through Duban's logging only (it adds a stdout handler of its own),
    its websocket URLs masked."""
    sdk_log.logger.removeHandler(sdk_log.handler)
    if not any(isinstance(f, _QueryMask) for f in sdk_log.logger.filters):
        sdk_log.logger.addFilter(_QueryMask())


_quiet_sdk_logger()

# The loop the SDK made (or found) when it was imported: never used here (each connection
# runs on a loop of its own), closed at exit so that it is not left open.
_IMPORT_LOOP = sdk_ws.loop


@atexit.register
def _close_import_loop() -> None:
    loop = _IMPORT_LOOP
    if isinstance(loop, asyncio.AbstractEventLoop) and not loop.is_running():
        with contextlib.suppress(Exception):
            loop.close()


def _sdk_level() -> LogLevel:
    level = log.getEffectiveLevel()
    for candidate in (LogLevel.DEBUG, LogLevel.INFO, LogLevel.WARNING, LogLevel.ERROR):
        if level <= candidate.value:
            return candidate
    return LogLevel.CRITICAL


class _Client(sdk_ws.Client):
    """The SDK's client with frames handled by Duban: unreadable ones refused in one line,
    events handed to Duban's loop and acknowledged once it has stored them."""

    def __init__(self, owner: LongConnection, app_id: str, app_secret: str, domain: str) -> None:
        super().__init__(
            app_id, app_secret, log_level=_sdk_level(), domain=domain, auto_reconnect=True
        )
        self._owner = owner
        self.receiving: asyncio.Task[Any] | None = None
        self.inflight: set[asyncio.Task[Any]] = set()

    async def _receive_message_loop(self) -> None:
        self.receiving = asyncio.current_task()
        await super()._receive_message_loop()

    async def _handle_message(self, msg: bytes | str) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.inflight.add(task)
        refusals = self._owner.frame_refusals
        try:
            if not isinstance(msg, bytes):
                refusals.refused(400, "a text frame")
                return
            frame = Frame()
            try:
                frame.ParseFromString(msg)
            except Exception:  # whatever protobuf makes of foreign bytes
                refusals.refused(400, "an unreadable frame")
                return
            if frame.method == FrameType.CONTROL.value:
                await self._handle_control_frame(frame)
            elif frame.method == FrameType.DATA.value:
                await self._handle_data_frame(frame)
            else:
                refusals.refused(400, "a frame of unknown method")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one line, no traceback per frame
            refusals.failed(500, exc)
        finally:
            if task is not None:
                self.inflight.discard(task)

    async def _handle_data_frame(self, frame: Frame) -> None:
        headers = {header.key: header.value for header in frame.headers}
        try:
            parts = int(headers.get(HEADER_SUM, "1"))
            seq = int(headers.get(HEADER_SEQ, "0"))
        except ValueError:
            self._owner.frame_refusals.refused(400, "malformed frame headers")
            return
        if not (1 <= parts <= MAX_PARTS and 0 <= seq < parts):
            self._owner.frame_refusals.refused(400, "malformed frame headers")
            return
        payload: bytes | None = frame.payload
        if parts > 1:
            payload = self._combine(headers.get(HEADER_MESSAGE_ID, ""), parts, seq, frame.payload)
            if payload is None:
                return  # more parts to come
        if headers.get(HEADER_TYPE) != MessageType.EVENT.value:
            return  # as the SDK: only events are handled here
        started = time.monotonic()
        code = await self._owner.hand_over(payload or b"")
        took = frame.headers.add()
        took.key = HEADER_BIZ_RT
        took.value = str(int((time.monotonic() - started) * 1000))
        frame.payload = json.dumps({"code": code}).encode()
        await self._write_message(frame.SerializeToString())


class LongConnection:
    """The SDK's long connection in its own thread and loop, handing events to `accept` on
    the loop that called `start()`."""

    def __init__(
        self,
        app_id: str,
        app_secret: str,
        domain: str,
        accept: Accept,
        *,
        connect_wait: float = CONNECT_WAIT,
    ) -> None:
        self.app_id = app_id
        self._secret = app_secret
        self.domain = domain.rstrip("/")
        self._accept = accept
        self.connect_wait = connect_wait
        self.frame_refusals = RefusalLog(log, "Feishu frame")
        self._failures = RefusalLog(log, "Feishu long connection")
        self._main: asyncio.AbstractEventLoop | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._stop_requested = False
        self._ready: asyncio.Future[bool] | None = None
        self.connected = False
        self.connections = 0  # how many times it connected (reconnects included)

    # --- Duban's side ---------------------------------------------------------------------

    async def start(self) -> None:
        """Start the thread; return once connected, or after `connect_wait` seconds (it goes
        on trying in the background, and says so in the log)."""
        if self._thread is not None:
            raise RuntimeError("the Feishu long connection is already started")
        self._main = asyncio.get_running_loop()
        self._ready = self._main.create_future()
        self._thread = threading.Thread(
            target=self._run, name="feishu-long-connection", daemon=True
        )
        self._thread.start()
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), self.connect_wait)
        except TimeoutError:
            log.warning(
                "Feishu long connection not up after %.0f s; it keeps trying", self.connect_wait
            )

    async def stop(self) -> None:
        """Stop taking frames, let those in hand be acknowledged, disconnect, end the thread."""
        thread = self._thread
        if thread is None:
            return
        self._stop_requested = True
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # its loop is closed: the thread ended
                loop.call_soon_threadsafe(stopping.set)
        await asyncio.to_thread(thread.join, JOIN_TIMEOUT)
        if thread.is_alive():
            log.warning("the Feishu long connection did not stop within %.0f s", JOIN_TIMEOUT)
        self._thread = None

    async def hand_over(self, payload: bytes) -> int:
        """(On the SDK's loop.) Run `accept` on Duban's loop; the acknowledgement's code."""
        main = self._main
        assert main is not None
        try:
            future: concurrent.futures.Future[int] = asyncio.run_coroutine_threadsafe(
                self._accept(payload), main
            )
        except RuntimeError:  # Duban's loop is closed
            return 503
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            self.frame_refusals.failed(500, exc)
            return 500

    def _signal(self, up: bool) -> None:
        main, ready = self._main, self._ready
        if main is None or ready is None:
            return

        def settle() -> None:
            if not ready.done():
                ready.set_result(up)

        with contextlib.suppress(RuntimeError):
            main.call_soon_threadsafe(settle)

    # --- the thread -----------------------------------------------------------------------

    def _run(self) -> None:
        with _ONE_CLIENT:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            previous = sdk_ws.loop
            sdk_ws.loop = loop  # where the SDK creates its tasks
            self._stopping = asyncio.Event()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve())
            except Exception as exc:  # a bug: say so once, the thread ends
                log.error("the Feishu long connection failed: %s", type(exc).__name__)
            finally:
                self.connected = False
                self._signal(False)
                tasks = asyncio.all_tasks(loop)
                for task in tasks:
                    task.cancel()
                if tasks:
                    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()
                asyncio.set_event_loop(None)
                sdk_ws.loop = previous

    async def _serve(self) -> None:
        stopping = self._stopping
        assert stopping is not None
        if self._stop_requested:
            return
        client = _Client(self, self.app_id, self._secret, self.domain)
        delay = RETRY_FIRST
        try:
            while not stopping.is_set():
                if not await self._connect(client):
                    self._signal(False)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stopping.wait(), delay)
                    delay = min(delay * 2, RETRY_MAX)
                    continue
                delay = RETRY_FIRST
                self._signal(True)
                ping = asyncio.create_task(client._ping_loop())
                try:
                    await self._watch(client, stopping)
                finally:
                    ping.cancel()
        finally:
            await self._shutdown(client)

    async def _connect(self, client: _Client) -> bool:
        try:
            await client._connect()
        except Exception as exc:  # its type and code only: a URL may hold the ticket
            code = getattr(exc, "code", None)
            why = f"{type(exc).__name__}" + (f" {code}" if code is not None else "")
            self._failures.refused(0, f"connecting failed ({why}), retrying")
            return False
        self.connected = True
        self.connections += 1
        log.info("Feishu long connection up (app %s)", self.app_id)
        return True

    async def _watch(self, client: _Client, stopping: asyncio.Event) -> None:
        """Return when stopping, or when the SDK has given up reconnecting (its receive loop
        ended with no connection): then this thread connects again itself."""
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), WATCH)
            self.connected = client._conn is not None
            gone = client.receiving is None or client.receiving.done()
            if client._conn is None and gone:
                log.warning("Feishu long connection lost; connecting again")
                return

    async def _shutdown(self, client: _Client) -> None:
        """No new frames; frames in hand get GRACE seconds to be acknowledged; disconnect."""
        client._auto_reconnect = False
        if client.receiving is not None:
            client.receiving.cancel()
        if client.inflight:
            await asyncio.wait(set(client.inflight), timeout=GRACE)
        for task in list(client.inflight):
            task.cancel()
        with contextlib.suppress(Exception):
            await client._disconnect()
        self.connected = False
        log.info("Feishu long connection closed")
