"""One dialog suite for every channel: the same transcripts on each chat platform's fake, on
SQLite and PostgreSQL. Every dialog checks both what the person is told (stable fragments of
the zh-CN catalog) and what the database holds afterwards.

How a new channel joins
-----------------------
Write `tests/channels/driver_<name>.py` next to this file, implementing the contract in
`tests/channels/driver.py`:

- `NAME = "<name>"` (the platform name, as stored with accounts and inbox rows; the module's
  file name says the same),
- `available() -> str | None`: why the channel cannot run here (a missing SDK, ...), else None;
  a reason skips the channel's runs with that reason,
- `ACCOUNTS`: every name of the cast (`driver.CAST`) and `driver.STRANGER` mapped to an
  account id on the platform,
- `running(db_url, *, start, **settings)`: an async context manager that starts the channel's
  fake server, seeds the cast with `seed_cast(engine, NAME, ACCOUNTS)`, starts a `DubanApp`
  configured with that channel only (plus its group robot, when it has one) and
  `run_scheduler=False`, and yields a `ChatDriver`.

Nothing here needs editing: the suite lists the `driver_*.py` modules of this folder when it
is collected, imports each when its first test runs, and runs every dialog on each (ids like
`test_undo[telegram-sqlite]`; `-k wecom` picks one channel).

Optional extras a driver may have (the suite asks with getattr and does without):

- `group_robot: bool`: the app runs a leaders' group robot, so a dispatched digest must reach
  `group_messages()` (without one, the group's outbox row must stay pending);
- `sent_to(person) -> list[Said]`: everything the bot sent to the person, oldest first; lets
  the crash test count the answers on the platform, not only in the outbox.

The cast (`tests/channels/driver.py`): 张三 holds items 9 and 10, 李四 item 22, 陈五 item 8 and
is not bound yet (he has an invite code), 王局 is the leader, 赵主任 the admin.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from bot.inbox import store
from bot.models import (
    Account,
    Assignment,
    AuditLog,
    BindAttempt,
    Contact,
    InboxEntry,
    Outbox,
    Report,
    WorkItem,
)
from tests.channels.driver import START, STRANGER, UNBOUND, ChatDriver, Said

HERE = Path(__file__).resolve().parent

# The channels with a driver here, by the driver's file name (driver_<name>.py).
CHANNELS = sorted(
    module.name.removeprefix("driver_")
    for module in pkgutil.iter_modules([str(HERE)])
    if module.name.startswith("driver_")
)


@pytest.fixture(params=CHANNELS)
def channel(request: pytest.FixtureRequest) -> ModuleType:
    """A channel's driver module; its run is skipped when `available()` says why not."""
    module = importlib.import_module(f"tests.channels.driver_{request.param}")
    name: str = module.NAME
    assert name == request.param, "driver_<name>.py must define NAME = '<name>'"
    reason = module.available()
    if reason:
        pytest.skip(f"{module.NAME}: {reason}")
    return module


@pytest.fixture
async def driver(channel: ModuleType, db_url: str) -> AsyncIterator[ChatDriver]:
    """Duban running on the channel's fake with the cast seeded."""
    async with channel.running(db_url, start=START) as running:
        yield running


# --- reading the answers and the database ---------------------------------------------------


def text_of(answers: list[Said]) -> str:
    """Everything said, one message a line."""
    return "\n".join(said.text for said in answers)


def one(answers: list[Said]) -> Said:
    """The only message of an answer."""
    assert len(answers) == 1, [said.text for said in answers]
    return answers[0]


def figures(engine: Engine) -> list[tuple[int, int | None, str | None, bool]]:
    """(item number, percent, status, withdrawn) of every report, oldest first."""
    with Session(engine) as session:
        rows = session.exec(
            select(WorkItem.number, Report.percent, Report.status, Report.withdrawn_at)
            .join(WorkItem, col(WorkItem.id) == Report.item_id)
            .order_by(col(Report.id))
        ).all()
    return [
        (int(number), percent, None if status is None else str(status), withdrawn is not None)
        for number, percent, status, withdrawn in rows
    ]


def count(engine: Engine, table: type[Any]) -> int:
    """How many rows a table holds."""
    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(table)).one())


def holder(engine: Engine, platform: str, account_id: str) -> str | None:
    """The name of the contact an account on the platform belongs to, or None."""
    with Session(engine) as session:
        return session.exec(
            select(Contact.name)
            .join(Account, col(Account.contact_id) == Contact.id)
            .where(Account.platform == platform, Account.account_id == account_id)
        ).first()


def state(engine: Engine) -> dict[str, int]:
    """Row counts of what a dialog may change."""
    tables = (Report, Contact, Account, Assignment, AuditLog, BindAttempt)
    return {table.__name__: count(engine, table) for table in tables}


# --- who may talk to the bot ------------------------------------------------------------


async def test_a_stranger_gets_the_registration_help_and_nothing_is_stored(
    driver: ChatDriver,
) -> None:
    before = state(driver.engine)
    answer = one(await driver.say(STRANGER, "9 60% 已完工"))
    assert "还未登记" in answer.text and "/start" in answer.text
    assert "持续扩增教育优质资源" not in answer.text, "nothing of the plan is shown"
    assert figures(driver.engine) == []
    assert state(driver.engine) == before
    assert holder(driver.engine, driver.platform, driver.account(STRANGER)) is None


async def test_binding_with_an_invite_code_then_my_lists_the_item(driver: ChatDriver) -> None:
    code = driver.codes[UNBOUND]
    account = driver.account(UNBOUND)
    assert holder(driver.engine, driver.platform, account) is None
    answers = await driver.say(UNBOUND, f"/start {code}")
    assert "绑定成功！您是 陈五（计财科）" in answers[0].text
    assert holder(driver.engine, driver.platform, account) == "陈五"
    my = text_of(await driver.say(UNBOUND, "/my"))
    assert "8. 加大教育保障水平" in my
    assert "9. 持续扩增教育优质资源" not in my, "only his own item"
    # the code is spent: a second account cannot bind with it
    again = one(await driver.say(STRANGER, f"/start {code}"))
    assert "邀请码无效或已过期" in again.text
    assert holder(driver.engine, driver.platform, driver.account(STRANGER)) is None


# --- the reply forms ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9 60%", [(9, 60, "in_progress", False)]),
        ("9号 完成60%", [(9, 60, "in_progress", False)]),
        ("第9项：已完成", [(9, 100, "done", False)]),
        ("9 50% 10 30%", [(9, 50, "in_progress", False), (10, 30, "in_progress", False)]),
    ],
    ids=["plain", "hao-wancheng", "di-xiang-done", "two-items"],
)
async def test_reply_forms_are_each_recorded_once(
    driver: ChatDriver, text: str, expected: list[tuple[int, int, str, bool]]
) -> None:
    answer = one(await driver.say("张三", text))
    assert figures(driver.engine) == expected
    for number, percent, _, _ in expected:
        assert f"已记录 第{number}项" in answer.text
        if len(expected) == 1:
            assert f"进度：{percent}%" in answer.text
    if len(expected) > 1:
        assert "1. 已记录 第9项" in answer.text and "2. 已记录 第10项" in answer.text
    assert not answer.choices, "a clear report is not asked about"


async def test_small_talk_is_answered_and_records_nothing(driver: ChatDriver) -> None:
    # 李四 holds a single item: small talk must still not become a report on it
    for text in ("你好", "收到"):
        answer = one(await driver.say("李四", text))
        assert answer.text.startswith("李四，您好！"), answer.text
        assert "9 60%" in answer.text, "it says how to report"
        assert not answer.choices, "small talk is not asked 'which item?'"
    assert figures(driver.engine) == []


async def test_an_ambiguous_report_asks_with_choices_and_a_click_records_it(
    driver: ChatDriver,
) -> None:
    question = one(await driver.say("张三", "本周召开推进会，进度50%"))
    assert "哪一项" in question.text
    labels = [label for label, _ in question.choices]
    assert len(labels) == 3, question.choices
    assert labels[0].startswith("9.") and labels[1].startswith("10.")
    assert labels[2] == "这不是进展"
    assert figures(driver.engine) == []
    data = question.choices[1][1]
    confirm = one(await driver.click("张三", question, data))
    assert "已记录 第10项" in confirm.text
    assert figures(driver.engine) == [(10, 50, "in_progress", False)]
    # the same choice again is stale: nothing more is recorded
    stale = one(await driver.click("张三", question, data))
    assert "按钮已失效" in stale.text
    assert figures(driver.engine) == [(10, 50, "in_progress", False)]


async def test_the_which_item_question_names_the_numbers_to_type(driver: ChatDriver) -> None:
    """Typing the number answers the question as well as a click: the question says which
    numbers there are (张三's items 9 and 10) and gives an example."""
    question = one(await driver.say("张三", "本周召开推进会，进度50%"))
    assert "9、10" in question.text, question.text
    assert "例如" in question.text, question.text
    answer = one(await driver.say("张三", "10"))
    assert "已记录 第10项" in answer.text
    assert figures(driver.engine) == [(10, 50, "in_progress", False)]


# --- undo -----------------------------------------------------------------------------------


async def test_undo_withdraws_the_last_report(driver: ChatDriver) -> None:
    await driver.say("张三", "9 60%")
    driver.clock.advance(timedelta(minutes=5))
    answer = one(await driver.say("张三", "/undo"))
    assert "已撤回" in answer.text and "第 9 项" in answer.text
    assert figures(driver.engine) == [(9, 60, "in_progress", True)]
    nothing = one(await driver.say("张三", "/undo"))
    assert "没有可撤回的进展" in nothing.text
    assert figures(driver.engine) == [(9, 60, "in_progress", True)]


# --- refusals: said clearly, nothing changed ------------------------------------------------


REFUSALS = [
    ("张三", "9 150%", "进度“150%”无效"),  # a percent over 100
    ("张三", "99 50%", "没有编号为“99”的工作事项"),  # no such item
    ("张三", "/assign 9 李四", "您没有使用 /assign 的权限"),  # an official is no admin
    ("李四", "9 50%", "第 9 项没有分配给您"),  # someone else's item
]


async def test_refusals_say_why_and_change_nothing(driver: ChatDriver) -> None:
    before = state(driver.engine)
    for person, text, expected in REFUSALS:
        answer = one(await driver.say(person, text))
        assert expected in answer.text, (text, answer.text)
        assert any(hint in answer.text for hint in ("例如", "/help", "/my")), (
            f"{text!r}: the refusal says what to do"
        )
        assert not answer.choices, text
        assert figures(driver.engine) == [], text
        assert state(driver.engine) == before, text


# --- the digest -----------------------------------------------------------------------------


async def test_the_leader_gets_the_digest_on_demand(driver: ChatDriver) -> None:
    await driver.say("张三", "9 60% 新增学位6500个")
    answers = await driver.say("王局", "/digest")
    digest = text_of(answers)
    assert "督办周报" in digest
    for heading in ("概况", "本周变化", "本周未报送"):
        assert heading in digest, heading
    assert "第9项 张三 60%" in digest, "this week's report is in it"
    refused = one(await driver.say("张三", "/digest"))
    assert "您没有使用 /digest 的权限" in refused.text


async def test_a_dispatched_digest_reaches_the_leader_and_the_group(driver: ChatDriver) -> None:
    from bot.services.digest import build_digest
    from bot.services.plans import current_plan
    from bot.services.progress import StatusRules
    from bot.services.sending import queue_digest

    await driver.say("张三", "9 60%")
    with Session(driver.engine) as session:
        digest = build_digest(
            session,
            current_plan(session),
            now=driver.clock(),
            tz=driver.app.settings.tz,
            rules=StatusRules(),
        )
        assert queue_digest(session, digest, locale="zh-CN", now=driver.clock()) == 1
        session.commit()
    await driver.app.dispatcher.deliver_due()
    with Session(driver.engine) as session:
        rows = session.exec(select(Outbox).where(col(Outbox.kind).in_(["digest", "group"])))
        states = {row.kind: row.state for row in rows}
    assert states["digest"] == "sent", "the leader's copy went out on the channel"
    sent_to = getattr(driver, "sent_to", None)
    if sent_to is not None:
        assert "督办周报" in text_of(sent_to("王局"))
    if getattr(driver, "group_robot", False):
        group = "\n".join(driver.group_messages())
        assert "督办周报" in group and "概况" in group
        assert states["group"] == "sent"
    else:
        assert driver.group_messages() == []
        assert states["group"] == "pending", "no group robot: the group's copy waits"


# --- a redelivered event --------------------------------------------------------------------


async def test_a_redelivered_event_is_handled_once(driver: ChatDriver) -> None:
    first = one(await driver.say("张三", "9 60%"))
    assert "已记录 第9项" in first.text
    again = await driver.redeliver("张三")
    assert again == [], [said.text for said in again]
    assert figures(driver.engine) == [(9, 60, "in_progress", False)]
    with Session(driver.engine) as session:
        rows = session.exec(select(InboxEntry).where(InboxEntry.platform == driver.platform))
        assert all(row.handled_at is not None for row in rows)
    # and a redelivered click records nothing twice either
    question = one(await driver.say("张三", "本周召开推进会，进度50%"))
    confirm = one(await driver.click("张三", question, question.choices[0][1]))
    assert "已记录 第9项" in confirm.text
    assert await driver.redeliver("张三") == []
    assert figures(driver.engine) == [
        (9, 60, "in_progress", False),
        (9, 50, "in_progress", False),
    ]


# --- a crash with events stored but not handled -----------------------------------------


async def test_events_stored_before_a_crash_are_handled_once_after_the_restart(
    driver: ChatDriver,
) -> None:
    stored = [
        ("张三", "9 20%", 9, 20),
        ("李四", "22 40%", 22, 40),
        ("张三", "10 30%", 10, 30),
    ]
    received = [driver.received(person, text) for person, text, _, _ in stored]
    fresh = store(driver.engine, driver.platform, received, driver.clock())
    assert fresh == [True, True, True]
    assert store(driver.engine, driver.platform, received[:1], driver.clock()) == [False]
    await driver.restart()
    assert sorted(figures(driver.engine)) == sorted(
        (number, percent, "in_progress", False) for _, _, number, percent in stored
    )
    with Session(driver.engine) as session:
        entries = session.exec(select(InboxEntry).where(InboxEntry.platform == driver.platform))
        handled = {e.update_key: e.handled_at is not None for e in entries}
        replies = [
            row.dedupe_key
            for row in session.exec(select(Outbox).where(Outbox.kind == "reply"))
            if row.dedupe_key.startswith(f"reply:{driver.platform}:")
        ]
    for r in received:
        assert handled[r.update_key], f"{r.update_key} was handled"
        mine = [
            key for key in replies if key.startswith(f"reply:{driver.platform}:{r.update_key}:")
        ]
        assert len(mine) == 1, f"one answer to {r.update_key}: {mine}"
    sent_to = getattr(driver, "sent_to", None)
    if sent_to is not None:
        for person, _, number, _ in stored:
            answers = [s.text for s in sent_to(person) if f"已记录 第{number}项" in s.text]
            assert len(answers) == 1, f"{person} was answered once about item {number}"
    # the restarted app goes on answering
    assert "已记录 第9项" in one(await driver.say("张三", "9 70%")).text
