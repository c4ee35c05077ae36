"""The shared base of the fake platform servers in this package.

A fake (Telegram, WeCom; DingTalk and Feishu to come) subclasses :class:`FakeServer`, registers
its endpoints and says how its errors look.  The base gives it:

- real HTTP (Starlette on uvicorn, h11) on 127.0.0.1 and a free port, served from a background
  thread with its own event loop, so clients in any thread or process can call it:
  ``start()``/``stop()`` or ``with``, ``url``, ``port``.
- one dispatcher for every call: it counts ``stats[endpoint]``, applies the latency and the next
  injected fault, runs the handler (a plain function runs under the fake's lock, a coroutine
  function on its own), answers a :class:`FakeApiError` the platform's way (counted as
  ``stats["<code>"]``), an HTTP fault or any other non-2xx Response (``stats["http:<status>"]``)
  and a bug of the fake (a 500, kept in ``internal_errors``); then records the call in
  ``requests`` (:class:`ApiCall`) and wakes the waiters.
- waiting: ``wait_until(predicate)``/``await_until`` (re-checked after every call and every
  delivery), ``wait_for_requests(endpoint, count)``/``await_requests`` (answered calls), and
  ``messages_to(to)``/``wait_for_messages(to, count)``/``await_messages`` over what the fake
  delivered with ``_deliver(to, message)``.
- faults, by endpoint name (unknown names raise ValueError): ``http_error_next(endpoint,
  status=502, count=1)`` (an HTML gateway page), ``delay_next(endpoint, seconds, count=1)``,
  ``latency(seconds)`` for every call, ``clear_faults()``.  A fake's own ``fail_next`` builds its
  platform error and hands it to ``_inject_error(endpoint, make_error, count)`` (count None: every
  call until ``clear_faults``).  Queued faults of an endpoint are taken in order, one per call.
- files: ``serve_file(path, file)`` serves a :class:`FilePart` at a URL path (GET, dispatched as
  endpoint ``"download"``, so faults, stats and records apply; unknown paths go to
  ``_file_not_found``); ``file_response(file)`` answers a file from an API endpoint (e.g. WeCom
  ``media/get``); ``parse_multipart`` splits an upload into fields and files.
- helpers: :class:`TokenBucket` and :class:`SlidingWindow` for rate limits, ``dumps``,
  ``http_error_response``, ``json_response``.
- access tokens: a fake whose platform issues them subclasses :class:`TokenServer` instead;
  its token endpoint calls ``_issue_token(make)``, its calls look their token up in
  ``_tokens`` (token -> when it expires, ``time.monotonic``); it has ``token_ttl``,
  ``current_token`` and ``expire_tokens()``, and its ``reset`` calls ``_forget_tokens()``
  when tokens should not stay valid.

A subclass sets ``label`` and ``thread_name``, optionally ``ok_code`` (the errcode recorded for a
successful call, e.g. 0) and ``json_media_type``; calls ``super().__init__(host=, port=)`` and
then ``self._endpoint(name, handler, methods)`` for each endpoint; returns its routes from
``_routes()`` (``self._api_route(pattern, endpoint_of)`` makes a dispatched route); and may
override ``_canonical_endpoint`` (spellings of endpoint names), ``_unknown``, ``_wrong_method``,
``_internal_error``, ``_file_not_found`` and ``_on_stop`` (run in the server's loop).  ``reset()``
forgets the records, deliveries, stats, faults and served files; a subclass extends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http
import inspect
import json
import math
import re
import socket
import threading
import time
import urllib.parse
from collections import Counter, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

JSONDict = dict[str, Any]
M = TypeVar("M")

DOWNLOAD = "download"
"""The endpoint name of the files served with :meth:`FakeServer.serve_file`."""


class FakeApiError(Exception):
    """An error answer of a platform's API; each fake's subclass gives its wire form."""

    def __init__(self, code: int, message: str, status: int = 200) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def payload(self) -> JSONDict:
        """The JSON body of the answer."""
        raise NotImplementedError


@dataclass(frozen=True)
class FilePart:
    """A file: one part of a multipart upload, or one a fake serves."""

    field: str
    filename: str
    content_type: str
    data: bytes = dataclasses.field(repr=False)

    @property
    def size(self) -> int:
        """The file's size in bytes."""
        return len(self.data)


@dataclass
class ApiCall:
    """One HTTP call as the fake saw it, faults and errors included."""

    path: str
    """The endpoint as the fake names it: ``sendMessage``, ``message/send``, ``download``."""
    method: str
    query: dict[str, str]
    body: Any
    """The JSON body, or what the fake decoded from the request (None when neither)."""
    errcode: int | None
    """The platform error code answered (the fake's ``ok_code`` on success; None for HTTP)."""
    status: int
    at: float = field(default_factory=time.monotonic)


@dataclass
class Incoming:
    """A call as a handler sees it."""

    endpoint: str
    method: str
    path: str
    """The URL path, percent-decoded, without the leading ``/``."""
    query: dict[str, str]
    headers: Headers
    body: bytes
    path_params: dict[str, Any]
    record: ApiCall
    """What ``requests`` will keep; a handler may set ``record.body`` to what it decoded."""

    @property
    def content_type(self) -> str:
        """The Content-Type header ('' when missing)."""
        return self.headers.get("content-type", "")

    def json_or_none(self) -> Any:
        """The body as JSON (whatever the Content-Type), or None."""
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None

    def multipart(self) -> tuple[dict[str, str], dict[str, FilePart]]:
        """The multipart/form-data body as (fields, files); ValueError when it is not one."""
        if not self.content_type.startswith("multipart/form-data"):
            raise ValueError("not a multipart/form-data body")
        return parse_multipart(self.body, self.content_type)


@dataclass(frozen=True)
class _Fault:
    delay: float = 0.0
    status: int | None = None
    error: Callable[[], FakeApiError] | None = None


@dataclass(frozen=True)
class _Endpoint:
    handler: Callable[[Incoming], Any]
    methods: frozenset[str]
    is_async: bool


class TokenBucket:
    """A token bucket: ``rate`` calls a second, bursts up to ``max(rate, 1)``."""

    __slots__ = ("capacity", "last", "rate", "tokens")

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = self.tokens = max(1.0, rate)
        self.last = time.monotonic()

    def take(self, now: float) -> int:
        """Take one token; 0 when allowed, else the whole seconds to wait."""
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0
        return max(1, math.ceil((1 - self.tokens) / self.rate))


@dataclass
class SlidingWindow:
    """Timestamps of recent events, for an n-per-window limit."""

    events: deque[float] = field(default_factory=deque)

    def count(self, now: float, window: float) -> int:
        """How many events happened within ``window`` seconds before ``now``."""
        while self.events and now - self.events[0] >= window:
            self.events.popleft()
        return len(self.events)

    def take(self, now: float, window: float, limit: float) -> bool:
        """Record an event at ``now`` unless ``limit`` events happened within ``window``
        seconds before it; whether it was recorded."""
        if self.count(now, window) >= limit:
            return False
        self.events.append(now)
        return True


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def http_error_response(status: int) -> Response:
    """An HTML error page, as a gateway or a web server sends it."""
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    html = f"<html><body><h1>{status} {reason}</h1></body></html>"
    return Response(html, status, media_type="text/html")


def file_response(file: FilePart, headers: dict[str, str] | None = None) -> Response:
    """The file as a download (Content-Disposition with its name), plus ``headers``."""
    fallback = file.filename.encode("ascii", "replace").decode().replace('"', "_")
    quoted = urllib.parse.quote(file.filename)
    disposition = f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quoted}"
    return Response(
        file.data,
        media_type=file.content_type,
        headers={"Content-Disposition": disposition, **(headers or {})},
    )


_FORM_ESCAPE = re.compile(r"\\\\|%([01][0-9A-Fa-f]|22)")
_DISPOSITION = re.compile(r'(\w+)\*?=(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))')


def _unescape_form(value: str) -> str:
    """Undo the HTML5 escaping of multipart header parameters (httpx, urllib3)."""
    return _FORM_ESCAPE.sub(
        lambda m: "\\" if m.group(1) is None else chr(int(m.group(1), 16)), value
    )


def parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, str], dict[str, FilePart]]:
    """Split a multipart/form-data body (as httpx, requests and aiohttp write it) into its
    fields and its files (parts with a filename); ValueError when the boundary is missing."""
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        raise ValueError("multipart boundary is missing")
    delimiter = b"--" + m.group(1).encode("latin-1")
    fields: dict[str, str] = {}
    files: dict[str, FilePart] = {}
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        if content.endswith(b"\r\n"):
            content = content[:-2]
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            if key.strip():
                headers[key.strip().lower()] = value.strip()
        disposition = {
            k.lower(): _unescape_form(quoted if quoted else bare)
            for k, quoted, bare in _DISPOSITION.findall(headers.get("content-disposition", ""))
        }
        name = disposition.get("name")
        if name is None:
            continue
        if "filename" in disposition:
            content_type_of_part = headers.get("content-type", "application/octet-stream")
            files[name] = FilePart(name, disposition["filename"], content_type_of_part, content)
        else:
            fields[name] = content.decode("utf-8", "replace")
    return fields, files


def _summary(message: Any) -> Any:
    return getattr(message, "text", message)


class FakeServer(Generic[M]):
    """A fake platform API server; see the module docstring.  ``M`` is its message record."""

    label = "fake"
    """The platform's name in messages."""
    thread_name = "fake-server"
    ok_code: int | None = None
    """The ``errcode`` recorded for a call that succeeded."""
    json_media_type = "application/json"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._port = port
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self._endpoints: dict[str, _Endpoint] = {}
        self._endpoint(DOWNLOAD, self._download, methods=("GET",))
        FakeServer.reset(self)

    # ------------------------------------------------------------------ for subclasses

    def _endpoint(
        self,
        name: str,
        handler: Callable[[Incoming], Any],
        methods: tuple[str, ...] = ("GET", "POST"),
    ) -> None:
        """Register an endpoint: ``handler(call)`` returns a Response or a JSON-able value."""
        self._endpoints[name] = _Endpoint(
            handler, frozenset(methods), inspect.iscoroutinefunction(handler)
        )

    def _routes(self) -> list[BaseRoute]:
        """The fake's HTTP routes (the served files' route is added after them)."""
        raise NotImplementedError

    def _api_route(self, pattern: str, endpoint_of: Callable[[Request], str]) -> Route:
        """A route whose calls are dispatched to the endpoint ``endpoint_of(request)`` names."""

        async def endpoint(request: Request) -> Response:
            name = endpoint_of(request)
            entry = self._endpoints.get(name) if name != DOWNLOAD else None
            return await self._dispatch(request, name, entry)

        return Route(pattern, endpoint, methods=["GET", "POST"])

    def _canonical_endpoint(self, name: str) -> str:
        """The registered name for a spelling a test may use in a fault."""
        return name

    def _unknown(self, call: Incoming) -> Response:
        """The answer for an endpoint the fake does not have (may raise FakeApiError)."""
        return http_error_response(404)

    def _wrong_method(self, call: Incoming) -> Response:
        """The answer for an HTTP method the endpoint does not take (may raise FakeApiError)."""
        return http_error_response(405)

    def _internal_error(self, exc: Exception) -> FakeApiError | None:
        """The platform error answering a bug of the fake; None: a plain-text HTTP 500."""
        return None

    def _file_not_found(self, call: Incoming) -> Response:
        """The answer for a download of a file that is not served."""
        return Response("Not Found", 404, media_type="text/plain")

    def _on_stop(self) -> None:
        """Run in the server's loop when it is told to stop (e.g. to end long polls)."""

    def _call_soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` in the server's loop (thread-safe; nothing when not running)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed meanwhile
                loop.call_soon_threadsafe(callback)

    def _deliver(self, to: Hashable, message: M) -> None:
        """Record that ``to`` got ``message`` (for messages_to and wait_for_messages)."""
        with self._lock:
            self._inbox.setdefault(to, []).append(message)
            self._changed.notify_all()

    def json_response(self, payload: Any, status: int = 200) -> Response:
        """A JSON answer with the platform's Content-Type."""
        return Response(dumps(payload), status, media_type=self.json_media_type)

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """The server's root URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self._port}"

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return self._port

    def start(self) -> Self:
        """Bind a port and serve from a background thread; returns once it accepts requests."""
        if self._thread is not None:
            raise RuntimeError(f"{type(self).__name__} is already running")
        # proto=IPPROTO_TCP lets asyncio set TCP_NODELAY on accepted connections; without it
        # every response waits ~40 ms for the client's delayed ACK (Nagle).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self.host, self._port))
        sock.listen(1024)
        self._port = sock.getsockname()[1]
        files = Route("/{path:path}", self._download_route, methods=["GET"])
        config = uvicorn.Config(
            Starlette(routes=[*self._routes(), files]),
            loop="asyncio",
            http="h11",
            ws="none",
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=2,
            backlog=1024,
        )
        server = self._server = uvicorn.Server(config)
        loop = self._loop = asyncio.new_event_loop()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                loop.run_until_complete(self._serve(server, sock))
            except BaseException as exc:  # reported by start()
                failure.append(exc)
            finally:
                with contextlib.suppress(Exception):
                    loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        thread = self._thread = threading.Thread(target=run, name=self.thread_name, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.001)
        if not server.started:
            self.stop()
            sock.close()
            raise RuntimeError(f"{type(self).__name__} failed to start: {failure!r}")
        return self

    @staticmethod
    async def _serve(server: uvicorn.Server, sock: socket.socket) -> None:
        await server.serve(sockets=[sock])
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def stop(self) -> None:
        """Stop serving and join the thread (a second call does nothing)."""
        thread, server = self._thread, self._server
        if thread is None:
            return
        if server is not None:

            def shutdown() -> None:
                self._on_stop()
                server.should_exit = True

            self._call_soon(shutdown)
        thread.join(10)
        self._thread = self._loop = self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget the recorded calls, deliveries, stats, internal errors, faults and files."""
        with self._lock:
            self.requests: list[ApiCall] = []
            self.stats: Counter[str] = Counter()
            self.internal_errors: list[Exception] = []
            self._inbox: dict[Hashable, list[M]] = {}
            self._served: dict[str, FilePart] = {}
            self._faults: dict[str, deque[_Fault]] = {}
            self._always: dict[str, _Fault] = {}
            self._latency = 0.0

    # ------------------------------------------------------------------ waiting

    def messages_to(self, to: Hashable) -> list[M]:
        """The messages delivered to ``to``, in order."""
        with self._lock:
            return list(self._inbox.get(to, ()))

    def wait_for_messages(self, to: Hashable, count: int = 1, timeout: float = 5.0) -> list[M]:
        """Block until at least ``count`` messages were delivered to ``to``; return them all."""
        try:
            self.wait_until(lambda s: len(s._inbox.get(to, ())) >= count, timeout)
        except TimeoutError:
            got = self.messages_to(to)
            raise TimeoutError(
                f"expected {count} message(s) to {to!r} within {timeout}s, "
                f"got {len(got)}: {[_summary(m) for m in got]!r}"
            ) from None
        return self.messages_to(to)

    async def await_messages(
        self,
        to: Hashable,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109 - handed to the blocking wait
    ) -> list[M]:
        """Async wrapper of :meth:`wait_for_messages` (runs it in a worker thread)."""
        return await asyncio.to_thread(self.wait_for_messages, to, count, timeout)

    def wait_for_requests(
        self, endpoint: str, count: int = 1, timeout: float = 5.0
    ) -> list[ApiCall]:
        """Block until at least ``count`` calls of ``endpoint`` were answered; return them."""
        key = self._endpoint_name(endpoint)

        def answered(s: Self) -> list[ApiCall]:
            return [r for r in s.requests if r.path == key]

        self.wait_until(lambda s: len(answered(s)) >= count, timeout)
        with self._lock:
            return answered(self)

    async def await_requests(
        self,
        endpoint: str,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109 - handed to the blocking wait
    ) -> list[ApiCall]:
        """Async wrapper of :meth:`wait_for_requests`."""
        return await asyncio.to_thread(self.wait_for_requests, endpoint, count, timeout)

    def wait_until(self, predicate: Callable[[Self], bool], timeout: float = 5.0) -> None:
        """Block until ``predicate(fake)`` is true (re-checked after every call)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"condition not met within {timeout}s")
                self._changed.wait(remaining)

    async def await_until(
        self,
        predicate: Callable[[Self], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - handed to the blocking wait
    ) -> None:
        """Async wrapper of :meth:`wait_until`."""
        await asyncio.to_thread(self.wait_until, predicate, timeout)

    # ------------------------------------------------------------------ faults

    def _endpoint_name(self, name: str) -> str:
        key = self._canonical_endpoint(name)
        if key not in self._endpoints:
            raise ValueError(
                f"unknown {self.label} endpoint {name!r}; expected one of {sorted(self._endpoints)}"
            )
        return key

    def _inject(self, endpoint: str, fault: _Fault, count: int | None) -> None:
        key = self._endpoint_name(endpoint)
        with self._lock:
            if count is None:
                self._always[key] = fault
            else:
                self._faults.setdefault(key, deque()).extend([fault] * count)

    def _inject_error(
        self, endpoint: str, make_error: Callable[[], FakeApiError], count: int | None = 1
    ) -> None:
        """The next ``count`` calls of ``endpoint`` (every call when None) raise the error."""
        self._inject(endpoint, _Fault(error=make_error), count)

    def http_error_next(self, endpoint: str, status: int = 502, count: int = 1) -> None:
        """The next ``count`` calls of ``endpoint`` get HTTP ``status`` with an HTML page."""
        self._inject(endpoint, _Fault(status=status), count)

    def delay_next(self, endpoint: str, seconds: float, count: int = 1) -> None:
        """The next ``count`` calls of ``endpoint`` are answered ``seconds`` late."""
        self._inject(endpoint, _Fault(delay=seconds), count)

    def latency(self, seconds: float) -> None:
        """Delay every answer by ``seconds`` (0 turns it off)."""
        with self._lock:
            self._latency = max(0.0, seconds)

    def clear_faults(self) -> None:
        """Drop every pending and permanent fault."""
        with self._lock:
            self._faults = {}
            self._always = {}

    def _take_fault(self, key: str) -> _Fault | None:
        queue = self._faults.get(key)
        if queue:
            return queue.popleft()
        return self._always.get(key)

    # ------------------------------------------------------------------ files

    def serve_file(self, path: str, file: FilePart) -> str:
        """Serve ``file`` at ``GET /<path>`` (until reset); returns its URL."""
        path = path.lstrip("/")
        with self._lock:
            self._served[path] = file
        return f"{self.url}/{urllib.parse.quote(path)}"

    def _download(self, call: Incoming) -> Response:
        file = self._served.get(call.path)
        return file_response(file) if file is not None else self._file_not_found(call)

    async def _download_route(self, request: Request) -> Response:
        return await self._dispatch(request, DOWNLOAD, self._endpoints[DOWNLOAD])

    # ------------------------------------------------------------------ dispatch

    async def _dispatch(self, request: Request, name: str, entry: _Endpoint | None) -> Response:
        raw_query = request.scope.get("query_string", b"").decode("utf-8", "replace")
        query = dict(urllib.parse.parse_qsl(raw_query, keep_blank_values=True))
        record = ApiCall(name, request.method, query, None, None, 200)
        with self._lock:
            self.stats[name] += 1
            fault = self._take_fault(name) if entry is not None else None
            delay = self._latency + (fault.delay if fault is not None else 0.0)
        try:
            if delay:
                await asyncio.sleep(delay)
            call = Incoming(
                name,
                request.method,
                request.scope["path"].lstrip("/"),
                query,
                request.headers,
                await request.body(),
                dict(request.path_params),
                record,
            )
            response = await self._answer(call, entry, fault)
        except Exception as exc:  # a bug in the fake: answer 500, keep it
            with self._lock:
                self.internal_errors.append(exc)
            error = self._internal_error(exc)
            response = (
                self._error_answer(error, record)
                if error is not None
                else Response(f"fake {self.label} bug: {exc!r}", 500, media_type="text/plain")
            )
        with self._lock:
            if response.status_code >= 400 and record.errcode is None:
                self.stats[f"http:{response.status_code}"] += 1
            record.status = response.status_code
            self.requests.append(record)
            self._changed.notify_all()
        return response

    async def _answer(
        self, call: Incoming, entry: _Endpoint | None, fault: _Fault | None
    ) -> Response:
        try:
            if fault is not None and fault.status is not None:
                return http_error_response(fault.status)
            if entry is None:
                return self._unknown(call)
            if call.method not in entry.methods:
                return self._wrong_method(call)
            if call.body and not call.content_type.startswith("multipart/"):
                call.record.body = call.json_or_none()
            if fault is not None and fault.error is not None:
                raise fault.error()
            if entry.is_async:
                result = await entry.handler(call)
            else:
                with self._lock:
                    result = entry.handler(call)
        except FakeApiError as exc:
            return self._error_answer(exc, call.record)
        if isinstance(result, Response):
            return result
        call.record.errcode = self.ok_code
        return self.json_response(result)

    def _error_answer(self, error: FakeApiError, record: ApiCall) -> Response:
        record.errcode = error.code
        with self._lock:
            self.stats[str(error.code)] += 1
        return self.json_response(error.payload(), error.status)


class TokenServer(FakeServer[M]):
    """A fake server whose platform issues access tokens: one current token at a time, each
    valid ``token_ttl`` seconds (settable) from its issue."""

    def __init__(self, *, token_ttl: int = 7200, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host=host, port=port)
        self.token_ttl = token_ttl
        self._tokens: dict[str, float] = {}  # every issued token -> when it expires
        self._current_token: str | None = None

    @property
    def current_token(self) -> str | None:
        """The token handed out now (None before the first, or once expired)."""
        with self._lock:
            token = self._current_token
            if token is None or self._tokens[token] <= time.monotonic():
                return None
            return token

    def expire_tokens(self) -> None:
        """Every issued token is expired from now on; the next fetch gets a new one."""
        with self._lock:
            self._tokens = dict.fromkeys(self._tokens, -math.inf)
            self._current_token = None

    def _forget_tokens(self) -> None:
        """No issued token is known any more (each is answered as invalid)."""
        self._tokens = {}
        self._current_token = None

    def _issue_token(
        self, make: Callable[[], str], *, renew_within: float = 0.0
    ) -> tuple[str, float, bool]:
        """The current token, or a new one from ``make()`` when there is none, it has expired
        or it has less than ``renew_within`` seconds left; returns the token, the seconds it
        has left and whether it is new."""
        now = time.monotonic()
        token = self._current_token
        new = (
            token is None or self._tokens[token] <= now or self._tokens[token] - now < renew_within
        )
        if new:
            token = make()
            self._tokens[token] = now + self.token_ttl
            self._current_token = token
        assert token is not None
        return token, self._tokens[token] - now, new
