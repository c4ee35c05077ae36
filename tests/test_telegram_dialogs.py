"""Chat transcripts on Telegram: the user says X, the bot answers Y, the database holds Z.

Duban runs its real Telegram channel (python-telegram-bot, long polling) against the fake
Bot API server over loopback HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from bot.models import AuditLog, BindAttempt, Contact, Outbox, Report, TargetValue
from bot.services import accounts
from tests.fakes import FakeTelegram
from tests.harness import LI, STRANGER, WANG, ZHANG, ZHAO, Dialog, running_bot


@pytest.fixture
async def chat(server: FakeTelegram, db_url: str) -> AsyncIterator[Dialog]:
    async with running_bot(server, db_url) as dialog:
        yield dialog


# --- who may talk to the bot ------------------------------------------------------------


async def test_unknown_sender_gets_registration_help_only(chat: Dialog) -> None:
    answer = await chat.says_one(STRANGER, "9 60% 已完工")
    assert "还未登记" in answer and "/start" in answer
    assert "工作" not in answer.replace("工作计划", "")  # nothing about the plan itself
    assert chat.reports() == []


async def test_binding_with_an_invite_code(chat: Dialog) -> None:
    code = chat.codes["陈五"]
    answers = await chat.say(4242, f"/start {code}")
    assert "绑定成功！您是 陈五（计财科）" in answers[0].plain_text
    assert "/my" in answers[-1].plain_text  # the help follows
    with Session(chat.engine) as s:
        chen = s.exec(select(Contact).where(Contact.name == "陈五")).one()
        held = accounts.account_of(s, chen.id or 0, "telegram")
        assert held is not None and held.account_id == "4242"
    # the code is one-time
    again = await chat.says_one(4343, f"/start {code}")
    assert "邀请码无效或已过期" in again
    # and the bound person can now report on their item
    assert "已记录 第8项" in await chat.says_one(4242, "8 30% 已启动收费调整调研")


async def test_five_wrong_codes_lock_the_account_for_an_hour(chat: Dialog) -> None:
    for left in (4, 3, 2, 1):
        answer = await chat.says_one(STRANGER, "/start WRONG123")
        assert f"还可尝试 {left} 次" in answer
    assert "错误次数过多" in await chat.says_one(STRANGER, "/start WRONG123")
    # even the right code is refused while locked
    locked = await chat.says_one(STRANGER, f"/start {chat.codes['陈五']}")
    assert "错误次数过多" in locked
    assert chat.count(BindAttempt) == 5
    chat.clock.advance(timedelta(minutes=61))
    assert "绑定成功" in (await chat.say(STRANGER, f"/start {chat.codes['陈五']}"))[0].plain_text


async def test_help_depends_on_the_role(chat: Dialog) -> None:
    official = await chat.says_one(ZHANG, "/help")
    admin = await chat.says_one(ZHAO, "/help")
    assert "/my" in official and "/assign" not in official and "/overdue" not in official
    assert "/assign" in admin and "/invite" in admin and "/overdue" in admin
    assert "9 60% 华侨实验小学主体完工" in official


async def test_command_menu_is_set(chat: Dialog, server: FakeTelegram) -> None:
    calls = server.calls("setMyCommands")
    assert calls, "setMyCommands was called"
    names = [c["command"] for c in server.commands_for({"type": "default"}, None)]
    assert names[:2] == ["help", "my"] and "assign" not in names
    admin = [c["command"] for c in server.commands_for({"type": "chat", "chat_id": ZHAO}, None)]
    assert "assign" in admin


# --- my items and the reply forms ---------------------------------------------------------


async def test_my_items(chat: Dialog) -> None:
    answer = await chat.says_one(ZHANG, "/my")
    assert "9. 持续扩增教育优质资源" in answer and "10. 推进学前教育普及普惠健康发展" in answer
    assert "尚未报送" in answer and "🟡 9." in answer  # no report since the plan began: amber
    await chat.say(ZHANG, "9 60%")
    assert "🟢 9." in await chat.says_one(ZHANG, "/my")


@pytest.mark.parametrize(
    ("text", "item", "percent", "status", "note"),
    [
        ("9 60% 华侨实验小学主体完工", 9, 60, "in_progress", "华侨实验小学主体完工"),
        ("第9项 进度60%", 9, 60, "in_progress", ""),
        ("#9 已完成", 9, 100, "done", ""),
        ("9号 滞后 原因：征地未完成", 9, None, "delayed", "原因：征地未完成"),
        (
            "/report 10 45 幼儿园学位建设计划已报送",
            10,
            45,
            "in_progress",
            "幼儿园学位建设计划已报送",
        ),
    ],
)
async def test_reply_forms(
    chat: Dialog, text: str, item: int, percent: int | None, status: str, note: str
) -> None:
    answer = await chat.says_one(ZHANG, text)
    assert f"已记录 第{item}项" in answer
    (report,) = chat.reports()
    assert (report.percent, report.status, report.text) == (percent, status, note)
    if percent is not None:
        assert f"进度：{percent}%" in answer


async def test_numbers_for_targets_are_recorded(chat: Dialog) -> None:
    answer = await chat.says_one(ZHANG, "9 65% 新增学位6500个")
    assert "新增学位：6,500 / 10,000 个（65%）" in answer
    with Session(chat.engine) as s:
        (value,) = s.exec(select(TargetValue)).all()
    assert value.value == 6500


async def test_single_open_item_takes_free_text(chat: Dialog) -> None:
    answer = await chat.says_one(LI, "已培育12个市级优质教育集团，进度80%")
    assert "已记录 第22项" in answer
    (report,) = chat.reports()
    assert report.percent == 80
    assert "12 / 15" in answer


async def test_ambiguous_free_text_asks_with_buttons_then_records_on_click(
    chat: Dialog, server: FakeTelegram
) -> None:
    (question,) = await chat.say(ZHANG, "本周召开推进会，进度50%")
    assert "哪一项" in question.plain_text
    labels = [label for label, _ in question.buttons]
    assert labels == ["9. 持续扩增教育优质资源", "10. 推进学前教育普及普惠健康发展", "这不是进展"]
    assert "9、10" in question.plain_text, "the numbers to type are named"
    assert chat.reports() == []
    data = question.buttons[1][1]
    assert data is not None
    (confirm,) = await chat.click(ZHANG, question.message_id, data)
    assert "已记录 第10项" in confirm.plain_text
    (report,) = chat.reports()
    assert (report.percent, report.text) == (50, "本周召开推进会")
    assert server.callback_answers, "the click was acknowledged"
    # the same button again is stale: nothing more is recorded
    (stale,) = await chat.click(ZHANG, question.message_id, data)
    assert "按钮已失效" in stale.plain_text
    assert len(chat.reports()) == 1


async def test_reply_to_a_bot_message_ties_back_to_its_item(chat: Dialog) -> None:
    (notice_before,) = await chat.say(ZHAO, "/assign 11 张三 2023-09-30")
    assert "已将第 11 项" in notice_before.plain_text
    notices = chat.server.messages_to(ZHANG)
    assert notices and "您有新的督办事项：第 11 项" in notices[-1].plain_text
    answer = await chat.says_one(ZHANG, "已召开创建推进会 30%", reply_to=notices[-1].message_id)
    assert "已记录 第11项" in answer
    (report,) = chat.reports()
    assert report.percent == 30


async def test_reply_to_a_confirmation_ties_back_to_its_item(chat: Dialog) -> None:
    # The confirmation's link is written behind the reply; the next update must still see it.
    await chat.say(ZHANG, "10 40%")
    confirmation = chat.server.messages_to(ZHANG)[-1]
    assert "已记录 第10项" in confirmation.plain_text
    answer = await chat.says_one(ZHANG, "补充：园舍改造完成 55%", reply_to=confirmation.message_id)
    assert "已记录 第10项" in answer  # not "which item?": Zhang has items 9 and 10 open
    assert [r.percent for r in chat.reports()] == [40, 55]
    links = chat.scalar(
        "SELECT count(*) FROM message_link WHERE item_id IS NOT NULL AND outbox_id IS NULL"
    )
    assert links >= 1


async def test_undo_within_ten_minutes(chat: Dialog) -> None:
    await chat.say(ZHANG, "9 60%")
    chat.clock.advance(timedelta(minutes=5))
    assert "已撤回" in await chat.says_one(ZHANG, "/undo")
    (report,) = chat.reports()
    assert report.withdrawn_at is not None
    await chat.say(ZHANG, "9 70%")
    chat.clock.advance(timedelta(minutes=11))
    assert "没有可撤回的进展" in await chat.says_one(ZHANG, "/undo")
    assert chat.reports()[-1].withdrawn_at is None


# --- refusals: one line, an example, nothing recorded --------------------------------------


@pytest.mark.parametrize(
    ("user", "text", "expected"),
    [
        (ZHANG, "99 50%", "没有编号为“99”的工作事项"),
        (ZHANG, "9 120%", "进度“120%”无效"),
        (ZHANG, "/report", "例如：/report 9 60"),
        (ZHANG, "/assign 9 张三", "您没有使用 /assign 的权限"),
        (LI, "9 50%", "第 9 项没有分配给您"),
        (ZHANG, "/frobnicate", "不认识命令 /frobnicate"),
        (ZHAO, "/deadline 9 2023-02-30", "日期“2023-02-30”无效"),
        (ZHAO, "/assign 9", "用法：/assign 事项编号 姓名"),
        (ZHAO, "/assign 9 无名氏", "没有名为“无名氏”的联系人"),
        (ZHANG, "9 " + "很" * 4100, "消息太长"),
        (LI, "/status 9", "第 9 项没有分配给您，无法查看"),
        (ZHANG, "/overdue", "您没有使用 /overdue 的权限"),
    ],
)
async def test_bad_input_is_refused_and_changes_nothing(
    chat: Dialog, user: int, text: str, expected: str
) -> None:
    audits = chat.count(AuditLog)
    answer = await chat.says_one(user, text)
    assert expected in answer
    assert "\n" not in answer.strip()
    assert any(hint in answer for hint in ("例如", "/help", "/my", "不要超过"))
    assert chat.reports() == []
    assert chat.count(AuditLog) == audits


async def test_a_button_from_an_old_message(chat: Dialog, server: FakeTelegram) -> None:
    (question,) = await chat.say(ZHANG, "进度50%")
    # an old message's button pointing at a choice that never existed
    update_id = server.push_raw_update(
        {
            "callback_query": {
                "id": "cbq-old",
                "from": {"id": ZHANG, "is_bot": False, "first_name": "张三"},
                "chat_instance": "x",
                "data": "pick:999:9",
                "message": server.message(ZHANG, question.message_id),
            }
        }
    )
    before = len(server.messages_to(ZHANG))
    (answer,) = await chat._settle(update_id, ZHANG, before)
    assert "按钮已失效" in answer.plain_text
    assert chat.reports() == []


async def test_non_text_messages_get_a_polite_request_for_text(
    chat: Dialog, server: FakeTelegram
) -> None:
    update_id = server.push_raw_update(
        {
            "message": {
                "message_id": 600,
                "date": 1685584800,
                "chat": {"id": ZHANG, "type": "private", "first_name": "张三"},
                "from": {"id": ZHANG, "is_bot": False, "first_name": "张三"},
                "sticker": {
                    "file_id": "s1",
                    "file_unique_id": "u1",
                    "type": "regular",
                    "width": 1,
                    "height": 1,
                    "is_animated": False,
                    "is_video": False,
                },
            }
        }
    )
    (answer,) = await chat._settle(update_id, ZHANG, len(server.messages_to(ZHANG)))
    assert "只能处理文字消息" in answer.plain_text


# --- status for leaders, admin commands --------------------------------------------------


async def test_status_and_overdue_for_leaders(chat: Dialog) -> None:
    await chat.say(ZHANG, "9 60% 新增学位6500个")
    status = await chat.says_one(WANG, "/status 9")
    assert "第9项「持续扩增教育优质资源」" in status
    assert "张三（基础教育科，牵头）：60%" in status
    assert "新增学位超1万个 —— 当前 6,500 / 10,000 个（65%）" in status
    await chat.say(ZHAO, "/deadline 9 2023-05-31")
    overdue = await chat.says_one(WANG, "/overdue")
    assert "逾期未完成事项 1 项" in overdue and "9. 持续扩增教育优质资源" in overdue


async def test_admin_commands_are_audited_and_notify(chat: Dialog) -> None:
    assert "已将第 22 项" in await chat.says_one(ZHAO, "/assign 22 张三")
    assert "您有新的督办事项：第 22 项" in chat.server.messages_to(ZHANG)[-1].plain_text
    assert "完成时限已设为 2023-11-30" in await chat.says_one(ZHAO, "/deadline 22 2023-11-30")
    assert "调整为 2023-11-30" in chat.server.messages_to(LI)[-1].plain_text
    assert "已取消 张三 对第 22 项的分工" in await chat.says_one(ZHAO, "/unassign 22 张三")
    invite = await chat.says_one(ZHAO, "/invite 陈五")
    assert "陈五 的邀请码" in invite
    contacts = await chat.says_one(ZHAO, "/contacts")
    assert "张三（基础教育科，联络员）" in contacts
    # replies are recorded as sent just behind their delivery: wait for that write
    for _ in range(200):
        with Session(chat.engine) as s:
            outbox = s.exec(select(Outbox)).all()
        if all(o.state == "sent" for o in outbox):
            break
        await asyncio.sleep(0.01)
    with Session(chat.engine) as s:
        actions = [a.action for a in s.exec(select(AuditLog).where(AuditLog.actor != "cli"))]
    assert actions == ["assign", "deadline", "unassign", "contact.invite"]
    assert all(o.state == "sent" for o in outbox), "notices and the replies themselves"
    assert len([o for o in outbox if o.kind != "reply"]) == 3


async def test_a_429_from_telegram_is_retried(chat: Dialog, server: FakeTelegram) -> None:
    server.fail_next("sendMessage", 1, error_code=429, retry_after=1)
    answer = await chat.says_one(ZHANG, "9 60%")
    assert "已记录 第9项" in answer
    assert server.stats["429"] == 1
    assert len(chat.reports()) == 1


async def test_english_locale(server: FakeTelegram, db_url: str) -> None:
    async with running_bot(server, db_url, locale="en") as chat:
        assert "not registered" in await chat.says_one(STRANGER, "hello")
        answer = await chat.says_one(ZHANG, "9 60%")
        assert "Recorded: item 9" in answer and "Progress: 60%" in answer
        assert "There is no work item '99'" in await chat.says_one(ZHANG, "99 60%")


async def test_report_rows_have_the_sender(chat: Dialog) -> None:
    await chat.say(LI, "22 40%")
    (report,) = chat.reports()
    with Session(chat.engine) as s:
        sender = s.get(Contact, report.contact_id)
    assert sender is not None and sender.name == "李四"
    assert isinstance(report, Report)


# --- the digest and the ledger on demand ---------------------------------------------------


async def test_digest_on_demand_for_leaders(chat: Dialog, server: FakeTelegram) -> None:
    await chat.say(ZHANG, "9 60% 新增学位6500个")
    answers = await chat.say(WANG, "/digest")
    text, photo = answers
    assert text.parse_mode == "HTML" and "<b>概况</b>" in text.text
    assert "督办周报" in text.plain_text and "新增学位：6,500 / 10,000 个（65%）" in text.plain_text
    assert photo.method == "sendPhoto" and photo.files
    refused = await chat.says_one(ZHANG, "/digest")
    assert "您没有使用 /digest 的权限" in refused


async def test_export_sends_the_ledger(chat: Dialog) -> None:
    (document,) = await chat.say(ZHAO, "/export")
    assert document.method == "sendDocument"
    (upload,) = document.files
    assert upload.filename.endswith(".xlsx") and upload.size > 1000
    assert "工作台账" in (document.caption or "")


async def test_remind_for_admins(chat: Dialog) -> None:
    assert "已为 1 位责任人排定进展询问" in await chat.says_one(ZHAO, "/remind 22")
    assert "您没有使用 /remind 的权限" in await chat.says_one(ZHANG, "/remind")
