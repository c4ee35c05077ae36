"""交办 tasks and several plans at once (issue #13), as chat transcripts on the fake Telegram
server: a leader hands a task to two people, the lead reports, a number shared by two plans is
asked about with buttons, the lead closes the task (办结), the leader reopens it; the digest
and the ledger show it. 张三 holds 要点 items 9 and 10; the 民生 plan's item 9 is given to him
too, so "9 ..." is ambiguous for him (and only for him)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlmodel import Session, select

from bot.i18n import UserError
from bot.importer.parse import parse_plan_file
from bot.models import Assignment, AssignmentRole, AuditLog, Plan, PlanKind, Report, WorkItem
from bot.services import contacts, plans
from tests.fakes import FakeTelegram, FakeWeCom
from tests.harness import LI, WANG, ZHANG, ZHAO, Dialog, running_bot, running_wecom_bot

MINSHENG = Path(__file__).resolve().parent.parent / "samples" / "jiangmen-edu-2023-minsheng.yaml"


@pytest.fixture
async def chat(server: FakeTelegram, db_url: str) -> AsyncIterator[Dialog]:
    async with running_bot(server, db_url) as dialog:
        with Session(dialog.engine) as session:
            plan = plans.import_plan(
                session, parse_plan_file(MINSHENG), source_file=MINSHENG.name, actor="cli"
            ).plan
            zhang = contacts.find_contact(session, "张三")
            item = plans.find_item(session, plan, "9")
            session.add(Assignment(item_id=item.id or 0, contact_id=zhang.id or 0))
            session.commit()
        yield dialog


def _task(chat: Dialog, number: int = 1) -> WorkItem:
    with Session(chat.engine) as session:
        plan = session.exec(select(Plan).where(Plan.kind == PlanKind.tasks)).one()
        return session.exec(
            select(WorkItem).where(WorkItem.plan_id == plan.id, WorkItem.number == number)
        ).one()


def _texts(calls: list) -> list[str]:  # type: ignore[type-arg]
    return [c.plain_text or "" for c in calls]


async def test_the_second_plan_gets_its_own_code(chat: Dialog) -> None:
    with Session(chat.engine) as session:
        codes = {p.title: p.code for p in plans.active_plans(session)}
    assert codes == {"江门市教育局2023年工作要点": "要点", "江门市教育局2023年教育民生实事": "民生"}


async def test_a_leader_hands_down_a_task_and_both_owners_are_told(chat: Dialog) -> None:
    answer = await chat.says_one(
        WANG, "/task 做好暑期校园安全检查 @张三 @李四 6月30日前 请形成书面报告"
    )
    assert "已交办 J1：做好暑期校园安全检查" in answer
    assert "责任人：张三、李四" in answer and "2023-06-30" in answer
    told_zhang = _texts(chat.server.messages_to(ZHANG))[-1]
    told_li = _texts(chat.server.messages_to(LI))[-1]
    assert "【交办事项 J1】王局交办：做好暑期校园安全检查" in told_zhang
    assert "牵头责任人" in told_zhang and "配合责任人" in told_li
    assert "要求：请形成书面报告" in told_zhang
    task = _task(chat)
    with Session(chat.engine) as session:
        roles = {
            a.contact_id: a.role
            for a in session.exec(select(Assignment).where(Assignment.item_id == task.id))
        }
        wang = contacts.find_contact(session, "王局")
        zhang = contacts.find_contact(session, "张三")
        assert task.assigned_by_id == wang.id and task.note == "请形成书面报告"
        assert roles[zhang.id] == AssignmentRole.lead
        assert AssignmentRole.support in roles.values()
        assert session.exec(select(AuditLog).where(AuditLog.action == "task.create")).one()


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("/task @张三 6月30日前", "请写明交办事项的名称"),
        ("/task 做好暑期校园安全检查 6月30日前", "@姓名"),
        ("/task 做好暑期校园安全检查 @张三", "完成时限"),
        ("/task 做好暑期校园安全检查 @查无此人 6月30日前", "查无此人"),
    ],
)
async def test_a_wrong_task_command_says_what_is_missing_and_changes_nothing(
    chat: Dialog, text: str, key: str
) -> None:
    answer = await chat.says_one(WANG, text)
    assert key in answer
    with Session(chat.engine) as session:
        assert session.exec(select(Plan).where(Plan.kind == PlanKind.tasks)).first() is None


async def test_an_official_cannot_hand_down_a_task(chat: Dialog) -> None:
    answer = await chat.says_one(ZHANG, "/task 做好暑期校园安全检查 @李四 6月30日前")
    assert "/task" in answer
    with Session(chat.engine) as session:
        assert session.exec(select(Plan).where(Plan.kind == PlanKind.tasks)).first() is None


async def test_the_whole_task_story(chat: Dialog) -> None:
    await chat.says_one(WANG, "/task 做好暑期校园安全检查 @张三 @李四 6月30日前 请形成书面报告")
    task = _task(chat)
    # the lead reports progress with the task's reference
    answer = await chat.says_one(ZHANG, "J1 50% 已部署各校自查")
    assert "已记录" in answer and "做好暑期校园安全检查" in answer
    assert [(r.item_id, r.percent) for r in chat.reports()] == [(task.id, 50)]

    # a bare 9 is his 要点9 and his 民生9: asked with buttons, answered by a click
    buttons = await chat.say(ZHANG, "9 60% 主体完工")
    assert len(buttons) == 1
    labels = [label for label, _ in buttons[0].buttons]
    assert any(label.startswith("9. ") for label in labels), labels
    assert any(label.startswith("民生9. ") for label in labels)
    pick = next(data or "" for label, data in buttons[0].buttons if label.startswith("民生9"))
    assert len(chat.reports()) == 1  # nothing recorded on a guess
    confirmed = _texts(await chat.click(ZHANG, buttons[0].message_id, pick))
    assert "已记录" in confirmed[0] and "改造农村学校卫生厕所" in confirmed[0]
    with Session(chat.engine) as session:
        minsheng = plans.plan_by_code(session, "民生")
        item9 = plans.find_item(session, minsheng, "9")
    assert chat.reports()[-1].item_id == item9.id and chat.reports()[-1].percent == 60
    # with the code it is not asked
    await chat.says_one(ZHANG, "要点9 70%")
    assert chat.reports()[-1].percent == 70
    # 李四 has one 9 nowhere: his "22 ..." goes to his only item without a question
    assert "已记录" in await chat.says_one(LI, "22 30%")

    # the lead closes the task: the leader who handed it down is told
    answer = await chat.says_one(ZHANG, "J1 已办结 已完成检查并形成报告")
    assert "已记录" in answer
    told = _texts(chat.server.messages_to(WANG))[-1]
    assert "【办结】J1 做好暑期校园安全检查：张三报告已办结" in told
    assert "已完成检查并形成报告" in told and "/reopen J1" in told

    # an official may not reopen; the leader may, with a reason
    assert "/reopen" in await chat.says_one(LI, "/reopen J1 不合格")
    assert "原因" in await chat.says_one(WANG, "/reopen J1")
    answer = await chat.says_one(WANG, "/reopen J1 报告缺少整改清单")
    assert "已重新打开 J1" in answer
    assert "【重新办理】王局重新打开了 J1" in _texts(chat.server.messages_to(ZHANG))[-1]
    assert "【重新办理】" in _texts(chat.server.messages_to(LI))[-1]
    with Session(chat.engine) as session:
        rows = list(session.exec(select(Report).where(Report.item_id == task.id)))
    kinds = [(r.kind, r.status, r.superseded_by_id is not None) for r in rows]
    assert kinds[-1][0] == "reopen"
    assert kinds[1][2], "the 办结 report no longer counts once reopened (kept, marked)"
    # reopening what is not done is refused
    assert "还没有办结" in await chat.says_one(WANG, "/reopen J1 再次")

    # the digest shows the task beside the plans
    digest = "\n".join(_texts(await chat.say(WANG, "/digest")))
    assert "《江门市教育局2023年工作要点》督办周报" in digest
    assert "《交办事项》督办周报" in digest and "一、交办事项：1 项" in digest


async def test_an_admin_may_reopen_any_task_and_a_plan_item_cannot_be_reopened(
    chat: Dialog,
) -> None:
    await chat.says_one(WANG, "/task 整理安全台账 @李四 年底")
    await chat.says_one(LI, "J1 已完成")
    assert "已重新打开 J1" in await chat.says_one(ZHAO, "/reopen J1 缺附件")
    assert "不是交办事项" in await chat.says_one(ZHAO, "/reopen 9 缺附件")


# --- the same story on WeCom and on the console ----------------------------------------------


def _second_plan(engine: object) -> None:
    with Session(engine) as session:  # type: ignore[call-overload]
        plan = plans.import_plan(
            session, parse_plan_file(MINSHENG), source_file=MINSHENG.name, actor="cli"
        ).plan
        zhang = contacts.find_contact(session, "张三")
        item = plans.find_item(session, plan, "9")
        session.add(Assignment(item_id=item.id or 0, contact_id=zhang.id or 0))
        session.commit()


async def test_the_task_story_on_wecom(fake: FakeWeCom, db_url: str) -> None:
    async with running_wecom_bot(fake, db_url) as wecom:
        _second_plan(wecom.engine)
        answer = await wecom.says_one("wangju", "/task 做好暑期校园安全检查 @张三 @李四 6月30日前")
        assert "已交办 J1" in answer
        assert "【交办事项 J1】" in fake.messages_to("zhangsan")[-1].content
        assert "【交办事项 J1】" in fake.messages_to("lisi")[-1].content
        assert "已记录 J1「做好暑期校园安全检查」" in await wecom.says_one(
            "zhangsan", "J1 50% 已部署"
        )
        # an ambiguous number: a card with one button per plan's item, then the click
        (card,) = await wecom.say("zhangsan", "9 60% 主体完工")
        assert card.msgtype == "template_card"
        buttons = card.card["button_list"]
        texts = [b["text"] for b in buttons]
        assert any(t.startswith("民生9") for t in texts) and any(t.startswith("9.") for t in texts)
        key = next(b["key"] for b in buttons if b["text"].startswith("民生9"))
        done = len(wecom._handled)
        click = wecom.event_xml(
            "zhangsan",
            "template_card_event",
            EventKey=key,
            TaskId=card.card["task_id"],
            CardType="button_interaction",
        )
        assert await wecom.post(click) == 200
        await wecom.handled(done + 1)
        assert "改造农村学校卫生厕所" in fake.messages_to("zhangsan")[-1].content
        # 办结, the leader is told, reopens, the owners are told
        await wecom.says_one("zhangsan", "J1 已办结 已完成检查")
        assert "【办结】J1" in fake.messages_to("wangju")[-1].content
        assert "已重新打开 J1" in await wecom.says_one("wangju", "/reopen J1 缺整改清单")
        assert "【重新办理】" in fake.messages_to("zhangsan")[-1].content


async def test_the_task_story_on_the_console(db_url: str, tmp_path: Path) -> None:
    from bot import db
    from bot.clock import FakeClock
    from bot.console_chat import run_chat
    from bot.settings import Settings
    from tests.harness import SHANGHAI, seed

    engine = db.make_engine(db_url)
    seed(engine)
    _second_plan(engine)
    engine.dispose()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=db_url, data_dir=tmp_path, locale="zh-CN"
    )

    async def session_of(name: str, script: str) -> str:
        out = io.StringIO()
        clock = FakeClock(datetime(2023, 6, 1, 10, 0, tzinfo=SHANGHAI))
        code = await run_chat(settings, name, stdin=io.StringIO(script), stdout=out, clock=clock)
        assert code == 0
        return out.getvalue()

    said = await session_of("王局", "/task 做好暑期校园安全检查 @张三 6月30日前\n")
    assert "已交办 J1：做好暑期校园安全检查" in said
    said = await session_of("张三", "J1 50% 已部署\n9 60% 主体完工\n2\nJ1 已办结 已完成\n")
    assert "已记录 J1「做好暑期校园安全检查」" in said
    assert "[1] 9. 持续扩增教育优质资源" in said and "[2] 民生9. 改造农村学校卫生厕所" in said
    assert "已记录 民生9「改造农村学校卫生厕所」" in said
    said = await session_of("王局", "/reopen J1 缺整改清单\n/my\n")
    assert "已重新打开 J1" in said


# --- falling behind, and the plan year -------------------------------------------------------


async def test_an_overdue_task_is_escalated_to_whoever_handed_it_down(chat: Dialog) -> None:
    from datetime import timedelta

    from bot.services.progress import StatusRules
    from scheduler.planner import Schedule, load_state, plan_day
    from scheduler.runner import work_calendar

    await chat.says_one(WANG, "/task 整理安全台账 @李四 6月2日")
    task = _task(chat)
    settings = chat.app.settings
    calendar, schedule = work_calendar(settings), Schedule.from_settings(settings)
    escalated: list[int] = []
    with Session(chat.engine) as session:
        plan = session.get(Plan, task.plan_id)
        assert plan is not None
        wang = contacts.find_contact(session, "王局")
        day = datetime(2023, 6, 5, 12, 0, tzinfo=chat.clock().tzinfo)
        for _ in range(15):
            state = load_state(
                session, plan, now=day, tz=settings.tz, rules=StatusRules.from_settings(settings)
            )
            escalated += [
                p.contact_id
                for p in plan_day(state, day.date(), calendar, schedule)
                if p.kind == "escalation"
            ]
            day += timedelta(days=1)
    assert escalated and set(escalated) == {wang.id}, "the 交办人, not every leader"


async def test_a_closed_plan_is_read_only_and_carries_its_unfinished_items_over(
    chat: Dialog,
) -> None:
    await chat.says_one(ZHANG, "民生9 40%")
    with Session(chat.engine) as session:
        minsheng = plans.plan_by_code(session, "民生")
        yaodian = plans.plan_by_code(session, "要点")
        open_items = [
            i
            for i in session.exec(select(WorkItem).where(WorkItem.plan_id == minsheng.id))
            if not reports_done(session, i)
        ]
        result = plans.close_plan(
            session,
            minsheng,
            now=chat.clock(),
            actor="cli",
            unfinished=open_items,
            carry_to=yaodian,
        )
        carried = {old.number: new.number for old, new in result.carried}
        session.commit()
    assert "已关闭" in await chat.says_one(ZHANG, "民生9 60%")
    assert len(chat.reports()) == 1
    # his carried-over copy of 民生9 is in 要点 now, under its new number, and still his
    new_number = carried[9]
    answer = await chat.says_one(ZHANG, f"{new_number} 60% 继续推进")
    assert "已记录" in answer and "改造农村学校卫生厕所" in answer
    with Session(chat.engine) as session:
        copy = plans.find_item(session, plans.plan_by_code(session, "要点"), str(new_number))
        assert copy.carried_from_id is not None
        with pytest.raises(UserError, match="read-only"):
            plans.import_plan(
                session, parse_plan_file(MINSHENG), source_file=MINSHENG.name, actor="cli"
            )


def reports_done(session: Session, item: WorkItem) -> bool:
    from bot.services.reports import item_done

    return item_done(session, item)


async def test_the_ledger_has_a_sheet_per_plan_and_the_tasks(chat: Dialog, tmp_path: Path) -> None:
    import openpyxl

    from bot.services.ledger_export import export_ledger

    await chat.says_one(WANG, "/task 做好暑期校园安全检查 @张三 6月30日前")
    await chat.says_one(ZHANG, "J1 已办结 已完成检查")
    await chat.says_one(WANG, "/reopen J1 缺整改清单")
    await chat.says_one(ZHANG, "民生9 40%")
    with Session(chat.engine) as session:
        path = export_ledger(
            session,
            plans.current_plan(session),
            tmp_path / "台账.xlsx",
            settings=chat.app.settings,
            now=chat.clock(),
        )
    book = openpyxl.load_workbook(path, read_only=True)
    assert book.sheetnames[:3] == ["台账", "民生 江门市教育局2023年教育民生实事", "J 交办事项"]
    tasks_sheet = [
        [c for c in row if c is not None] for row in book["J 交办事项"].iter_rows(values_only=True)
    ]
    assert any("做好暑期校园安全检查" in map(str, row) for row in tasks_sheet)
    history = [row for row in book["进展记录"].iter_rows(values_only=True)]
    items = {row[1] for row in history[1:]}
    assert {"J1", "民生9"} <= items
    (reopen,) = [row for row in history if row[6] == "缺整改清单"]
    assert reopen[1] == "J1" and "重新打开" in str(reopen[-1])
