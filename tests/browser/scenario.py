"""A bureau a fortnight into its plan, for the board's tests (HTTP and browser).

The sample plan (27 items) assigned from samples/assignments.csv, two leaders and an admin,
and what the officials reported up to Wednesday 14 June 2023 (week 2023-W24): most items on
schedule, two done, two red (one overdue and delayed, one delayed), a few amber (behind, or
silent for five weeks), a correction, a withdrawn report, target values, and reminders that
went out. Reports are recorded through the same services as the chat's.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.importer.parse import parse_plan_file
from bot.models import Contact, Outbox, Role
from bot.outbox import Message, enqueue
from bot.progress_parser import match_targets, parse_report_text
from bot.services import assignments, audit, contacts, plans, reports

ROOT = Path(__file__).resolve().parent.parent.parent
SAMPLE = ROOT / "samples" / "jiangmen-edu-2023-workpoints.txt"
CSV = ROOT / "samples" / "assignments.csv"
TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2023, 6, 14, 10, 0, tzinfo=TZ)  # Wednesday of 2023-W24
LEADER = "陈局长"
ADMIN = "王芳"
OFFICIAL = "张敏"  # items 9 (lead, with 黄伟 in support) and 10
OFFICIAL_ITEMS = (9, 10)

RED = (13, 20)  # 13 reported 滞后; 20 past its deadline (1 June) and reported 滞后
DONE = (1, 14)


def _at(month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(2023, month, day, hour, minute, tzinfo=TZ)


# (when, item, who, what they wrote) in time order.
REPORTS: list[tuple[datetime, int, str, str]] = [
    (_at(5, 10), 16, "赵雪", "20% 教师培训方案已印发"),
    (_at(5, 30), 9, "张敏", "40% 新增学位4000个"),
    (_at(6, 2), 7, "陈晓", "30% 课后服务工作指引征求意见"),
    (_at(6, 6), 12, "吴刚", "30% 已完成摸底调查"),
    (_at(6, 7, 11), 20, "何军", "滞后 施工方资质复核未通过，已责令整改"),
    (_at(6, 7, 15), 9, "黄伟", "专项资金已拨付，新增学位3000个"),
    (_at(6, 8, 10, 30), 14, "林芳", "已完成 特殊教育资源中心已挂牌"),
    (_at(6, 9, 10, 20), 9, "张敏", "60% 华侨实验小学主体完工，新增学位6500个"),
    (_at(6, 9, 10, 25), 11, "吴刚", "40% 集团化办学方案已报市政府"),
    (_at(6, 9, 10, 40), 5, "陈晓", "50% 思政课一体化指导委员会已成立"),
    (_at(6, 9, 11, 5), 13, "郑华", "滞后 产教融合数据平台招标延期"),
    (_at(6, 9, 11, 30), 1, "李明", "已完成"),
    (_at(6, 9, 11, 40), 2, "李明", "35% 党建示范校评选启动"),
    (_at(6, 9, 14), 21, "马丽", "30% 考核办法征求意见中"),
    (_at(6, 9, 14, 6), 21, "马丽", "35% 考核办法征求意见中"),  # a correction of the one above
    (_at(6, 9, 15), 6, "陈晓", "35% 体育中考改革方案起草中"),
    (_at(6, 9, 15, 30), 10, "张敏", "35% 学区划片方案公示"),
    (_at(6, 9, 16), 18, "孙磊", "35% 职称评审材料已受理"),
    (_at(6, 9, 16, 30), 19, "何军", "30% 开展校园安全大排查"),
    (_at(6, 12, 9, 30), 3, "周洁", "40% 已完成第一批廉洁文化进校园"),
    (_at(6, 12, 9, 40), 4, "周洁", "30% 舆情处置培训班已开班"),
    (_at(6, 12, 9, 50), 26, "周洁", "30% 宣传方案已制定"),
    (_at(6, 12, 11), 8, "黄伟", "50% 年度教育经费预算已下达"),
    (_at(6, 12, 14), 15, "林芳", "30% 资助政策宣传月启动"),
    (_at(6, 12, 15), 17, "赵雪", "15% 名师工作室遴选推迟"),
    (_at(6, 12, 16), 22, "吴刚", "40% 中小学课程改革试点推进"),
    (_at(6, 12, 16, 30), 23, "郑华", "5% 调研中"),
    (_at(6, 12, 17), 25, "马丽", "45% 督导评估已覆盖3个县"),
    (_at(6, 12, 17, 10), 27, "马丽", "32% 教育改革项目已立项"),
    (_at(6, 13, 10), 12, "吴刚", "20% 试点学校名单待定"),  # withdrawn five minutes later
]
WITHDRAWN = (_at(6, 13, 10, 5), "吴刚")

# (kind, item, to whom, sent at): reminders that went out through the outbox.
REMINDERS: list[tuple[str, int, str, datetime]] = [
    ("ask", 9, "张敏", _at(6, 9, 10)),
    ("deadline", 14, "林芳", _at(6, 6, 10)),
    ("overdue", 20, "何军", _at(6, 2, 10)),
    ("overdue", 20, "何军", _at(6, 7, 10)),
    ("escalation", 20, LEADER, _at(6, 7, 10)),
]


def seed_board(engine: Engine) -> None:
    """Write the scenario into a migrated, empty database."""
    with Session(engine, expire_on_commit=False) as session:
        plan = plans.import_plan(
            session, parse_plan_file(SAMPLE), source_file=SAMPLE.name, actor=audit.CLI_ACTOR
        ).plan
        for name, unit, role in [
            (LEADER, "局领导", Role.leader),
            ("刘副局长", "局领导", Role.leader),
            (ADMIN, "办公室", Role.admin),
        ]:
            contacts.add_contact(session, name=name, unit=unit, role=role, actor=audit.CLI_ACTOR)
        rows = assignments.read_assignment_csv(session, plan, CSV.read_text(encoding="utf-8"))
        assignments.apply_assignment_csv(session, rows, actor=audit.CLI_ACTOR)
        people = {c.name: c for c in session.exec(select(Contact))}
        for when, number, name, text in REPORTS:
            item = plans.find_item(session, plan, str(number))
            parsed = parse_report_text(text)
            reports.record_report(
                session,
                item=item,
                contact=people[name],
                now=when.astimezone(TZ),
                percent=parsed.percent,
                status=parsed.status,
                text=parsed.note,
                values=match_targets(parsed.numbers, reports.item_targets(session, item)),
            )
        at, name = WITHDRAWN
        reports.undo_last(session, people[name], at)
        # the assignment notices went out when the plan was assigned
        for row in session.exec(select(Outbox)):
            row.state, row.sent_at = "sent", _at(5, 8)
        messages = [
            Message(
                key=f"{kind}:{number}:{name}:{at.isoformat()}",
                kind=kind,
                payload={"message": f"remind.{kind}", "params": {}},
                due_at=at,
                contact_id=people[name].id,
                item_id=plans.find_item(session, plan, str(number)).id,
            )
            for kind, number, name, at in REMINDERS
        ]
        enqueue(session, messages, now=NOW - timedelta(days=30))
        for row in session.exec(select(Outbox).where(Outbox.state == "pending")):
            row.state, row.sent_at = "sent", row.due_at
        session.commit()
