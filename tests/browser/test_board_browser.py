"""The leaders' board in a real browser: headless Chromium (Debian's `chromium` package) driven
by Playwright, against `duban run`'s web app (DubanApp on a free port, the scenario of
tests/browser/scenario.py on SQLite, the clock at Wednesday 14 June 2023).

Marked `browser` (skipped by `uv run pytest`; .ci/run runs `uv run pytest -m browser`). The
browser is never downloaded: Playwright is pointed at the system's chromium. Without it the
tests skip and say why (fail, with DUBAN_REQUIRE_BROWSER=1 as CI sets). Chinese text needs a
CJK font (Debian's fonts-noto-cjk); the wall's screenshot at 390×844 is saved to
docs/board-390.png for the README.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, sync_playwright
from sqlmodel import Session, select

from bot import db
from bot.app import DubanApp
from bot.board import auth
from bot.clock import FakeClock
from bot.models import Contact
from bot.services.plans import current_plan, find_item
from bot.settings import Settings
from tests.browser.scenario import LEADER, NOW, OFFICIAL, OFFICIAL_ITEMS, seed_board

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent.parent
SCREENSHOT = ROOT / "docs" / "board-390.png"
PHONE: ViewportSize = {"width": 390, "height": 844}


class Served:
    """`duban run`'s web app (DubanApp, no chat channel) in a thread with its own event loop."""

    def __init__(self, settings: Settings, clock: FakeClock) -> None:
        self.settings = settings
        self.clock = clock
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="duban-board", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by start()
            self._failed = exc
            self._ready.set()

    async def _serve(self) -> None:
        app = DubanApp(self.settings, clock=self.clock, run_scheduler=False)
        await app.start()
        self.port = app.web_port
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await app.stop()

    def start(self) -> str:
        """Start serving; returns the base URL."""
        self._thread.start()
        self._ready.wait(60)
        if self._failed is not None:
            raise self._failed
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop the app and wait for its thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture(scope="module")
def chromium() -> str:
    """The system's chromium, or a skip (a failure under DUBAN_REQUIRE_BROWSER=1)."""
    found = shutil.which("chromium")
    if found is None:
        reason = "no `chromium` on PATH: apt-get install chromium fonts-noto-cjk"
        if os.environ.get("DUBAN_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite database with the scenario."""
    url = f"sqlite:///{tmp_path_factory.mktemp('board') / 'duban.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    seed_board(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="module")
def base_url(database: str) -> Iterator[str]:
    """The running web app's address (links are made for it with auth.link_url)."""
    settings = Settings(_env_file=None, database_url=database, web_port=0)  # type: ignore[call-arg]
    served = Served(settings, FakeClock(NOW))
    yield served.start()
    served.stop()


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium)
        yield launched
        launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookie) with a phone's screen."""
    ctx = browser.new_context(viewport=PHONE, device_scale_factor=1, locale="zh-CN")
    yield ctx
    ctx.close()


def _link(database: str, name: str, *, at: datetime = NOW) -> str:
    """A new sign-in link token for a contact (what /board in chat or `duban board link` make)."""
    engine = db.make_engine(database)
    try:
        with Session(engine) as session:
            contact = session.exec(select(Contact).where(Contact.name == name)).one()
            assert contact.id is not None
            token = auth.create_link(session, contact.id, now=at)
            session.commit()
    finally:
        engine.dispose()
    return token


def _item_id(database: str, number: int) -> int:
    engine = db.make_engine(database)
    try:
        with Session(engine) as session:
            item_id = find_item(session, current_plan(session), str(number)).id
            assert item_id is not None
            return item_id
    finally:
        engine.dispose()


def _sign_in(page: Page, base_url: str, database: str, name: str) -> None:
    page.goto(auth.link_url(base_url, _link(database, name)))
    page.get_by_role("button", name="进入看板").click()
    page.wait_for_url(f"{base_url}/board")


def _statuses(page: Page) -> list[str]:
    return page.locator("article.item").evaluate_all("els => els.map(e => e.dataset.status)")


def _counts(page: Page) -> dict[str, int]:
    chips = page.locator(".counts a.count")
    return {
        chip.get_attribute("data-count") or "": int(chip.locator("b").inner_text())
        for chip in chips.all()
    }


def test_the_link_signs_in_once_and_not_twice(
    browser: Browser, context: BrowserContext, base_url: str, database: str
) -> None:
    link = auth.link_url(base_url, _link(database, LEADER))
    page = context.new_page()
    opened = page.goto(link)
    assert opened is not None and opened.status == 200
    page.get_by_role("button", name="进入看板").click()
    page.wait_for_url(f"{base_url}/board")
    assert page.locator(".top .who").inner_text() == LEADER
    cookies = {c["name"]: c for c in context.cookies()}
    session = cookies[auth.COOKIE]
    assert session["httpOnly"] and session["sameSite"] == "Lax" and session["path"] == "/board"
    # 12 hours from now (the browser's real clock; the server's stands still at NOW)
    assert session["expires"] > datetime.now().timestamp() + 11.9 * 3600

    other = browser.new_context(viewport=PHONE)
    try:
        again = other.new_page()
        answer = again.goto(link)
        assert answer is not None and answer.status == 401
        assert "登录链接已失效" in again.locator("h1").inner_text()
        assert other.cookies() == []
    finally:
        other.close()


def test_an_expired_link_is_refused(context: BrowserContext, base_url: str, database: str) -> None:
    token = _link(database, LEADER, at=NOW - timedelta(minutes=16))
    page = context.new_page()
    answer = page.goto(auth.link_url(base_url, token))
    assert answer is not None and answer.status == 401
    assert "已经用过或已过期" in page.content()
    assert context.cookies() == []


def test_without_a_cookie_the_board_is_401(
    context: BrowserContext, base_url: str, database: str
) -> None:
    page = context.new_page()
    for path in ("/board", "/board/week", f"/board/item/{_item_id(database, 9)}"):
        answer = page.goto(base_url + path)
        assert answer is not None and answer.status == 401, path
        assert page.locator("h1").inner_text() == "请先登录"
        assert "/board" in page.locator("main p").inner_text()
        assert page.locator("article").count() == 0


def test_the_wall_shows_red_first_and_its_counts_match(
    context: BrowserContext, base_url: str, database: str
) -> None:
    page = context.new_page()
    _sign_in(page, base_url, database, LEADER)
    statuses = _statuses(page)
    assert len(statuses) == 27
    assert statuses[0] == "red"
    first = statuses.count("red") + statuses.count("amber")
    assert statuses[:first] == sorted(statuses[:first], key=["red", "amber"].index)
    counts = _counts(page)
    assert counts.pop("all") == len(statuses)
    assert counts == {s: statuses.count(s) for s in ("red", "amber", "none", "green", "done")}
    # readable on a phone: nothing wider than the screen
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 20_000
    page.set_viewport_size({"width": 360, "height": 740})
    assert page.evaluate("document.documentElement.scrollWidth") <= 360


def test_a_filter_narrows_the_wall_and_its_counts(
    context: BrowserContext, base_url: str, database: str
) -> None:
    page = context.new_page()
    _sign_in(page, base_url, database, LEADER)
    page.locator("details.filters summary").click()
    page.locator("select[name=unit]").select_option("安全管理科")
    page.get_by_role("button", name="筛选", exact=True).click()
    page.wait_for_url(re.compile(r".*unit=.*"))
    numbers = page.locator("article.item").evaluate_all("els => els.map(e => e.dataset.item)")
    assert sorted(int(n) for n in numbers) == [19, 20]
    assert _counts(page)["all"] == 2
    # a count is a filter too: red only
    page.locator('.counts a[data-count="red"]').click()
    assert set(_statuses(page)) == {"red"} and _statuses(page) == ["red"]
    page.get_by_role("link", name="清除筛选").click()
    assert len(_statuses(page)) == 27


def test_an_item_page(context: BrowserContext, base_url: str, database: str) -> None:
    page = context.new_page()
    _sign_in(page, base_url, database, LEADER)
    page.locator('article[data-item="21"] h3 a').click()
    page.wait_for_url(re.compile(r".*/board/item/\d+$"))
    assert "全面深化新时代教育评价改革" in page.locator("h1").inner_text()
    history = page.locator("ol.history li")
    assert history.count() == 2
    assert "更正" in history.nth(0).inner_text()
    assert history.nth(1).locator('[data-flag="superseded"]').count() == 1
    assert "尚未发送提醒。" in page.locator("main").inner_text()
    page.goto(f"{base_url}/board/item/{_item_id(database, 20)}")
    assert page.locator('[data-reminder="escalation"]').inner_text().endswith("逾期上报 → 陈局长")
    page.get_by_role("link", name="本周变化").click()
    page.wait_for_url(f"{base_url}/board/week")  # the load event: the chart is in
    chart = page.locator("img.chart")
    assert chart.evaluate("img => img.complete && img.naturalWidth") > 500


def test_an_official_sees_only_their_items(
    context: BrowserContext, base_url: str, database: str
) -> None:
    page = context.new_page()
    _sign_in(page, base_url, database, OFFICIAL)
    numbers = page.locator("article.item").evaluate_all("els => els.map(e => e.dataset.item)")
    assert sorted(int(n) for n in numbers) == list(OFFICIAL_ITEMS)
    assert _counts(page)["all"] == len(OFFICIAL_ITEMS)
    answer = page.goto(f"{base_url}/board/item/{_item_id(database, 20)}")
    assert answer is not None and answer.status == 404
