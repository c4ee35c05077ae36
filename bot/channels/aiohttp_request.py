"""An aiohttp transport for python-telegram-bot: a drop-in for PTB's default ``HTTPXRequest``.

Why it exists: profiling showed PTB's httpx/httpcore transport spending about 1.5 ms of CPU on
every Bot API call on our 2-core machine, which caps how many messages the bot can send per
second.  aiohttp's HTTP/1.1 client (C-accelerated parser, cheap keep-alive pool) does the same
work for a fraction of that, so :class:`AiohttpRequest` implements PTB's
:class:`telegram.request.BaseRequest` contract on top of it::

    ApplicationBuilder().request(AiohttpRequest()).get_updates_request(AiohttpRequest(1))

What it sends: for plain calls an ``application/json`` body of
:attr:`RequestData.json_payload <telegram.request.RequestData.json_payload>` (the same
parameters ``HTTPXRequest`` form-encodes; the Bot API takes either, and for Chinese text JSON
costs a third of percent-encoding every character), and for uploads a ``multipart/form-data``
body laid out byte for byte like httpx's
(the same HTML5 escaping of names and file names, so Chinese file names reach Telegram as
UTF-8 and not percent-encoded as aiohttp's own ``FormData`` would send them).  Redirects are
not followed, any HTTP status is handed back to PTB (which turns error codes into
``TelegramError``), and like httpx it honours ``HTTP(S)_PROXY``/``ALL_PROXY``/``NO_PROXY``
unless ``trust_env=False``.

Timeouts map onto aiohttp as follows:

- ``connect_timeout``: aiohttp's ``connect`` (DNS, TCP and TLS of a new connection);
- ``read_timeout``: aiohttp's ``sock_read`` (at most this long between two reads of the
  response, counted from the end of the upload), as httpx's read timeout;
- ``pool_timeout``: how long a call waits for one of ``connection_pool_size`` connections; it
  raises the same ``TimedOut("Pool timeout: ...")`` as httpx;
- ``write_timeout``: accepted as the contract asks, but aiohttp has no per-write timeout, so
  it is **not enforced**: a peer that stops reading an upload is only noticed by the kernel's
  TCP retransmission timeout.  (Bodies of plain calls fit in the socket buffers anyway.)

Errors: every timeout becomes :class:`telegram.error.TimedOut`, every other aiohttp error a
:class:`telegram.error.NetworkError` named ``aiohttp.<ExceptionClass>: <message>``, as
``HTTPXRequest`` names httpx's.  Request and response bodies are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import urllib.request
from typing import IO, Final, TypeAlias

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.logging import get_logger
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

__all__ = ["AiohttpRequest"]

_LOGGER = get_logger(__name__, "AiohttpRequest")

_JSON_CONTENT_TYPE: Final = "application/json"
_POOL_TIMEOUT_MESSAGE: Final = (
    "Pool timeout: All connections in the connection pool are occupied. "
    "Request was *not* sent to Telegram. Consider adjusting the connection "
    "pool size or the pool timeout."
)
# httpx's (and the HTML5 spec's) escaping of multipart names and file names.
_FORM_ESCAPES: Final = {'"': "%22", "\\": "\\\\"} | {
    chr(c): f"%{c:02X}" for c in range(0x20) if c != 0x1B
}
_FORM_ESCAPE_RE: Final = re.compile("|".join(re.escape(c) for c in _FORM_ESCAPES))
_CACHE_LIMIT: Final = 256
_LARGE_BODY: Final = 2**20

_Timeout: TypeAlias = float | None


def _form_param(name: str, value: str) -> str:
    return f'{name}="{_FORM_ESCAPE_RE.sub(lambda m: _FORM_ESCAPES[m.group(0)], value)}"'


def _file_bytes(content: bytes | IO[bytes]) -> bytes:
    """The bytes of an upload; a file handle is read from its start, as httpx does."""
    if isinstance(content, bytes | bytearray | memoryview):
        return bytes(content)
    if hasattr(content, "seek"):
        with contextlib.suppress(OSError):  # io.UnsupportedOperation: a pipe or socket
            content.seek(0)
    return content.read()


def _multipart_body(request_data: RequestData) -> tuple[bytes, str]:
    """The multipart/form-data body and its content type, laid out as httpx lays them out."""
    boundary = os.urandom(16).hex()
    delimiter = f"--{boundary}\r\n".encode()
    parts: list[bytes] = []
    for name, value in request_data.json_parameters.items():
        header = f"Content-Disposition: form-data; {_form_param('name', name)}\r\n\r\n"
        parts += (delimiter, header.encode(), value.encode(), b"\r\n")
    for name, (filename, content, mimetype) in request_data.multipart_data.items():
        header = f"Content-Disposition: form-data; {_form_param('name', name)}"
        if filename:
            header += f"; {_form_param('filename', filename)}"
        if mimetype:
            header += f"\r\nContent-Type: {mimetype}"
        parts += (delimiter, f"{header}\r\n\r\n".encode(), _file_bytes(content), b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class AiohttpRequest(BaseRequest):
    """:class:`telegram.request.BaseRequest` implemented with an aiohttp keep-alive session.

    Args:
        connection_pool_size: the most connections open at once (aiohttp ``TCPConnector``
            ``limit``); further calls wait up to ``pool_timeout`` for one to come free.
        read_timeout: default seconds to wait for (each part of) the response; ``None``
            waits forever.  PTB adds the long-poll time to it for ``getUpdates``.
        write_timeout: default write timeout, kept for the contract but not enforced.
        connect_timeout: default seconds to open a new connection (DNS, TCP, TLS).
        pool_timeout: default seconds to wait for a free connection of the pool.
        proxy: an ``http://`` (or ``https://``) proxy URL for every request; SOCKS proxies
            are not supported by aiohttp.
        trust_env: when no ``proxy`` is given, take it from ``HTTPS_PROXY``/``HTTP_PROXY``/
            ``ALL_PROXY`` (honouring ``NO_PROXY``), as httpx does by default.
        keepalive_timeout: seconds an idle connection is kept open for reuse.

    The aiohttp session is created inside the running event loop by :meth:`initialize` (or
    by the first request); after :meth:`shutdown`, requests raise :exc:`RuntimeError` until
    :meth:`initialize` is called again.
    """

    __slots__ = (
        "_connect_timeout",
        "_connection_pool_size",
        "_default_timeout",
        "_env_proxies",
        "_keepalive_timeout",
        "_origin_proxies",
        "_pool_timeout",
        "_proxy",
        "_read_timeout",
        "_semaphore",
        "_session",
        "_shut_down",
        "_timeouts",
        "_trust_env",
        "_write_timeout",
    )

    def __init__(
        self,
        connection_pool_size: int = 8,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        proxy: str | None = None,
        trust_env: bool = True,
        keepalive_timeout: float = 15.0,
    ) -> None:
        if connection_pool_size < 1:
            raise ValueError("connection_pool_size must be at least 1")
        if proxy is not None:
            _check_proxy(proxy)
        self._connection_pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._proxy = proxy
        self._trust_env = trust_env
        self._keepalive_timeout = keepalive_timeout
        self._default_timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_read=read_timeout
        )
        # ClientTimeouts by (connect, read): built once for each combination seen, since
        # getUpdates passes the same non-default read timeout on every poll.
        self._timeouts: dict[tuple[_Timeout, _Timeout], aiohttp.ClientTimeout] = {
            (connect_timeout, read_timeout): self._default_timeout
        }
        self._session: aiohttp.ClientSession | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._shut_down = False
        self._env_proxies: dict[str, str] = {}
        self._origin_proxies: dict[str, str | None] = {}

    @property
    def read_timeout(self) -> float | None:
        """See :attr:`BaseRequest.read_timeout`: the default read timeout in seconds."""
        return self._read_timeout

    @property
    def connection_pool_size(self) -> int:
        """The most connections this request object opens at once."""
        return self._connection_pool_size

    def _build_session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._connection_pool_size,
            keepalive_timeout=self._keepalive_timeout,
        )
        self._semaphore = asyncio.Semaphore(self._connection_pool_size)
        self._env_proxies = (
            urllib.request.getproxies_environment()
            if self._trust_env and self._proxy is None
            else {}
        )
        self._origin_proxies = {}
        return aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": self.USER_AGENT},
            timeout=self._default_timeout,
            # Telegram sets no cookies; a dummy jar skips the cookie filtering per request.
            cookie_jar=aiohttp.DummyCookieJar(),
            # Decompress whatever the server chose to compress (responses are JSON).
            auto_decompress=True,
            raise_for_status=False,
            proxy=self._proxy,
            # aiohttp's own trust_env reads ~/.netrc and the environment on every request;
            # the environment's proxies are looked up once per origin instead (see _env_proxy).
            trust_env=False,
        )

    async def initialize(self) -> None:
        """See :meth:`BaseRequest.initialize`: opens the aiohttp session in this loop."""
        if self._session is None or self._session.closed:
            self._session = self._build_session()
        self._shut_down = False

    async def shutdown(self) -> None:
        """See :meth:`BaseRequest.shutdown`: closes the session; calling it again is fine."""
        session, self._session = self._session, None
        self._shut_down = True
        if session is None or session.closed:
            _LOGGER.debug("This AiohttpRequest is already shut down. Returning.")
            return
        await session.close()

    def _env_proxy(self, url: str) -> str | None:
        """The proxy the environment names for ``url``'s origin (cached per origin)."""
        scheme, _, rest = url.partition("://")
        origin = f"{scheme}://{rest.split('/', 1)[0]}"
        try:
            return self._origin_proxies[origin]
        except KeyError:
            pass
        proxy: str | None = None
        if not _no_proxy(rest.split("/", 1)[0], self._env_proxies.get("no", "")):
            proxy = self._env_proxies.get(scheme.lower()) or self._env_proxies.get("all")
            if proxy is not None:
                if "://" not in proxy:
                    proxy = f"http://{proxy}"
                _check_proxy(proxy)
        if len(self._origin_proxies) >= _CACHE_LIMIT:
            self._origin_proxies.clear()
        self._origin_proxies[origin] = proxy
        return proxy

    def _timeout_for(self, connect: _Timeout, read: _Timeout) -> aiohttp.ClientTimeout:
        key = (connect, read)
        timeout = self._timeouts.get(key)
        if timeout is None:
            if len(self._timeouts) >= _CACHE_LIMIT:
                self._timeouts.clear()
            timeout = aiohttp.ClientTimeout(total=None, connect=connect, sock_read=read)
            self._timeouts[key] = timeout
        return timeout

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """See :meth:`BaseRequest.do_request`."""
        session = self._session
        if session is None or session.closed:
            if self._shut_down:
                raise RuntimeError("This AiohttpRequest is not initialized!")
            # Used without initialize(), as HTTPXRequest allows: open the session now.
            session = self._session = self._build_session()
        semaphore = self._semaphore
        assert semaphore is not None

        if isinstance(read_timeout, DefaultValue):
            read_timeout = self._read_timeout
        if isinstance(connect_timeout, DefaultValue):
            connect_timeout = self._connect_timeout
        if isinstance(pool_timeout, DefaultValue):
            pool_timeout = self._pool_timeout
        # write_timeout is part of the contract but aiohttp cannot enforce it (module docs).
        timeout = (
            self._default_timeout
            if read_timeout == self._read_timeout and connect_timeout == self._connect_timeout
            else self._timeout_for(connect_timeout, read_timeout)
        )

        data: aiohttp.Payload | None = None
        if request_data is not None:
            if request_data.contains_files:
                body, content_type = _multipart_body(request_data)
            else:
                # RequestData.json_payload, but no body at all without parameters (getMe)
                parameters = request_data.json_parameters
                body = json.dumps(parameters).encode() if parameters else b""
                content_type = _JSON_CONTENT_TYPE
            if len(body) > _LARGE_BODY:
                # written in chunks that yield to the loop (aiohttp warns on big raw bytes)
                data = aiohttp.BytesIOPayload(io.BytesIO(body), content_type=content_type)
            elif body:  # no parameters at all (getMe): no body, as httpx sends it
                data = aiohttp.BytesPayload(body, content_type=content_type)
        proxy = self._env_proxy(url) if self._env_proxies else None

        if semaphore.locked():
            try:
                async with asyncio.timeout(pool_timeout):
                    await semaphore.acquire()
            except TimeoutError as err:
                raise TimedOut(message=_POOL_TIMEOUT_MESSAGE) from err
        else:
            await semaphore.acquire()
        try:
            async with session.request(
                method,
                url,
                data=data,
                timeout=timeout,
                allow_redirects=False,
                proxy=proxy,
            ) as response:
                return response.status, await response.read()
        except TimeoutError as err:
            # aiohttp's ConnectionTimeoutError and SocketTimeoutError are TimeoutErrors.
            raise TimedOut from err
        except aiohttp.ClientError as err:
            raise NetworkError(f"aiohttp.{err.__class__.__name__}: {err}") from err
        finally:
            semaphore.release()


def _no_proxy(netloc: str, no_proxy: str) -> bool:
    """Whether NO_PROXY (comma-separated hosts, domain suffixes or ``*``) exempts ``netloc``."""
    host_port = netloc.rpartition("@")[2].lower()
    host = host_port.rsplit(":", 1)[0] if not host_port.endswith("]") else host_port
    host = host.strip("[]")
    for entry in no_proxy.lower().split(","):
        entry = entry.strip().lstrip(".")
        if not entry:
            continue
        if entry == "*" or entry in (host, host_port) or host.endswith(f".{entry}"):
            return True
    return False


def _check_proxy(proxy: str) -> None:
    scheme = proxy.partition("://")[0].lower()
    if scheme not in ("http", "https"):
        raise ValueError(
            f"AiohttpRequest supports http:// and https:// proxies only, not {scheme}://; "
            "use telegram.request.HTTPXRequest for SOCKS proxies"
        )
