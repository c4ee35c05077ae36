"""The CLI for leaders' material: digest, export, reports on someone's behalf, history, targets."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from tests.test_cli import Cli


@pytest.fixture
def office(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_plan: Path) -> Cli:
    cli = Cli(db_url, tmp_path, monkeypatch)
    cli.ok("import", sample_plan)
    cli.ok("contacts", "add", "张三", "--unit", "基础教育科")
    cli.ok("contacts", "add", "赵主任", "--unit", "办公室", "--role", "admin")
    cli.ok("assign", "9", "张三", "--deadline", "2099-12-31")
    return cli


def test_report_on_behalf_and_history(office: Cli) -> None:
    data = office.json(
        "report",
        "9",
        "--as",
        "张三",
        "--percent",
        "60",
        "--text",
        "电话报送：主体完工",
        "--value",
        "新增学位=6500",
        "--by",
        "赵主任",
    )
    assert data == {
        "item": 9,
        "contact": "张三",
        "percent": 60,
        "status": "in_progress",
        "values": [{"metric": "新增学位", "value": 6500.0, "unit": "个"}],
    }
    office.ok("report", "9", "--as", "张三", "--status", "滞后", "--text", "更正：征地受阻")
    history = office.json("history", "9")
    newest, earlier = history["reports"]
    assert newest["status"] == "delayed" and newest["values"] == []
    assert earlier["superseded"] and not newest["superseded"]  # a correction keeps the earlier
    assert earlier["source"] == "cli" and earlier["entered_by"] == "赵主任"
    assert earlier["values"] == [{"metric": "新增学位", "value": 6500.0, "unit": "个"}]
    assert "已被更正" in office.ok("history", "9").stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--percent", "120"], "进度“120%”无效"),
        (["--status", "maybe"], "状态“maybe”无效"),
        (["--value", "新增学位6500"], "目标数值“新增学位6500”无效"),
        (["--value", "教师=3"], "这一项没有名为“教师”的量化目标"),
        ([], "请至少给出进度、状态、说明或目标数值之一"),
        (["--percent", "50", "--text", "很" * 4001], "进展太长"),
    ],
)
def test_report_on_behalf_bad_input(office: Cli, args: list[str], expected: str) -> None:
    before = office.counts()
    result = office("report", "9", "--as", "张三", *args)
    assert result.exit_code == 2
    assert expected in result.stderr
    assert office.counts() == before
    assert office.json("history", "9")["reports"] == []


def test_report_for_unknown_people_and_items(office: Cli) -> None:
    assert (
        "没有名为“无名氏”的联系人"
        in office("report", "9", "--as", "无名氏", "--percent", "5").stderr
    )
    assert (
        "没有编号为“99”的工作事项"
        in office("report", "99", "--as", "张三", "--percent", "5").stderr
    )


def test_report_on_behalf_of_someone_not_assigned_is_refused(office: Cli) -> None:
    office.ok("contacts", "add", "李四", "--unit", "计财科")
    before = office.counts()
    result = office("report", "9", "--as", "李四", "--percent", "60")
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert "第 9 项没有分配给 李四" in message and "该项的责任人是 张三" in message
    assert "duban report 9 --as 张三 --percent 60" in message  # an example of the right form
    assert "duban assign 9 李四" in message
    assert "\n" not in message
    assert office.counts() == before
    assert office.json("history")["reports"] == []
    nobody = office("report", "10", "--as", "张三", "--percent", "60")  # item 10 has no owner
    assert nobody.exit_code == 2
    assert "第 10 项还没有分配给任何人，不能代 张三 报送" in nobody.stderr
    office.monkeypatch.setenv("LOCALE", "en")
    english = office("report", "9", "--as", "李四", "--percent", "60").stderr
    assert "Item 9 is not assigned to 李四" in english
    assert office.json("history")["reports"] == []


def test_history_of_the_whole_plan(office: Cli) -> None:
    office.ok("contacts", "add", "李四", "--unit", "计财科")
    office.ok("assign", "10", "李四")
    office.ok(
        "report", "9", "--as", "张三", "--percent", "40", "--value", "1=6500", "--by", "赵主任"
    )
    office.ok("report", "10", "--as", "李四", "--status", "滞后", "--text", "征地受阻")
    office.ok("report", "9", "--as", "张三", "--percent", "45")  # a correction of the first
    data = office.json("history")
    assert data["plan"] == "江门市教育局2023年工作要点"
    reports = data["reports"]
    assert [(r["item"], r["contact"]) for r in reports] == [(9, "张三"), (10, "李四"), (9, "张三")]
    newest, middle, oldest = reports
    assert set(newest) >= {
        "item",
        "contact",
        "percent",
        "status",
        "text",
        "values",
        "entered_by",
        "superseded",
        "withdrawn",
        "at",
    }
    assert newest["percent"] == 45 and not newest["superseded"] and newest["values"] == []
    assert middle["status"] == "delayed" and middle["text"] == "征地受阻"
    assert oldest["superseded"] and not oldest["withdrawn"] and oldest["entered_by"] == "赵主任"
    assert oldest["values"] == [{"metric": "新增学位", "value": 6500.0, "unit": "个"}]
    stamps = [datetime.fromisoformat(r["at"]) for r in reports]
    assert stamps == sorted(stamps, reverse=True)
    assert all(at.utcoffset() == timedelta(hours=8) for at in stamps)  # TIMEZONE, not UTC
    table = office.ok("history").stdout
    assert "征地受阻" in table and "已被更正" in table and "事项" in table


def test_history_in_the_plans_time_zone_and_since_a_day(office: Cli) -> None:
    office.ok("report", "9", "--as", "张三", "--percent", "40")
    office.monkeypatch.setenv("TIMEZONE", "America/New_York")
    (report,) = office.json("history")["reports"]
    at = datetime.fromisoformat(report["at"])
    assert at.utcoffset() == ZoneInfo("America/New_York").utcoffset(at.replace(tzinfo=None))
    today = at.date()
    assert len(office.json("history", "--since", today.isoformat())["reports"]) == 1
    tomorrow = (today + timedelta(days=1)).isoformat()
    assert office.json("history", "--since", tomorrow)["reports"] == []
    assert office.json("history", "9", "--since", tomorrow)["reports"] == []


@pytest.mark.parametrize("value", ["2023-13-01", "yesterday", "2023/06/01"])
def test_history_since_a_bad_date(office: Cli, value: str) -> None:
    result = office("history", "--since", value)
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert f"日期“{value}”无效" in message and "例如：duban history --since 2023-06-01" in message
    assert "\n" not in message


def test_targets_list_and_additive(office: Cli) -> None:
    targets = office.json("targets", "list")["targets"]
    places = next(t for t in targets if t["item"] == 9 and t["value"] == 10000)
    assert places["number"] == 1 and places["additive"] is False
    assert "改为累加" in office.ok("targets", "additive", "9", "1").stdout
    assert next(t for t in office.json("targets", "list")["targets"] if t["item"] == 9)["additive"]
    bad = office("targets", "additive", "9", "7")
    assert bad.exit_code == 2 and "第 9 项没有第 7 个量化目标（共 3 个）" in bad.stderr


def test_digest_preview_in_every_format(office: Cli, tmp_path: Path) -> None:
    office.ok("report", "9", "--as", "张三", "--percent", "60", "--value", "1=6500")
    text = office.ok("digest").stdout
    assert "《江门市教育局2023年工作要点》督办周报" in text
    assert "<b>概况</b>" in office.ok("digest", "--format", "telegram").stdout
    assert "**概况**" in office.ok("digest", "--format", "wecom").stdout
    data = json.loads(office.ok("digest", "--format", "json").stdout)
    assert data["plan"] == "江门市教育局2023年工作要点"
    assert next(i for i in data["items"] if i["number"] == 9)["percent"] == 60
    chart = tmp_path / "out" / "chart.png"
    office.ok("digest", "--chart", chart)
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "expected"),
    [(["--week", "2023-23"], "周次“2023-23”无效"), (["--format", "pdf"], "格式“pdf”无效")],
)
def test_digest_bad_input(office: Cli, args: list[str], expected: str) -> None:
    result = office("digest", *args)
    assert result.exit_code == 2 and expected in result.stderr


def test_digest_of_a_past_week(office: Cli) -> None:
    data = json.loads(office.ok("digest", "--week", "2023-W23", "--format", "json").stdout)
    assert data["week"] == "2023-W23" and data["start"] == "2023-06-05"


def test_digest_send_queues_it_for_leaders(office: Cli) -> None:
    office.ok("contacts", "add", "王局", "--unit", "局领导", "--role", "leader")
    assert "1 位领导" in office.ok("digest", "--send").stdout
    before = office.counts()["outbox"]
    office.ok("digest", "--send")  # the same week again: nothing twice
    assert office.counts()["outbox"] == before


def test_export_writes_the_ledger(office: Cli, tmp_path: Path) -> None:
    office.ok("report", "9", "--as", "张三", "--percent", "60", "--text", '=HYPERLINK("x")')
    path = tmp_path / "台账.xlsx"
    assert "台账已导出" in office.ok("export", path).stdout
    book = openpyxl.load_workbook(path)
    ledger, history = book.worksheets
    values = [[c.value for c in row] for row in ledger.iter_rows()]
    header = next(r for r in values if r[0] == "序号")
    assert header[:4] == ["序号", "工作任务", "所属板块", "牵头单位"]
    item9 = next(r for r in values if r[0] == 9)
    assert item9[1] == "持续扩增教育优质资源" and item9[4] == "张三"
    assert any(r[2] == "持续扩增教育优质资源" for r in history.iter_rows(values_only=True))
    bad = office("export", tmp_path / "ledger.csv")
    assert bad.exit_code == 2 and ".xlsx" in bad.stderr


def test_reminders_preview_and_remind_now(office: Cli) -> None:
    office.ok("contacts", "add", "王局", "--unit", "局领导", "--role", "leader")
    rows = office.json("reminders", "preview", "--from", "2099-12-01", "--to", "2099-12-31")
    assert rows and set(rows[0]) == {"at", "kind", "contact", "item", "channel"}
    kinds = {r["kind"] for r in rows}
    assert {"ask", "deadline", "digest", "followup"} <= kinds
    deadline = [r for r in rows if r["kind"] == "deadline"]
    assert [r["item"] for r in deadline] == [9, 9, 9] and all(
        r["contact"] == "张三" for r in deadline
    )
    assert all(r["at"].endswith("+08:00") for r in rows)
    table = office.ok("reminders", "preview", "--from", "2099-12-01", "--to", "2099-12-07").stdout
    assert "提醒预览" in table
    bad = office("reminders", "preview", "--from", "2099-12-31", "--to", "2099-12-01")
    assert bad.exit_code == 2 and "晚于" in bad.stderr
    before = office.counts()["outbox"]
    assert "已为 1 位责任人排定进展询问" in office.ok("remind", "now", "9").stdout
    assert office.counts()["outbox"] == before + 1


def test_section_leader(office: Cli) -> None:
    office.ok("contacts", "add", "王局", "--unit", "局领导", "--role", "leader")
    assert "分管领导设为 王局" in office.ok("sections", "leader", "三", "王局").stdout
    sections = office.json("sections", "list")["sections"]
    assert sections[2]["leader"] == "王局" and sections[0]["leader"] is None
    not_leader = office("sections", "leader", "3", "张三")
    assert not_leader.exit_code == 2 and "不是领导" in not_leader.stderr
    unknown = office("sections", "leader", "九", "王局")
    assert unknown.exit_code == 2 and "没有板块“九”" in unknown.stderr
