"""Admin dialogs on Telegram: /assign, /unassign and /deadline in any order, dates as typed.

The cast (tests/harness.py): 赵主任 is the admin, 张三 and 李四 officials; the sample plan
is of 2023 (issued 2023-03-15), so a date without a year is in 2023.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date

import pytest
from sqlmodel import Session, select

from bot.models import Assignment, AuditLog, Contact, Role, WorkItem
from bot.services import audit, contacts
from tests.fakes import FakeTelegram
from tests.harness import ZHANG, ZHAO, Dialog, running_bot


@pytest.fixture
async def chat(server: FakeTelegram, db_url: str) -> AsyncIterator[Dialog]:
    async with running_bot(server, db_url) as dialog:
        yield dialog


def assigned(chat: Dialog, name: str) -> dict[int, date | None]:
    """The items assigned to a contact, with the assignment's own deadline."""
    with Session(chat.engine) as session:
        rows = session.exec(
            select(WorkItem.number, Assignment.deadline)
            .join(Assignment, Assignment.item_id == WorkItem.id)  # type: ignore[arg-type]
            .join(Contact, Contact.id == Assignment.contact_id)  # type: ignore[arg-type]
            .where(Contact.name == name)
        ).all()
    return dict(rows)


def sent_to_others(chat: Dialog) -> int:
    """Outbox rows other than replies (notices to the people concerned)."""
    return int(chat.scalar("SELECT count(*) FROM outbox WHERE kind <> 'reply'"))


def item_deadline(chat: Dialog, number: int) -> date | None:
    with Session(chat.engine) as session:
        return session.exec(select(WorkItem.deadline).where(WorkItem.number == number)).one()


@pytest.mark.parametrize("text", ["/assign 22 张三", "/assign 张三 22", "/assign 张三 第22项"])
async def test_assign_takes_the_item_and_the_name_in_either_order(chat: Dialog, text: str) -> None:
    answer = await chat.says_one(ZHAO, text)
    assert answer == "已将第 22 项“推进集团化办学高质量发展”分配给 张三，完成时限：未设定。"
    assert assigned(chat, "张三") == {9: None, 10: None, 22: None}
    notice = chat.server.messages_to(ZHANG)[-1].plain_text
    assert "您有新的督办事项：第 22 项" in notice
    assert "完成时限：未设定" in notice and "完成时限：-" not in notice


async def test_assign_several_items_to_one_person_with_one_deadline(chat: Dialog) -> None:
    answer = await chat.says_one(ZHAO, "/assign 张三 11 12 年底")
    assert answer.splitlines() == [
        "已将第 11 项“推动义务教育优质均衡发展”分配给 张三，完成时限：2023-12-31。",
        "已将第 12 项“推动普通高中优质特色发展”分配给 张三，完成时限：2023-12-31。",
    ]
    mine = assigned(chat, "张三")
    assert mine[11] == mine[12] == date(2023, 12, 31)
    notices = [m.plain_text for m in chat.server.messages_to(ZHANG)]
    assert any("第 11 项" in n for n in notices) and any("第 12 项" in n for n in notices)


async def test_unassign_takes_the_item_and_the_name_in_either_order(chat: Dialog) -> None:
    await chat.say(ZHAO, "/assign 22 张三")
    assert await chat.says_one(ZHAO, "/unassign 张三 22") == "已取消 张三 对第 22 项的分工。"
    assert 22 not in assigned(chat, "张三")


async def test_deadlines_in_every_form_people_write(chat: Dialog) -> None:
    forms = {
        "2023-12-31": date(2023, 12, 31),
        "2023/11/30": date(2023, 11, 30),
        "2023.10.31": date(2023, 10, 31),
        "2023年9月30日": date(2023, 9, 30),
        "12月31日": date(2023, 12, 31),
        "8-31": date(2023, 8, 31),
        "年底": date(2023, 12, 31),
        "年末": date(2023, 12, 31),
        "6月底": date(2023, 6, 30),
        "7月末": date(2023, 7, 31),
        "上半年": date(2023, 6, 30),
        "年中": date(2023, 6, 30),
        "三季度末": date(2023, 9, 30),
    }
    for form, expected in forms.items():
        answer = await chat.says_one(ZHAO, f"/deadline 9 {form}")
        assert f"第 9 项“持续扩增教育优质资源”的完成时限已设为 {expected}" in answer, form
        assert item_deadline(chat, 9) == expected, form
    # the date first works too, and so does a deadline given with /assign
    assert "完成时限已设为 2023-12-31" in await chat.says_one(ZHAO, "/deadline 年底 9")
    assert "完成时限：2023-11-30" in await chat.says_one(ZHAO, "/assign 11月30日 22 张三")
    assert assigned(chat, "张三")[22] == date(2023, 11, 30)


async def test_several_items_get_one_deadline_and_their_owners_are_told(chat: Dialog) -> None:
    answer = await chat.says_one(ZHAO, "/deadline 9 10 6月底")
    assert len(answer.splitlines()) == 2
    assert item_deadline(chat, 9) == item_deadline(chat, 10) == date(2023, 6, 30)
    notices = [m.plain_text for m in chat.server.messages_to(ZHANG)]
    assert sum("调整为 2023-06-30" in n for n in notices) == 2


REFUSALS = [
    ("/deadline 9 2023-02-30", "日期“2023-02-30”无效：2023 年 2 月没有 30 日"),
    ("/deadline 9 13月1日", "日期“13月1日”无效：没有 13 月"),
    ("/deadline 9 下周五", "日期“下周五”无法识别。请写日期，例如 2023-12-31 或 12月31日"),
    ("/deadline 9 张三", "日期“张三”无法识别"),
    ("/deadline 9 年底 6月底", "只能写一个日期，收到了 年底、6月底"),
    ("/deadline 99 年底", "没有编号为“99”的工作事项"),
    ("/deadline 9", "用法：/deadline 事项编号 日期"),
    ("/assign 9 张三 2023-02-30", "2023 年 2 月没有 30 日"),
    ("/assign 9 张三 6月低", "日期“6月低”无法识别"),
    ("/assign 张三 李四 9", "一次只能分配给一位联系人，收到了 张三、李四"),
    ("/assign 张三 99", "没有编号为“99”的工作事项"),
    ("/assign 无名氏 9", "没有名为“无名氏”的联系人"),
    ("/assign 张三", "用法：/assign 事项编号 姓名"),
    ("/assign 9 22", "用法：/assign 事项编号 姓名"),
    ("/unassign 张三 9 年底", "用法：/unassign 事项编号 姓名"),
    ("/unassign 李四 9", "“李四”并未负责第 9 项"),
]


async def test_bad_input_is_refused_with_an_example_and_changes_nothing(chat: Dialog) -> None:
    before = (assigned(chat, "张三"), assigned(chat, "李四"), item_deadline(chat, 9))
    audits, notices = chat.count(AuditLog), sent_to_others(chat)
    for text, expected in REFUSALS:
        answer = await chat.says_one(ZHAO, text)
        assert expected in answer, (text, answer)
        assert "\n" not in answer.strip(), text
    assert (assigned(chat, "张三"), assigned(chat, "李四"), item_deadline(chat, 9)) == before
    assert (chat.count(AuditLog), sent_to_others(chat)) == (audits, notices)


async def test_a_word_that_is_both_an_item_and_a_name_is_refused_with_the_way_out(
    chat: Dialog,
) -> None:
    with Session(chat.engine) as session:
        contacts.add_contact(
            session, name="22", unit="办公室", role=Role.official, actor=audit.CLI_ACTOR
        )
        session.commit()
    answer = await chat.says_one(ZHAO, "/assign 22 张三")
    assert (
        answer == "“22”既是事项编号，也是联系人姓名。指事项请写“第22项”，例如：/assign 第22项 张三"
    )
    assert 22 not in assigned(chat, "张三")
    assert "已将第 22 项" in await chat.says_one(ZHAO, "/assign 第22项 张三")
    assert 22 in assigned(chat, "张三")


async def test_a_name_that_starts_like_an_item_is_still_a_name(chat: Dialog) -> None:
    with Session(chat.engine) as session:
        contacts.add_contact(
            session, name="第五伦", unit="办公室", role=Role.official, actor=audit.CLI_ACTOR
        )
        session.commit()
    assert "分配给 第五伦" in await chat.says_one(ZHAO, "/assign 第五伦 第9项")
    assert 9 in assigned(chat, "第五伦")


async def test_date_messages_in_english(server: FakeTelegram, db_url: str) -> None:
    async with running_bot(server, db_url, locale="en") as chat:
        answer = await chat.says_one(ZHAO, "/deadline 9 2023-02-30")
        assert "The date '2023-02-30' is not valid: month 2 of 2023 has no day 30" in answer
        answer = await chat.says_one(ZHAO, "/assign 22 张三")
        assert answer.endswith("deadline not set.")
