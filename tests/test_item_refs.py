"""An item of a plan other than the default one is named by its reference everywhere a person
reads it (民生9, J1), never as "第 9 项", which is item 9 of the default plan: in answers,
notices, reminders, /status and /overdue. The cast and plans are test_tasks_dialogs's: 张三
holds 要点 items 9 and 10 and 民生9."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlmodel import Session, col, select

from bot.i18n import Translator
from bot.models import AuditLog
from bot.services import contacts, plans
from bot.services.progress import StatusRules
from scheduler.planner import Schedule, load_state, plan_day
from scheduler.runner import work_calendar
from tests.harness import LI, WANG, ZHANG, ZHAO, Dialog
from tests.test_tasks_dialogs import chat  # noqa: F401  # the fixture: both plans, 张三 on 民生9

ZH, EN = Translator("zh-CN"), Translator("en")


def test_a_coded_reference_replaces_the_ordinal() -> None:
    params = {"title": "改造农村学校卫生厕所", "days": 2, "deadline": "2023-06-30"}
    assert ZH("remind.overdue", item="民生9", **params).startswith(
        "民生9“改造农村学校卫生厕所”已逾期 2 个工作日"
    )
    assert "例如：民生9 滞后" in ZH("remind.overdue", item="民生9", **params)
    assert ZH("remind.overdue", item="9", **params).startswith("第 9 项“改造农村学校卫生厕所”")
    assert ZH("remind.overdue", item=9, **params).startswith("第 9 项")
    assert ZH("evidence.files.none", item="J1", title="安全检查") == "J1「安全检查」暂无佐证材料。"
    assert EN("remind.overdue", item="民生9", **params).startswith("Item 民生9 '改造")


async def test_status_of_another_plans_item(chat: Dialog) -> None:  # noqa: F811
    for text in ("/status 民生9", "民生9 怎么样了"):
        answer = await chat.says_one(ZHANG, text)
        first, *_ = answer.splitlines()
        assert first.endswith(" 民生9「改造农村学校卫生厕所」"), answer  # was an error
        assert "完成时限：2023-10-31" in answer  # 民生9's, not 要点9's
    leader = await chat.says_one(WANG, "/status 民生9")
    assert "民生9「改造农村学校卫生厕所」" in leader
    assert "第9项" not in leader and "第 9 项" not in leader


async def test_overdue_lists_every_open_plan_with_references(chat: Dialog) -> None:  # noqa: F811
    await chat.says_one(WANG, "/task 整理安全台账 @张三 6月2日")
    await chat.says_one(ZHAO, "/deadline 民生9 2023-05-31")
    chat.clock.advance(timedelta(days=5))
    answer = await chat.says_one(WANG, "/overdue")
    assert "🔴 民生9. 改造农村学校卫生厕所 —— 时限 2023-05-31" in answer, answer
    assert "🔴 J1. 整理安全台账 —— 时限 2023-06-02" in answer


async def test_assignment_answers_and_notices_name_the_reference(chat: Dialog) -> None:  # noqa: F811
    answer = await chat.says_one(ZHAO, "/assign 民生3 李四")
    assert answer.startswith("已将民生3“"), answer
    notice = chat.server.messages_to(LI)[-1].plain_text or ""
    assert notice.startswith("您有新的督办事项：民生3“"), notice
    assert "例如：民生3 30% 已启动" in notice
    answer = await chat.says_one(ZHAO, "/deadline 民生3 2023-07-31")
    assert answer.startswith("民生3“") and "2023-07-31" in answer, answer
    assert (await chat.says_one(ZHAO, "/unassign 民生3 李四")).startswith(
        "已取消 李四 对民生3的分工"
    )


async def test_reminders_of_another_plan_name_the_reference(chat: Dialog) -> None:  # noqa: F811
    await chat.says_one(ZHAO, "/deadline 民生9 2023-06-30")
    settings = chat.app.settings
    calendar, schedule = work_calendar(settings), Schedule.from_settings(settings)
    rules = StatusRules.from_settings(settings)
    texts: dict[str, str] = {}
    with Session(chat.engine) as session:
        minsheng = plans.plan_by_code(session, "民生")
        default = plans.current_plan(session)
        zhang = contacts.find_contact(session, "张三").id
        day = datetime(2023, 6, 5, 12, 0, tzinfo=settings.tz)
        while day.date() <= date(2023, 7, 20):
            for plan in (minsheng, default):
                state = load_state(session, plan, now=day, tz=settings.tz, rules=rules)
                for p in plan_day(state, day.date(), calendar, schedule):
                    if p.contact_id == zhang:
                        texts.setdefault(f"{p.kind}:{plan.code}", ZH(p.message, **p.params))
            day += timedelta(days=1)
    assert "民生9. 改造农村学校卫生厕所（2023-06-30）" in texts["ask:民生"]
    assert "例如：民生9 60%" in texts["ask:民生"]
    assert texts["deadline:民生"].startswith(
        "提醒：民生9“改造农村学校卫生厕所”将于 2023-06-30 到期"
    )
    assert texts["overdue:民生"].startswith("民生9“改造农村学校卫生厕所”已逾期")
    assert "例如：民生9 滞后" in texts["overdue:民生"]
    # the default plan's items keep their plain numbers
    assert "\n9. " in texts["ask:要点"] and "民生" not in texts["ask:要点"]


async def test_audit_entries_name_the_plan_of_the_item(chat: Dialog) -> None:  # noqa: F811
    await chat.says_one(ZHAO, "/assign 民生3 李四")
    await chat.says_one(ZHAO, "/deadline 民生3 2023-07-31")
    await chat.says_one(ZHAO, "/unassign 民生3 李四")
    await chat.says_one(ZHAO, "/deadline 3 2023-08-31")
    with Session(chat.app.engine) as session:
        codes = {p.id: p.code for p in plans.all_plans(session)}
        default = plans.current_plan(session).code
        minsheng = next(code for code in codes.values() if code.startswith("民生"))
        entries = [
            (e.action, e.detail.get("plan"), e.detail.get("item"))
            for e in session.exec(select(AuditLog).order_by(col(AuditLog.id)))
            if e.action in ("assign", "deadline", "unassign")
        ]
    # item 3 of each plan is told apart: a number alone would say the same of both
    assert entries[-4:] == [
        ("assign", minsheng, 3),
        ("deadline", minsheng, 3),
        ("unassign", minsheng, 3),
        ("deadline", default, 3),
    ]


async def test_a_deadline_in_chat_on_a_closed_plans_item_is_refused(chat: Dialog) -> None:  # noqa: F811
    with Session(chat.app.engine) as session:
        minsheng = next(p for p in plans.all_plans(session) if p.code.startswith("民生"))
        before = plans.find_item(session, minsheng, "3").deadline
        code = minsheng.code
        plans.close_plan(session, minsheng, now=chat.clock(), actor="cli", unfinished=[])
        session.commit()
    answer = await chat.says_one(ZHAO, f"/deadline {code}3 2023-07-31")
    assert "只读" in answer, answer
    with Session(chat.app.engine) as session:
        minsheng = next(p for p in plans.all_plans(session) if p.code.startswith("民生"))
        assert plans.find_item(session, minsheng, "3").deadline == before
