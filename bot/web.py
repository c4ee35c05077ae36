"""The web app: health check plus the routes the channels bring (webhooks, callbacks)."""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Sequence

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route


def build_web_app(routes: Sequence[BaseRoute], *, status: dict[str, object]) -> Starlette:
    """A Starlette app with GET /healthz and the given routes."""

    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", **status})

    return Starlette(routes=[Route("/healthz", healthz, methods=["GET"]), *routes])


class EmbeddedServer(uvicorn.Server):
    """Uvicorn inside Duban's own event loop: Duban, not uvicorn, handles the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Leave signal handling to the caller."""
        yield
