"""The board's web routes under /board, served by `duban run` beside the webhooks.

Every page needs a session (a cookie started by a one-time link from chat); without one the
answer is 401 and a short page saying how to get a link. The pages are plain server-rendered
HTML with no script at all; the handlers are synchronous and run in Starlette's thread pool,
each with its own read-only database session.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from bot.board import auth
from bot.board.auth import COOKIE, SESSION_TTL, Viewer
from bot.board.queries import BadFilter, Filters, load_item, load_wall, load_week, parse_id
from bot.board.rendering import Formats, render_page
from bot.clock import Clock, system_clock
from bot.i18n import Translator
from bot.services.digest import Digest
from bot.services.progress import StatusRules
from bot.settings import Settings
from bot.web import RefusalLog

log = logging.getLogger(__name__)

# No script, no frames, nothing from elsewhere; the style sheet is inline in each page.
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}

Page = Callable[[Session, Viewer, Formats], Response]


class Board:
    """The board's pages, bound to the database, the settings and the clock."""

    def __init__(self, engine: Engine, settings: Settings, *, clock: Clock = system_clock) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.t = Translator(settings.locale)
        self.rules = StatusRules.from_settings(settings)
        base = settings.web_base_url or ""
        # Behind a proxy that serves Duban under a path (https://host/duban), links carry it.
        self.root = urlsplit(base).path.rstrip("/")
        self.secure = base.startswith("https://")
        self.refusals = RefusalLog(log, "board sign-in")

    def routes(self) -> list[BaseRoute]:
        """The board's routes, to mount in the web app."""
        return [
            Route("/board", self.wall, methods=["GET"]),
            Route("/board/item/{item_id}", self.item, methods=["GET"]),
            Route("/board/week", self.week, methods=["GET"]),
            Route("/board/chart.png", self.chart, methods=["GET"]),
            Route("/board/in/{token}", self.sign_in_page, methods=["GET"]),
            Route("/board/in/{token}", self.sign_in, methods=["POST"]),
            Route("/board/out", self.sign_out, methods=["POST"]),
            Route("/board/{rest:path}", self.elsewhere, methods=["GET", "POST"]),
        ]

    # --- plumbing ------------------------------------------------------------------------

    def _formats(self) -> Formats:
        return Formats(self.t, self.clock(), self.settings.tz, self.root)

    def _html(
        self, name: str, formats: Formats, *, status: int = 200, **context: Any
    ) -> HTMLResponse:
        context.setdefault("viewer", None)
        context.setdefault("nav", None)
        body = render_page(name, formats, **context)
        return HTMLResponse(body, status, headers=HEADERS)

    def _message(
        self,
        formats: Formats,
        status: int,
        key: str,
        *,
        viewer: Viewer | None = None,
        **params: Any,
    ) -> HTMLResponse:
        """A short page: a title and a line (board.<key>.title, board.<key>.text)."""
        return self._html(
            "message",
            formats,
            status=status,
            viewer=viewer,
            title=self.t(f"board.{key}.title"),
            text=self.t(f"board.{key}.text", **params),
        )

    def _page(self, request: Request, page: Page) -> Response:
        """Run a page for the signed-in viewer; 401 without a live session."""
        formats = self._formats()
        with Session(self.engine, expire_on_commit=False) as session:
            viewer = auth.signed_in(session, request.cookies.get(COOKIE), now=formats.now)
            if viewer is None:
                return self._message(formats, 401, "auth")
            try:
                return page(session, viewer, formats)
            except BadFilter as bad:
                what = self.t(f"board.filter.{bad.name}")
                return self._message(formats, 400, "bad_filter", viewer=viewer, name=what)

    # --- pages ---------------------------------------------------------------------------

    def wall(self, request: Request) -> Response:
        """Every active plan's items, red and amber first, with filters and counts."""

        def page(session: Session, viewer: Viewer, formats: Formats) -> Response:
            filters = Filters.from_query(request.query_params)
            wall = load_wall(
                session, viewer, filters, now=formats.now, tz=self.settings.tz, rules=self.rules
            )
            return self._html("wall", formats, viewer=viewer, nav="wall", wall=wall, f=filters)

        return self._page(request, page)

    def item(self, request: Request) -> Response:
        """One item: where it stands, its targets, its history and the reminders sent."""
        item_id = parse_id(request.path_params["item_id"])

        def page(session: Session, viewer: Viewer, formats: Formats) -> Response:
            found = None
            if item_id is not None:
                found = load_item(
                    session, viewer, item_id, now=formats.now, tz=self.settings.tz, rules=self.rules
                )
            if found is None:  # no such item, or not the viewer's: the same answer
                return self._message(formats, 404, "not_found", viewer=viewer)
            return self._html("item", formats, viewer=viewer, nav="wall", page=found)

        return self._page(request, page)

    def week(self, request: Request) -> Response:
        """This week's changes and the digest's chart."""

        def page(session: Session, viewer: Viewer, formats: Formats) -> Response:
            weeks = load_week(
                session, viewer, now=formats.now, tz=self.settings.tz, rules=self.rules
            )
            return self._html("week", formats, viewer=viewer, nav="week", weeks=weeks)

        return self._page(request, page)

    def chart(self, request: Request) -> Response:
        """The digest's progress chart of one plan (?plan=ID), as the viewer may see it."""

        def page(session: Session, viewer: Viewer, formats: Formats) -> Response:
            plan = parse_id(request.query_params.get("plan", ""))
            if plan is None:
                raise BadFilter("plan")
            weeks = load_week(
                session,
                viewer,
                now=formats.now,
                tz=self.settings.tz,
                rules=self.rules,
                plan_id=plan,
            )
            if not weeks:
                return self._message(formats, 404, "not_found", viewer=viewer)
            png = _chart_png(weeks[0].digest, self.settings.locale)
            return Response(png, media_type="image/png", headers=HEADERS)

        return self._page(request, page)

    def elsewhere(self, request: Request) -> Response:
        """Any other address under /board: the wall for /board/, else not found (401 first)."""
        if request.path_params["rest"] == "" and request.method == "GET":
            return self.wall(request)
        return self._page(
            request,
            lambda _s, viewer, formats: self._message(formats, 404, "not_found", viewer=viewer),
        )

    # --- signing in and out --------------------------------------------------------------

    def sign_in_page(self, request: Request) -> Response:
        """A link from chat: a button that signs in (a link preview fetching the page spends
        nothing; only the button's POST does)."""
        formats = self._formats()
        with Session(self.engine) as session:
            holder = auth.link_holder(session, request.path_params["token"], now=formats.now)
        if holder is None:
            self.refusals.refused(401, "link unknown, spent or expired")
            return self._message(formats, 401, "link_dead")
        return self._html("signin", formats, holder=holder)

    def sign_in(self, request: Request) -> Response:
        """Spend the link, start a session (the cookie) and go to the wall."""
        formats = self._formats()
        with Session(self.engine) as session:
            started = auth.consume_link(session, request.path_params["token"], now=formats.now)
            session.commit()
        if started is None:
            self.refusals.refused(401, "link unknown, spent or expired")
            return self._message(formats, 401, "link_dead")
        log.info("board: contact %s signed in", started.contact_id)
        response = RedirectResponse(f"{self.root}/board", 303, headers=HEADERS)
        response.set_cookie(
            COOKIE,
            started.token,
            max_age=int(SESSION_TTL.total_seconds()),
            path=f"{self.root}/board",
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )
        return response

    def sign_out(self, request: Request) -> Response:
        """End the session and forget the cookie."""
        formats = self._formats()
        with Session(self.engine) as session:
            auth.sign_out(session, request.cookies.get(COOKIE), now=formats.now)
            session.commit()
        response = self._message(formats, 200, "signed_out")
        response.delete_cookie(
            COOKIE, path=f"{self.root}/board", secure=self.secure, httponly=True, samesite="lax"
        )
        return response


def _chart_png(digest: Digest, locale: str) -> bytes:
    """The digest's chart as PNG bytes (drawn into a temporary file, then read)."""
    from bot.services.sending import write_digest_chart  # matplotlib: only when drawing

    with tempfile.TemporaryDirectory(prefix="duban-board-") as folder:
        path = write_digest_chart(digest, Path(folder) / "chart.png", locale)
        return path.read_bytes()


def board_routes(
    engine: Engine, settings: Settings, *, clock: Clock = system_clock
) -> list[BaseRoute]:
    """The board's routes for the web app of `duban run`."""
    return Board(engine, settings, clock=clock).routes()
