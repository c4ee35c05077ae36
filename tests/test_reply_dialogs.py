"""Replies understood as meant (issue #11): each example of the issue as a chat transcript on
the fake Telegram server. 张三 holds items 9 and 10, 李四 item 22; 王局 leads, 赵主任 admins.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from bot.models import Assignment, AssignmentRole, Report, ReportStatus, WorkItem
from tests.fakes import FakeTelegram
from tests.harness import LI, WANG, ZHANG, ZHAO, Dialog, running_bot

DONE = ReportStatus.done
IN_PROGRESS = ReportStatus.in_progress
DELAYED = ReportStatus.delayed
NOT_STARTED = ReportStatus.not_started


@pytest.fixture
async def chat(server: FakeTelegram, db_url: str) -> AsyncIterator[Dialog]:
    async with running_bot(server, db_url) as dialog:
        yield dialog


def figures(chat: Dialog) -> list[tuple[int, int | None, ReportStatus | None]]:
    """(item number, percent, status) of every report, oldest first."""
    with Session(chat.engine) as s:
        rows = s.exec(
            select(WorkItem.number, Report.percent, Report.status)
            .join(WorkItem, WorkItem.id == Report.item_id)  # type: ignore[arg-type]
            .order_by(Report.id)  # type: ignore[arg-type]
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


# --- several items in one message --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9 60% 10 30%", [(9, 60, IN_PROGRESS), (10, 30, IN_PROGRESS)]),
        ("9：60%；10：30%", [(9, 60, IN_PROGRESS), (10, 30, IN_PROGRESS)]),
        ("9、10两项都在推进", [(9, None, IN_PROGRESS), (10, None, IN_PROGRESS)]),
        ("第9项已完成，第10项完成了70%", [(9, 100, DONE), (10, 70, IN_PROGRESS)]),
        ("9和10都完成了一半", [(9, 50, IN_PROGRESS), (10, 50, IN_PROGRESS)]),
    ],
)
async def test_several_items_give_one_report_each_and_one_confirmation(
    chat: Dialog, text: str, expected: list[tuple[int, int | None, ReportStatus]]
) -> None:
    answer = await chat.says_one(ZHANG, text)
    assert figures(chat) == expected
    assert "1. 已记录 第9项" in answer and "2. 已记录 第10项" in answer


async def test_three_items_done_in_one_line(chat: Dialog) -> None:
    for number in (24, 25, 26):
        await chat.say(ZHAO, f"/assign {number} 李四 2023-12-31")
    answer = await chat.says_one(LI, "24、25、26三项均已完成")
    assert [f for f in figures(chat)] == [(24, 100, DONE), (25, 100, DONE), (26, 100, DONE)]
    assert answer.count("已记录") == 3
    assert "第二十六项" not in answer
    assert "已记录 第26项" in await chat.says_one(LI, "第二十六项 已完成")


# --- item references and percent forms ---------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "【9】60%",
        "9- 60%",
        "9号 60%",
        "九号 60%",
        "第九项 60%",
        "#9 60%",
        "9、60%",
        "关于第9项，60%",
    ],
)
async def test_item_references_in_every_common_form(chat: Dialog, text: str) -> None:
    assert "已记录 第9项" in await chat.says_one(ZHANG, text)
    assert figures(chat) == [(9, 60, IN_PROGRESS)]


@pytest.mark.parametrize(
    ("text", "percent"),
    [("9 60%", 60), ("9 ６０％", 60), ("9 60 %", 60), ("9 百分之六十", 60), ("9 七成", 70),
     ("9 完成了一半", 50)],
)  # fmt: skip
async def test_percent_forms(chat: Dialog, text: str, percent: int) -> None:
    await chat.says_one(ZHANG, text)
    assert figures(chat) == [(9, percent, IN_PROGRESS)]


async def test_a_bare_number_after_the_item_is_asked_about_never_dropped(chat: Dialog) -> None:
    (question,) = await chat.say(ZHANG, "9 75 主体完工")
    assert "75" in question.plain_text and "百分比" in question.plain_text
    assert [label for label, _ in question.buttons] == ["75%", "不是百分比"]
    assert figures(chat) == []
    (confirm,) = await chat.click(ZHANG, question.message_id, question.buttons[0][1] or "")
    assert "进度：75%" in confirm.plain_text
    assert figures(chat) == [(9, 75, IN_PROGRESS)]
    # the other answer keeps the number in the note and records no percent
    (again,) = await chat.say(ZHANG, "10 75 主体完工")
    (confirm,) = await chat.click(ZHANG, again.message_id, again.buttons[1][1] or "")
    assert "进度：未填写" in confirm.plain_text
    (report,) = chat.reports(percent=None)
    assert "75" in report.text


@pytest.mark.parametrize(
    ("text", "percent", "status"),
    [
        ("9 已完成60%", 60, IN_PROGRESS),
        ("9 完成了60%", 60, IN_PROGRESS),
        ("9 已完成年度任务的80%", 80, IN_PROGRESS),
        ("9 已全部完工", 100, DONE),
        ("9 已经完成了", 100, DONE),
        ("9 未启动", None, NOT_STARTED),
        ("9 滞后 资金未到位", None, DELAYED),
    ],
)
async def test_status_words_mean_what_they_say(
    chat: Dialog, text: str, percent: int | None, status: ReportStatus
) -> None:
    await chat.says_one(ZHANG, text)
    assert figures(chat) == [(9, percent, status)]


@pytest.mark.parametrize(
    ("text", "percent", "status"),
    [
        ("9 done", 100, DONE),
        ("9 delayed, funding late", None, DELAYED),
        ("9 not started", None, NOT_STARTED),
        ("9 in progress 40%", 40, IN_PROGRESS),
    ],
)
async def test_english_status_words(
    server: FakeTelegram, db_url: str, text: str, percent: int | None, status: ReportStatus
) -> None:
    async with running_bot(server, db_url, locale="en") as chat:
        answer = await chat.says_one(ZHANG, text)
        assert "Recorded: item 9" in answer
        assert figures(chat) == [(9, percent, status)]


async def test_dates_money_and_counts_are_never_the_percent(chat: Dialog) -> None:
    answer = await chat.says_one(ZHANG, "9 2023年6月30日前 投入1.5亿元 新建3个园所 主体施工")
    assert figures(chat) == [(9, None, None)]
    assert "进度：未填写" in answer
    # a count that matches a target is recorded against it
    answer = await chat.says_one(ZHANG, "9 新增学位6500个")
    assert "新增学位：6,500 / 10,000 个" in answer


# --- what is not a report -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["你好", "收到", "好的", "谢谢", "👍", "在吗", "取消", "hello", "thanks"]
)
async def test_small_talk_is_answered_kindly_and_never_recorded(chat: Dialog, text: str) -> None:
    # 李四 holds a single item: small talk must still not become a report on it
    (answer,) = await chat.say(LI, text)
    assert answer.plain_text.startswith("李四，您好！")
    assert "9 60%" in answer.plain_text  # how to report
    assert not answer.buttons, "small talk is not answered with 'which item?'"
    assert chat.reports() == []


@pytest.mark.parametrize("text", ["第9项进展怎么样了", "9号事项现在什么情况"])
async def test_a_leaders_question_gets_the_items_status(chat: Dialog, text: str) -> None:
    await chat.says_one(ZHANG, "9 60% 主体完工")
    answer = await chat.says_one(WANG, text)
    assert "第9项「持续扩增教育优质资源」" in answer and "60%" in answer
    assert "没有分配给您" not in answer
    assert len(chat.reports()) == 1


async def test_no_percent_given_says_so_and_stores_none(chat: Dialog) -> None:
    await chat.says_one(ZHANG, "9 60%")
    chat.clock.advance(timedelta(minutes=30))
    answer = await chat.says_one(ZHANG, "9 华侨实验小学主体完工")
    assert "进度：未填写（上次 60%）" in answer
    latest = chat.reports()[-1]
    assert latest.percent is None, "the earlier percent is derived when read, never copied"


async def test_more_items_than_fit_the_picker_can_all_be_picked(chat: Dialog) -> None:
    with Session(chat.engine) as s:
        li = s.exec(select(Assignment).where(Assignment.item_id != 0)).all()
        li_id = next(a.contact_id for a in li if a.item_id == _item_id(s, 22))
        for number in range(1, 13):
            s.add(
                Assignment(
                    item_id=_item_id(s, number), contact_id=li_id, role=AssignmentRole.support
                )
            )
        s.commit()
    (question,) = await chat.say(LI, "本周召开推进会，进度50%")
    labels = [label for label, _ in question.buttons]
    assert len(labels) == 10 and labels[-2].startswith("更多事项") and labels[-1] == "这不是进展"
    assert "22" in question.plain_text, "the numbers to type are named, the last one too"
    (page2,) = await chat.click(LI, question.message_id, question.buttons[-2][1] or "")
    assert any(label.startswith("22.") for label, _ in page2.buttons)
    # typing the number answers the question as well
    answer = await chat.says_one(LI, "22")
    assert "已记录 第22项" in answer
    assert figures(chat) == [(22, 50, IN_PROGRESS)]


def _item_id(session: Session, number: int) -> int:
    item = session.exec(select(WorkItem).where(WorkItem.number == number)).one()
    assert item.id is not None
    return item.id


# --- whose figure counts ------------------------------------------------------------------


async def test_an_admin_cannot_replace_an_owners_figure_by_writing_it(chat: Dialog) -> None:
    await chat.says_one(ZHANG, "9 85%")
    refused = await chat.says_one(ZHAO, "9 60%")
    assert "由 张三 负责" in refused and "/report 9 60% @张三" in refused
    assert figures(chat) == [(9, 85, IN_PROGRESS)]
    answer = await chat.says_one(ZHAO, "/report 9 60% @张三")
    assert "已代 张三 记录 第9项" in answer
    latest = chat.reports()[-1]
    assert latest.percent == 60 and latest.entered_by_id is not None
    assert "60%" in await chat.says_one(WANG, "/status 9")


async def test_an_official_cannot_report_for_someone_else(chat: Dialog) -> None:
    assert "只有领导和管理员" in await chat.says_one(LI, "/report 9 60% @张三")
    assert "没有分配给您" in await chat.says_one(LI, "9 60%")
    assert chat.reports() == []
