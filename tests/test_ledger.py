"""The ledger workbook (台账): layout, formats, styles, history and formula safety."""

from __future__ import annotations

import zipfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from bot.ledger import STATUS_FILLS, display_width, write_ledger
from bot.reporting import HistoryRow, LedgerRow

TZ = ZoneInfo("Asia/Shanghai")
GENERATED = datetime(2023, 6, 5, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
ZH_HEADERS = [
    "序号",
    "工作任务",
    "所属板块",
    "牵头单位",
    "责任人",
    "完成时限",
    "量化目标",
    "当前值",
    "最新进展",
    "完成率",
    "状态",
    "更新时间",
]
EN_HEADERS = [
    "No.",
    "Work item",
    "Section",
    "Lead unit",
    "Owners",
    "Deadline",
    "Targets",
    "Current value",
    "Latest progress",
    "Completion",
    "Status",
    "Updated",
]
HISTORY_HEADERS = [
    "时间",
    "序号",
    "工作任务",
    "报送人",
    "完成率",
    "状态",
    "进展说明",
    "目标数值",
    "来源",
    "代录人",
    "备注",
]
INJECTION = '=HYPERLINK("http://evil.example/","点此查看")'


def _row(number: int, status: str, **changes: Any) -> LedgerRow:
    """A ledger row with Chinese text; changes override fields."""
    fields: dict[str, Any] = {
        "number": number,
        "title": f"新建、改扩建中小学和幼儿园{number}所，新增公办学位6500个以上",
        "section": "三、强化统筹协调,构建高质量教育体系",
        "lead_units": "市教育局、市发展改革局",
        "owners": "张三、李四",
        "deadline": date(2023, 12, 31),
        "targets": "新增学位 6500 个\n建成学校 10 所",
        "current": "5200 个（80%）\n8 所（80%）",
        "latest": "主体工程已完工，正在内部装修。",
        "percent": 60,
        "status": status,
        "updated_at": datetime(2023, 6, 1, 2, 30, tzinfo=UTC),
    }
    fields.update(changes)
    return LedgerRow(**fields)


ROWS = [
    _row(1, "done", percent=100),
    _row(2, "green"),
    _row(3, "amber", latest=INJECTION),
    _row(4, "red", title="-1 项目", owners="@王五"),
    _row(5, "none", deadline=None, percent=None, updated_at=None, latest="", current=""),
]


def _report(minutes: int, **changes: Any) -> HistoryRow:
    """A report made `minutes` after 08:00 UTC on 1 June 2023."""
    fields: dict[str, Any] = {
        "at": datetime(2023, 6, 1, 8, 0, tzinfo=UTC) + timedelta(minutes=minutes),
        "item": 2,
        "item_title": "新建、改扩建中小学和幼儿园2所",
        "contact": "张三",
        "percent": 40,
        "status": "in_progress",
        "text": "完成土建工程量的百分之四十。",
        "values": "新增学位 2600",
        "source": "chat",
        "entered_by": None,
        "superseded": False,
        "withdrawn": False,
    }
    fields.update(changes)
    return HistoryRow(**fields)


HISTORY = [
    _report(0, text="最早的一条，后来被更正。", superseded=True),
    _report(30, text="第二条，已撤回。", withdrawn=True, status="delayed"),
    _report(60, text=INJECTION, source="cli", entered_by="管理员", status="done", percent=100),
    _report(10, text="第一条的更正。", percent=None, status=None),
]


def _write(tmp_path: Path, **changes: Any) -> openpyxl.Workbook:
    """Write a ledger with the sample data (changes override arguments) and load it back."""
    arguments: dict[str, Any] = {
        "plan_title": "2023年江门市教育工作要点",
        "rows": ROWS,
        "history": HISTORY,
        "tz": TZ,
        "generated_at": GENERATED,
    }
    arguments.update(changes)
    path = write_ledger(tmp_path / "台账.xlsx", **arguments)
    assert path == tmp_path / "台账.xlsx"
    return openpyxl.load_workbook(path)


@pytest.fixture
def book(tmp_path: Path) -> openpyxl.Workbook:
    """The sample ledger, loaded back."""
    return _write(tmp_path)


def _values(ws: Any, row: int) -> list[Any]:
    """The values of one row."""
    return [cell.value for cell in ws[row]]


def _fill(cell: Any) -> str:
    """A cell's solid fill colour as six hex digits."""
    assert cell.fill.fill_type == "solid"
    return str(cell.fill.fgColor.rgb)[-6:]


def test_sheets_title_and_header(book: openpyxl.Workbook) -> None:
    """Two sheets; a merged bold title, the generation time in the plan's zone, the header."""
    assert book.sheetnames == ["台账", "进展记录"]
    ws = book["台账"]
    assert ws["A1"].value == "2023年江门市教育工作要点 工作台账"
    assert ws["A1"].font.b and ws["A1"].font.sz > 11
    assert "A1:L1" in {str(merged) for merged in ws.merged_cells.ranges}
    assert ws["A2"].value == "生成时间：2023-06-05 09:00"
    assert _values(ws, 3) == ZH_HEADERS
    for cell in ws[3]:
        assert cell.font.b
        assert _fill(cell) == "D9E1F2"
        assert cell.border.bottom.style == "thin"
    assert ws.freeze_panes == "A4"
    assert ws.auto_filter.ref == "A3:L8"
    assert ws.max_row == 3 + len(ROWS)
    assert book.properties.creator == "Duban"
    assert book.properties.title == "2023年江门市教育工作要点 工作台账"


def test_item_rows(book: openpyxl.Workbook) -> None:
    """One row per item with numbers, real dates, percentages and bordered, top-aligned cells."""
    ws = book["台账"]
    first = ws[4]
    assert first[0].value == 1
    assert first[1].value == ROWS[0].title
    assert first[3].value == "市教育局、市发展改革局"
    assert first[6].value == "新增学位 6500 个\n建成学校 10 所"
    for cell in first:
        assert cell.border.left.style == "thin" and cell.border.top.style == "thin"
        assert cell.alignment.vertical == "top"
    for column in (1, 6, 7, 8):  # 工作任务 量化目标 当前值 最新进展
        assert first[column].alignment.wrap_text

    deadline = first[5]
    assert deadline.is_date and deadline.value == datetime(2023, 12, 31)
    assert deadline.number_format == "yyyy-mm-dd"
    updated = first[11]
    assert updated.is_date and updated.value == datetime(2023, 6, 1, 10, 30)  # Shanghai time
    assert updated.number_format == "yyyy-mm-dd hh:mm"

    second = ws[5]
    assert second[9].value == pytest.approx(0.6)
    assert second[9].number_format == "0%"
    assert ws[4][9].value == pytest.approx(1.0)

    empty = ws[8]  # item 5: no deadline, no percentage, never updated
    assert empty[5].value == "未设定" and empty[5].data_type == "s"  # said, not left blank
    assert empty[9].value is None and empty[11].value is None
    assert empty[8].value is None
    assert empty[9].border.left.style == "thin"  # empty cells still have their borders


def test_status_words_and_fills(book: openpyxl.Workbook) -> None:
    """Each status reads as words and has its own fill."""
    ws = book["台账"]
    words = {"done": "已完成", "green": "正常", "amber": "预警", "red": "滞后", "none": "未报送"}
    for offset, row in enumerate(ROWS):
        cell = ws.cell(row=4 + offset, column=11)
        assert cell.value == words[row.status]
        assert _fill(cell) == STATUS_FILLS[row.status]
    assert STATUS_FILLS == {
        "done": "C8E6C9",
        "green": "E8F5E9",
        "amber": "FFE082",
        "red": "EF9A9A",
        "none": "EEEEEE",
    }


def test_column_widths(book: openpyxl.Workbook) -> None:
    """Widths fit the text within bounds; the work item is wider than its number."""
    for ws in book.worksheets:
        widths = {key: dim.width for key, dim in ws.column_dimensions.items()}
        assert widths, ws.title
        for width in widths.values():
            assert 6 <= width <= 60
    widths = book["台账"].column_dimensions
    assert widths["B"].width > widths["A"].width
    # The titles run to some 50 units: the column is sized to them.
    assert widths["B"].width >= 50


def test_display_width_counts_wide_characters_twice() -> None:
    """CJK and full-width characters count 2 units; the widest line counts."""
    assert display_width("abc") == 3
    assert display_width("新建学校") == 8
    assert display_width("，（）") == 6
    assert display_width("学位 6500") == 9
    assert display_width("短\n长一点的行") == 10
    assert display_width("字" * 500) == 1000
    assert 60 < display_width("字" * 500, limit=60) <= 122


def test_history_newest_first_with_remarks(book: openpyxl.Workbook) -> None:
    """Every report, newest first; corrected and withdrawn ones say so, in grey italic."""
    ws = book["进展记录"]
    assert _values(ws, 1) == HISTORY_HEADERS
    assert ws.freeze_panes == "A2"
    assert ws["A1"].font.b and _fill(ws["A1"]) == "D9E1F2"
    assert ws.max_row == 1 + len(HISTORY)
    times = [ws.cell(row=row, column=1).value for row in range(2, ws.max_row + 1)]
    assert times == sorted(times, reverse=True)
    assert times[0] == datetime(2023, 6, 1, 17, 0)  # 09:00 UTC in Shanghai
    assert ws["A2"].number_format == "yyyy-mm-dd hh:mm"

    newest = _values(ws, 2)
    assert newest[1:6] == [2, "新建、改扩建中小学和幼儿园2所", "张三", 1.0, "已完成"]
    assert newest[8:] == ["代录", "管理员", None]
    assert ws["E2"].number_format == "0%"

    withdrawn = _values(ws, 3)
    assert withdrawn[6] == "第二条，已撤回。"
    assert withdrawn[5] == "滞后"
    assert withdrawn[10] == "已撤回"
    assert withdrawn[8] == "聊天"

    correction = _values(ws, 4)
    assert correction[4] is None and correction[5] is None
    assert correction[10] is None
    assert not ws["G4"].font.i

    superseded = _values(ws, 5)
    assert superseded[6] == "最早的一条，后来被更正。"
    assert superseded[10] == "已被更正"
    for cell in [*ws[3], *ws[5]]:
        assert cell.font.i
        assert str(cell.font.color.rgb).endswith("808080")


def test_formula_text_stays_text(tmp_path: Path) -> None:
    """Text that looks like a formula is stored as a string (quote-prefixed), never a formula."""
    path = write_ledger(
        tmp_path / "ledger.xlsx",
        plan_title="=1+1",
        rows=ROWS,
        history=HISTORY,
        tz=TZ,
        generated_at=GENERATED,
    )
    book = openpyxl.load_workbook(path)
    latest = book["台账"]["I6"]
    assert latest.value == INJECTION
    assert latest.data_type == "s"
    assert latest.quotePrefix
    assert book["台账"]["B7"].value == "-1 项目" and book["台账"]["B7"].quotePrefix
    assert book["台账"]["E7"].value == "@王五" and book["台账"]["E7"].data_type == "s"
    assert book["台账"]["A1"].value == "=1+1 工作台账"
    report = book["进展记录"]["G2"]
    assert report.value == INJECTION and report.data_type == "s"
    assert not book["进展记录"]["G3"].quotePrefix

    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name.startswith("xl/worksheets/"):
                assert b"<f>" not in archive.read(name) and b"<f " not in archive.read(name)


def test_control_characters_are_dropped(tmp_path: Path) -> None:
    """Characters a workbook cannot hold are dropped rather than failing the whole ledger."""
    rows = [_row(1, "green", latest="进展\x01顺利\x0b")]
    book = _write(tmp_path, rows=rows, history=[])
    assert book["台账"]["I4"].value == "进展顺利"


def test_english_locale(tmp_path: Path) -> None:
    """English sheet names, headers and words."""
    book = _write(tmp_path, locale="en", plan_title="2023 Education Work Plan")
    assert book.sheetnames == ["Ledger", "History"]
    ws = book["Ledger"]
    assert _values(ws, 3) == EN_HEADERS
    assert ws["A2"].value == "Generated: 2023-06-05 09:00"
    assert ws["F8"].value == "not set"  # item 5 has no deadline
    assert [ws.cell(row=row, column=11).value for row in range(4, 9)] == [
        "done",
        "on track",
        "at risk",
        "behind",
        "no report",
    ]
    history = book["History"]
    assert _values(history, 1) == [
        "Time",
        "No.",
        "Work item",
        "Reported by",
        "Completion",
        "Status",
        "Progress",
        "Target values",
        "Source",
        "Entered by",
        "Remarks",
    ]
    assert history["K3"].value == "withdrawn" and history["K5"].value == "corrected"


def test_unknown_locale_is_refused(tmp_path: Path) -> None:
    """Only the locales the bot speaks."""
    with pytest.raises(ValueError, match="locale"):
        write_ledger(
            tmp_path / "x.xlsx",
            plan_title="plan",
            rows=[],
            history=[],
            tz=TZ,
            locale="fr",
            generated_at=GENERATED,
        )
    assert list(tmp_path.iterdir()) == []


def test_empty_plan(tmp_path: Path) -> None:
    """No items and no reports still make a valid workbook with its headers."""
    book = _write(tmp_path, rows=[], history=[])
    ws = book["台账"]
    assert ws.max_row == 3
    assert _values(ws, 3) == ZH_HEADERS
    assert ws.auto_filter.ref == "A3:L3"
    assert ws.freeze_panes == "A4"
    history = book["进展记录"]
    assert history.max_row == 1
    assert _values(history, 1) == HISTORY_HEADERS
    assert [path.name for path in tmp_path.iterdir()] == ["台账.xlsx"]  # no temporary left


def test_large_plan_row_counts(tmp_path: Path) -> None:
    """1,000 items and 20,000 reports: every one gets its row."""
    statuses = ["green", "amber", "red", "done", "none"]
    rows = [_row(number, statuses[number % 5]) for number in range(1, 1001)]
    start = datetime(2023, 1, 1, tzinfo=UTC)
    history = [
        _report(0, at=start + timedelta(minutes=index), item=index % 1000 + 1)
        for index in range(20_000)
    ]
    path = write_ledger(
        tmp_path / "big.xlsx",
        plan_title="大计划",
        rows=rows,
        history=history,
        tz=TZ,
        generated_at=GENERATED,
    )
    book = openpyxl.load_workbook(path, read_only=True)
    assert book.sheetnames == ["台账", "进展记录"]
    book.close()
    # Reading 220,000 cells back takes as long as writing them: count the rows in the XML.
    with zipfile.ZipFile(path) as archive:
        ledger_xml = archive.read("xl/worksheets/sheet1.xml")
        history_xml = archive.read("xl/worksheets/sheet2.xml")
    assert ledger_xml.count(b"<row ") == 3 + 1000
    assert history_xml.count(b"<row ") == 1 + 20_000
    assert b'<row r="20001"' in history_xml
