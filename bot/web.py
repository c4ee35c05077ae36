"""The web app: health check plus the routes the channels bring (webhooks, callbacks).

Also what those routes share to stay cheap under hostile requests: a body read with a hard
cap (Content-Length or not) and a refusal log of one line per kind at most once a minute.
"""

from __future__ import annotations

import contextlib
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Generator, Sequence
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

REFUSAL_INTERVAL = 60.0  # seconds between two log lines of one kind of refusal


def build_web_app(
    routes: Sequence[BaseRoute],
    *,
    status: dict[str, object],
    health: Callable[[], Awaitable[str | None]] | None = None,
) -> Starlette:
    """A Starlette app with GET /healthz and the given routes; /healthz answers 503 with the
    reason while `health` gives one (the database is away, or start-up is not done)."""

    async def healthz(_request: Request) -> JSONResponse:
        reason = await health() if health is not None else None
        if reason is not None:
            return JSONResponse({"status": "unavailable", "reason": reason, **status}, 503)
        return JSONResponse({"status": "ok", **status})

    return Starlette(routes=[Route("/healthz", healthz, methods=["GET"]), *routes])


class EmbeddedServer(uvicorn.Server):
    """Uvicorn inside Duban's own event loop: Duban, not uvicorn, handles the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Leave signal handling to the caller."""
        yield


class RequestRefused(Exception):
    """A request answered with a 4xx before any work; `reason` is a fixed phrase for the log."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it passes `limit` bytes, announced or not."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise RequestRefused(413, "body too large")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:  # a chunked body has no Content-Length: stop reading here
                raise RequestRefused(413, "body too large")
            chunks.append(chunk)
    except ClientDisconnect:
        raise RequestRefused(400, "client went away") from None
    return b"".join(chunks)


class RefusalLog:
    """Logs refused requests: one WARNING line per kind at most once a minute, no traceback.

    A kind is a fixed phrase from the code ("bad signature"), never request data, so the
    lines carry no body and no secret and the kinds are few. The lines held back are
    counted in the next line of the same kind.
    """

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        interval: float = REFUSAL_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._what = what
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def refused(self, status: int, kind: str) -> None:
        """Note one refusal answered with `status`; log it unless its kind was logged lately."""
        key = f"{status} {kind}"
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._held[key] = self._held.get(key, 0) + 1
            return
        self._last[key] = now
        held = self._held.pop(key, 0)
        more = f" (and {held} more since the last such line)" if held else ""
        self._logger.warning("%s refused (%s): %s%s", self._what, status, kind, more)

    def failed(self, status: int, exc: BaseException) -> None:
        """Note a request that failed unexpectedly: its exception type and where, no traceback."""
        innermost = traceback.extract_tb(exc.__traceback__)[-1:]
        where = "".join(f" at {Path(f.filename).name}:{f.lineno}" for f in innermost)
        self.refused(status, f"unexpected {type(exc).__name__}{where}")
