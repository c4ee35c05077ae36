"""The leaders' board on a big plan: SQL statements and server time of the wall page.

Seeds the digest benchmark's plan (bench/digest.py: N items in 10 sections, one official per
item, a target on one item in five, R reports over the plan year) into a fresh SQLite file,
and with --postgres also into a throwaway PostgreSQL database, signs a leader in, and measures
GET /board as of 2023-11-29 10:00 Beijing time, in process (no socket, no HTTP client):

- the SQL statements one page view executes (session check included), which must not grow
  with the number of items or reports;
- the server time of one page view (the ASGI app called as uvicorn calls it: routing, session
  check, reading, rendering), best of 10 after a warm-up (target for 1,000 items and 100,000
  reports on SQLite: < 200 ms), and of its parts: reading and rendering;
- the same for the wall filtered to red items, an item page and the week page.

    uv run python bench/board.py [--postgres] [--sizes 100:10000,1000:100000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, col, select
from starlette.applications import Starlette

from bench.digest import (
    NOW,
    PG_ADMIN_URL,
    QUICK_SIZES,
    TZ,
    StatementCounter,
    parse_sizes,
    postgres_url,
    seed_plan,
    sqlite_url,
)
from bot import db
from bot.board.auth import COOKIE, consume_link, create_link, signed_in
from bot.board.queries import Filters, load_wall, wall_views
from bot.board.rendering import Formats, render_page
from bot.board.routes import board_routes
from bot.i18n import Translator
from bot.models import Contact, Plan, Role, WorkItem
from bot.services.items import ItemView, item_views
from bot.services.progress import StatusRules
from bot.settings import Settings

RUNS = 10
TARGET_MS = 200.0
TARGET_ITEMS = 1_000
LOCALE: Literal["zh-CN", "en"] = "zh-CN"
PAGES = {
    "wall": "/board",
    "wall, red only": "/board?status=red",
    "item page": "/board/item/{item}",
    "week page": "/board/week",
}


@dataclass
class Figures:
    """What was measured on one plan."""

    items: int
    reports: int
    sql: dict[str, int] = field(default_factory=dict)
    ms: dict[str, float] = field(default_factory=dict)
    read_ms: float = 0.0
    render_ms: float = 0.0
    html_kb: float = 0.0
    same: bool = False  # the wall's figures are item_views' (the digest's)


def _best(fn: Callable[[], Any]) -> tuple[Any, float]:
    """The value of fn and its best time in ms over RUNS runs after a warm-up."""
    value = fn()
    best = min(_once(fn) for _ in range(RUNS))
    return value, best


def _once(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


async def _get(app: Starlette, path: str, cookie: str) -> tuple[int, bytes]:
    """One GET through the ASGI app as uvicorn calls it (no socket, no HTTP client)."""
    target, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": target,
        "raw_path": target.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"board"), (b"cookie", f"{COOKIE}={cookie}".encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }
    status, body = 0, []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(body)


def measure(engine: Engine, url: str) -> Figures:
    """Sign a leader in and time each page, and the wall's read and render apart."""
    settings = Settings(_env_file=None, database_url=url, locale=LOCALE)  # type: ignore[call-arg]
    app = Starlette(routes=board_routes(engine, settings, clock=lambda: NOW))
    with Session(engine) as session:
        leader = session.exec(select(Contact).where(Contact.role == Role.leader)).first()
        assert leader is not None and leader.id is not None
        started = consume_link(session, create_link(session, leader.id, now=NOW), now=NOW)
        item = session.exec(select(WorkItem.id).order_by(col(WorkItem.number))).first()
        session.commit()
    assert started is not None
    cookie = started.token  # the session's
    counter = StatementCounter(engine)
    figures = Figures(items=0, reports=0)

    async def pages() -> None:
        """Every page, timed inside one running event loop, as `duban run` serves them."""
        for name, path in PAGES.items():
            path = path.format(item=item)
            counter.count = 0
            status, body = await _get(app, path, cookie)
            assert status == 200, (path, status)
            figures.sql[name] = counter.count
            if name == "wall":
                figures.html_kb = len(body) / 1024
            times = []
            for _ in range(RUNS):
                begun = time.perf_counter()
                await _get(app, path, cookie)
                times.append((time.perf_counter() - begun) * 1000)
            figures.ms[name] = min(times)

    asyncio.run(pages())

    rules = StatusRules()
    formats = Formats(Translator(LOCALE), NOW, TZ)

    def read() -> Any:
        with Session(engine, expire_on_commit=False) as session:
            viewer = signed_in(session, cookie, now=NOW)
            assert viewer is not None
            return viewer, load_wall(session, viewer, Filters(), now=NOW, tz=TZ, rules=rules)

    (viewer, wall), figures.read_ms = _best(read)
    _, figures.render_ms = _best(
        lambda: render_page("wall", formats, viewer=viewer, nav="wall", wall=wall, f=Filters())
    )
    figures.items = wall.total
    with Session(engine) as session:
        plan = session.exec(select(Plan)).one()
        same = [_figures(v) for v in wall_views(session, plan, now=NOW, tz=TZ, rules=rules)]
        figures.same = same == [
            _figures(v) for v in item_views(session, plan, now=NOW, tz=TZ, rules=rules)
        ]
    return figures


def _figures(view: ItemView) -> tuple[Any, ...]:
    return (view.item.id, view.status, view.verdict, view.percent, view.deadline, view.latest)


def run_backend(open_url: Callable[[], Any], sizes: list[tuple[int, int]]) -> list[Figures]:
    """Seed and measure each size on its own fresh database."""
    out = []
    for items, reports in sizes:
        with open_url() as url:
            engine = db.make_engine(url)
            try:
                db.upgrade(engine)
                seeded = seed_plan(engine, items, reports)
                figures = measure(engine, url)
                figures.reports = seeded.reports
                out.append(figures)
            finally:
                engine.dispose()
    return out


def print_table(title: str, results: list[Figures]) -> None:
    """Metrics down, sizes across, the target on the right."""
    at_target = [r for r in results if r.items == TARGET_ITEMS]
    if at_target:
        best = at_target[0].ms["wall"]
        ok = "ok" if best < TARGET_MS else "MISSED"
        verdict = f"< {TARGET_MS:.0f} ms at {TARGET_ITEMS:,} items: {ok}"
    else:
        verdict = f"< {TARGET_MS:.0f} ms at {TARGET_ITEMS:,} items (not measured)"
    rows: list[list[str]] = [
        ["items", *[f"{r.items:,}" for r in results], "target"],
        ["reports", *[f"{r.reports:,}" for r in results], ""],
    ]
    for name in PAGES:
        constant = len({r.sql[name] for r in results}) == 1
        rows.append(
            [
                f"SQL statements: {name}",
                *[str(r.sql[name]) for r in results],
                f"constant: {'yes' if constant else 'no'}" if name == "wall" else "",
            ]
        )
    rows.append(
        [
            f"GET /board, server (ms, best of {RUNS})",
            *[f"{r.ms['wall']:.0f}" for r in results],
            verdict,
        ]
    )
    rows.append(["  reading: session + load_wall (ms)", *[f"{r.read_ms:.0f}" for r in results], ""])
    rows.append(["  rendering the HTML (ms)", *[f"{r.render_ms:.0f}" for r in results], ""])
    rows.append(["  page size (KB)", *[f"{r.html_kb:,.0f}" for r in results], ""])
    for name in list(PAGES)[1:]:
        rows.append([f"{name} (ms)", *[f"{r.ms[name]:.0f}" for r in results], ""])
    rows.append(["same figures as item_views", *["yes" if r.same else "NO" for r in results], ""])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print(f"\n{title}")
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(widths[i + 1]) for i, cell in enumerate(row[1:-1])]
        cells.append(row[-1])
        print("  " + "  ".join(cells).rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", action="store_true", help=f"also on {PG_ADMIN_URL}")
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=parse_sizes("100:10000,1000:100000"),
        help="ITEMS:REPORTS,... (default 100:10000,1000:100000)",
    )
    parser.add_argument("--quick", action="store_true", help=f"small plans only ({QUICK_SIZES})")
    args = parser.parse_args()
    if args.quick:
        args.sizes = parse_sizes(QUICK_SIZES)
    print(
        f"leaders' board as of {NOW.isoformat()}, a leader signed in, locale {LOCALE}; "
        f"times best of {RUNS} after a warm-up, in process (ASGI, no socket)"
    )
    print_table("SQLite (file, WAL)", run_backend(sqlite_url, args.sizes))
    if args.postgres:
        pg = make_url(PG_ADMIN_URL)
        print_table(
            f"PostgreSQL ({pg.username}@{pg.host}:{pg.port}/duban_bench_*, ANALYZE after seeding;"
            " the target is SQLite's)",
            run_backend(postgres_url, args.sizes),
        )


if __name__ == "__main__":
    main()
