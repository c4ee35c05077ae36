"""The leaders' board over HTTP (the ASGI app in process), on SQLite and PostgreSQL: signing in
with a one-time link, the session cookie, 401 without it, the wall (red first, counts that match
its lists, the digest's figures), filters and what they refuse, an item page, the week, what an
official sees, and the /board chat command. The browser tests are in tests/browser/.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import threading
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from itertools import count
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from starlette.applications import Starlette

from bot.board import auth
from bot.board.auth import Viewer
from bot.board.queries import Filters, load_wall, wall_views
from bot.board.rendering import Formats, render_page
from bot.board.routes import board_routes
from bot.chat import ChatCore
from bot.clock import FakeClock
from bot.events import IncomingMessage
from bot.i18n import Translator
from bot.models import Contact, Plan, Section, WebToken, WorkItem
from bot.services.digest import build_digest
from bot.services.items import ItemView, item_views
from bot.services.plans import current_plan, find_item
from bot.services.progress import StatusRules
from bot.settings import Settings
from handlers.registry import build_router
from tests.browser.scenario import (
    ADMIN,
    DONE,
    LEADER,
    NOW,
    OFFICIAL,
    OFFICIAL_ITEMS,
    RED,
    TZ,
    seed_board,
)

BASE = "https://duban.example.org"
ARTICLE = re.compile(r'<article class="item st-(\w+)" data-item="(\d+)"')
COUNT = re.compile(r'data-count="(\w+)"><b>(\d+)</b>')


def _settings(db_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {"database_url": db_url, "web_base_url": BASE, **overrides}
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


@pytest.fixture
def board_engine(engine: Engine) -> Engine:
    """The scenario of tests/browser/scenario.py in the test database."""
    seed_board(engine)
    return engine


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


def _client(engine: Engine, settings: Settings, clock: FakeClock) -> httpx.AsyncClient:
    app = Starlette(routes=board_routes(engine, settings, clock=clock))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)


@pytest.fixture
async def client(
    board_engine: Engine, db_url: str, clock: FakeClock
) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(board_engine, _settings(db_url), clock) as c:
        yield c


def _contact_id(engine: Engine, name: str) -> int:
    with Session(engine) as session:
        contact = session.exec(select(Contact).where(Contact.name == name)).one()
        assert contact.id is not None
        return contact.id


def _link(engine: Engine, name: str, *, at: datetime = NOW) -> str:
    """A fresh link token for a contact, made at a moment."""
    with Session(engine) as session:
        token = auth.create_link(session, _contact_id(engine, name), now=at)
        session.commit()
    return token


async def _sign_in(client: httpx.AsyncClient, engine: Engine, name: str) -> None:
    response = await client.post(f"/board/in/{_link(engine, name)}")
    assert response.status_code == 303, response.text
    assert auth.COOKIE in client.cookies


def _articles(html: str) -> list[tuple[str, int]]:
    return [(status, int(number)) for status, number in ARTICLE.findall(html)]


def _counts(html: str) -> dict[str, int]:
    return {name: int(n) for name, n in COUNT.findall(html)}


def _item_id(engine: Engine, number: int) -> int:
    with Session(engine) as session:
        item_id = find_item(session, current_plan(session), str(number)).id
        assert item_id is not None
        return item_id


# --- signing in --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/board", "/board/", "/board/week", "/board/item/1", "/board/chart.png?plan=1", "/board/x/y"],
)
async def test_without_a_session_every_page_is_401_and_says_how_to_get_a_link(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 401
    assert "请先登录" in response.text and "/board" in response.text
    assert "<script" not in response.text
    client.cookies.set(auth.COOKIE, "garbage")
    assert (await client.get(path)).status_code == 401
    client.cookies.set(auth.COOKIE, auth.new_token())  # well formed, but no such session
    assert (await client.get(path)).status_code == 401


async def test_a_link_signs_in_once_and_not_twice(
    client: httpx.AsyncClient, board_engine: Engine
) -> None:
    token = _link(board_engine, LEADER)
    # Opening the link (as a chat app's link preview would) spends nothing: a button does.
    for _ in range(2):
        page = await client.get(f"/board/in/{token}")
        assert page.status_code == 200 and "进入看板" in page.text and LEADER in page.text
        assert token not in page.text and "set-cookie" not in page.headers
    first = await client.post(f"/board/in/{token}")
    assert first.status_code == 303 and first.headers["location"] == "/board"
    cookie = first.headers["set-cookie"]
    assert cookie.startswith(f"{auth.COOKIE}=")
    for attribute in ("HttpOnly", "Secure", "SameSite=lax", "Max-Age=43200", "Path=/board"):
        assert attribute in cookie, cookie
    wall = await client.get("/board")
    assert wall.status_code == 200 and LEADER in wall.text

    client.cookies.clear()
    again = await client.post(f"/board/in/{token}")
    assert again.status_code == 401 and "set-cookie" not in again.headers
    assert "已经用过或已过期" in again.text
    assert (await client.get(f"/board/in/{token}")).status_code == 401
    assert (await client.get("/board")).status_code == 401


async def test_tokens_are_stored_only_as_hashes(
    client: httpx.AsyncClient, board_engine: Engine
) -> None:
    token = _link(board_engine, LEADER)
    response = await client.post(f"/board/in/{token}")
    session_token = response.cookies[auth.COOKIE]
    with board_engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT token_hash, kind FROM web_token")).all()
    stored = " ".join(str(value) for row in rows for value in row)
    assert token not in stored and session_token not in stored
    assert {auth.token_hash(token), auth.token_hash(session_token)} <= {r[0] for r in rows}


async def test_an_expired_link_is_refused(client: httpx.AsyncClient, board_engine: Engine) -> None:
    token = _link(board_engine, LEADER, at=NOW - timedelta(minutes=15, seconds=1))
    assert (await client.get(f"/board/in/{token}")).status_code == 401
    response = await client.post(f"/board/in/{token}")
    assert response.status_code == 401 and "set-cookie" not in response.headers
    fresh = _link(board_engine, LEADER, at=NOW - timedelta(minutes=14, seconds=59))
    assert (await client.post(f"/board/in/{fresh}")).status_code == 303


@pytest.mark.parametrize(
    "token", ["x", "A" * 42, "A" * 44, "A" * 42 + "!", "..%2Fetc%2Fpasswd", "%00" * 20, "的" * 43]
)
async def test_a_garbage_link_is_a_401_page(client: httpx.AsyncClient, token: str) -> None:
    assert (await client.get(f"/board/in/{token}")).status_code == 401
    assert (await client.post(f"/board/in/{token}")).status_code == 401


async def test_a_session_lasts_twelve_hours_and_ends_on_sign_out(
    client: httpx.AsyncClient, board_engine: Engine, clock: FakeClock
) -> None:
    await _sign_in(client, board_engine, LEADER)
    clock.advance(timedelta(hours=11, minutes=59))
    assert (await client.get("/board")).status_code == 200
    clock.advance(timedelta(minutes=2))
    assert (await client.get("/board")).status_code == 401

    clock.set(NOW)
    await _sign_in(client, board_engine, LEADER)
    cookie = client.cookies[auth.COOKIE]
    out = await client.post("/board/out")
    assert out.status_code == 200 and "已退出" in out.text
    assert 'duban_board=""' in out.headers["set-cookie"]
    client.cookies.set(auth.COOKIE, cookie)  # the old cookie, kept by hand, is dead
    assert (await client.get("/board")).status_code == 401


def test_two_uses_of_one_link_at_once_start_one_session(board_engine: Engine) -> None:
    token = _link(board_engine, LEADER)
    barrier = threading.Barrier(2)
    started: list[auth.Started | None] = []

    def use() -> None:
        with Session(board_engine) as session:
            barrier.wait()
            started.append(auth.consume_link(session, token, now=NOW))
            session.commit()

    threads = [threading.Thread(target=use) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(s is not None for s in started) == [False, True]
    with Session(board_engine) as session:
        sessions = session.exec(select(WebToken).where(WebToken.kind == auth.SESSION)).all()
    assert len(sessions) == 1


async def test_an_inactive_contact_cannot_sign_in_or_stay_signed_in(
    client: httpx.AsyncClient, board_engine: Engine
) -> None:
    await _sign_in(client, board_engine, LEADER)
    token = _link(board_engine, LEADER)
    with Session(board_engine) as session:
        leader = session.exec(select(Contact).where(Contact.name == LEADER)).one()
        leader.active = False
        session.commit()
    assert (await client.get("/board")).status_code == 401
    assert (await client.post(f"/board/in/{token}")).status_code == 401


async def test_no_token_is_logged(
    client: httpx.AsyncClient, board_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = _link(board_engine, LEADER)
    await client.get(f"/board/in/{token}")
    response = await client.post(f"/board/in/{token}")
    await client.get("/board")
    await client.post(f"/board/in/{token}")  # spent: refused
    guessed = auth.new_token()
    await client.post(f"/board/in/{guessed}")
    # what the server logged (the test's own HTTP client logs the addresses it asks for)
    logged = "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))
    )
    assert token not in logged and response.cookies[auth.COOKIE] not in logged
    assert guessed not in logged
    assert "signed in" in logged and "board sign-in refused (401)" in logged


# --- the wall ----------------------------------------------------------------------------


async def test_the_wall_lists_red_first_with_counts_that_match_and_the_digest_figures(
    client: httpx.AsyncClient, board_engine: Engine
) -> None:
    await _sign_in(client, board_engine, LEADER)
    response = await client.get("/board")
    assert response.status_code == 200
    for header, value in {
        "cache-control": "no-store",
        "referrer-policy": "no-referrer",
        "x-frame-options": "DENY",
    }.items():
        assert response.headers[header] == value
    assert "default-src 'none'" in response.headers["content-security-policy"]
    html = response.text
    articles = _articles(html)
    assert len(articles) == 27 and len({n for _, n in articles}) == 27
    statuses = [s for s, _ in articles]
    first = statuses.count("red") + statuses.count("amber")
    assert statuses[:first] == sorted(statuses[:first], key=["red", "amber"].index)
    assert "red" not in statuses[first:] and "amber" not in statuses[first:]
    assert {n for s, n in articles if s == "red"} >= set(RED)
    assert {n for s, n in articles if s == "done"} == set(DONE)
    counts = _counts(html)
    assert counts["all"] == len(articles)
    assert {k: v for k, v in counts.items() if k != "all"} == {
        status: statuses.count(status) for status in ("red", "amber", "none", "green", "done")
    }
    # the same figures as the digest
    with Session(board_engine) as session:
        digest = build_digest(session, current_plan(session), now=NOW, tz=TZ, rules=StatusRules())
    assert {k: v for k, v in counts.items() if k != "all"} == digest.counts
    by_number = {v.item.number: v for v in digest.views}
    assert all(by_number[n].status == s for s, n in articles)
    # an item card: its percent, deadline, owners, last report and how long ago
    card = html[html.index('data-item="9"') :]
    card = card[: card.index("</article>")]
    shown = ("60%", "2023-06-30", "基础教育科", "张敏、黄伟", "4 天前", "华侨实验小学主体完工")
    assert all(part in card for part in shown), card


@pytest.mark.parametrize("days", [0, 20, 200])
def test_the_wall_reads_items_as_item_views_does(board_engine: Engine, days: int) -> None:
    now = NOW + timedelta(days=days)
    with Session(board_engine) as session:
        plan = current_plan(session)
        wall = wall_views(session, plan, now=now, tz=TZ, rules=StatusRules())
        full = item_views(session, plan, now=now, tz=TZ, rules=StatusRules())

    def figures(v: ItemView) -> tuple[object, ...]:
        return (
            v.item.id,
            v.section.id,
            v.status,
            v.verdict,
            v.percent,
            v.deadline,
            v.latest,
            v.figure,
            v.people,
        )

    assert [figures(v) for v in wall] == [figures(v) for v in full]
    assert len({v.status for v in wall}) >= 3


async def test_the_wall_filters_by_status_section_unit_and_owner(
    client: httpx.AsyncClient, board_engine: Engine
) -> None:
    await _sign_in(client, board_engine, LEADER)
    red = await client.get("/board", params={"status": "red"})
    assert red.status_code == 200
    assert {s for s, _ in _articles(red.text)} == {"red"}
    assert _counts(red.text)["all"] == _counts(red.text)["red"] == len(_articles(red.text))

    with Session(board_engine) as session:
        plan = session.exec(select(Plan)).one()
        section = session.exec(
            select(Section).where(Section.plan_id == plan.id, Section.number == 3)
        ).one()
        in_section = {
            i.number
            for i in session.exec(select(WorkItem).where(WorkItem.section_id == section.id))
        }
    by_section = await client.get("/board", params={"section": section.id})
    assert {n for _, n in _articles(by_section.text)} == in_section

    by_unit = await client.get("/board", params={"unit": "安全管理科"})
    assert {n for _, n in _articles(by_unit.text)} == {19, 20}
    assert 'value="安全管理科" selected' in by_unit.text

    owner = _contact_id(board_engine, OFFICIAL)
    mine = await client.get("/board", params={"owner": owner, "status": "amber"})
    assert [n for _, n in _articles(mine.text)] == [9]
    assert f'value="{owner}" selected' in mine.text and 'value="amber" selected' in mine.text
    assert " selected" not in mine.text.split('name="unit"')[1].split("</select>")[0]

    assert (await client.get("/board", params={"whatever": "x"})).status_code == 200


TASKS_YAML = """
plan:
  title: 2023年交办任务
sections:
  - title: 局长交办
    items:
      - title: 牵头起草教育强市建设方案
        lead_units: [办公室]
        deadline: 2023-06-10
      - title: 筹备全市教育大会
        lead_units: [办公室]
        deadline: 2023-09-30
"""


def test_several_plans_are_listed_plan_by_plan(board_engine: Engine, tmp_path: Path) -> None:
    from bot.importer.parse import parse_plan_file
    from bot.models import Role
    from bot.services import assignments, audit, plans

    source = tmp_path / "tasks.yaml"
    source.write_text(TASKS_YAML, encoding="utf-8")
    with Session(board_engine, expire_on_commit=False) as session:
        work = current_plan(session)
        tasks = plans.import_plan(
            session, parse_plan_file(source), source_file=source.name, actor=audit.CLI_ACTOR
        ).plan
        zhang = session.exec(select(Contact).where(Contact.name == OFFICIAL)).one()
        first = find_item(session, tasks, "1")
        assignments.assign(session, item=first, contact=zhang, actor=audit.CLI_ACTOR, now=NOW)
        session.commit()
        assert zhang.id is not None
        leader = Viewer(_contact_id(board_engine, LEADER), LEADER, Role.leader)
        official = Viewer(zhang.id, OFFICIAL, Role.official)
        rules = StatusRules()

        wall = load_wall(
            session, leader, Filters(), now=NOW, tz=TZ, rules=rules, plans=[work, tasks]
        )
        assert [w.plan.title for w in wall.plans] == [work.title, "2023年交办任务"]
        assert [w.total for w in wall.plans] == [27, 2] and wall.total == 29
        assert wall.counts == {
            s: sum(w.counts[s] for w in wall.plans)
            for s in ("green", "amber", "red", "done", "none")
        }
        assert [len(sections) for _, sections in wall.choices.sections] == [6, 1]
        # the task past its deadline is red, first in its plan's list
        assert wall.plans[1].attention[0].item.title == "牵头起草教育强市建设方案"
        html = render_page(
            "wall",
            Formats(Translator("zh-CN"), NOW, TZ),
            viewer=leader,
            nav="wall",
            wall=wall,
            f=Filters(),
        )
        assert html.count('<section class="plan"') == 2 and html.count("<optgroup") == 2

        task_section = wall.choices.sections[1][1][0].id
        narrowed = load_wall(
            session,
            leader,
            Filters(section=task_section),
            now=NOW,
            tz=TZ,
            rules=rules,
            plans=[work, tasks],
        )
        assert [w.total for w in narrowed.plans] == [0, 2]

        mine = load_wall(
            session, official, Filters(), now=NOW, tz=TZ, rules=rules, plans=[work, tasks]
        )
        assert [sorted(v.item.number for g in w.groups for v in g.items) for w in mine.plans] == [
            list(OFFICIAL_ITEMS),
            [1],
        ]


@pytest.mark.parametrize(
    "params",
    [
        {"status": "purple"},
        {"section": "abc"},
        {"section": "999999"},
        {"section": "9" * 30},
        {"section": "9" * 5000},
        {"section": "-1"},
        {"section": "１"},
        {"owner": "0x10"},
        {"owner": "424242"},
        {"unit": "不存在的科室"},
        {"unit": "科" * 200},
    ],
)
async def test_a_bad_filter_is_a_400_with_a_line(
    client: httpx.AsyncClient, board_engine: Engine, params: dict[str, str]
) -> None:
    await _sign_in(client, board_engine, LEADER)
    response = await client.get("/board", params=params)
    assert response.status_code == 400
    assert "筛选值无效" in response.text and "<article" not in response.text


async def test_an_item_page_has_its_history_targets_and_reminders(
    client: httpx.AsyncClient, board_engine: Engine
) -> None:
    await _sign_in(client, board_engine, LEADER)
    nine = (await client.get(f"/board/item/{_item_id(board_engine, 9)}")).text
    assert "持续扩增教育优质资源" in nine and "预警" in nine
    assert "新增学位超1万个" in nine and "6,500 个（65%）" in nine and "&gt; 10,000 个" in nine
    assert nine.count("data-report=") == 3
    assert 'data-reminder="ask"' in nine

    corrected = (await client.get(f"/board/item/{_item_id(board_engine, 21)}")).text
    assert corrected.count('data-flag="superseded"') == 1 and "更正" in corrected
    assert "35% 推进中：考核办法征求意见中" in corrected

    withdrawn = (await client.get(f"/board/item/{_item_id(board_engine, 12)}")).text
    assert withdrawn.count('data-flag="withdrawn"') == 1 and "试点学校名单待定" in withdrawn

    overdue = (await client.get(f"/board/item/{_item_id(board_engine, 20)}")).text
    assert overdue.count('data-reminder="overdue"') == 2
    assert overdue.count('data-reminder="escalation"') == 1 and "逾期上报 → 陈局长" in overdue
    assert "已过完成时限（2023-06-01）" in overdue

    for missing in (
        "/board/item/0",
        "/board/item/999999",
        "/board/item/" + "9" * 40,
        "/board/item/" + "9" * 5000,
        "/board/item/-1",
        "/board/item/abc",
    ):
        response = await client.get(missing)
        assert response.status_code == 404 and "没有找到" in response.text


async def test_the_week_page_and_its_chart(client: httpx.AsyncClient, board_engine: Engine) -> None:
    await _sign_in(client, board_engine, LEADER)
    week = (await client.get("/board/week")).text
    assert "2023-W24" in week and "本周报送" in week and "名师工作室遴选推迟" in week
    assert "状态变化" in week and "本周未报送" in week
    plan_id = re.search(r'chart\.png\?plan=(\d+)"', week)
    assert plan_id is not None
    chart = await client.get(f"/board/chart.png?plan={plan_id.group(1)}")
    assert chart.status_code == 200 and chart.headers["content-type"] == "image/png"
    assert chart.content.startswith(b"\x89PNG")
    assert (await client.get("/board/chart.png?plan=abc")).status_code == 400
    assert (await client.get("/board/chart.png?plan=" + "9" * 5000)).status_code == 400
    assert (await client.get("/board/chart.png?plan=9999")).status_code == 404


async def test_an_official_sees_only_their_items(
    client: httpx.AsyncClient, board_engine: Engine
) -> None:
    await _sign_in(client, board_engine, OFFICIAL)
    wall = (await client.get("/board")).text
    assert sorted(n for _, n in _articles(wall)) == list(OFFICIAL_ITEMS)
    assert _counts(wall)["all"] == len(OFFICIAL_ITEMS)
    assert "何军" not in wall  # nobody else's name, not even in the owner filter
    assert (await client.get(f"/board/item/{_item_id(board_engine, 9)}")).status_code == 200
    other = await client.get(f"/board/item/{_item_id(board_engine, 20)}")
    assert other.status_code == 404
    assert "施工方资质复核" not in other.text
    week = (await client.get("/board/week")).text
    assert "本周没有新的进展报送" in week  # 张敏 last reported on 9 June, the week before
    assert "名师工作室遴选推迟" not in week and "本周未报送" not in week
    unit = await client.get("/board", params={"unit": "安全管理科"})
    assert unit.status_code == 400  # a unit none of their items concerns


async def test_the_board_speaks_english_with_locale_en(
    board_engine: Engine, db_url: str, clock: FakeClock
) -> None:
    async with _client(board_engine, _settings(db_url, locale="en"), clock) as client:
        assert "Please sign in" in (await client.get("/board")).text
        await _sign_in(client, board_engine, LEADER)
        wall = (await client.get("/board")).text
        assert '<html lang="en">' in wall and "All items" in wall and "Needs attention" in wall
        assert "behind" in wall.lower()


async def test_a_path_prefix_in_web_base_url_is_kept_in_links_and_the_cookie(
    board_engine: Engine, db_url: str, clock: FakeClock
) -> None:
    settings = _settings(db_url, web_base_url="http://intranet.example:8080/duban/")
    async with _client(board_engine, settings, clock) as client:
        response = await client.post(f"/board/in/{_link(board_engine, LEADER)}")
        assert response.headers["location"] == "/duban/board"
        cookie = response.headers["set-cookie"]
        assert "Path=/duban/board" in cookie and "Secure" not in cookie
        client.cookies.set(auth.COOKIE, response.cookies[auth.COOKIE])
        wall = (await client.get("/board")).text
        assert 'href="/duban/board/item/' in wall and 'action="/duban/board/out"' in wall


# --- the chat command --------------------------------------------------------------------

_UPDATES = count(1)


def _say(engine: Engine, settings: Settings, name: str, text: str) -> str:
    core = ChatCore(engine, settings, build_router(), clock=lambda: NOW)
    try:
        result = core.process(
            IncomingMessage(
                platform="console",
                chat_id=name,
                sender_id=name,
                update_id=f"board-{next(_UPDATES)}",
                text=text,
            )
        )
    finally:
        core.close()
    assert result is not None
    return "\n".join(out.text for out in result[0])


async def test_board_in_chat_answers_leaders_and_admins_with_a_link_that_works(
    client: httpx.AsyncClient, board_engine: Engine, db_url: str
) -> None:
    settings = _settings(db_url)
    for name in (LEADER, ADMIN):
        answer = _say(board_engine, settings, name, "/board")
        assert "15 分钟内有效" in answer
        found = re.search(rf"{re.escape(BASE)}/board/in/([A-Za-z0-9_-]{{43}})", answer)
        assert found is not None, answer
        response = await client.post(f"/board/in/{found.group(1)}")
        assert response.status_code == 303
    refused = _say(board_engine, settings, OFFICIAL, "/board")
    assert "/board/in/" not in refused and "没有使用 /board 的权限" in refused
    with Session(board_engine) as session:
        links = session.exec(select(WebToken).where(WebToken.kind == auth.LINK)).all()
    assert len(links) == 2


def test_board_in_chat_without_web_base_url_says_it_is_not_set_up(
    board_engine: Engine, db_url: str
) -> None:
    settings = _settings(db_url, web_base_url="")
    answer = _say(board_engine, settings, LEADER, "/board")
    assert "WEB_BASE_URL" in answer and "http" not in answer
    with Session(board_engine) as session:
        assert session.exec(select(WebToken)).all() == []


def test_old_tokens_are_pruned_when_a_link_is_made(board_engine: Engine) -> None:
    _link(board_engine, LEADER, at=NOW - timedelta(days=3))
    _link(board_engine, LEADER, at=NOW)
    with Session(board_engine) as session:
        kinds = Counter(t.kind for t in session.exec(select(WebToken)))
    assert kinds == {auth.LINK: 1}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", None),
        ("https://duban.example.org/", "https://duban.example.org"),
        ("http://10.0.0.5:8080/duban", "http://10.0.0.5:8080/duban"),
    ],
)
def test_web_base_url_setting(value: str, expected: str | None) -> None:
    settings = Settings(_env_file=None, web_base_url=value)  # type: ignore[call-arg]
    assert settings.web_base_url == expected


@pytest.mark.parametrize(
    "value", ["duban.example.org", "ftp://x.org", "https://", "https://x.org/?a=1", "https://u:p@x"]
)
def test_a_bad_web_base_url_is_refused(value: str) -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, web_base_url=value)  # type: ignore[call-arg]


async def test_duban_run_serves_the_board(board_engine: Engine, db_url: str) -> None:
    from bot.app import DubanApp

    app = DubanApp(_settings(db_url), clock=FakeClock(NOW), engine=board_engine)
    transport = httpx.ASGITransport(app=app.web)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        assert (await client.get("/board")).status_code == 401
        response = await client.post(f"/board/in/{_link(board_engine, LEADER)}")
        assert response.status_code == 303
        assert (await client.get("/board")).status_code == 200


def test_duban_board_link_prints_a_link_that_signs_in(
    board_engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    try:
        wired = importlib.util.find_spec("bot.cli.board") is not None
    except ModuleNotFoundError:  # bot.cli is one module, not yet the package
        wired = False
    if not wired:
        pytest.skip("`duban board link` is not wired into the CLI yet (bot/cli/board.py)")
    from typer.testing import CliRunner

    from bot.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("WEB_BASE_URL", BASE)
    result = CliRunner().invoke(app, ["board", "link", OFFICIAL, "--json"])
    assert result.exit_code == 0, result.output
    url = json.loads(result.stdout)["url"]
    assert url.startswith(f"{BASE}/board/in/")
    with Session(board_engine) as session:
        viewer = auth.link_holder(session, url.rsplit("/", 1)[1], now=datetime.now(TZ))
    assert viewer is not None and viewer.name == OFFICIAL
    monkeypatch.delenv("WEB_BASE_URL")
    refused = CliRunner().invoke(app, ["board", "link", OFFICIAL])
    assert refused.exit_code == 2 and "WEB_BASE_URL" in refused.stderr
