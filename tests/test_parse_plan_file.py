"""parse_plan_file: every supported kind of file, and a clear message for the others."""

from __future__ import annotations

import codecs
import re
from datetime import date
from pathlib import Path

import pytest
from docx import Document

from bot.i18n import LOCALES, Translator, catalog_keys, placeholders
from bot.importer.model import ParsedPlan, PlanFormatError
from bot.importer.parse import parse_plan_file

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "jiangmen-edu-2023-workpoints.txt"
SAMPLE_TEXT = SAMPLE.read_text(encoding="utf-8")
FILES = Path(__file__).resolve().parent / "data" / "files"


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(PlanFormatError) as err:
        parse_plan_file(path)
    message = str(err.value)
    assert "\n" not in message
    assert message == err.value.render(Translator("en"))
    return message


def assert_is_the_sample(plan: ParsedPlan) -> None:
    assert len(plan.sections) == 6
    assert len(plan.items) == 27
    assert [item.number for item in plan.items] == list(range(1, 28))
    assert "江门市教育局2023年工作要点" in plan.title


def save_docx(doc: object, path: Path) -> Path:
    doc.save(str(path))  # type: ignore[attr-defined]
    return path


# ---- text -------------------------------------------------------------------------------


def test_sample_plan() -> None:
    assert_is_the_sample(parse_plan_file(SAMPLE))


@pytest.mark.parametrize(
    ("name", "data"),
    [
        pytest.param("plan.txt", SAMPLE_TEXT.encode("utf-8"), id="utf-8"),
        pytest.param("plan.txt", codecs.BOM_UTF8 + SAMPLE_TEXT.encode("utf-8"), id="utf-8-bom"),
        pytest.param("plan.txt", SAMPLE_TEXT.encode("gb18030"), id="gb18030"),
        pytest.param("plan.txt", SAMPLE_TEXT.encode("utf-16"), id="utf-16-bom"),
        pytest.param(
            "plan.txt", SAMPLE_TEXT.replace("\n", "\r\n").encode("gb18030"), id="gb18030-crlf"
        ),
        pytest.param("plan.TXT", SAMPLE_TEXT.encode("utf-8"), id="upper-case-suffix"),
        pytest.param("plan.md", SAMPLE_TEXT.encode("utf-8"), id="markdown"),
        pytest.param("plan.text", SAMPLE_TEXT.encode("utf-8"), id="text"),
    ],
)
def test_sample_plan_in_other_encodings(tmp_path: Path, name: str, data: bytes) -> None:
    assert_is_the_sample(parse_plan_file(write(tmp_path, name, data)))


def test_tab_separated_table_in_a_text_file() -> None:
    plan = parse_plan_file(FILES / "task-table.tsv")
    assert plan.title == "江门市教育局2023年重点工作任务分解表"
    assert plan.doc_number == "江教办〔2023〕8号"
    assert [(i.number, i.lead_units, i.deadline) for i in plan.items] == [
        (1, ["市教育局"], date(2023, 6, 30)),
        (2, ["市教育局", "市卫生健康局"], date(2023, 12, 31)),
        (3, ["各县（市、区）人民政府"], date(2023, 9, 30)),
    ]


def test_tab_separated_gb18030_text_file(tmp_path: Path) -> None:
    data = "序号\t任务\t牵头单位\t完成时限\n1\t甲\t市教育局\t6月底前\n".encode("gb18030")
    plan = parse_plan_file(write(tmp_path, "2024年任务.txt", data))
    assert plan.title == "2024年任务"  # the file name without its suffix
    assert plan.items[0].deadline == date(2024, 6, 30)


def test_empty_text_file(tmp_path: Path) -> None:
    assert error_of(write(tmp_path, "plan.txt", b"\n \n")) == "plan.txt: the file is empty"


def test_binary_text_file(tmp_path: Path) -> None:
    path = write(tmp_path, "plan.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert error_of(path) == "plan.txt: not a text file (binary content)"


def test_undecodable_text_file(tmp_path: Path) -> None:
    path = write(tmp_path, "plan.txt", "一、任务".encode() + b"\x80")
    assert error_of(path) == "plan.txt: cannot decode the text (tried UTF-8 and GB18030)"


# ---- .docx ------------------------------------------------------------------------------


def test_docx_with_the_sample_as_paragraphs(tmp_path: Path) -> None:
    doc = Document()
    for line in SAMPLE_TEXT.splitlines():
        doc.add_paragraph(line)
    doc.add_paragraph("")
    contacts = doc.add_table(rows=2, cols=2)  # not a plan table: ignored
    contacts.cell(0, 0).text = "姓名"
    contacts.cell(0, 1).text = "电话"
    assert_is_the_sample(parse_plan_file(save_docx(doc, tmp_path / "plan.docx")))


def plan_table_doc() -> object:
    doc = Document()
    doc.add_paragraph("江教办〔2023〕8号")
    doc.add_paragraph("江门市教育局2023年重点工作任务分解表")
    rows = [
        ["序号", "任务", "牵头单位", "配合单位", "完成时限"],
        ["1", "深入学习宣传贯彻党的二十大精神。开展大宣讲。", "市教育局", "市委宣传部", "6月底前"],
        ["2", "完成教室照明改造", "市教育局、市卫生健康局", "市财政局，市发展改革局", "2023年12月"],
        ["3", "新增学位超1万个", "各县（市、区）人民政府", "", "2023年9月30日"],
    ]
    table = doc.add_table(rows=len(rows), cols=5)
    for r, cells in enumerate(rows):
        for c, text in enumerate(cells):
            table.cell(r, c).text = text
    doc.add_paragraph("江门市教育局")
    doc.add_paragraph("2023年3月15日")
    return doc


def test_docx_with_a_plan_table(tmp_path: Path) -> None:
    plan = parse_plan_file(save_docx(plan_table_doc(), tmp_path / "tasks.docx"))
    assert plan.title == "江门市教育局2023年重点工作任务分解表"
    assert plan.doc_number == "江教办〔2023〕8号"
    assert [(s.number, s.title) for s in plan.sections] == [(1, plan.title)]
    assert [(i.number, i.title, i.lead_units, i.support_units, i.deadline) for i in plan.items] == [
        (1, "深入学习宣传贯彻党的二十大精神", ["市教育局"], ["市委宣传部"], date(2023, 6, 30)),
        (
            2,
            "完成教室照明改造",
            ["市教育局", "市卫生健康局"],
            ["市财政局", "市发展改革局"],
            date(2023, 12, 31),
        ),
        (3, "新增学位超1万个", ["各县（市、区）人民政府"], [], date(2023, 9, 30)),
    ]
    assert plan.items[0].body == "开展大宣讲。"
    assert [(t.metric, t.value) for t in plan.items[2].targets] == [("新增学位", 10000.0)]


def test_docx_with_a_table_per_section(tmp_path: Path) -> None:
    doc = Document()
    doc.add_paragraph("2024年重点工作任务清单")
    for heading, rows in [
        ("一、加强党的领导", [["1", "学习二十大精神", "市教育局"], ["2", "从严治党", "市纪委"]]),
        ("二、立德树人", [["1", "促进全面发展", "市教育局"]]),
    ]:
        doc.add_paragraph(heading)
        table = doc.add_table(rows=len(rows) + 1, cols=3)
        for c, text in enumerate(["序号", "工作任务", "责任单位"]):
            table.cell(0, c).text = text
        for r, cells in enumerate(rows, start=1):
            for c, text in enumerate(cells):
                table.cell(r, c).text = text
    continuation = doc.add_table(rows=1, cols=3)  # the last table went on to a new page
    for c, text in enumerate(["2", "加强体育美育", "市教育局、市体育局"]):
        continuation.cell(0, c).text = text
    signature = doc.add_table(rows=1, cols=2)  # a different width: not part of the plan
    signature.cell(0, 0).text = "联系人"
    plan = parse_plan_file(save_docx(doc, tmp_path / "tasks.docx"))
    assert plan.title == "2024年重点工作任务清单"
    assert [(s.number, s.label, s.title) for s in plan.sections] == [
        (1, "一", "加强党的领导"),
        (2, "二", "立德树人"),
    ]
    assert [(i.number, i.label, i.section, i.title) for i in plan.items] == [
        (1, "一.1", 1, "学习二十大精神"),
        (2, "一.2", 1, "从严治党"),
        (3, "二.1", 2, "促进全面发展"),
        (4, "二.2", 2, "加强体育美育"),
    ]
    # a 责任单位 column without a 配合单位 column: the first unit leads
    assert (plan.items[3].lead_units, plan.items[3].support_units) == (["市教育局"], ["市体育局"])


def test_docx_table_title_from_the_row_above_the_header(tmp_path: Path) -> None:
    doc = Document()
    table = doc.add_table(rows=3, cols=3)
    table.cell(0, 0).merge(table.cell(0, 2)).text = "2025年任务分解表"
    for c, text in enumerate(["序号", "任务", "完成时限"]):
        table.cell(1, c).text = text
    for c, text in enumerate(["1", "甲", "6月底前"]):
        table.cell(2, c).text = text
    plan = parse_plan_file(save_docx(doc, tmp_path / "t.docx"))
    assert plan.title == "2025年任务分解表"
    assert plan.items[0].deadline == date(2025, 6, 30)


def test_docx_table_title_from_the_file_name(tmp_path: Path) -> None:
    doc = Document()
    table = doc.add_table(rows=2, cols=2)
    for c, text in enumerate(["任务", "牵头单位"]):
        table.cell(0, c).text = text
    for c, text in enumerate(["甲", "市教育局"]):
        table.cell(1, c).text = text
    plan = parse_plan_file(save_docx(doc, tmp_path / "重点任务.docx"))
    assert plan.title == "重点任务"


def test_empty_docx(tmp_path: Path) -> None:
    path = save_docx(Document(), tmp_path / "plan.docx")
    assert error_of(path) == "plan.docx: the document is empty"


def test_docx_with_only_an_unknown_table(tmp_path: Path) -> None:
    doc = Document()
    doc.add_table(rows=1, cols=2).cell(0, 0).text = "姓名"
    path = save_docx(doc, tmp_path / "plan.docx")
    assert error_of(path) == (
        "plan.docx: no plan found (the document has no text paragraphs and its tables have "
        "no header row such as 序号 | 任务 | 牵头单位 | 完成时限)"
    )


def test_docx_that_is_not_a_zip(tmp_path: Path) -> None:
    path = write(tmp_path, "plan.docx", SAMPLE_TEXT.encode())
    assert error_of(path) == "plan.docx: not a valid .docx file (not a zip archive)"


# ---- .yaml ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["acme.yaml", "acme.yml", "ACME.YAML"])
def test_yaml(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, name, (FILES / "acme-2024.yaml").read_bytes())
    plan = parse_plan_file(path)
    assert plan.title == "Acme 2024 plan"
    assert [i.number for i in plan.items] == [1, 2, 10, 11]


def test_yaml_error_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "acme.yml", b"plan:\n  title: x\n")
    assert error_of(path) == "acme.yml: sections: missing (required: a list of sections)"


# ---- other files ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["plan.doc", "PLAN.DOC"])
def test_old_doc(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, name, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")
    suffix = Path(name).suffix.lower()
    assert error_of(path) == f"{name}: old {suffix} format is not supported; save it as .docx"


def test_old_wps(tmp_path: Path) -> None:
    path = write(tmp_path, "plan.wps", b"\xd0\xcf\x11\xe0")
    assert error_of(path) == "plan.wps: old .wps format is not supported; save it as .docx"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "plan.pdf",
            "plan.pdf: .pdf files are not supported (use .txt (also .text, .md, .tsv), .docx, "
            ".yaml (also .yml))",
        ),
        (
            "plan",
            "plan: files without a suffix are not supported (use .txt (also .text, .md, .tsv), "
            ".docx, .yaml (also .yml))",
        ),
        (
            "plan.xlsx",
            "plan.xlsx: .xlsx files are not supported (use .txt (also .text, .md, .tsv), .docx, "
            ".yaml (also .yml)); save the sheet as tab-separated text (.txt)",
        ),
    ],
)
def test_unsupported_suffix(tmp_path: Path, name: str, message: str) -> None:
    assert error_of(write(tmp_path, name, b"x")) == message


@pytest.mark.parametrize("name", ["nope.txt", "nope.docx", "nope.pdf"])
def test_missing_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    assert error_of(path) == f"{path}: no such file"


def test_directory(tmp_path: Path) -> None:
    path = tmp_path / "plans.txt"
    path.mkdir()
    assert error_of(path) == f"{path}: is a directory, not a plan file"


# ---- messages in both locales -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "chinese"),
    [
        pytest.param("plan.txt", b"\n \n", "plan.txt：文件是空的。", id="empty"),
        pytest.param(
            "plan.txt",
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
            "plan.txt：不是文本文件（内容为二进制）。请提供 .txt、.docx 或 .yaml 格式的工作计划。",
            id="binary",
        ),
        pytest.param(
            "plan.txt",
            "一、任务".encode() + b"\x80",
            "plan.txt：无法识别文本编码（已尝试 UTF-8 与 GB18030）。"
            "请另存为 UTF-8 编码的文本文件。",
            id="undecodable",
        ),
        pytest.param(
            "plan.txt",
            "床前明月光，疑是地上霜。\n".encode(),
            "plan.txt：没有找到工作计划的层次结构。应有“一、……”这样的板块和“1. ……”这样的事项。",
            id="no-structure",
        ),
        pytest.param(
            "plan.docx",
            b"not a zip",
            "plan.docx：不是有效的 .docx 文件（不是 zip 压缩包）。",
            id="docx-not-zip",
        ),
        pytest.param(
            "plan.doc",
            b"\xd0\xcf\x11\xe0",
            "plan.doc：不支持旧版 .doc 格式，请在 Word 或 WPS 中另存为 .docx 后再导入。",
            id="old-doc",
        ),
        pytest.param(
            "plan.xlsx",
            b"x",
            "plan.xlsx：不支持 .xlsx 表格文件。请将表格另存为制表符分隔的文本（.txt）后再导入，"
            "也可使用 .docx 或 .yaml（或 .yml）格式。",
            id="sheet",
        ),
        pytest.param(
            "acme.yml",
            b"plan:\n  title: x\n",
            "acme.yml：缺少 sections（必填，板块列表）。",
            id="yaml-sections-missing",
        ),
        pytest.param(
            "acme.yaml",
            b"plan:\n  title: x\nsections:\n  - title: s\n    items:\n"
            b"      - title: t\n        deadline: 2024/06/30\n",
            "acme.yaml：sections[0].items[0].deadline 不是有效日期，"
            "应为 YYYY-MM-DD，例如 2024-06-30。",
            id="yaml-not-a-date",
        ),
        pytest.param(
            "acme.yaml",
            b"plan:\n  title: x\nsections:\n  - title: s\n    items:\n"
            b"      - title: t\n        number: one\n",
            "acme.yaml：sections[0].items[0].number 应为正整数，实际是文本“one”。",
            id="yaml-bad-number",
        ),
        pytest.param(
            "acme.yaml",
            b"- a\n",
            "acme.yaml：顶层 应为包含 plan, sections 的映射，实际是列表。",
            id="yaml-top-level",
        ),
        pytest.param(
            "acme.yaml",
            b"plan:\n  title: a: b\nsections: []\n",
            "acme.yaml：YAML 语法错误（第 2 行第 11 列）：mapping values are not allowed here",
            id="yaml-syntax",
        ),
    ],
)
def test_errors_in_chinese(tmp_path: Path, name: str, data: bytes, chinese: str) -> None:
    with pytest.raises(PlanFormatError) as err:
        parse_plan_file(write(tmp_path, name, data))
    message = err.value.render(Translator("zh-CN"))
    assert message == chinese
    assert message.startswith(f"{name}：") and "\n" not in message
    assert str(err.value).startswith(f"{name}: ")  # English through str()


def test_missing_file_in_chinese(tmp_path: Path) -> None:
    path = tmp_path / "nope.txt"
    with pytest.raises(PlanFormatError) as err:
        parse_plan_file(path)
    assert err.value.render(Translator("zh-CN")) == f"{path}：文件不存在，请检查路径是否正确。"


def test_importer_keys_in_both_locales_with_the_same_placeholders() -> None:
    zh, en = ({k for k in catalog_keys(loc) if k.startswith("importer.")} for loc in LOCALES)
    assert zh and zh == en
    for key in zh:
        assert placeholders("zh-CN", key) == placeholders("en", key), key
        if ".yaml.got." not in key and key != "importer.yaml.top_level":
            assert "file" in placeholders("en", key), f"{key} does not name the file"


def test_the_importer_uses_exactly_the_importer_keys() -> None:
    sources = (ROOT / "bot" / "importer").glob("*.py")
    used = {
        key
        for source in sources
        for key in re.findall(r"\"(importer\.[a-z_.]+)\"", source.read_text(encoding="utf-8"))
    }
    assert len(used) > 30
    for locale in LOCALES:
        defined = {key for key in catalog_keys(locale) if key.startswith("importer.")}
        assert used == defined, locale
