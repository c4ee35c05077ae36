"""The CLI for several plans at once and 交办 tasks: import --code, plans, items --plan,
task add | list | reopen, plan close (carrying unfinished items over), bulletin, board link."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import docx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.i18n import UserError
from bot.models import Assignment, Contact, Outbox, Plan, ReportStatus, Target, WorkItem
from bot.services import assignments, reports
from tests.test_cli import Cli

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
WORKPOINTS = SAMPLES / "jiangmen-edu-2023-workpoints.txt"
MINSHENG = SAMPLES / "jiangmen-edu-2023-minsheng.yaml"
WORKPOINTS_TITLE = "江门市教育局2023年工作要点"
MINSHENG_TITLE = "江门市教育局2023年教育民生实事"


@pytest.fixture
def cli(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.delenv("WEB_BASE_URL", raising=False)
    return Cli(db_url, tmp_path, monkeypatch)


@pytest.fixture
def bureau(cli: Cli) -> Cli:
    """Both sample plans imported, and the people who work on them."""
    cli.ok("import", WORKPOINTS)
    cli.ok("import", MINSHENG)
    cli.ok("contacts", "add", "张敏", "--unit", "基础教育科")
    cli.ok("contacts", "add", "李明", "--unit", "德育科")
    cli.ok("contacts", "add", "王局长", "--unit", "局领导", "--role", "leader")
    return cli


def one_line_refusal(cli: Cli, *args: str | Path) -> str:
    """Run a command that must be refused: exit 2, one line on stderr, nothing changed."""
    before = cli.counts()
    result = cli(*args)
    assert result.exit_code == 2, (result.output, result.stderr)
    message = result.stderr.strip()
    assert message and "\n" not in message, message
    assert "Traceback" not in result.output
    assert cli.counts() == before
    return message


def report_done(engine: Engine, plan_code: str, number: int, name: str) -> None:
    """An owner reports an item done (as in chat: `J1 已办结 …`)."""
    with Session(engine) as session:
        plan = session.exec(select(Plan).where(Plan.code == plan_code)).one()
        item = session.exec(
            select(WorkItem).where(WorkItem.plan_id == plan.id, WorkItem.number == number)
        ).one()
        person = session.exec(select(Contact).where(Contact.name == name)).one()
        reports.record_report(
            session,
            item=item,
            contact=person,
            now=datetime.now(UTC),
            status=ReportStatus.done,
            text="已办结",
        )
        session.commit()


# --- import --code, plans, items --plan ---------------------------------------------------


def test_two_plans_are_imported_with_their_codes(cli: Cli) -> None:
    assert "计划代号：要点。" in cli.ok("import", WORKPOINTS).stdout
    assert "计划代号：民生。" in cli.ok("import", MINSHENG).stdout
    data = cli.json("plans")["plans"]
    assert [(p["code"], p["title"], p["kind"], p["state"]) for p in data] == [
        ("要点", WORKPOINTS_TITLE, "plan", "open"),
        ("民生", MINSHENG_TITLE, "plan", "open"),
    ]
    assert [(p["items"], p["done"], p["open"], p["default"]) for p in data] == [
        (27, 0, 27, True),
        (4, 0, 4, False),
    ]
    table = cli.ok("plans").stdout
    assert "要点" in table and "民生" in table and "进行中" in table and "工作计划" in table


def test_plans_counts_follow_the_reports(bureau: Cli) -> None:
    bureau.ok("assign", "9", "张敏")
    bureau.ok("assign", "10", "张敏")
    bureau.ok("report", "9", "--as", "张敏", "--status", "done", "--text", "已完工")
    bureau.ok("report", "10", "--as", "张敏", "--percent", "100")
    bureau.ok("report", "10", "--as", "张敏", "--percent", "60")  # a correction: not done again
    workpoints = bureau.json("plans")["plans"][0]
    assert (workpoints["items"], workpoints["done"], workpoints["open"]) == (27, 1, 26)


def test_import_with_a_code_and_a_re_import_keeps_it(cli: Cli) -> None:
    data = cli.json("import", MINSHENG, "--code", "实事")
    assert data["code"] == "实事" and data["plan"]["title"] == MINSHENG_TITLE
    assert "计划代号：实事。" in cli.ok("import", MINSHENG).stdout
    assert [p["code"] for p in cli.json("plans")["plans"]] == ["实事"]


@pytest.mark.parametrize(
    ("code", "says"),
    [
        ("要点", "代号“要点”已由《江门市教育局2023年工作要点》使用"),
        ("民生2", "计划代号“民生2”不可用"),
        ("民 生", "计划代号“民 生”不可用"),
        ("九个字的计划代号太长", "不可用"),
    ],
)
def test_a_taken_or_bad_code_is_refused_and_changes_nothing(cli: Cli, code: str, says: str) -> None:
    cli.ok("import", WORKPOINTS)
    assert says in one_line_refusal(cli, "import", MINSHENG, "--code", code)
    assert [p["code"] for p in cli.json("plans")["plans"]] == ["要点"]


def test_the_code_is_named_in_english(cli: Cli) -> None:
    cli.monkeypatch.setenv("LOCALE", "en")
    assert "Plan code: 要点." in cli.ok("import", WORKPOINTS).stdout
    message = one_line_refusal(cli, "import", MINSHENG, "--code", "要点")
    assert message.startswith("The code “要点” belongs to")


def test_items_of_another_plan(bureau: Cli) -> None:
    data = bureau.json("items", "--plan", "民生")
    assert data["plan"] == MINSHENG_TITLE and data["code"] == "民生"
    assert [i["number"] for i in data["items"]] == [1, 2, 3, 9]
    assert [i["ref"] for i in data["items"]] == ["民生1", "民生2", "民生3", "民生9"]
    assert data["items"][0]["title"] == "新建改扩建公办幼儿园10所"
    table = bureau.ok("items", "--plan", "民生").stdout
    assert "民生9" in table and "改造农村学校卫生厕所" in table
    default = bureau.json("items")
    assert default["code"] == "要点" and len(default["items"]) == 27
    assert "没有代号为“重点”的计划" in one_line_refusal(bureau, "items", "--plan", "重点")


# --- task add | list | reopen -------------------------------------------------------------


def test_task_add_hands_it_down_to_its_owners(bureau: Cli, engine: Engine) -> None:
    before = bureau.counts()
    result = bureau.ok(
        "task",
        "add",
        "做好暑期校园安全检查",
        "--to",
        "张敏",
        "--to",
        "李明",
        "--deadline",
        "2099-06-30",
        "--from",
        "王局长",
        "--note",
        "请形成书面报告",
    )
    assert "已交办 J1：做好暑期校园安全检查（责任人：张敏、李明；完成时限：2099-06-30）" in (
        result.stdout
    )
    after = bureau.counts()
    assert after["plan"] == before["plan"] + 1  # the tasks plan, made on first use
    assert after["work_item"] == before["work_item"] + 1
    assert after["assignment"] == before["assignment"] + 2
    with Session(engine) as session:
        item = session.exec(select(WorkItem).where(WorkItem.label == "J1")).one()
        leader = session.exec(select(Contact).where(Contact.name == "王局长")).one()
        assert item.assigned_by_id == leader.id and item.note == "请形成书面报告"
        roles = {
            name: role.value
            for name, role in session.exec(
                select(Contact.name, Assignment.role)
                .join(Assignment, col(Assignment.contact_id) == Contact.id)
                .where(Assignment.item_id == item.id)
            )
        }
        assert roles == {"张敏": "lead", "李明": "support"}
        notices = session.exec(select(Outbox).where(Outbox.item_id == item.id)).all()
        told = {
            session.get_one(Contact, n.contact_id).name: n.payload["params"]["role"]
            for n in notices
        }
    assert {n.kind for n in notices} == {"notice"}
    assert {n.payload["message"] for n in notices} == {"task.told_owner"}
    assert told == {"张敏": {"key": "task.role_lead"}, "李明": {"key": "task.role_support"}}

    tasks = bureau.json("task", "list")["tasks"]
    assert tasks == [
        {
            "ref": "J1",
            "number": 1,
            "title": "做好暑期校园安全检查",
            "owners": ["张敏", "李明"],
            "lead": "张敏",
            "deadline": "2099-06-30",
            "assigned_by": "王局长",
            "note": "请形成书面报告",
            "state": "open",
        }
    ]
    listed = bureau.ok("task", "list").stdout
    assert "J1" in listed and "办理中" in listed and "王局长" in listed
    shown = bureau.json("items", "--plan", "J")["items"]
    assert [(i["ref"], i["assigned_by"], i["note"]) for i in shown] == [
        ("J1", "王局长", "请形成书面报告")
    ]
    table = bureau.ok("items", "--plan", "J").stdout
    assert "交办人" in table and "王局长" in table and "请形成书面" in table
    codes = [p["code"] for p in bureau.json("plans")["plans"]]
    assert codes == ["要点", "民生", "J"]


def test_task_add_json_and_a_task_from_the_office(bureau: Cli) -> None:
    data = bureau.json("task", "add", "报送暑期安全排查表", "--to", "李明", "--deadline", "6月底")
    assert data["ref"] == "J1" and data["assigned_by"] is None and data["note"] == ""
    assert data["owners"] == [{"name": "李明", "role": "lead"}]
    assert data["deadline"].endswith("-06-30")  # this year's
    second = bureau.json("task", "add", "第二件", "--to", "张敏", "--deadline", "2099-01-31")
    assert second["ref"] == "J2"
    assert "督办办公室" in bureau.ok("task", "list").stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--to", "张敏", "--deadline", "下辈子"], "日期“下辈子”无法识别"),
        (["--to", "张敏", "--deadline", "2023-02-30"], "无效"),
        (["--to", "张敏", "--to", "赵六", "--deadline", "2099-06-30"], "没有名为“赵六”的联系人"),
        (["--to", "张敏", "--deadline", "2099-06-30", "--from", "钱七"], "没有名为“钱七”的联系人"),
    ],
)
def test_a_bad_deadline_or_name_writes_nothing(bureau: Cli, args: list[str], says: str) -> None:
    assert says in one_line_refusal(bureau, "task", "add", "做好暑期校园安全检查", *args)
    assert bureau.json("task", "list") == {"tasks": []}
    assert [p["code"] for p in bureau.json("plans")["plans"]] == ["要点", "民生"]


def test_an_empty_title_is_refused(bureau: Cli) -> None:
    message = one_line_refusal(bureau, "task", "add", "  ", "--to", "张敏", "--deadline", "6月底")
    assert "请写明交办事项的名称" in message


def test_task_states_and_reopen(bureau: Cli, engine: Engine) -> None:
    bureau.ok("contacts", "add", "赵主任", "--unit", "办公室", "--role", "admin")
    bureau.ok(
        "task", "add", "安全检查", "--to", "张敏", "--deadline", "2099-06-30", "--from", "王局长"
    )
    bureau.ok("task", "add", "统计报表", "--to", "李明", "--deadline", "2023-06-30")
    assert [t["state"] for t in bureau.json("task", "list")["tasks"]] == ["open", "overdue"]
    assert "逾期" in bureau.ok("task", "list").stdout
    assert "J1 还没有办结" in one_line_refusal(
        bureau, "task", "reopen", "J1", "--reason", "缺清单", "--as", "王局长"
    )
    report_done(engine, "J", 1, "张敏")
    assert [t["state"] for t in bureau.json("task", "list")["tasks"]] == ["done", "overdue"]
    assert "已办结" in bureau.ok("task", "list").stdout
    assert "只有交办人或管理员可以重新打开 J1" in one_line_refusal(
        bureau, "task", "reopen", "J1", "--reason", "缺清单", "--as", "李明"
    )
    assert "没有编号为“J7”的交办事项" in one_line_refusal(
        bureau, "task", "reopen", "J7", "--reason", "缺清单", "--as", "王局长"
    )
    before = bureau.counts()["outbox"]
    data = bureau.json("task", "reopen", "j1", "--reason", "报告缺少整改清单", "--as", "王局长")
    assert data == {
        "ref": "J1",
        "title": "安全检查",
        "reason": "报告缺少整改清单",
        "by": "王局长",
        "owners": ["张敏"],
    }
    assert bureau.counts()["outbox"] == before + 1  # the owner is told
    assert [t["state"] for t in bureau.json("task", "list")["tasks"]] == ["open", "overdue"]
    report_done(engine, "J", 1, "张敏")
    said = bureau.ok("task", "reopen", "1", "--reason", "再查一次", "--as", "赵主任").stdout
    assert "已重新打开 J1：安全检查（原因：再查一次）" in said  # an admin may


def test_task_list_before_any_task(cli: Cli) -> None:
    assert cli.json("task", "list") == {"tasks": []}
    assert "还没有交办事项" in cli.ok("task", "list").stdout


def test_task_add_in_english(bureau: Cli) -> None:
    bureau.monkeypatch.setenv("LOCALE", "en")
    said = bureau.ok("task", "add", "Safety check", "--to", "张敏", "--deadline", "2099-06-30")
    assert "Task J1 handed down: Safety check (owners: 张敏; deadline: 2099-06-30)." in said.stdout
    assert "in progress" in bureau.ok("task", "list").stdout


# --- plan close ---------------------------------------------------------------------------


def test_plan_close_carries_the_unfinished_items_over(bureau: Cli, engine: Engine) -> None:
    bureau.ok("assign", "1", "张敏")
    bureau.ok("report", "1", "--as", "张敏", "--status", "done")
    bureau.ok("assign", "9", "张敏", "--deadline", "2023-12-31")
    bureau.ok("assign", "9", "李明", "--support")
    data = bureau.json("plan", "close", "要点", "--carry-over-to", "民生")
    assert (data["code"], data["items"], data["done"], data["carried_to"]) == (
        "要点",
        27,
        1,
        "民生",
    )
    assert data["unfinished"] == list(range(2, 28))
    assert data["carried"][0] == {
        "from": 2,
        "to": 10,
        "ref": "民生10",
        "title": "全面加强教育系统党的建设",
    }
    assert [c["to"] for c in data["carried"]] == list(range(10, 36))
    with Session(engine) as session:
        old_plan = session.exec(select(Plan).where(Plan.code == "要点")).one()
        new_plan = session.exec(select(Plan).where(Plan.code == "民生")).one()
        assert old_plan.closed_at is not None and new_plan.closed_at is None
        old9 = session.exec(
            select(WorkItem).where(WorkItem.plan_id == old_plan.id, WorkItem.number == 9)
        ).one()
        new9 = session.exec(select(WorkItem).where(WorkItem.carried_from_id == old9.id)).one()
        assert (new9.plan_id, new9.number, new9.title) == (new_plan.id, 17, old9.title)
        roles = sorted(
            (a.contact_id, a.role.value)
            for a in session.exec(select(Assignment).where(Assignment.item_id == new9.id))
        )
        old_roles = sorted(
            (a.contact_id, a.role.value)
            for a in session.exec(select(Assignment).where(Assignment.item_id == old9.id))
        )
        assert roles == old_roles and len(roles) == 2

        def targets(item: WorkItem) -> list[tuple[int, str, str, str, float, str, bool]]:
            return [
                (t.position, t.text, t.metric, t.comparator, t.value, t.unit, t.additive)
                for t in session.exec(
                    select(Target).where(Target.item_id == item.id).order_by(col(Target.position))
                )
            ]

        # Its quantitative targets go with it (新增学位超1万个, 初中2所, 高中1所).
        assert targets(new9) == targets(old9) and len(targets(old9)) == 3
        carried = session.exec(
            select(WorkItem).where(col(WorkItem.carried_from_id).is_not(None))
        ).all()
        assert len(carried) == 26
    plans = {p["code"]: p for p in bureau.json("plans")["plans"]}
    assert plans["要点"]["state"] == "closed" and plans["要点"]["closed_on"]
    assert (plans["民生"]["items"], plans["民生"]["default"]) == (30, True)
    assert "已关闭（" in bureau.ok("plans").stdout
    assert bureau.json("items")["code"] == "民生"  # the default plan now
    assert "已关闭，只读" in one_line_refusal(bureau, "import", WORKPOINTS)
    assert "计划“要点”已经关闭" in one_line_refusal(bureau, "plan", "close", "要点")


def test_a_closed_plans_items_cannot_be_assigned_or_unassigned(bureau: Cli, engine: Engine) -> None:
    bureau.ok("assign", "9", "张敏")
    bureau.ok("plan", "close", "要点")
    assert "计划“要点”（《江门市教育局2023年工作要点》）已关闭，只读" in one_line_refusal(
        bureau, "assign", "要点9", "李明"
    )
    with Session(engine) as session:  # the chat's /unassign and /deadline go through these
        plan = session.exec(select(Plan).where(Plan.code == "要点")).one()
        item = session.exec(
            select(WorkItem).where(WorkItem.plan_id == plan.id, WorkItem.number == 9)
        ).one()
        person = session.exec(select(Contact).where(Contact.name == "张敏")).one()
        with pytest.raises(UserError) as unassigning:
            assignments.unassign(session, item=item, contact=person, actor="test")
        with pytest.raises(UserError) as setting:
            assignments.set_deadline(session, item=item, deadline=date(2023, 12, 1), actor="t")
        assert unassigning.value.key == setting.value.key == "plan.closed"
    bureau.ok("assign", "民生3", "李明")  # the open plan's items still can


def test_plan_close_says_what_it_did(bureau: Cli) -> None:
    said = bureau.ok("plan", "close", "要点", "--carry-over-to", "民生").stdout
    assert (
        "已关闭计划“要点”（《江门市教育局2023年工作要点》）：共 27 项，已完成 0 项，未完成 27 项"
        in said
    )
    assert "未完成的 27 项已结转到计划“民生”" in said and "民生10、民生11" in said
    said = bureau.ok("plan", "close", "民生").stdout
    assert "未完成的 31 项没有结转" in said


def test_plan_close_refuses_a_bad_target(bureau: Cli) -> None:
    assert "不能结转到计划“要点”" in one_line_refusal(
        bureau, "plan", "close", "要点", "--carry-over-to", "要点"
    )
    assert "没有代号为“明年”的计划" in one_line_refusal(
        bureau, "plan", "close", "要点", "--carry-over-to", "明年"
    )
    assert bureau.json("plans")["plans"][0]["state"] == "open"


# --- bulletin, board link -----------------------------------------------------------------


def test_bulletin_writes_a_docx(bureau: Cli, tmp_path: Path) -> None:
    out = tmp_path / "六月通报.docx"
    said = bureau.ok("bulletin", "--month", "2023-06", "--out", out).stdout
    assert "通报已生成" in said and out.name in said
    text = "\n".join(p.text for p in docx.Document(str(out)).paragraphs)
    assert "2023年6月" in text and WORKPOINTS_TITLE in text and MINSHENG_TITLE in text
    data = bureau.json("bulletin", "--quarter", "2023-Q2")
    assert data["period"] == "2023-Q2" and data["plans"] == ["要点", "民生"]
    assert (bureau.cwd / data["path"]).is_file()
    assert ".docx" in one_line_refusal(bureau, "bulletin", "--month", "2023-06", "--out", "x.pdf")
    assert "只能选一个" in one_line_refusal(
        bureau, "bulletin", "--month", "2023-06", "--quarter", "2023-Q2"
    )


def test_board_link(bureau: Cli) -> None:
    assert "WEB_BASE_URL" in one_line_refusal(bureau, "board", "link", "王局长")
    bureau.monkeypatch.setenv("WEB_BASE_URL", "https://duban.example.org/")
    data = bureau.json("board", "link", "王局长")
    assert data["name"] == "王局长"
    assert data["url"].startswith("https://duban.example.org/board/in/")
    said = bureau.ok("board", "link", "王局长").stdout
    assert "王局长 的看板登录链接" in said and "https://duban.example.org/board/in/" in said
    assert "没有名为“钱七”的联系人" in bureau("board", "link", "钱七").stderr
    engine = sa.create_engine(bureau.db_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        links = conn.execute(sa.text("SELECT count(*) FROM web_token")).scalar_one()
    engine.dispose()
    assert links == 2


def test_a_task_reported_done_on_the_command_line_tells_whoever_handed_it_down(
    bureau: Cli, engine: Engine
) -> None:
    bureau.ok(
        "task", "add", "安全检查", "--to", "张敏", "--deadline", "2099-06-30", "--from", "王局长"
    )
    before = bureau.counts()["outbox"]
    bureau.ok("report", "J1", "--as", "张敏", "--status", "done", "--text", "已形成报告")
    with Session(engine) as session:
        rows = list(session.exec(select(Outbox).order_by(col(Outbox.id))))
    assert len(rows) == before + 1
    assert rows[-1].payload["message"] == "task.done_to_leader"
    assert rows[-1].payload["params"]["ref"] == "J1"
    assert [t["state"] for t in bureau.json("task", "list")["tasks"]] == ["done"]
