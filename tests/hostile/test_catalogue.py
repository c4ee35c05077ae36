"""The catalogue of hostile input that already holds (issue #12): forged and replayed callbacks,
wrong secrets, escalation by officials and leaders, stale and forged buttons, invite guessing,
formula and template injection, paths from chat. Each case checks the answer it gets and that
nothing changed, on SQLite and PostgreSQL; tests/hostile/README.md maps every case of the
issue to its test.

"Nothing changed" is a snapshot of every row a hostile message could touch (reports, target
values, assignments, contacts, items, invites, bind attempts, the audit log, notices in the
outbox, open questions, the inbox, files in DATA_DIR) taken before and after. A refused
request leaves all of it as it was; a refused chat message leaves only its inbox row and the
reply that answers it.

The cast (tests/harness.py): 张三 (official, items 9 and 10), 李四 (official, item 22), 王局
(leader), 赵主任 (admin), 陈五 (official, item 8, not bound yet, with an invite code).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest
import xmltodict
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select
from wechatpy.enterprise.crypto import PrpCrypto, WeChatCrypto

from bot import inbox
from bot.channels.telegram.channel import SECRET_HEADER
from bot.channels.wecom.channel import signature
from bot.models import (
    Account,
    Assignment,
    AuditLog,
    BindAttempt,
    Contact,
    InboxEntry,
    Invite,
    Outbox,
    PendingChoice,
    Report,
    TargetValue,
    WorkItem,
)
from bot.services import accounts, audit, contacts
from bot.services.binding import BindResult, bind_account
from tests.fakes import FakeTelegram
from tests.fakes.telegram_api import SentCall
from tests.fakes.wecom_api import FakeWeCom
from tests.harness import (
    LI,
    STRANGER,
    WANG,
    WECOM_AES_KEY,
    WECOM_TOKEN,
    ZHANG,
    ZHAO,
    Dialog,
    WeComDialog,
    running_bot,
    running_wecom_bot,
    seed,
)
from tests.test_cli import Cli

SECRET = "catalogue-webhook-secret"
ANSWERED = ("inbox", "replies")  # what a refused chat message leaves: itself and its answer
NOT_ALLOWED = "您没有使用 /{} 的权限"
STALE = "这个按钮已失效"
UNKNOWN_SENDER = "您还未登记为督办联系人"


# --- nothing changed ----------------------------------------------------------------------------


def snapshot(engine: Engine, data_dir: Path | None = None) -> dict[str, Any]:
    """Every row a hostile message could touch, and the files in DATA_DIR."""
    with Session(engine) as s:

        def rows(*columns: Any) -> list[tuple[Any, ...]]:
            return [tuple(r) for r in s.exec(select(*columns).order_by(columns[0])).all()]

        def count(table: type[Any], *where: Any) -> int:
            return s.exec(select(func.count()).select_from(table).where(*where)).one()

        state: dict[str, Any] = {
            "reports": rows(
                col(Report.id),
                col(Report.item_id),
                col(Report.contact_id),
                col(Report.percent),
                col(Report.status),
                col(Report.text),
                col(Report.superseded_by_id),
                col(Report.withdrawn_at),
            ),
            "target_values": count(TargetValue),
            "assignments": rows(
                col(Assignment.id),
                col(Assignment.item_id),
                col(Assignment.contact_id),
                col(Assignment.role),
                col(Assignment.deadline),
            ),
            "contacts": rows(
                col(Contact.id),
                col(Contact.name),
                col(Contact.role),
                col(Contact.active),
            ),
            "accounts": rows(
                col(Account.contact_id), col(Account.platform), col(Account.account_id)
            ),
            "items": rows(col(WorkItem.id), col(WorkItem.title), col(WorkItem.deadline)),
            "invites": rows(col(Invite.id), col(Invite.contact_id), col(Invite.used_at)),
            "bind_attempts": count(BindAttempt),
            "audit": count(AuditLog),
            "notices": [
                tuple(r)
                for r in s.exec(
                    select(Outbox.dedupe_key, Outbox.kind, Outbox.contact_id)
                    .where(Outbox.kind != "reply")
                    .order_by(col(Outbox.dedupe_key))
                ).all()
            ],
            "replies": count(Outbox, Outbox.kind == "reply"),
            "choices": rows(col(PendingChoice.id), col(PendingChoice.resolved_at)),
            "inbox": count(InboxEntry),
        }
    if data_dir is not None:
        state["files"] = sorted(str(p) for p in data_dir.rglob("*") if p.is_file())
    return state


def assert_unchanged(
    before: dict[str, Any], after: dict[str, Any], *, but: tuple[str, ...] = (), case: str = ""
) -> None:
    """Nothing differs between two snapshots but the parts named in `but`."""
    changed = {
        name: (before[name], after[name])
        for name in before
        if before[name] != after[name] and name not in but
    }
    assert not changed, f"{case}: changed {changed}"


def assert_answered_only(before: dict[str, Any], after: dict[str, Any], case: str = "") -> None:
    """A refused chat message: its inbox row and its answer, nothing else."""
    assert_unchanged(before, after, but=ANSWERED, case=case)
    assert after["inbox"] == before["inbox"] + 1, case


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
async def chat(server: FakeTelegram, db_url: str) -> AsyncIterator[Dialog]:
    async with running_bot(server, db_url) as dialog:
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


@pytest.fixture
async def wecom(fake: FakeWeCom, db_url: str) -> AsyncIterator[WeComDialog]:
    async with running_wecom_bot(fake, db_url) as dialog:
        yield dialog


def data_dir(dialog: Dialog | WeComDialog) -> Path:
    """Where the running bot writes exports and charts."""
    return Path(dialog.app.settings.data_dir)


async def says(chat: Dialog, user: int, text: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The user writes text and gets one answer; returns it with the snapshots around it."""
    before = snapshot(chat.engine, data_dir(chat))
    answer = await chat.says_one(user, text)
    return answer, before, snapshot(chat.engine, data_dir(chat))


# --- WeCom: forged, replayed and foreign callbacks ----------------------------------------------


def _envelope(crypto: WeChatCrypto, xml: str, timestamp: str) -> tuple[dict[str, str], bytes]:
    """A callback encrypted and signed with someone else's keys."""
    encrypted = crypto.encrypt_message(xml, "nonce-cat", timestamp)
    parsed = xmltodict.parse(encrypted)["xml"]
    params = {"msg_signature": parsed["MsgSignature"], "timestamp": timestamp, "nonce": "nonce-cat"}
    return params, encrypted.encode()


async def _post(wecom: WeComDialog, params: dict[str, str], body: bytes) -> int:
    async with httpx.AsyncClient() as client:
        return (await client.post(wecom.url, params=params, content=body)).status_code


async def test_wecom_forged_signature_is_refused_and_changes_nothing(wecom: WeComDialog) -> None:
    before = snapshot(wecom.engine)
    params, body = wecom.envelope(wecom.text_xml("zhangsan", "9 60% 伪造签名"))
    good = params["msg_signature"]
    statuses = [
        await _post(wecom, {**params, "msg_signature": forged}, body)
        for forged in ("0" * 40, good.upper(), good[:-1], good + "0", "")
    ]
    assert statuses == [403, 403, 403, 403, 400]  # no signature at all: a malformed request
    # a signature made with the wrong token (someone who has the AES key but not the token)
    wrong = WeChatCrypto("not-the-token", WECOM_AES_KEY, wecom.fake.corp_id)
    now = str(int(time.time()))
    assert await _post(wecom, *_envelope(wrong, wecom.text_xml("zhangsan", "9 60%"), now)) == 403
    await asyncio.sleep(0.05)
    assert_unchanged(before, snapshot(wecom.engine), case="forged signature")
    assert wecom.fake.messages_to("zhangsan") == []


async def test_wecom_replayed_callback_is_stored_once_and_handled_once(wecom: WeComDialog) -> None:
    params, body = wecom.envelope(wecom.text_xml("zhangsan", "9 60% 重放", msg_id=424242))
    assert await _post(wecom, params, body) == 200
    await wecom.handled(1)
    after_first = snapshot(wecom.engine)
    assert len(after_first["reports"]) == 1 and after_first["inbox"] == 1
    # the very same request, then the same MsgId in a fresh envelope (WeCom's own retry)
    assert await _post(wecom, params, body) == 200
    again = wecom.envelope(wecom.text_xml("zhangsan", "9 61% 重放", msg_id=424242), nonce="n2")
    assert await _post(wecom, *again) == 200
    await asyncio.sleep(0.2)
    assert_unchanged(after_first, snapshot(wecom.engine), case="replayed MsgId")
    assert len(wecom.fake.messages_to("zhangsan")) == 1  # answered once
    # a replayed click (an event: keyed by sender, task and time) is handled once too
    (card,) = await wecom.say("zhangsan", "本周召开推进会，进度50%")
    key = card.card["button_list"][0]["key"]
    click = wecom.event_xml("zhangsan", "template_card_event", EventKey=key, TaskId="t-1")
    handled = len(wecom._handled)
    assert await wecom.post(click) == 200
    await wecom.handled(handled + 1)
    clicked = snapshot(wecom.engine)
    assert await wecom.post(click) == 200
    await asyncio.sleep(0.2)
    assert_unchanged(clicked, snapshot(wecom.engine), case="replayed click")
    assert [r.percent for r in wecom.reports()] == [60, 50]


async def test_wecom_callback_for_another_corp_is_refused(wecom: WeComDialog) -> None:
    before = snapshot(wecom.engine)
    other = WeChatCrypto(WECOM_TOKEN, WECOM_AES_KEY, "ww-another-corp")
    xml = wecom.text_xml("zhangsan", "9 60% 别家企业")
    assert await _post(wecom, *_envelope(other, xml, str(int(time.time())))) == 403
    # URL verification for another corp does not echo either
    echostr = PrpCrypto(wecom.crypto.key).encrypt("echo-other", "ww-another-corp").decode()
    ts = str(int(time.time()))
    query = {
        "msg_signature": signature(WECOM_TOKEN, ts, "n", echostr),
        "timestamp": ts,
        "nonce": "n",
        "echostr": echostr,
    }
    async with httpx.AsyncClient() as client:
        response = await client.get(wecom.url, params=query)
    assert response.status_code == 403 and "echo-other" not in response.text
    await asyncio.sleep(0.05)
    assert_unchanged(before, snapshot(wecom.engine), case="another corp")


async def test_wecom_url_verification_with_the_wrong_token_is_refused(wecom: WeComDialog) -> None:
    echostr = PrpCrypto(wecom.crypto.key).encrypt("echo-secret", wecom.fake.corp_id).decode()
    ts = str(int(time.time()))
    signed = {"timestamp": ts, "nonce": "n", "echostr": echostr}
    async with httpx.AsyncClient() as client:
        wrong = await client.get(
            wecom.url, params={**signed, "msg_signature": signature("wrong", ts, "n", echostr)}
        )
        right = await client.get(
            wecom.url, params={**signed, "msg_signature": signature(WECOM_TOKEN, ts, "n", echostr)}
        )
    assert wrong.status_code == 403 and "echo-secret" not in wrong.text
    assert right.status_code == 200 and right.text == "echo-secret"
    assert snapshot(wecom.engine)["inbox"] == 0


async def test_wecom_a_replay_is_stored_once_and_a_stale_one_is_refused(
    wecom: WeComDialog,
) -> None:
    """A callback replayed while its inbox row is kept is stored and handled once (by MsgId);
    one whose signed timestamp is older than MAX_CALLBACK_AGE (shorter than the inbox's
    retention) is refused, so a capture replayed after pruning cannot be handled again."""
    xml = wecom.text_xml("zhangsan", "9 60% 重放", msg_id=515151)
    params, body = wecom.envelope(xml)
    assert await _post(wecom, params, body) == 200
    await wecom.handled(1)
    first = snapshot(wecom.engine)
    assert await _post(wecom, params, body) == 200
    await asyncio.sleep(0.2)
    assert_unchanged(first, snapshot(wecom.engine), case="replayed at once")
    week_ago = str(int(time.time()) - 8 * 86400)
    old = wecom.text_xml("zhangsan", "9 60% 旧消息", msg_id=616161)
    params, body = wecom.envelope(old, timestamp=week_ago)
    inbox.prune(wecom.engine, wecom.clock() + timedelta(days=30))  # whatever was kept is gone
    before = snapshot(wecom.engine)
    assert await _post(wecom, params, body) == 403
    await asyncio.sleep(0.2)
    assert_unchanged(before, snapshot(wecom.engine), case="stale timestamp")
    for bad in ("", "abc", "9" * 20):
        params, body = wecom.envelope(old, timestamp=bad or "0")
        params["timestamp"] = bad
        assert await _post(wecom, params, body) in (400, 403)
    assert_unchanged(before, snapshot(wecom.engine), case="bad timestamps")


# --- the Telegram webhook: the secret before the body ------------------------------------------


async def _announce_body(
    port: int, headers: dict[str, str], length: int, *, wait: float = 5
) -> int | None:
    """Announce a JSON body of `length` bytes, send 16 of them and wait up to `wait` seconds
    for the answer; returns its status, or None when the server is still waiting for the rest
    (which is never sent)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = [
        "POST /telegram/webhook HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        f"Content-Length: {length}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + b'{"update_id": 1,')
    await writer.drain()
    try:
        status_line = await asyncio.wait_for(reader.readline(), wait)
    except TimeoutError:
        return None
    finally:
        writer.close()
    return int(status_line.split()[1])


@pytest.mark.parametrize(
    "headers",
    [{}, {SECRET_HEADER: "wrong"}, {SECRET_HEADER: SECRET[:-1]}, {SECRET_HEADER: SECRET + "x"}],
    ids=["missing", "wrong", "prefix", "longer"],
)
async def test_webhook_without_the_secret_is_refused_before_the_body(
    hooked: Dialog, headers: dict[str, str]
) -> None:
    before = snapshot(hooked.engine)
    url = f"http://127.0.0.1:{hooked.app.web_port}/telegram/webhook"
    update = {
        "update_id": 77,
        "message": {
            "message_id": 77,
            "date": 1685584800,
            "chat": {"id": ZHAO, "type": "private", "first_name": "赵"},
            "from": {"id": ZHAO, "is_bot": False, "first_name": "赵"},
            "text": "/assign 22 张三",
            "entities": [{"type": "bot_command", "offset": 0, "length": 7}],
        },
    }
    async with httpx.AsyncClient() as client:
        response = await client.post(url, json=update, headers=headers)
    assert response.status_code == 403
    # the same header on a body that never comes (200 MB, or a small one): answered at once
    for length in (200 << 20, 1000):
        assert await _announce_body(hooked.app.web_port, headers, length, wait=2) == 403
    await asyncio.sleep(0.05)
    assert_unchanged(before, snapshot(hooked.engine), case=f"webhook {headers}")
    assert hooked.server.messages_to(ZHAO) == []


async def test_webhook_with_the_secret_reads_the_announced_body(hooked: Dialog) -> None:
    """The contrast that shows the 403 came before the body: with the right secret the server
    waits for the body it was promised (and refuses one announced over the 1 MB cap at once)."""
    port, right = hooked.app.web_port, {SECRET_HEADER: SECRET}
    assert await _announce_body(port, right, 1000, wait=0.5) is None  # still reading
    assert await _announce_body(port, right, 200 << 20) == 413
    assert snapshot(hooked.engine)["inbox"] == 0


# --- escalation: commands and reports beyond one's role ------------------------------------------

ADMIN_COMMANDS = [
    "/assign 22 张三",
    "/assign 张三 9 10 年底",
    "/unassign 9 张三",
    "/deadline 9 2023-12-31",
    "/invite 陈五",
    "/invite 张三",
    "/wecom 陈五 chenwu",
    "/wecom 张三 evil",
    "/remind",
    "/remind 22",
    "/contacts",
]
LEADER_COMMANDS = ["/digest", "/digest 2023-W23", "/export", "/overdue"]


async def test_an_official_cannot_use_admin_or_leader_commands(chat: Dialog) -> None:
    for text in ADMIN_COMMANDS + LEADER_COMMANDS:
        command = text[1:].split()[0]
        answer, before, after = await says(chat, ZHANG, text)
        assert NOT_ALLOWED.format(command) in answer, (text, answer)
        assert_answered_only(before, after, case=text)
    assert chat.server.messages_to(LI) == []  # nobody was told anything, nor asked


async def test_a_leader_cannot_use_admin_commands(chat: Dialog) -> None:
    for text in ADMIN_COMMANDS:
        command = text[1:].split()[0]
        answer, before, after = await says(chat, WANG, text)
        assert NOT_ALLOWED.format(command) in answer, (text, answer)
        assert_answered_only(before, after, case=text)
    assert chat.server.messages_to(ZHANG) == [] and chat.server.messages_to(LI) == []


async def test_a_stranger_learns_only_how_to_register(chat: Dialog) -> None:
    for text in [*ADMIN_COMMANDS, *LEADER_COMMANDS, "/status 9", "/my", "9 60%", "/report 9 60"]:
        answer, before, after = await says(chat, STRANGER, text)
        assert UNKNOWN_SENDER in answer and "第 9 项" not in answer, (text, answer)
        assert_answered_only(before, after, case=text)


@pytest.mark.parametrize(
    ("user", "text", "expected"),
    [
        (LI, "9 60%", "第 9 项没有分配给您，无法填报"),
        (LI, "第9项已完成", "第 9 项没有分配给您，无法填报"),
        (LI, "/report 9 60 代填", "第 9 项没有分配给您，无法填报"),
        (LI, "/report 9 60% @张三", "只有领导和管理员可以代他人填报"),
        (ZHANG, "/report 22 60% @李四", "只有领导和管理员可以代他人填报"),
        (ZHANG, "/report 9 60% @张三", "只有领导和管理员可以代他人填报"),
        (LI, "/status 9", "第 9 项没有分配给您，无法查看"),
        (LI, "第9项进展怎么样了", "第 9 项没有分配给您，无法查看"),
        (WANG, "9 60%", "/report 9 60% @张三"),
        (WANG, "第9项已完成", "由 张三 负责"),
        (ZHAO, "10 30%", "/report 10 30% @张三"),
        (WANG, "/report 9 60% @李四", "李四 并未负责第 9 项，不能代其填报"),
        (WANG, "/report 9 60% @无名氏", "没有名为“无名氏”的联系人"),
    ],
)
async def test_reports_and_status_beyond_ones_items_are_refused(
    chat: Dialog, user: int, text: str, expected: str
) -> None:
    answer, before, after = await says(chat, user, text)
    assert expected in answer, answer
    assert_answered_only(before, after, case=text)


async def test_an_official_cannot_change_someone_elses_figure(chat: Dialog) -> None:
    """Zhang's figure stands, whatever Li writes about item 9; /undo takes back only one's own."""
    await chat.says_one(ZHANG, "9 85% 主体完工")
    for text in ("9 10%", "/report 9 0 @张三", "/undo"):
        answer, before, after = await says(chat, LI, text)
        assert "85" not in answer, answer
        assert_answered_only(before, after, case=text)
    assert [r.percent for r in chat.reports()] == [85]


async def test_a_bound_person_cannot_take_over_another_contact_with_their_code(
    chat: Dialog,
) -> None:
    """Zhang holds Chen's code: /start says he is Zhang already and the code stays unused."""
    answer, before, after = await says(chat, ZHANG, f"/start {chat.codes['陈五']}")
    assert "此账号已绑定为“张三”" in answer
    assert_answered_only(before, after, case="/start with another's code")


async def test_escalation_on_wecom_is_refused_the_same_way(wecom: WeComDialog) -> None:
    for user, text, expected in [
        ("zhangsan", "/assign 22 张三", NOT_ALLOWED.format("assign")),
        ("wangju", "/wecom 陈五 chenwu", NOT_ALLOWED.format("wecom")),
        ("lisi", "9 60%", "第 9 项没有分配给您"),
        ("stranger", "/contacts", UNKNOWN_SENDER),
    ]:
        before = snapshot(wecom.engine)
        answer = await wecom.says_one(user, text)
        assert expected in answer, (text, answer)
        assert_answered_only(before, snapshot(wecom.engine), case=text)


# --- stale and forged buttons -------------------------------------------------------------------

_query_ids = itertools.count(1)


async def forged_click(chat: Dialog, user: int, message_id: int, data: str) -> list[SentCall]:
    """A click whose callback data the client made up (Telegram passes it on unchecked)."""
    sender = {"id": user, "is_bot": False, "first_name": "Test"}
    update_id = chat.server.push_raw_update(
        {
            "callback_query": {
                "id": f"forged-{next(_query_ids)}",
                "from": sender,
                "chat_instance": "forged",
                "data": data,
                "message": chat.server.message(user, message_id),
            }
        }
    )
    return await chat._settle(update_id, user, len(chat.server.messages_to(user)))


async def _question(chat: Dialog) -> tuple[SentCall, int]:
    """Zhang's "which item?" question and the id of the open choice behind its buttons."""
    (question,) = await chat.say(ZHANG, "本周召开推进会，进度50%")
    data = question.buttons[0][1]
    assert data is not None and data.startswith("pick:")
    return question, int(data.split(":")[1])


async def test_forged_button_data_is_a_stale_button(chat: Dialog) -> None:
    question, choice = await _question(chat)
    await chat.says_one(LI, "你好")  # Li has a message of the bot's to click on
    li_message = chat.server.messages_to(LI)[-1].message_id
    cases = [
        (ZHANG, "pick:999:9"),
        (ZHANG, "pick:abc"),
        (ZHANG, "pick:"),
        (ZHANG, f"pick:{choice}"),
        (ZHANG, f"pick:{choice}:22"),  # an item not offered (Li's)
        (ZHANG, f"pick:{choice}:abc"),
        (ZHANG, f"pick:{choice}:-1"),
        (ZHANG, f"pick:-{choice}:9"),
        (ZHANG, f"pick:{choice}:9:extra"),
        (ZHANG, "page:999:0"),
        (ZHANG, f"page:{choice}:800"),
        (ZHANG, f"page:{choice}:x"),
        (ZHANG, "page:abc"),
        (ZHANG, "bare:999:60"),
        (ZHANG, f"bare:{choice}:500"),
        (ZHANG, f"bare:{choice}:60"),  # a figure for a "which item?" question
        (ZHANG, f"bare:{choice}:n"),
        (ZHANG, f"bare:{choice}:abc"),
        (ZHANG, "evil:1"),
        (ZHANG, ""),
        (ZHANG, "pick:" + "9" * 58),  # past any database integer
        (ZHANG, f"pick:{choice}:²"),  # a digit to str.isdigit(), no number to int()
        (ZHANG, f"page:{choice}:²"),
        (ZHANG, "pick:²:9"),
        (LI, f"pick:{choice}:9"),  # Zhang's open question, clicked by Li
        (LI, f"bare:{choice}:50"),
        (LI, f"page:{choice}:0"),
    ]
    for user, data in cases:
        message = question.message_id if user == ZHANG else li_message
        before = snapshot(chat.engine)
        (answer,) = await forged_click(chat, user, message, data)
        assert STALE in answer.plain_text, (user, data, answer.plain_text)
        assert_answered_only(before, snapshot(chat.engine), case=f"{user} {data!r}")
    # the question is still open: the real button still works
    real = question.buttons[1][1]
    assert real is not None
    (confirm,) = await chat.click(ZHANG, question.message_id, real)
    assert "已记录 第10项" in confirm.plain_text


async def test_odd_typed_answers_to_an_open_question_record_nothing(chat: Dialog) -> None:
    await _question(chat)
    for text in ("²", "9" * 30, "０", "22", "00", "٣"):
        answer, before, after = await says(chat, ZHANG, text)
        assert "出错了" not in answer, (text, answer)
        assert_unchanged(before, after, but=(*ANSWERED, "choices"), case=text)
        assert [c for c in after["choices"] if c[1] is not None] == [], text  # still open


async def test_a_button_of_an_answered_or_old_question_is_stale(chat: Dialog) -> None:
    question, _ = await _question(chat)
    first, second = (question.buttons[0][1], question.buttons[1][1])
    assert first is not None and second is not None
    (confirm,) = await chat.click(ZHANG, question.message_id, first)
    assert "已记录 第9项" in confirm.plain_text
    for data in (first, second):  # answered: both buttons are stale now
        before = snapshot(chat.engine)
        (answer,) = await chat.click(ZHANG, question.message_id, data)
        assert STALE in answer.plain_text
        assert_answered_only(before, snapshot(chat.engine), case=f"answered {data}")
    old, _ = await _question(chat)
    chat.clock.advance(timedelta(days=1, minutes=1))
    data = old.buttons[0][1]
    assert data is not None
    before = snapshot(chat.engine)
    (answer,) = await chat.click(ZHANG, old.message_id, data)
    assert STALE in answer.plain_text
    assert_answered_only(before, snapshot(chat.engine), case="a day-old question")


@pytest.mark.parametrize(
    ("text", "offered"),
    [("9 75 主体完工", ["75", "n"]), ("9 进度从上周的50%提到了65%", ["50", "65", "n"])],
)
async def test_a_figure_the_question_did_not_offer_is_a_stale_button(
    chat: Dialog, text: str, offered: list[str]
) -> None:
    """ "Is this figure the percent?" offers the figures written; a forged other one (or one
    over 100) records nothing, and the question stays open for the real buttons."""
    (question,) = await chat.say(ZHANG, text)
    choice = question.buttons[0][1]
    assert choice is not None
    choice_id = choice.split(":")[1]
    assert [data.split(":")[2] for _, data in question.buttons if data] == offered
    for figure in ("33", "100", "0", "101"):
        before = snapshot(chat.engine)
        (answer,) = await forged_click(
            chat, ZHANG, question.message_id, f"bare:{choice_id}:{figure}"
        )
        assert STALE in answer.plain_text, (figure, answer.plain_text)
        assert_answered_only(before, snapshot(chat.engine), case=f"bare {figure}")
    (confirm,) = await chat.click(ZHANG, question.message_id, f"{offered[-2]}%")
    assert f"进度：{offered[-2]}%" in confirm.plain_text
    assert [r.percent for r in chat.reports()] == [int(offered[-2])]


async def test_a_stranger_clicking_a_button_learns_only_how_to_register(chat: Dialog) -> None:
    """A stranger with Zhang's choice id in a forged click: Zhang's question stays open."""
    _, choice = await _question(chat)
    await chat.says_one(STRANGER, "你好")
    message = chat.server.messages_to(STRANGER)[-1].message_id
    before = snapshot(chat.engine)
    (answer,) = await forged_click(chat, STRANGER, message, f"pick:{choice}:9")
    assert UNKNOWN_SENDER in answer.plain_text
    assert_answered_only(before, snapshot(chat.engine), case="a stranger's click")


async def test_a_forged_card_click_on_wecom_is_a_stale_button(wecom: WeComDialog) -> None:
    (card,) = await wecom.say("zhangsan", "本周召开推进会，进度50%")
    choice = card.card["button_list"][0]["key"].split(":")[1]
    for key in ("pick:999:9", f"pick:{choice}:22", f"bare:{choice}:500", "evil"):
        before = snapshot(wecom.engine)
        handled = len(wecom._handled)
        sent = len(wecom.fake.messages_to("zhangsan"))
        click = wecom.event_xml("zhangsan", "template_card_event", EventKey=key, TaskId=key)
        assert await wecom.post(click) == 200
        await wecom.handled(handled + 1)
        (answer,) = wecom.fake.messages_to("zhangsan")[sent:]
        assert STALE in answer.content, (key, answer.content)
        assert_answered_only(before, snapshot(wecom.engine), case=key)


# --- invites: guessing, used, expired, superseded, deactivated ---------------------------------


def invite(engine: Engine, name: str, now: datetime) -> str:
    """A fresh invite code for a contact, as `duban contacts invite NAME` gives it."""
    with Session(engine) as s:
        code, _ = contacts.create_invite(
            s, contacts.find_contact(s, name), valid_days=7, actor=audit.CLI_ACTOR, now=now
        )
        s.commit()
    return code


async def test_guessing_invite_codes_locks_the_account_after_five(chat: Dialog) -> None:
    guesses = ["WRONG123", "ABCD2345", "' OR 1=1 --", "%", "A" * 200]
    for n, guess in enumerate(guesses):
        answer, before, after = await says(chat, STRANGER, f"/start {guess}")
        assert ("还可尝试" if n < 4 else "错误次数过多") in answer, answer
        assert_unchanged(before, after, but=(*ANSWERED, "bind_attempts"), case=guess)
        assert after["bind_attempts"] == before["bind_attempts"] + 1
    # locked: the right code is refused too, and is not even counted
    answer, before, after = await says(chat, STRANGER, f"/start {chat.codes['陈五']}")
    assert "错误次数过多" in answer
    assert_answered_only(before, after, case="right code while locked")
    # another account is not locked by the first one's guesses
    assert "绑定成功" in (await chat.say(4242, f"/start {chat.codes['陈五']}"))[0].plain_text


async def test_a_used_an_expired_and_a_superseded_code_are_refused(chat: Dialog) -> None:
    """Each is a wrong code: refused, counted towards the lockout, nothing bound."""
    code = chat.codes["陈五"]
    assert "绑定成功" in (await chat.say(4242, f"/start {code}"))[0].plain_text
    old = invite(chat.engine, "陈五", chat.clock())
    new = invite(chat.engine, "陈五", chat.clock())  # the newest code is the only one that works
    for case, account, text, later in [
        ("used", 4343, f"/start {code}", timedelta(0)),
        ("superseded", 4444, f"/start {old}", timedelta(0)),
        ("expired", 4444, f"/start {new}", timedelta(days=7, minutes=1)),
    ]:
        chat.clock.advance(later)
        answer, before, after = await says(chat, account, text)
        assert "邀请码无效或已过期" in answer, (case, answer)
        assert_unchanged(before, after, but=(*ANSWERED, "bind_attempts"), case=case)
        assert after["bind_attempts"] == before["bind_attempts"] + 1, case


def test_two_accounts_racing_with_one_code_bind_once(pg_database_factory: Any) -> None:
    """The code is claimed with one conditional UPDATE: on PostgreSQL the second account waits
    for the first transaction and then finds the code used. (PostgreSQL only: SQLite takes one
    writer at a time, so two binds cannot interleave there.)"""
    from bot import db as database

    engine = database.make_engine(pg_database_factory())
    database.upgrade(engine)
    code = seed(engine)["陈五"]  # issued 2023-06-01 10:00 in Shanghai, for 7 days
    now = datetime(2023, 6, 2, 3, 0, 0, 123456, tzinfo=UTC)

    def bind(account: str) -> BindResult:
        with Session(engine, expire_on_commit=False) as session:
            result = bind_account(
                session, platform="telegram", sender_id=account, code=code, now=now
            )
            session.commit()
            return result

    first, pool = Session(engine, expire_on_commit=False), ThreadPoolExecutor(1)
    try:
        won = bind_account(first, platform="telegram", sender_id="4242", code=code, now=now)
        assert won.contact is not None  # not committed yet: it holds the invite's row
        racing = pool.submit(bind, "4343")
        time.sleep(0.3)
        waited = not racing.done()
        first.commit()
        lost = racing.result(timeout=10)
    finally:
        first.close()  # a failure above rolls back here, so the second bind cannot hang
        pool.shutdown()
    assert waited, "the second bind did not wait for the first"
    assert lost.problem == "bind.bad_code" and lost.contact is None
    with Session(engine) as s:
        chen = contacts.find_contact(s, "陈五")
        assert accounts.account_of(s, chen.id or 0, "telegram").account_id == "4242"  # type: ignore[union-attr]
        (used,) = s.exec(select(Invite.used_at).where(col(Invite.used_at).is_not(None))).all()
        assert used == now  # the claim's own time, stored as UTC
    engine.dispose()


async def test_an_invite_for_a_deactivated_contact_binds_nothing(chat: Dialog) -> None:
    with Session(chat.engine) as s:
        chen = contacts.find_contact(s, "陈五")
        chen.active = False
        s.commit()
    answer, before, after = await says(chat, 4242, f"/start {chat.codes['陈五']}")
    assert "已停用" in answer and "绑定成功" not in answer
    assert_answered_only(before, after, case="deactivated contact")


# --- the invite decision: a second account for a contact already bound -------------------------


def _admin_notices(engine: Engine) -> list[Outbox]:
    with Session(engine) as s:
        return list(s.exec(select(Outbox).where(col(Outbox.dedupe_key).startswith("rebind:"))))


async def test_an_invite_used_by_a_new_account_moves_the_binding_and_tells_the_admins(
    chat: Dialog,
) -> None:
    """Zhang (account A) gets a new phone; the admin sends him an invite, account B uses it:
    B is Zhang now, A is a stranger, every admin is told, and the audit log says so."""
    old_account, new_account = ZHANG, 5005
    invite = await chat.says_one(ZHAO, "/invite 张三")
    code = invite.split("/start ")[-1].strip()
    answers = await chat.say(new_account, f"/start {code}")
    assert "绑定成功！您是 张三（基础教育科）" in answers[0].plain_text
    assert "原来绑定的账号已解除绑定" in answers[0].plain_text
    assert "/my" in answers[-1].plain_text  # the help follows
    with Session(chat.engine) as s:
        zhang = contacts.find_contact(s, "张三")
        held = accounts.account_of(s, zhang.id or 0, "telegram")
        assert held is not None and held.account_id == str(new_account)
        (entry,) = s.exec(select(AuditLog).where(AuditLog.action == "contact.rebind")).all()
        assert entry.actor == f"contact:{zhang.id}"
        assert entry.detail == {
            "name": "张三",
            "platform": "telegram",
            "previous": str(old_account),
            "account": str(new_account),
        }
    # every admin (one here) has a notice row, and got it
    (notice,) = _admin_notices(chat.engine)
    assert notice.payload["message"] == "bind.moved_notice"
    assert notice.payload["params"]["platform"] == {"key": "channel.telegram.label"}
    await chat.server.await_until(
        lambda server: any("账号变更：张三" in m.plain_text for m in server.messages_to(ZHAO))
    )
    told = [m.plain_text for m in chat.server.messages_to(ZHAO) if "账号变更" in m.plain_text]
    assert len(told) == 1 and "/invite 张三" in told[0] and "新的Telegram账号" in told[0]
    # the old account is a stranger; the new one reports as Zhang
    answer, before, after = await says(chat, old_account, "9 60%")
    assert UNKNOWN_SENDER in answer
    assert_answered_only(before, after, case="the old account")
    assert "已记录 第9项" in await chat.says_one(new_account, "9 60%")
    # the code was used once: the old account cannot take it back with it
    assert "邀请码无效或已过期" in await chat.says_one(old_account, f"/start {code}")


async def test_an_invite_cannot_take_an_account_bound_to_someone_else(chat: Dialog) -> None:
    """Li's account holds Chen's code: refused, nothing moves, the code stays usable."""
    answer, before, after = await says(chat, LI, f"/start {chat.codes['陈五']}")
    assert "此账号已绑定为“李四”" in answer
    assert_answered_only(before, after, case="bound account, another's code")
    assert "绑定成功" in (await chat.say(4242, f"/start {chat.codes['陈五']}"))[0].plain_text


async def test_an_invite_moves_a_wecom_binding_too(wecom: WeComDialog) -> None:
    code = invite(wecom.engine, "张三", wecom.clock())
    texts = [m.content for m in await wecom.say("zhangsan-new", f"/start {code}")]
    assert "绑定成功！您是 张三" in texts[0] and "原来绑定的账号已解除绑定" in texts[0]
    (notice,) = _admin_notices(wecom.engine)
    assert notice.payload["message"] == "bind.moved_notice"
    assert notice.payload["params"]["platform"] == {"key": "channel.wecom.label"}
    await wecom.fake.await_until(
        lambda f: any("企业微信账号" in str(m.content) for m in f.messages_to("zhaozhuren"))
    )
    assert UNKNOWN_SENDER in await wecom.says_one("zhangsan", "9 60%")
    assert "已记录 第9项" in await wecom.says_one("zhangsan-new", "9 60%")


# --- formula and template injection -------------------------------------------------------------

FORMULAS = ['=HYPERLINK("http://evil.example","点我")', "@SUM(A1)", "+1+1", "=1+1"]
DASH_TITLE = "-2+3 扩增学位"  # a note cannot start with "-" (it is read as "9- 60%"): a title


async def test_formulas_in_reports_reach_the_ledger_as_guarded_text(chat: Dialog) -> None:
    with Session(chat.engine) as s:
        item = s.exec(select(WorkItem).where(WorkItem.number == 10)).one()
        item.title = DASH_TITLE
        s.commit()
    for formula in FORMULAS:
        assert "已记录 第9项" in await chat.says_one(ZHANG, f"9 60% {formula}")
    assert "已记录 第10项" in await chat.says_one(ZHANG, "10 30% +cmd|' /C calc'!A0")
    notes = [r.text for r in chat.reports()]
    assert notes == [*FORMULAS, "+cmd|' /C calc'!A0"], notes
    answers = await chat.say(ZHAO, "/export")
    assert answers and answers[-1].method == "sendDocument"
    (path,) = (data_dir(chat) / "exports").glob("*.xlsx")
    book = openpyxl.load_workbook(path)
    hostile = {*notes, DASH_TITLE}
    cells = [c for sheet in book for row in sheet.iter_rows() for c in row if c.value in hostile]
    assert {c.value for c in cells} == hostile  # every one, in the history sheet at least
    for cell in cells:
        assert cell.data_type == "s" and cell.quotePrefix, (cell.coordinate, cell.value)


# No digit but 7*7: "range(3)" would be read as item 3 (and refused, as not Zhang's).
JINJA = "{{ 7*7 }}{% for x in items %}x{% endfor %}{# c #}{{ config }}"


async def test_template_syntax_in_notes_and_titles_is_shown_literally(chat: Dialog) -> None:
    with Session(chat.engine) as s:
        item = s.exec(select(WorkItem).where(WorkItem.number == 10)).one()
        item.title = f"扩增学位{JINJA}"
        s.commit()
    recorded = await chat.says_one(ZHANG, f"9 60% 进展{JINJA}")
    assert JINJA in recorded
    assert chat.reports()[-1].text == f"进展{JINJA}"
    shown = {
        "/status 9": await chat.says_one(WANG, "/status 9"),
        "/status 10": await chat.says_one(WANG, "/status 10"),
        "/my": await chat.says_one(ZHANG, "/my"),
        "/digest": (await chat.say(WANG, "/digest"))[0].plain_text,
        "unknown command": await chat.says_one(ZHANG, "/x{0.__class__}{name}"),
    }
    for where, text in shown.items():
        assert "49" not in text and "xxx" not in text and "<class" not in text, (where, text)
    assert JINJA in shown["/status 9"] and JINJA in shown["/status 10"]
    assert JINJA in shown["/my"]
    assert "{{ 7*7 }}" in shown["/digest"]  # the note is cut at 40 characters there
    assert "/x{0.__class__}{name}" in shown["unknown command"]


# --- paths: chat never chooses a file ------------------------------------------------------------


async def test_chat_input_never_chooses_a_file_path(chat: Dialog, tmp_path: Path) -> None:
    """/export and /digest take no path: what follows the command is ignored or refused, and
    files land in DATA_DIR/exports and DATA_DIR/charts under names the bot makes."""
    home = data_dir(chat)
    for text in (
        "/export ../../etc/x.xlsx",
        f"/export {tmp_path}/evil.xlsx",
        "/export ~/.bashrc",
    ):
        answers = await chat.say(ZHAO, text)
        assert answers[-1].method == "sendDocument", text
    answer, before, after = await says(chat, WANG, "/digest ../../../tmp/duban-evil")
    assert "周次“../../../tmp/duban-evil”无效" in answer
    assert_answered_only(before, after, case="/digest with a path")
    await chat.say(WANG, "/digest 2023-W23")
    written = sorted(p.relative_to(home) for p in home.rglob("*") if p.is_file())
    assert written and all(p.parts[0] in ("exports", "charts") for p in written), written
    assert all(p.name.startswith(("ledger-", "digest-")) and ".." not in str(p) for p in written)
    assert not (tmp_path / "evil.xlsx").exists()
    assert not (home.parent.parent / "etc" / "x.xlsx").exists()


async def test_a_document_from_chat_is_never_stored(chat: Dialog) -> None:
    """Files people send are evidence files of the allowed types only (tests/test_evidence.py):
    a plan named ../../x.yaml is refused, and nothing of it is stored."""
    before = snapshot(chat.engine, data_dir(chat))
    update_id = chat.server.user_sends_document(ZHAO, "../../plan.yaml", b"plan:\n  title: x\n")
    (answer,) = await chat._settle(update_id, ZHAO, len(chat.server.messages_to(ZHAO)))
    assert "这种文件无法作为佐证材料" in answer.plain_text
    assert_answered_only(before, snapshot(chat.engine, data_dir(chat)), case="a document")


def test_the_cli_takes_the_paths_its_admin_gives(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_plan: Path
) -> None:
    """The CLI runs in the admin's own shell, with the admin's rights: a path with `..` is
    just a path, read or written where it points (the chat has no such door)."""
    (tmp_path / "work").mkdir()
    (tmp_path / "plans").mkdir()
    plan = tmp_path / "plans" / "计划.txt"
    plan.write_bytes(sample_plan.read_bytes())
    cli = Cli(db_url, tmp_path / "work", monkeypatch)
    assert "已导入" in cli.ok("import", "../plans/计划.txt").stdout
    cli.ok("export", "../plans/台账.xlsx")
    assert (tmp_path / "plans" / "台账.xlsx").is_file()
    refused = cli("export", "../plans/台账.csv")  # the one rule: a workbook's suffix
    assert refused.exit_code == 2 and not (tmp_path / "plans" / "台账.csv").exists()
