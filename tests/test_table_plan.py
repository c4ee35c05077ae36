"""Plans given as a table: header detection, one item per row, sections, units, deadlines."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from bot.i18n import Translator
from bot.importer import table_plan
from bot.importer.model import ParsedPlan, ParsedTarget, PlanFormatError
from bot.importer.table_plan import (
    TableHeader,
    find_table_header,
    looks_like_tsv,
    parse_table_rows,
    parse_tsv_text,
    plan_header_from_lines,
    split_title,
    split_tsv,
)

TSV_FIXTURE = Path(__file__).resolve().parent / "data" / "files" / "task-table.tsv"
HEADER = ["序号", "任务", "牵头单位", "配合单位", "完成时限"]


def parse(rows: list[list[str]], **kwargs: object) -> ParsedPlan:
    options: dict[str, object] = {"title": "2023年工作要点", "source": "t.docx"}
    options.update(kwargs)
    return parse_table_rows(rows, **options)  # type: ignore[arg-type]


# ---- header -----------------------------------------------------------------------------


def test_find_header_basic() -> None:
    assert find_table_header([HEADER, ["1", "x", "", "", ""]]) == TableHeader(
        row=0,
        columns={"number": 0, "task": 1, "lead": 2, "support": 3, "deadline": 4},
        names={
            "number": "序号",
            "task": "任务",
            "lead": "牵头单位",
            "support": "配合单位",
            "deadline": "完成时限",
        },
    )


@pytest.mark.parametrize(
    ("cells", "roles"),
    [
        (["工作任务", "责任单位", "协办单位", "时间节点"], ["task", "lead", "support", "deadline"]),
        (["重点任务", "负责单位", "配合部门", "完成时间"], ["task", "lead", "support", "deadline"]),
        (["任务内容", "牵头部门", "参与单位", "时限"], ["task", "lead", "support", "deadline"]),
        (["所属板块", "工作内容", "具体措施", "牵头单位"], ["section", "task", "body", "lead"]),
        (["类别", "任务", "工作措施", "牵头单位"], ["section", "task", "body", "lead"]),
        (["领域", "任务", "牵头单位"], ["section", "task", "lead"]),
        (
            ["序  号", "重点\n任务", "牵头单位：", "完成时限（年月）"],
            ["number", "task", "lead", "deadline"],
        ),
    ],
)
def test_header_synonyms(cells: list[str], roles: list[str]) -> None:
    header = find_table_header([cells])
    assert header is not None
    assert header.columns == {role: column for column, role in enumerate(roles)}


def test_header_below_a_title_row() -> None:
    rows = [["江门市教育局重点工作任务分解表", "", "", "", ""], HEADER, ["1", "x", "", "", ""]]
    header = find_table_header(rows)
    assert header is not None and header.row == 1


def test_two_row_header() -> None:
    rows = [
        ["序号", "重点任务", "责任单位", "", "完成时限"],
        ["序号", "重点任务", "牵头单位", "配合单位", "完成时限"],  # merged cells repeat
        ["1", "x", "a", "b", "6月底前"],
    ]
    header = find_table_header(rows)
    assert header == TableHeader(
        row=1,
        columns={"number": 0, "task": 1, "lead": 2, "support": 3, "deadline": 4},
        names={
            "number": "序号",
            "task": "重点任务",
            "lead": "牵头单位",
            "support": "配合单位",
            "deadline": "完成时限",
        },
    )


@pytest.mark.parametrize(
    "rows",
    [
        [["序号", "姓名", "电话"], ["1", "刘永强", "3503835"]],  # no task column
        [["任务"], ["x"]],  # only the task column
        [["1", "深入学习宣传贯彻党的二十大精神", "市教育局"]],
        [],
    ],
)
def test_no_header(rows: list[list[str]]) -> None:
    assert find_table_header(rows) is None


# ---- rows -------------------------------------------------------------------------------


def test_one_item_per_row() -> None:
    plan = parse(
        [
            HEADER,
            [
                "1",
                "深入学习宣传贯彻党的二十大精神。开展大宣讲、大讨论。",
                "市教育局",
                "各县（市、区）教育局、市委宣传部",
                "2023年6月底前",
            ],
            ["2", "评选党建示范校；形成生动局面", "市教育局 市委组织部", "", "2023-09-30"],
            ["3", "持续推进全面从严治党", "", "", "全年"],
        ]
    )
    assert plan.title == "2023年工作要点"
    assert [(s.number, s.label, s.title) for s in plan.sections] == [(1, "1", "2023年工作要点")]
    first, second, third = plan.items
    assert (first.number, first.label, first.section) == (1, "1", 1)
    assert first.title == "深入学习宣传贯彻党的二十大精神"
    assert first.body == "开展大宣讲、大讨论。"
    assert first.lead_units == ["市教育局"]
    assert first.support_units == ["各县（市、区）教育局", "市委宣传部"]
    assert first.deadline == date(2023, 6, 30)
    assert (second.title, second.body) == ("评选党建示范校", "形成生动局面")
    assert second.lead_units == ["市教育局", "市委组织部"]
    assert second.support_units == []
    assert second.deadline == date(2023, 9, 30)
    assert third.title == "持续推进全面从严治党"
    assert third.body == ""
    assert third.deadline is None


def test_default_year_for_deadlines() -> None:
    plan = parse([HEADER, ["1", "x", "", "", "6月底前"]], default_year=2024)
    assert plan.items[0].deadline == date(2024, 6, 30)


def test_deadline_from_the_task_text_without_a_deadline_cell() -> None:
    plan = parse([["序号", "任务"], ["1", "制定行动计划。2023年10月底前完成。"]], default_year=2023)
    assert plan.items[0].deadline == date(2023, 10, 31)


def test_section_column() -> None:
    plan = parse(
        [
            ["所属板块", "序号", "重点任务", "具体措施", "牵头单位"],
            ["一、党的建设", "1", "学习二十大精神", "开展大宣讲", "市教育局"],
            ["", "2", "加强党的建设", "", "市教育局"],
            ["立德树人", "3", "促进学生全面发展", "开展体育活动", "市教育局"],
            ["一、党的建设", "4", "从严治党", "", "市纪委监委"],
        ]
    )
    assert [(s.number, s.label, s.title) for s in plan.sections] == [
        (1, "一", "党的建设"),
        (2, "2", "立德树人"),
    ]
    assert [(i.number, i.section) for i in plan.items] == [(1, 1), (2, 1), (3, 2), (4, 1)]
    assert plan.items[0].body == "开展大宣讲"
    assert plan.items[2].body == "开展体育活动"


def test_heading_rows_make_sections_and_subsections() -> None:
    plan = parse(
        [
            ["江门市教育局2023年重点工作任务分解表", "", "", "", ""],
            HEADER,
            ["一、加强党的领导，全面提升党建水平。", "", "", "", ""],
            ["（一）理论学习", "", "", "", ""],
            ["1", "学习二十大精神", "市教育局", "", ""],
            ["（二）基层党建", "", "", "", ""],
            ["2", "提升基层党建工作质量", "市教育局", "", ""],
            ["二、聚力培根铸魂", "", "", "", ""],
            ["3", "促进学生全面发展", "市教育局", "", ""],
            ["注：各单位于每月5日前报送进展。", "", "", "", ""],
        ]
    )
    assert [(s.number, s.label, s.title) for s in plan.sections] == [
        (1, "一", "加强党的领导，全面提升党建水平"),
        (2, "二", "聚力培根铸魂"),
    ]
    assert [(i.number, i.section, i.subsection) for i in plan.items] == [
        (1, 1, "理论学习"),
        (2, 1, "基层党建"),
        (3, 2, None),
    ]


def test_unnumbered_heading_row_in_the_number_column() -> None:
    plan = parse([HEADER, ["党的建设", "", "", "", ""], ["1", "学习", "市教育局", "", ""]])
    assert [(s.label, s.title) for s in plan.sections] == [("1", "党的建设")]


def test_items_before_the_first_heading_go_to_an_implicit_section() -> None:
    plan = parse(
        [HEADER, ["1", "甲", "", "", ""], ["一、乙类", "", "", "", ""], ["2", "乙", "", "", ""]]
    )
    assert [(s.number, s.label, s.title) for s in plan.sections] == [
        (1, "1", "2023年工作要点"),
        (2, "一", "乙类"),
    ]


def test_numbering_restarting_per_section_gives_running_numbers() -> None:
    plan = parse(
        [
            HEADER,
            ["一、党建", "", "", "", ""],
            ["1", "甲", "", "", ""],
            ["2", "乙", "", "", ""],
            ["二、育人", "", "", "", ""],
            ["1", "丙", "", "", ""],
        ]
    )
    assert [(i.number, i.label) for i in plan.items] == [(1, "一.1"), (2, "一.2"), (3, "二.1")]


def test_own_numbers_when_unique() -> None:
    plan = parse([HEADER, ["5", "甲", "", "", ""], ["（7）", "乙", "", "", ""]])
    assert [(i.number, i.label) for i in plan.items] == [(5, "5"), (7, "7")]


def test_running_numbers_without_a_number_cell() -> None:
    plan = parse([HEADER, ["", "甲", "", "", ""], ["2", "乙", "", "", ""]])
    assert [(i.number, i.label) for i in plan.items] == [(1, "1"), (2, "2")]


def test_number_from_the_task_text_without_a_number_column() -> None:
    plan = parse(
        [
            ["重点任务", "牵头单位"],
            ["3.深入学习宣传贯彻党的二十大精神。", "市教育局"],
            ["4、全面加强教育系统党的建设", "市教育局"],
        ]
    )
    assert [(i.number, i.title) for i in plan.items] == [
        (3, "深入学习宣传贯彻党的二十大精神"),
        (4, "全面加强教育系统党的建设"),
    ]


def test_continuation_rows_are_merged() -> None:
    plan = parse(
        [
            ["序号", "任务", "具体措施", "牵头单位", "配合单位", "完成时限"],
            ["1", "扩增优质资源", "新改扩建学校", "市教育局", "市财政局", "2023年6月底前"],
            ["1", "扩增优质资源", "培育示范初中", "市教育局", "市发展改革局", "2023年12月底前"],
            ["", "", "提升头部高中", "", "", ""],
            ["2", "发展学前教育", "", "市教育局", "", ""],
        ]
    )
    assert len(plan.items) == 2
    item = plan.items[0]
    assert item.body == "新改扩建学校\n培育示范初中\n提升头部高中"
    assert item.lead_units == ["市教育局"]
    assert item.support_units == ["市财政局", "市发展改革局"]
    assert item.deadline == date(2023, 12, 31)


def test_repeated_header_and_empty_rows_are_skipped() -> None:
    plan = parse(
        [HEADER, ["1", "甲", "", "", ""], ["", "", "", "", ""], HEADER, ["2", "乙", "", "", ""]]
    )
    assert [i.title for i in plan.items] == ["甲", "乙"]


def test_responsible_unit_column_lists_the_lead_first() -> None:
    plan = parse([["序号", "任务", "责任单位"], ["1", "甲", "市教育局、市财政局、市人社局"]])
    item = plan.items[0]
    assert (item.lead_units, item.support_units) == (["市教育局"], ["市财政局", "市人社局"])


def test_unit_cell_written_as_a_note() -> None:
    plan = parse(
        [["序号", "任务", "责任单位"], ["1", "甲", "牵头单位：市教育局；配合单位：市财政局"]]
    )
    item = plan.items[0]
    assert (item.lead_units, item.support_units) == (["市教育局"], ["市财政局"])


def test_units_from_the_task_text_when_the_unit_cells_are_empty() -> None:
    plan = parse([HEADER, ["1", "推进集团化办学。（市教育局牵头，市财政局配合）", "", "", ""]])
    item = plan.items[0]
    assert (item.lead_units, item.support_units) == (["市教育局"], ["市财政局"])
    assert (item.title, item.body) == ("推进集团化办学", "")


def test_units_split_on_line_breaks_and_keep_brackets() -> None:
    plan = parse([HEADER, ["1", "甲", "市教育局\n各县（市、区）政府", "市财政局；市人社局", ""]])
    item = plan.items[0]
    assert item.lead_units == ["市教育局", "各县（市、区）政府"]
    assert item.support_units == ["市财政局", "市人社局"]


def test_targets_come_from_the_task_and_measures_text(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def fake(text: str) -> list[ParsedTarget]:
        seen.append(text)
        return []

    monkeypatch.setattr(table_plan, "extract_targets", fake)
    parse([["序号", "任务", "具体措施"], ["1", "扩增学位。加快建设。", "新增学位超1万个"]])
    assert seen == ["扩增学位。加快建设。\n新增学位超1万个。"]


def test_targets_are_extracted() -> None:
    plan = parse([HEADER, ["1", "扩增优质资源。新增学位超1万个。", "", "", ""]])
    assert [(t.metric, t.comparator, t.value, t.unit) for t in plan.items[0].targets] == [
        ("新增学位", ">", 10000.0, "个")
    ]


def test_no_header_error() -> None:
    with pytest.raises(PlanFormatError) as err:
        parse([["1", "甲", "市教育局"]])
    assert str(err.value) == (
        "t.docx: no table header found (expected columns such as 序号, 任务, 牵头单位, "
        "配合单位, 完成时限)"
    )
    assert err.value.render(Translator("zh-CN")) == (
        "t.docx：没有找到表头行。表头应包含“序号”“任务”“牵头单位”“配合单位”“完成时限”等列。"
    )


def test_header_without_rows_error() -> None:
    with pytest.raises(PlanFormatError) as err:
        parse([HEADER, ["", "", "", "", ""], ["一、党建", "", "", "", ""]])
    assert str(err.value) == "t.docx: the table has a header row but no task rows"
    assert err.value.render(Translator("zh-CN")) == "t.docx：表格只有表头行，没有任务行。"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("深入学习。学深悟透。", ("深入学习", "学深悟透。")),
        ("评选示范校；形成局面；整体提升", ("评选示范校", "形成局面；整体提升")),
        ("第一行\n第二行", ("第一行", "第二行")),
        ("没有句号", ("没有句号", "")),
        ("。只有正文", ("只有正文", "")),
    ],
)
def test_split_title(text: str, expected: tuple[str, str]) -> None:
    assert split_title(text) == expected


# ---- tab-separated text -----------------------------------------------------------------


def test_tsv_fixture() -> None:
    text = TSV_FIXTURE.read_text(encoding="utf-8")
    assert looks_like_tsv(text)
    plan = parse_tsv_text(text, source="task-table.tsv", default_title="task-table")
    assert plan.title == "江门市教育局2023年重点工作任务分解表"
    assert plan.doc_number == "江教办〔2023〕8号"
    assert [(s.number, s.title) for s in plan.sections] == [(1, plan.title)]
    assert [(i.number, i.title) for i in plan.items] == [
        (1, "深入学习宣传贯彻党的二十大精神"),
        (2, "完成教室照明改造"),
        (3, "新增学位超1万个"),
    ]
    assert plan.items[1].lead_units == ["市教育局", "市卫生健康局"]
    assert plan.items[1].support_units == ["市财政局", "市发展改革局"]
    assert [i.deadline for i in plan.items] == [
        date(2023, 6, 30),
        date(2023, 12, 31),
        date(2023, 9, 30),
    ]
    assert plan.items[2].body == "加快学校建设。"
    assert plan.items[2].lead_units == ["各县（市、区）人民政府"]


def test_tsv_default_title() -> None:
    plan = parse_tsv_text("任务\t牵头单位\n甲\t市教育局\n", source="x.txt", default_title="x")
    assert plan.title == "x"
    assert plan.doc_number is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("序号\t任务\t牵头单位\n1\t甲\t市教育局\n", True),
        ("标题\n\n序号\t任务\t牵头单位\n1\t甲\t市教育局\n", True),
        ("序号\t姓名\t电话\n1\t刘\t123\n", False),  # tabs but no plan header
        ("一、加强党的领导\n1.深入学习。\n正文\t有一个制表符\n", False),  # few tab lines
        ("", False),
    ],
)
def test_looks_like_tsv(text: str, expected: bool) -> None:
    assert looks_like_tsv(text) is expected


def test_split_tsv_quoted_cells() -> None:
    assert split_tsv('a\t"b\tc\nd"\t e \n') == [["a", "b\tc\nd", "e"]]


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            ["江教办〔2023〕5号", "", "2023年重点任务分解表"],
            ("2023年重点任务分解表", "江教办〔2023〕5号"),
        ),
        (["附件1", "重点任务清单", "说明"], ("重点任务清单", None)),
        (["关于印发《江门市教育局2023年重点任务》的通知"], ("江门市教育局2023年重点任务", None)),
        ([], ("", None)),
    ],
)
def test_plan_header_from_lines(lines: list[str], expected: tuple[str, str | None]) -> None:
    assert plan_header_from_lines(lines) == expected


def test_tsv_year_from_the_doc_number() -> None:
    text = "粤教〔2024〕3号\n重点任务\n序号\t任务\t完成时限\n1\t甲\t6月底前\n"
    assert parse_tsv_text(text, source="x.txt").items[0].deadline == date(2024, 6, 30)
