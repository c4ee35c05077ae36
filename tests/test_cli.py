"""The `duban` CLI, used as an admin would: import, contacts, assignments, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from typer.testing import CliRunner, Result

from bot import db
from bot.cli import app

REQUIRED_TARGETS = [
    # (item, comparator, value, unit)
    (2, ">=", 80.0, "%"),
    (9, ">", 10000.0, "个"),
    (6, "decrease", 0.5, "个百分点"),
    (10, ">=", 50.0, "%"),
    (10, ">=", 85.0, "%"),
    (22, "=", 15.0, "个"),
]

TABLES = (
    "plan",
    "section",
    "work_item",
    "target",
    "contact",
    "assignment",
    "invite",
    "audit_log",
    "outbox",
)


class Cli:
    """Runs `duban` against one database, as a person at a terminal would."""

    def __init__(self, db_url: str, cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.db_url = db_url
        self.cwd = cwd
        monkeypatch.chdir(cwd)  # no stray .env from the checkout
        monkeypatch.setenv("DATABASE_URL", db_url)
        monkeypatch.setenv("LOCALE", "zh-CN")
        self.monkeypatch = monkeypatch

    def __call__(self, *args: str | Path) -> Result:
        return CliRunner().invoke(app, [str(a) for a in args])

    def ok(self, *args: str | Path) -> Result:
        result = self(*args)
        assert result.exit_code == 0, (result.output, result.stderr)
        return result

    def json(self, *args: str | Path) -> Any:
        return json.loads(self.ok(*args, "--json").stdout)

    def counts(self) -> dict[str, int]:
        engine = sa.create_engine(self.db_url.replace("postgresql://", "postgresql+psycopg://"))
        with engine.connect() as conn:
            counts = {
                t: conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in TABLES
            }
        engine.dispose()
        return counts


@pytest.fixture
def cli(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    return Cli(db_url, tmp_path, monkeypatch)


@pytest.fixture
def imported(cli: Cli, sample_plan: Path) -> Cli:
    cli.ok("import", sample_plan)
    return cli


def test_import_sample_plan_json(cli: Cli, sample_plan: Path) -> None:
    data = cli.json("import", sample_plan)
    assert data["plan"] == {
        "title": "江门市教育局2023年工作要点",
        "doc_number": "江教办〔2023〕5号",
        "issuer": "江门市教育局",
        "issued_on": "2023-03-15",
        "contact_name": "刘永强",
        "contact_phone": "3503835",
    }
    assert [s["number"] for s in data["sections"]] == [1, 2, 3, 4, 5, 6]
    assert data["sections"][0]["title"] == "加强党的领导,全面提升教育系统党的建设水平"
    assert data["sections"][4]["title"] == "夯实安全保障根基,维护教育系统安全稳定"
    items = data["items"]
    assert [i["number"] for i in items] == list(range(1, 28))
    assert items[0]["title"] == "深入学习宣传贯彻党的二十大精神"
    assert items[8]["title"] == "持续扩增教育优质资源"
    assert items[26]["title"] == "着力推进教育综合督导工作"
    assert [i["section"] for i in items].count(3) == 8  # items 8-15
    assert "推进基层党建特色项目培育" in items[1]["body"]
    found = [
        (i["number"], t["comparator"], t["value"], t["unit"]) for i in items for t in i["targets"]
    ]
    for required in REQUIRED_TARGETS:
        assert required in found
    school_places = next(t for t in items[8]["targets"] if t["value"] == 10000)
    assert "新增学位" in school_places["metric"]


def test_import_prints_the_items_and_stores_them(cli: Cli, sample_plan: Path) -> None:
    result = cli.ok("import", sample_plan)
    assert "已导入《江门市教育局2023年工作要点》：6 个板块，27 项工作" in result.stdout
    assert "深入学习宣传贯彻党的二十大精神" in result.stdout
    counts = cli.counts()
    assert counts["plan"] == 1 and counts["section"] == 6 and counts["work_item"] == 27
    assert counts["target"] >= 6
    assert counts["audit_log"] == 1


def test_reimport_is_idempotent_and_keeps_assignments(imported: Cli, sample_plan: Path) -> None:
    imported.ok("contacts", "add", "张三", "--unit", "基础教育科")
    imported.ok("assign", "9", "张三", "--deadline", "2023-12-31")
    before = imported.counts()
    result = imported.ok("import", sample_plan)
    assert "没有变化" in result.stdout
    after = imported.counts()
    assert {k: v for k, v in after.items() if k != "audit_log"} == {
        k: v for k, v in before.items() if k != "audit_log"
    }
    item9 = next(i for i in imported.json("items")["items"] if i["number"] == 9)
    assert item9["assignees"] == ["张三"]
    assert item9["deadline"] == "2023-12-31"


def test_reimport_of_an_edited_plan_says_what_changed(
    imported: Cli, sample_plan: Path, tmp_path: Path
) -> None:
    imported.ok("contacts", "add", "李四", "--unit", "人事科")
    imported.ok("assign", "27", "李四")
    text = sample_plan.read_text(encoding="utf-8")
    text = text.replace("16.加强师德师风建设。", "16.全面加强师德师风建设。")
    edited = tmp_path / "edited.txt"
    edited.write_text(text, encoding="utf-8")
    result = imported.ok("import", edited)
    assert "新增 0 项，修改 1 项（第 16 项），未变 26 项。" in result.stdout
    items = imported.json("items")["items"]
    assert items[15]["title"] == "全面加强师德师风建设"
    assert items[26]["assignees"] == ["李四"]
    assert len(items) == 27


def test_reimport_summary_is_a_sentence_in_english(
    imported: Cli, sample_plan: Path, tmp_path: Path
) -> None:
    text = sample_plan.read_text(encoding="utf-8")
    text = text[: text.index("27.着力推进")]  # item 27 is gone
    text = text.replace("16.加强师德师风建设。", "16.全面加强师德师风建设。")
    text += "28.加强教育新闻宣传工作。\n做好教育新闻宣传。\n"
    edited = tmp_path / "edited.txt"
    edited.write_text(text, encoding="utf-8")
    imported.monkeypatch.setenv("LOCALE", "en")
    out = imported.ok("import", edited).stdout
    expected = "added 1 item (item 28), changed 1 (item 16), removed 1 (item 27), unchanged 25."
    assert expected in out
    imported.monkeypatch.setenv("LOCALE", "zh-CN")
    out = imported.ok("import", sample_plan).stdout  # 27 back, 16 as it was, 28 gone
    assert "新增 0 项，修改 2 项（第 16、27 项），移除 1 项（第 28 项），未变 25 项。" in out


BAD_FILES: list[tuple[str, bytes, str]] = [
    ("empty.txt", b"", "empty.txt"),
    ("blank.txt", b"  \n\n \n", "blank.txt"),
    ("binary.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00" * 20, "binary.txt"),
    ("poem.txt", "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。\n".encode(), "poem.txt"),
    ("bad-encoding.txt", b"\xff\xfe\xfa\x80\x81\xff" * 10, "bad-encoding.txt"),
    ("fake.docx", b"this is not a zip archive", "fake.docx"),
]


@pytest.mark.parametrize(("name", "content", "mention"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_plan_file_exits_2_and_changes_nothing(
    imported: Cli, tmp_path: Path, name: str, content: bytes, mention: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    before = imported.counts()
    result = imported("import", path)
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert mention in message
    assert "\n" not in message, "one line"
    assert "Traceback" not in result.output
    assert imported.counts() == before


def test_bad_plan_file_does_not_create_a_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_file = tmp_path / "fresh.db"
    cli = Cli(f"sqlite:///{db_file}", tmp_path, monkeypatch)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    assert cli("import", empty).exit_code == 2
    assert not db_file.exists()


def test_missing_plan_file(cli: Cli, tmp_path: Path) -> None:
    result = cli("import", tmp_path / "nope.txt")
    assert result.exit_code == 2
    assert "nope.txt" in result.stderr


def test_items_json_shape(imported: Cli) -> None:
    imported.ok("contacts", "add", "王五", "--unit", "基础教育科")
    imported.ok("assign", "10", "王五", "--deadline", "2023-06-30")
    data = imported.json("items")
    assert data["plan"] == "江门市教育局2023年工作要点"
    item = data["items"][9]
    assert set(item) >= {
        "number",
        "section",
        "title",
        "body",
        "lead_units",
        "support_units",
        "deadline",
        "targets",
        "assignees",
        "percent",
        "status",
    }
    assert item["number"] == 10
    assert item["assignees"] == ["王五"]
    assert item["deadline"] == "2023-06-30"
    assert item["percent"] is None
    assert item["status"] == "red"  # its deadline has long passed (the test runs after 2023)


def test_items_before_any_import(cli: Cli) -> None:
    result = cli("items")
    assert result.exit_code == 2
    assert "还没有导入工作计划" in result.stderr


def test_contacts_add_list_invite(cli: Cli) -> None:
    out = cli.ok(
        "contacts",
        "add",
        "张三",
        "--unit",
        "基础教育科",
        "--role",
        "official",
        "--telegram",
        "1001",
        "--wecom",
        "zhangsan",
    ).stdout
    assert "已登记联系人 张三（基础教育科，联络员）" in out
    cli.ok("contacts", "add", "陈局", "--unit", "局领导", "--role", "leader")
    data = cli.json("contacts", "list")
    assert {c["name"]: c["role"] for c in data["contacts"]} == {
        "张三": "official",
        "陈局": "leader",
    }
    assert next(c for c in data["contacts"] if c["name"] == "张三")["accounts"] == {
        "telegram": "1001",
        "wecom": "zhangsan",
    }
    invite = cli.json("contacts", "invite", "张三")
    assert len(invite["code"]) == 8 and invite["code"].isalnum()
    assert invite["expires_at"].endswith("+08:00")
    text = cli.ok("contacts", "invite", "张三").stdout
    assert "邀请码" in text and "/start" in text
    assert cli.counts()["invite"] == 2


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--role", "boss"], "角色“boss”无效"),
        (["--telegram", "-5"], "Telegram ID“-5”无效"),
    ],
)
def test_contacts_add_bad_input(cli: Cli, args: list[str], expected: str) -> None:
    result = cli("contacts", "add", "赵六", "--unit", "人事科", *args)
    assert result.exit_code == 2
    assert expected in result.stderr
    assert cli.counts()["contact"] == 0


def test_contacts_duplicate_name_and_telegram(cli: Cli) -> None:
    cli.ok("contacts", "add", "张三", "--telegram", "42")
    again = cli("contacts", "add", "张三")
    assert again.exit_code == 2 and "已存在" in again.stderr
    taken = cli("contacts", "add", "李四", "--telegram", "42")
    assert taken.exit_code == 2 and "已绑定给“张三”" in taken.stderr
    assert cli.counts()["contact"] == 1


def test_assign_one_item_lead_and_support(imported: Cli) -> None:
    imported.ok("contacts", "add", "张三", "--unit", "基础教育科")
    imported.ok("contacts", "add", "李四", "--unit", "计财科")
    out = imported.ok("assign", "9", "张三", "--deadline", "2023-12-31").stdout
    assert "已将第 9 项“持续扩增教育优质资源”分配给 张三（牵头）" in out
    imported.ok("assign", "9", "李四", "--support")
    item = imported.json("items")["items"][8]
    assert item["assignees"] == ["张三", "李四"]
    # each new assignee is told, through the outbox (the running bot delivers it)
    assert imported.counts()["outbox"] == 2
    imported.ok("assign", "9", "张三", "--deadline", "2023-11-30")  # an update: no new notice
    assert imported.counts()["outbox"] == 2


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["99", "张三"], "没有编号为“99”的工作事项"),
        (["9", "无名氏"], "没有名为“无名氏”的联系人"),
        (["9", "张三", "--deadline", "2023-02-30"], "日期“2023-02-30”无效"),
        (["9"], "请指明事项和联系人"),
    ],
)
def test_assign_bad_input_changes_nothing(imported: Cli, args: list[str], expected: str) -> None:
    imported.ok("contacts", "add", "张三")
    before = imported.counts()
    result = imported("assign", *args)
    assert result.exit_code == 2
    assert expected in result.stderr
    assert imported.counts() == before


def test_assign_csv_creates_missing_contacts(imported: Cli, tmp_path: Path) -> None:
    csv_file = tmp_path / "a.csv"
    csv_file.write_text(
        "item,contact,unit,role,deadline\n"
        "9,张三,基础教育科,lead,2023-12-31\n"
        "9,李四,计财科,support,\n"
        "三.3,王五,计财科,牵头,2023-06-30\n",
        encoding="utf-8",
    )
    data = imported.json("assign", "--csv", csv_file)
    assert data == {"assigned": 3, "contacts_created": 3}
    items = imported.json("items")["items"]
    assert items[8]["assignees"] == ["张三", "李四"]
    assert items[8]["deadline"] == "2023-12-31"
    assert items[9]["assignees"] == ["王五"]  # 三.3: the third item of section 三


def test_assign_csv_with_errors_names_rows_and_applies_nothing(
    imported: Cli, tmp_path: Path
) -> None:
    csv_file = tmp_path / "bad.csv"
    csv_file.write_text(
        "item,contact,unit,role,deadline\n"
        "9,张三,基础教育科,lead,2023-12-31\n"
        "99,李四,计财科,lead,\n"
        "10,王五,计财科,boss,\n"
        "11,赵六,计财科,lead,2023-13-01\n",
        encoding="utf-8",
    )
    before = imported.counts()
    result = imported("assign", "--csv", csv_file)
    assert result.exit_code == 2
    err = result.stderr
    assert "CSV 有 3 处错误" in err
    assert "第 3 行 item 列" in err
    assert "第 4 行 role 列" in err
    assert "第 5 行 deadline 列" in err
    assert imported.counts() == before


def test_assign_csv_missing_column(imported: Cli, tmp_path: Path) -> None:
    csv_file = tmp_path / "cols.csv"
    csv_file.write_text("number,person\n9,张三\n", encoding="utf-8")
    result = imported("assign", "--csv", csv_file)
    assert result.exit_code == 2 and "CSV 缺少列：item, contact" in result.stderr


UNIT_PLAN = """某市教育局2024年工作要点
一、办好人民满意的教育
1.扩大学位供给。新建学校5所。（牵头单位：基础教育科；配合单位：计财科）
2.加强教师队伍建设。完善培训体系。（牵头单位：人事科）
3.推进学前教育。新增普惠学位。（牵头单位：基础教育科）
"""


def test_assign_by_unit(cli: Cli, tmp_path: Path) -> None:
    plan = tmp_path / "unit-plan.txt"
    plan.write_text(UNIT_PLAN, encoding="utf-8")
    cli.ok("import", plan)
    cli.ok("contacts", "add", "周七", "--unit", "基础教育科")
    data = cli.json("assign", "--unit", "基础教育科", "周七")
    assert data["items"] == [1, 3]
    none = cli("assign", "--unit", "宣传科", "周七")
    assert none.exit_code == 2 and "没有牵头单位为“宣传科”的事项" in none.stderr


def test_english_locale(imported: Cli) -> None:
    imported.monkeypatch.setenv("LOCALE", "en")
    result = imported("assign", "99", "nobody")
    assert result.exit_code == 2
    assert "There is no work item '99'" in result.stderr


def test_db_upgrade(cli: Cli) -> None:
    head = ScriptDirectory(str(db.resource_dir("migrations"))).get_current_head()
    assert f"数据库已升级到版本 {head}" in cli.ok("db", "upgrade").stdout


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["import"],
        ["items"],
        ["contacts"],
        ["contacts", "add"],
        ["contacts", "list"],
        ["contacts", "invite"],
        ["assign"],
        ["db"],
        ["db", "upgrade"],
    ],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.stdout


def test_python_dash_m_bot() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "--help"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and "import" in proc.stdout


def test_an_unexpected_error_is_one_line_and_exit_1(
    imported: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the disk is on fire\nsecond line")

    monkeypatch.setattr("bot.services.plans.current_plan", broken)
    result = imported("items")
    assert result.exit_code == 1
    assert result.stderr.startswith("错误：RuntimeError: the disk is on fire。设置 LOG_LEVEL=DEBUG")
    assert result.stderr.count("\n") == 1  # one line
    assert "Traceback" not in result.output
    monkeypatch.setenv("LOCALE", "en")
    assert imported("items").stderr.startswith("error: RuntimeError: the disk is on fire.")


def test_an_unexpected_error_is_logged_with_its_traceback_at_debug_only(
    imported: Cli, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("bot.services.plans.current_plan", broken)
    caplog.set_level("DEBUG", logger="bot.cli")
    assert imported("items").exit_code == 1
    assert not [r for r in caplog.records if r.exc_info]
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    assert imported("items").exit_code == 1
    (record,) = [r for r in caplog.records if r.exc_info]
    assert record.exc_info is not None and str(record.exc_info[1]) == "boom"


def test_a_broken_database_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    garbage = tmp_path / "duban.db"
    garbage.write_bytes(b"this is not a database" * 100)
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{garbage}",
        "LOCALE": "en",
        "LOG_LEVEL": "INFO",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "items"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 2  # a database that cannot be used is the operator's to fix
    assert proc.stderr.startswith(f"Cannot open the database: {garbage} is not a SQLite database")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    debug = subprocess.run(
        [sys.executable, "-m", "bot", "items"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={**env, "LOG_LEVEL": "DEBUG"},
    )
    assert debug.returncode == 2 and "Traceback" in debug.stderr


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("12月31日", "2023-12-31"), ("2023/6/30", "2023-06-30"), ("年底", "2023-12-31")],
)
def test_assign_deadline_as_people_write_it(imported: Cli, typed: str, expected: str) -> None:
    imported.ok("contacts", "add", "张三", "--unit", "基础教育科")
    out = imported.ok("assign", "9", "张三", "--deadline", typed).stdout
    assert f"完成时限：{expected}" in out


def test_assign_deadline_that_is_no_date(imported: Cli) -> None:
    imported.ok("contacts", "add", "张三", "--unit", "基础教育科")
    before = imported.counts()
    result = imported("assign", "9", "张三", "--deadline", "下周五")
    assert result.exit_code == 2
    assert "日期“下周五”无法识别。请写日期，例如 2023-12-31 或 12月31日" in result.stderr
    assert imported.counts() == before
