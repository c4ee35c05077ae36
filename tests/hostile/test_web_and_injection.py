"""Hostile requests and hostile text: a 4xx and no work for the first, nothing injected by the
second into what leaders read (the WeCom digest, Telegram HTML, the ledger), and no internal
error for a NUL on PostgreSQL.

Each refused request is checked for its status, for what it left behind (no inbox row, no
report, no reply) and for what it logged (one line per kind a minute, never a traceback).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select
from telegram.ext import ApplicationBuilder
from wechatpy.enterprise.crypto import PrpCrypto

from bot.channels.telegram.channel import MAX_MESSAGE, SECRET_HEADER, TelegramMessenger
from bot.channels.wecom.channel import MAX_BODY, signature
from bot.events import clean_text, split_html, utf16_size
from bot.importer.parse import parse_plan_file
from bot.ledger import write_ledger
from bot.models import InboxEntry, Outbox, Plan, Report, Role
from bot.reporting import HistoryRow, LedgerRow
from bot.services import assignments, audit, contacts, plans, reports
from bot.services.digest import build_digest
from bot.services.progress import StatusRules
from bot.services.sending import queue_digest
from bot.templating import markdown_text, render_digest
from bot.web import RefusalLog
from tests.fakes import FakeTelegram
from tests.fakes.telegram_api import html_to_plain
from tests.fakes.wecom_api import FakeWeCom
from tests.harness import WECOM_TOKEN, ZHANG, Dialog, WeComDialog, running_bot, running_wecom_bot
from tests.test_cli import Cli

TZ = ZoneInfo("Asia/Shanghai")
SECRET = "hostile-webhook-secret"
FORGED = "forged-webhook-secret"
EVIL_LINK = "[点我领取](http://evil.example)"


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
async def wecom(fake: FakeWeCom, db_url: str) -> AsyncIterator[WeComDialog]:
    async with running_wecom_bot(fake, db_url) as dialog:
        yield dialog


@pytest.fixture
async def hooked(server: FakeTelegram, db_url: str) -> AsyncIterator[Dialog]:
    async with running_bot(
        server,
        db_url,
        telegram_webhook_url="https://duban.example.org/telegram/webhook",
        telegram_webhook_secret=SECRET,
    ) as dialog:
        yield dialog


def _count(engine: Engine, table: type[Any]) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(table)).one()


def _nothing_stored(engine: Engine) -> None:
    assert _count(engine, InboxEntry) == 0, "a refused request left an inbox row"
    assert _count(engine, Report) == 0, "a refused request left a report"


def _no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert all(r.exc_info is None and r.exc_text is None for r in caplog.records)
    assert "Traceback" not in caplog.text


async def _post_chunked(
    port: int, path: str, headers: dict[str, str], total: int, *, block: int = 1 << 16
) -> tuple[int, int]:
    """POST `total` bytes with Transfer-Encoding: chunked (no Content-Length) until the server
    answers; returns (status, bytes sent before the answer came)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Transfer-Encoding: chunked"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
    answer = asyncio.create_task(reader.readline())
    chunk = b"%x\r\n" % block + b"x" * block + b"\r\n"
    sent = 0
    try:
        while sent < total and not answer.done():
            writer.write(chunk)
            await asyncio.wait_for(writer.drain(), 10)
            sent += block
    except (ConnectionError, TimeoutError):
        pass  # the server answered and closed: it reads no more
    status_line = await asyncio.wait_for(answer, 10)
    writer.close()
    return int(status_line.split()[1]), sent


# --- the WeCom callback -----------------------------------------------------------------------

DOCTYPE_63 = b'<!DOCTYPE x [<!ENTITY a "b">]><xml><Encrypt>&a;</Encrypt></xml>'


def _signed_params(encrypted: str) -> dict[str, str]:
    ts, nonce = str(int(time.time())), "n-hostile"
    return {
        "msg_signature": signature(WECOM_TOKEN, ts, nonce, encrypted),
        "timestamp": ts,
        "nonce": nonce,
    }


@pytest.mark.parametrize(
    "body",
    [
        DOCTYPE_63,
        b'<!doctype xml SYSTEM "http://evil.example/x.dtd"><xml><Encrypt>x</Encrypt></xml>',
        b"<?xml version='1.0'?>\n<! ENTITY  x 'y'><xml><Encrypt>x</Encrypt></xml>",
        b'<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b"<xml><Encrypt>&b;</Encrypt></xml>",
        b"\xff\xfe<\x00x\x00m\x00l\x00>\x00",  # not UTF-8
        b"<xml/>",
        b"<xml><Encrypt><a>1</a></Encrypt></xml>",
        b"<xml><Encrypt>a</Encrypt><Encrypt>b</Encrypt></xml>",
        b"<other><Encrypt>x</Encrypt></other>",
        b"<xml>" + b"<a>" * 50_000 + b"</a>" * 50_000 + b"</xml>",
        b'{"Encrypt": "x"}',
        b"",
    ],
    ids=[
        "doctype-63-bytes",
        "doctype-lowercase-external",
        "entity-declaration",
        "billion-laughs",
        "not-utf8",
        "empty-root",
        "element-for-ciphertext",
        "two-ciphertexts",
        "another-root",
        "deep-nesting",
        "json",
        "empty",
    ],
)
async def test_malformed_callbacks_get_400_and_change_nothing(
    wecom: WeComDialog, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    params = _signed_params("x")
    async with httpx.AsyncClient() as client:
        response = await client.post(wecom.url, params=params, content=body)
    assert response.status_code == 400
    await asyncio.sleep(0.05)
    _nothing_stored(wecom.engine)
    assert wecom.fake.messages_to("zhangsan") == []
    _no_traceback(caplog)


@pytest.mark.parametrize(
    "xml",
    [
        '<!DOCTYPE xml [<!ENTITY who "zhangsan">]><xml><FromUserName>&who;</FromUserName>'
        "<MsgType>text</MsgType><Content>9 60%</Content><MsgId>1</MsgId></xml>",
        "<xml><FromUserName><a>zhangsan</a></FromUserName><MsgType>text</MsgType>"
        "<Content>9 60%</Content><MsgId>2</MsgId></xml>",
        "<xml><FromUserName>zhangsan</FromUserName><MsgType><t/></MsgType>"
        "<Content>9 60%</Content><MsgId>3</MsgId></xml>",
        "<xml><FromUserName>zhangsan</FromUserName><MsgType>text</MsgType>"
        "<Content><b>9 60%</b></Content><MsgId>4</MsgId></xml>",
        "<xml><FromUserName>zhangsan</FromUserName><MsgType>text</MsgType>"
        "<MsgType>text</MsgType><Content>9 60%</Content></xml>",
        "not xml at all",
    ],
    ids=["doctype", "element-sender", "element-type", "element-content", "two-types", "not-xml"],
)
async def test_a_well_signed_message_of_odd_shape_gets_400(
    wecom: WeComDialog, xml: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Even from someone who holds the keys, a DTD or an odd shape is a 400, not a 500."""
    params, body = wecom.envelope(xml)
    async with httpx.AsyncClient() as client:
        response = await client.post(wecom.url, params=params, content=body)
    assert response.status_code == 400
    await asyncio.sleep(0.05)
    _nothing_stored(wecom.engine)
    _no_traceback(caplog)


async def test_someone_who_writes_doctype_in_a_message_is_not_refused(wecom: WeComDialog) -> None:
    answer = await wecom.says_one("zhangsan", "9 60% <!DOCTYPE html> 与 <!ENTITY> 页面已上线")
    assert "已记录 第9项" in answer
    (report,) = wecom.reports()
    assert report.text == "<!DOCTYPE html> 与 <!ENTITY> 页面已上线"


async def test_url_verification_refuses_missing_and_bad_parameters(wecom: WeComDialog) -> None:
    good = PrpCrypto(wecom.crypto.key).encrypt("echo-42", wecom.fake.corp_id).decode()
    garbage = "bm90IGEgY2lwaGVydGV4dA=="  # base64, but not our ciphertext
    cases: list[tuple[dict[str, str], int]] = [
        ({}, 400),
        ({"echostr": good}, 400),
        ({**_signed_params(good)}, 400),  # no echostr
        ({**_signed_params(good), "echostr": good, "msg_signature": "Ω" * 40}, 403),
        ({**_signed_params(garbage), "echostr": garbage}, 403),
        ({**_signed_params("%%%"), "echostr": "%%%"}, 403),
        ({**_signed_params(good), "echostr": good}, 200),
    ]
    async with httpx.AsyncClient() as client:
        for params, status in cases:
            response = await client.get(wecom.url, params=params)
            assert response.status_code == status, params
    assert response.text == "echo-42"


async def test_a_chunked_callback_is_cut_at_the_cap(wecom: WeComDialog) -> None:
    params = httpx.QueryParams(_signed_params("x"))
    status, sent = await _post_chunked(
        wecom.app.web_port, f"/wecom/callback?{params}", {}, total=200 << 20
    )
    assert status == 400  # WeCom's refusals are all 400s (see test_wecom.py)
    assert MAX_BODY < sent < 64 << 20, "the server read far more than its cap"
    _nothing_stored(wecom.engine)


async def test_an_unexpected_failure_is_a_503_in_one_line(
    wecom: WeComDialog, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_args: Any) -> str:
        raise RuntimeError("a bug, with a secret-looking 9 60% body in its message")

    monkeypatch.setattr(wecom.app.channels[0].crypto, "decrypt", broken)  # type: ignore[attr-defined]
    params, body = wecom.envelope(wecom.text_xml("zhangsan", "9 60%"))
    async with httpx.AsyncClient() as client:
        statuses = [
            (await client.post(wecom.url, params=params, content=body)).status_code
            for _ in range(20)
        ]
    assert statuses == [503] * 20
    lines = [r.getMessage() for r in caplog.records if r.name == "bot.channels.wecom.channel"]
    assert len(lines) == 1 and "RuntimeError" in lines[0] and "9 60%" not in lines[0]
    _no_traceback(caplog)


async def test_500_hostile_callbacks_log_a_handful_of_lines(
    wecom: WeComDialog, caplog: pytest.LogCaptureFixture
) -> None:
    params = _signed_params("x")
    forged = {**params, "msg_signature": "0" * 40}
    encrypted_body = wecom.envelope(wecom.text_xml("zhangsan", "9 60%"))[1]
    requests = [(params, DOCTYPE_63)] * 400 + [(forged, encrypted_body)] * 100
    async with httpx.AsyncClient() as client:
        statuses = [
            (await client.post(wecom.url, params=p, content=b)).status_code for p, b in requests
        ]
    assert statuses == [400] * 400 + [403] * 100
    ours = [r for r in caplog.records if r.name == "bot.channels.wecom.channel"]
    assert len(ours) == 2, [r.getMessage() for r in ours]  # one line per kind this minute
    assert all(len(r.getMessage()) < 200 for r in ours)
    assert len(caplog.records) < 10  # nor anyone else's (uvicorn's "Exception in ASGI ...")
    _no_traceback(caplog)
    _nothing_stored(wecom.engine)


def test_the_refusal_log_counts_what_it_held_back(caplog: pytest.LogCaptureFixture) -> None:
    now = [1000.0]
    refusals = RefusalLog(logging.getLogger("duban.test"), "Test hook", clock=lambda: now[0])
    for _ in range(500):
        refusals.refused(400, "malformed XML")
    refusals.refused(403, "bad signature")
    now[0] += 59
    refusals.refused(400, "malformed XML")
    now[0] += 2
    refusals.refused(400, "malformed XML")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "Test hook refused (400): malformed XML",
        "Test hook refused (403): bad signature",
        "Test hook refused (400): malformed XML (and 500 more since the last such line)",
    ]
    assert all(r.levelno == logging.WARNING for r in caplog.records)


# --- the Telegram webhook ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b"[1, 2]",
        b"1",
        b'"update"',
        b"null",
        b"true",
        b"{}",
        b'{"update_id": "7"}',
        b'{"update_id": true}',
        b'{"update_id": 7.5}',
        b'{"update_id": 7, "message": "text"}',
        b'{"update_id": 7, "message": {"chat": 1}}',
        b'{"update_id": 7, "message": []}',
        b'{"update_id": 7, "callback_query": {"id": "1"}}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"update_id": 1' + b"0" * 5000 + b"}",
        b"\xff\xfe{}",
        b"",
    ],
)
async def test_a_body_that_is_not_an_update_gets_400(
    hooked: Dialog, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{hooked.app.web_port}/telegram/webhook"
    async with httpx.AsyncClient() as client:
        response = await client.post(url, content=body, headers={SECRET_HEADER: SECRET})
    assert response.status_code == 400
    _nothing_stored(hooked.engine)
    _no_traceback(caplog)


async def test_a_chunked_update_is_cut_at_the_cap(hooked: Dialog) -> None:
    port = hooked.app.web_port
    status, sent = await _post_chunked(
        port, "/telegram/webhook", {SECRET_HEADER: SECRET}, total=200 << 20
    )
    assert status == 413
    assert sent < 64 << 20, "the server read far more than its cap"
    # without the secret nothing is read at all
    status, _ = await _post_chunked(port, "/telegram/webhook", {}, total=200 << 20)
    assert status == 403
    _nothing_stored(hooked.engine)


async def test_500_hostile_webhook_calls_log_a_handful_of_lines(
    hooked: Dialog, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{hooked.app.web_port}/telegram/webhook"
    async with httpx.AsyncClient() as client:
        statuses = [
            (
                await client.post(
                    url,
                    content=b"[]",
                    headers={SECRET_HEADER: SECRET if n % 2 else FORGED},
                )
            ).status_code
            for n in range(500)
        ]
    assert sorted(set(statuses)) == [400, 403]
    ours = [r.getMessage() for r in caplog.records if r.name == "bot.channels.telegram.channel"]
    assert len(ours) == 2, ours
    assert not any(SECRET in line or FORGED in line for line in ours)
    _no_traceback(caplog)
    _nothing_stored(hooked.engine)


# --- the WeCom markdown digest ----------------------------------------------------------------


def _hostile_plan(engine: Engine, tmp_path: Path) -> None:
    """A plan, people and reports whose every text tries to make WeCom markdown."""
    yaml_text = f"""\
plan:
  title: "{EVIL_LINK}"
  issued_on: 2023-01-01
sections:
  - title: '<font color="warning">紧急</font> [板块](http://evil.example/s)'
    items:
      - title: "**加粗** # 标题 > 引用 `代码` ~~删除~~ <@all>"
        number: 1
        lead_units: ["[单位](http://evil.example/u)"]
        deadline: 2023-05-31
        targets:
          - metric: "[指标](http://evil.example/m)"
            comparator: ">="
            value: 10
            unit: "<b>个</b>"
      - title: 正常事项
        number: 2
        deadline: 2023-12-31
"""
    path = tmp_path / "hostile.yaml"
    path.write_text(yaml_text, encoding="utf-8")
    with Session(engine, expire_on_commit=False) as session:
        plan = plans.import_plan(
            session, parse_plan_file(path), source_file=path.name, actor="cli"
        ).plan
        item1, item2 = (plans.find_item(session, plan, n) for n in ("1", "2"))
        reporter = contacts.add_contact(
            session, name="张*三*", unit="科室", role=Role.official, actor=audit.CLI_ACTOR
        )
        silent = contacts.add_contact(
            session,
            name="[李四](http://evil.example/n)",
            unit="科室",
            role=Role.official,
            actor=audit.CLI_ACTOR,
        )
        contacts.add_contact(
            session, name="王局", unit="局领导", role=Role.leader, actor=audit.CLI_ACTOR
        )
        now = datetime(2023, 6, 5, 10, 0, tzinfo=TZ)
        for item, person in [(item1, reporter), (item2, silent)]:
            assignments.assign(session, item=item, contact=person, actor=audit.CLI_ACTOR, now=now)
        target = reports.item_targets(session, item1)[0]
        reports.record_report(
            session,
            item=item1,
            contact=reporter,
            now=datetime(2023, 6, 7, 10, 0, tzinfo=TZ),
            percent=30,
            status=None,
            text=f"{EVIL_LINK}\n# 假标题\n> 假引用",
            values=[(target, 3.0)],
        )
        session.commit()


def _digest(engine: Engine) -> Any:
    with Session(engine, expire_on_commit=False) as session:
        plan = plans.current_plan(session)
        now = datetime(2023, 6, 8, 10, 0, tzinfo=TZ)
        return build_digest(session, plan, now=now, tz=TZ, rules=StatusRules())


def _assert_inert_markdown(markdown: str) -> None:
    """No link, tag, quote, code or heading but the template's own."""
    for syntax in ("[", "]", "<", ">", "`", "~", "\\"):
        assert syntax not in markdown, (syntax, markdown)
    assert markdown.replace("**概况**", "").count("*") == 0  # the one bold is the template's
    for line in markdown.splitlines():
        assert not line.startswith(">")
        if line.startswith("#"):
            assert line.startswith("### ")
            assert "＃" not in line[4:] or "督办周报" in line  # the title's own # is full-width


def test_user_text_cannot_make_wecom_markdown(engine: Engine, tmp_path: Path) -> None:
    _hostile_plan(engine, tmp_path)
    markdown = render_digest(_digest(engine), "wecom", "zh-CN")
    _assert_inert_markdown(markdown)
    # what was written is all there, shown as written (full-width look-alikes)
    assert "### 《［点我领取］(http://evil.example)》督办周报" in markdown
    assert "［点我领取］(http://evil.example) ＃ 假标题 ＞ 假引用" in markdown  # the note
    assert "＊＊加粗＊＊ ＃ 标题 ＞ 引用 ｀代码｀ ～～删除～～ ＜@all＞" in markdown
    assert "［单位］(http://evil.example/u)" in markdown
    assert "［李四］(http://evil.example/n)" in markdown.split("本周未报送")[1]
    assert "张＊三＊" in markdown and "＜b＞个＜/b＞" in markdown
    assert '· 1、＜font color="warning"＞紧…' in markdown  # the section, truncated
    # the template's own markup is untouched
    assert "**概况**" in markdown and "### 🔴 滞后事项（1）" in markdown
    english = render_digest(_digest(engine), "wecom", "en")
    _assert_inert_markdown(english.replace("**Overview**", "**概况**"))


def test_the_group_robot_gets_the_escaped_digest(engine: Engine, tmp_path: Path) -> None:
    _hostile_plan(engine, tmp_path)
    digest = _digest(engine)
    with Session(engine) as session:
        queue_digest(session, digest, locale="zh-CN", now=datetime(2023, 6, 8, 2, 0, tzinfo=TZ))
        session.commit()
        rows = session.exec(select(Outbox)).all()
    group = next(row for row in rows if row.kind == "group")
    _assert_inert_markdown(group.payload["markdown"])
    leader = next(row for row in rows if row.kind == "digest")
    assert "&lt;font" in leader.payload["html"] and "<font" not in leader.payload["html"]


def test_markdown_text_keeps_plain_text_and_defuses_markup() -> None:
    assert (
        markdown_text("江门市教育局2023年工作要点（第一批）")
        == "江门市教育局2023年工作要点（第一批）"
    )
    assert markdown_text("9 60% a-b, c.d (e) 100+") == "9 60% a-b, c.d (e) 100+"
    assert markdown_text(EVIL_LINK) == "［点我领取］(http://evil.example)"
    assert markdown_text("a\n# b\r\n> c") == "a ＃ b  ＞ c"
    assert markdown_text(42) == "42"


# --- the Telegram HTML splitter ---------------------------------------------------------------


async def test_a_5000_character_title_in_bold_goes_out_in_well_formed_parts(
    engine: Engine, tmp_path: Path, server: FakeTelegram
) -> None:
    _hostile_plan(engine, tmp_path)
    title = "标题<&>" * 1000  # 5,000 characters; escaped, 14,000
    with Session(engine) as session:
        plan = session.exec(select(Plan)).one()
        plan.title = title
        session.add(plan)
        session.commit()
    html = render_digest(_digest(engine), "telegram", "zh-CN")
    assert len(html.splitlines()[0]) > MAX_MESSAGE  # one line, inside <b>, over the limit
    app = ApplicationBuilder().token(server.token).base_url(f"{server.url}/bot").build()
    server.user_says(ZHANG, "hi")  # the fake knows the chat
    async with app:
        await TelegramMessenger(app.bot).send_text(str(ZHANG), html, markup="html")
    parts = server.messages_to(ZHANG)
    assert len(parts) >= 2  # the fake answers 400 to any part that does not parse
    for part in parts:
        assert part.parse_mode == "HTML"
        assert part.plain_text and utf16_size(part.plain_text) <= MAX_MESSAGE
        assert part.text is not None and part.text.count("<b>") == part.text.count("</b>")
    shown = "".join(p.plain_text or "" for p in parts)
    assert f"《{title}》督办周报" in shown.replace("\n", "")


def test_tags_and_entities_are_never_cut() -> None:
    line = "<b>" + "&lt;" * 30 + '<a href="http://x.example/?a=1&amp;b=2">链接</a>' + "</b>"
    parts = split_html(f"{line}\n第二行", 16)
    for part in parts:
        html_to_plain(part)  # raises on a cut tag or an unclosed one
        assert "&lt" not in part.replace("&lt;", "")
    assert "".join(html_to_plain(p) for p in parts).replace("\n", "") == html_to_plain(
        f"{line}第二行"
    )
    assert parts[-1] == "第二行"  # a whole line stays whole where it fits


_OPENING = {"b": "<b>", "i": "<i>", "a": '<a href="http://x.example/?q=1&amp;r=2">'}
_FRAGMENT = st.one_of(
    st.text(alphabet="ab 中\n😀<>&", max_size=30).map(
        lambda s: s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    ),
    st.sampled_from(sorted(_OPENING)),
)


@st.composite
def _telegram_html(draw: st.DrawFn) -> str:
    """Well-formed Telegram HTML: text, entities and nested tags, closed in order."""
    out: list[str] = []
    stack: list[str] = []
    for fragment in draw(st.lists(_FRAGMENT, max_size=40)):
        if fragment in _OPENING:
            out.append(_OPENING[fragment])
            stack.append(fragment)
        else:
            out.append(fragment)
            if stack and draw(st.booleans()):
                out.append(f"</{stack.pop()}>")
    out += [f"</{name}>" for name in reversed(stack)]
    return "".join(out)


@settings(max_examples=300, deadline=None)
@given(text=_telegram_html(), limit=st.integers(min_value=8, max_value=120))
def test_every_html_part_parses_and_fits(text: str, limit: int) -> None:
    parts = split_html(text, limit, size=utf16_size)
    for part in parts:
        assert utf16_size(html_to_plain(part)) <= limit
    shown = "".join(html_to_plain(p) for p in parts)
    assert shown.replace("\n", "") == html_to_plain(text).replace("\n", "")


# --- the ledger -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        ("\x00=1+1", "=1+1"),
        ("\x1f@SUM(A1)", "@SUM(A1)"),
        ("\x0b-2+3", "-2+3"),
        ("\x01\x02+cmd|' /C calc'!A0", "+cmd|' /C calc'!A0"),
        ('\x08=HYPERLINK("http://evil.example")', '=HYPERLINK("http://evil.example")'),
        ("\x00", None),
        ("进展\x00顺利", "进展顺利"),
    ],
)
def test_control_characters_go_before_the_formula_guard(
    tmp_path: Path, written: str, stored: str | None
) -> None:
    row = LedgerRow(
        number=1,
        title=written,
        section="一、板块",
        lead_units="科室",
        owners=written,
        deadline=None,
        targets="",
        current="",
        latest=written,
        percent=None,
        status="none",
        updated_at=None,
    )
    history = HistoryRow(
        at=datetime(2023, 6, 1, 8, 0, tzinfo=TZ),
        item=1,
        item_title=written,
        contact="张三",
        percent=None,
        status=None,
        text=written,
        values="",
        source="chat",
        entered_by=None,
        superseded=False,
        withdrawn=False,
    )
    path = write_ledger(
        tmp_path / "台账.xlsx",
        plan_title="计划",
        rows=[row],
        history=[history],
        tz=TZ,
        generated_at=datetime(2023, 6, 5, 1, 0, tzinfo=TZ),
    )
    book = openpyxl.load_workbook(path)
    for cell in (
        book["台账"]["B4"],
        book["台账"]["E4"],
        book["台账"]["I4"],
        book["进展记录"]["G2"],
    ):
        assert cell.value == stored, cell.coordinate
        if stored is not None:
            assert cell.data_type == "s"
            assert cell.quotePrefix == stored.startswith(("=", "+", "-", "@"))


# --- NUL and other control characters in what people write ------------------------------------


def test_clean_text_keeps_lines_and_tabs() -> None:
    assert clean_text("9 60%\t主体完工\r\n第二行") == "9 60%\t主体完工\n第二行"
    assert clean_text("\x00\x1b[31m红\x7f") == "[31m红"
    assert clean_text("正常文本") == "正常文本"


async def test_a_nul_in_a_chat_message_is_dropped_not_an_internal_error(
    server: FakeTelegram, db_url: str
) -> None:
    async with running_bot(server, db_url) as dialog:
        answer = await dialog.says_one(ZHANG, "9 60% 主体\x00完工\x1b")
        assert "已记录 第9项" in answer and "内部错误" not in answer
        (report,) = dialog.reports()
        assert (report.percent, report.text) == (60, "主体完工")
        answer = await dialog.says_one(ZHANG, "\x00")
        assert "内部错误" not in answer and "internal" not in answer.lower()
        assert len(dialog.reports()) == 1


def test_a_nul_in_a_cli_report_is_dropped(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_plan: Path
) -> None:
    cli = Cli(db_url, tmp_path, monkeypatch)
    cli.ok("import", sample_plan)
    cli.ok("contacts", "add", "张三", "--unit", "基础教育科")
    cli.ok("assign", "9", "张三", "--deadline", "2099-12-31")
    result = cli("report", "9", "--as", "张三", "--percent", "60", "--text", "电话\x00报送")
    assert result.exit_code == 0, (result.output, result.stderr)
    history = cli.json("history", "9")
    (only,) = history["reports"]
    assert only["text"] == "电话报送"


async def test_a_wecom_message_with_a_control_character_is_refused_cleanly(
    wecom: WeComDialog,
) -> None:
    """XML cannot carry a NUL: WeCom never sends one, and a forged one is a 400."""
    params, body = wecom.envelope(wecom.text_xml("zhangsan", "9 60% 主体\x00完工"))
    async with httpx.AsyncClient() as client:
        response = await client.post(wecom.url, params=params, content=body)
    assert response.status_code == 400
    _nothing_stored(wecom.engine)
