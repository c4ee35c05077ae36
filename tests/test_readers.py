"""Reading plan files: text encodings, binary and empty files, .docx paragraphs and tables."""

from __future__ import annotations

import codecs
import zipfile
from pathlib import Path

import pytest
from docx import Document
from docx.enum.text import WD_BREAK

from bot.i18n import Translator
from bot.importer.model import PlanFormatError
from bot.importer.readers import read_docx, read_text_file

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "jiangmen-edu-2023-workpoints.txt"
SAMPLE_TEXT = SAMPLE.read_text(encoding="utf-8").rstrip("\n")


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(SAMPLE_TEXT.encode("utf-8"), id="utf-8"),
        pytest.param(codecs.BOM_UTF8 + SAMPLE_TEXT.encode("utf-8"), id="utf-8-bom"),
        pytest.param(SAMPLE_TEXT.encode("gb18030"), id="gb18030"),
        pytest.param(SAMPLE_TEXT.encode("utf-16"), id="utf-16-bom"),
        pytest.param(codecs.BOM_UTF16_BE + SAMPLE_TEXT.encode("utf-16-be"), id="utf-16-be-bom"),
        pytest.param(SAMPLE_TEXT.replace("\n", "\r\n").encode("gb18030"), id="gb18030-crlf"),
    ],
)
def test_text_encodings_give_the_same_text(tmp_path: Path, data: bytes) -> None:
    assert read_text_file(write(tmp_path, "plan.txt", data)) == SAMPLE_TEXT


def test_gbk_is_read_as_gb18030(tmp_path: Path) -> None:
    text = "一、加强党的领导\n1.深入学习宣传贯彻党的二十大精神。"
    assert read_text_file(write(tmp_path, "plan.txt", text.encode("gbk"))) == text


def test_line_ends_are_normalised_and_stripped(tmp_path: Path) -> None:
    data = "标题\u3000\u3000\r\n\u3000\u3000一、总体要求 \r二、任务\t\n\n\n".encode()
    assert read_text_file(write(tmp_path, "plan.txt", data)) == (
        "标题\n\u3000\u3000一、总体要求\n二、任务"
    )


def test_no_unicode_normalisation(tmp_path: Path) -> None:
    text = "关于印发《工作要点》的通知（２０２３）：“双减”"
    assert read_text_file(write(tmp_path, "plan.txt", text.encode())) == text


def test_leading_blank_lines_and_indentation_are_kept(tmp_path: Path) -> None:
    data = b"\n\nplan:\n  title: x\n"
    assert read_text_file(write(tmp_path, "plan.yaml", data)) == "\n\nplan:\n  title: x"


@pytest.mark.parametrize("data", [b"", b"   \r\n\t\n", "\u3000\u3000\n \n".encode()])
def test_empty_file(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(PlanFormatError) as err:
        read_text_file(write(tmp_path, "plan.txt", data))
    assert str(err.value) == "plan.txt: the file is empty"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00", id="png"),
        pytest.param(bytes(range(256)) * 4, id="all-bytes"),
        pytest.param("一、任务\n".encode() + b"\x00", id="text-with-nul"),
        pytest.param(b"abc\x01\x02\x03\x04\x05\x06def" * 10, id="control-chars"),
        pytest.param(codecs.BOM_UTF16_LE + "a\x00\x01\x02".encode("utf-16-le"), id="utf-16-nul"),
    ],
)
def test_binary_file(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(PlanFormatError) as err:
        read_text_file(write(tmp_path, "plan.txt", data))
    assert str(err.value) == "plan.txt: not a text file (binary content)"


def test_a_few_control_characters_are_tolerated(tmp_path: Path) -> None:
    text = "一、任务" + "甲" * 100 + "\x1a"
    assert read_text_file(write(tmp_path, "plan.txt", text.encode())) == text


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x80", id="lone-0x80"),
        pytest.param(b"\xff", id="lone-0xff"),
        pytest.param("一、任务".encode() + b"\x80\x80abc", id="bad-in-the-middle"),
    ],
)
def test_undecodable_text(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(PlanFormatError) as err:
        read_text_file(write(tmp_path, "plan.txt", data))
    assert str(err.value) == "plan.txt: cannot decode the text (tried UTF-8 and GB18030)"


def test_undecodable_utf16(tmp_path: Path) -> None:
    data = codecs.BOM_UTF16_LE + "任务".encode("utf-16-le") + b"\x00"  # odd length
    with pytest.raises(PlanFormatError) as err:
        read_text_file(write(tmp_path, "plan.txt", data))
    assert str(err.value) == "plan.txt: cannot decode the text (tried UTF-16)"


@pytest.mark.parametrize(
    ("data", "chinese"),
    [
        pytest.param(
            codecs.BOM_UTF16_LE + "任务".encode("utf-16-le") + b"\x00",
            "plan.txt：无法识别文本内容（已按 UTF-16 编码尝试）。请另存为 UTF-8 编码的文本文件。",
            id="utf-16",
        ),
        pytest.param(
            codecs.BOM_UTF8 + b"\xff",
            "plan.txt：无法识别文本内容（已按 UTF-8 编码尝试）。请另存为 UTF-8 编码的文本文件。",
            id="utf-8-bom",
        ),
    ],
)
def test_undecodable_in_chinese(tmp_path: Path, data: bytes, chinese: str) -> None:
    with pytest.raises(PlanFormatError) as err:
        read_text_file(write(tmp_path, "plan.txt", data))
    assert err.value.render(Translator("zh-CN")) == chinese


def test_missing_text_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.txt"
    with pytest.raises(PlanFormatError) as err:
        read_text_file(path)
    assert str(err.value) == f"{path}: no such file"


# ---- .docx ------------------------------------------------------------------------------


def test_docx_paragraphs_and_tables_in_order(tmp_path: Path) -> None:
    doc = Document()
    doc.add_paragraph("江门市教育局2023年工作要点")
    doc.add_paragraph("")
    doc.add_paragraph("   ")
    run = doc.add_paragraph().add_run("第一行 ")
    run.add_break(WD_BREAK.LINE)
    run.add_text("第二行")
    table = doc.add_table(rows=2, cols=3)
    for r, row in enumerate(table.rows):
        for c, cell in enumerate(row.cells):
            cell.text = f"r{r}c{c}"
    table.cell(1, 2).add_paragraph("  second paragraph  ")
    doc.add_paragraph("一、加强党的领导")
    doc.add_table(rows=1, cols=1).cell(0, 0).text = "x"
    doc.add_table(rows=1, cols=1).cell(0, 0).text = "y"
    path = tmp_path / "plan.docx"
    doc.save(str(path))

    content = read_docx(path)

    assert content.paragraphs == [
        "江门市教育局2023年工作要点",
        "第一行\n第二行",
        "一、加强党的领导",
    ]
    assert content.tables == [
        [["r0c0", "r0c1", "r0c2"], ["r1c0", "r1c1", "r1c2\nsecond paragraph"]],
        [["x"]],
        [["y"]],
    ]
    assert content.table_positions == [2, 3, 3]


def test_docx_merged_cells(tmp_path: Path) -> None:
    doc = Document()
    table = doc.add_table(rows=4, cols=3)
    heading = table.cell(0, 0).merge(table.cell(0, 2))
    heading.text = "一、加强党的领导"
    table.cell(1, 0).text = "1"
    table.cell(2, 0).text = "2"
    table.cell(3, 0).text = "3"
    unit = table.cell(1, 2).merge(table.cell(2, 2))
    unit.text = "市教育局"
    table.cell(1, 1).text = "任务甲"
    table.cell(2, 1).text = "任务乙"
    table.cell(3, 1).text = "任务丙"
    path = tmp_path / "merged.docx"
    doc.save(str(path))

    assert read_docx(path).tables == [
        [
            ["一、加强党的领导", "", ""],
            ["1", "任务甲", "市教育局"],
            ["2", "任务乙", "市教育局"],
            ["3", "任务丙", ""],
        ]
    ]


def test_docx_that_is_not_a_zip(tmp_path: Path) -> None:
    path = write(tmp_path, "plan.docx", "一、加强党的领导".encode())
    with pytest.raises(PlanFormatError) as err:
        read_docx(path)
    assert str(err.value) == "plan.docx: not a valid .docx file (not a zip archive)"


def test_docx_that_is_an_old_doc(tmp_path: Path) -> None:
    path = write(tmp_path, "plan.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504)
    with pytest.raises(PlanFormatError) as err:
        read_docx(path)
    assert str(err.value) == (
        "plan.docx: not a valid .docx file (it is an old .doc file or an encrypted document; "
        "save it as .docx without a password)"
    )


def test_zip_that_is_not_a_docx(tmp_path: Path) -> None:
    path = tmp_path / "plan.docx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(PlanFormatError) as err:
        read_docx(path)
    assert str(err.value) == "plan.docx: not a valid .docx file (no word/document.xml)"


def test_docx_with_a_damaged_package(tmp_path: Path) -> None:
    path = tmp_path / "plan.docx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("word/document.xml", "<not xml")
    with pytest.raises(PlanFormatError) as err:
        read_docx(path)
    message = str(err.value)
    assert message.startswith("plan.docx: not a valid .docx file (cannot read the Word document: ")
    assert "\n" not in message


def test_old_doc_in_chinese(tmp_path: Path) -> None:
    path = write(tmp_path, "计划.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504)
    with pytest.raises(PlanFormatError) as err:
        read_docx(path)
    assert err.value.render(Translator("zh-CN")) == (
        "计划.docx：不是有效的 .docx 文件，可能是旧版 .doc 文件或加密文档。"
        "请另存为不设密码的 .docx 文件后再导入。"
    )


def test_missing_docx(tmp_path: Path) -> None:
    path = tmp_path / "nope.docx"
    with pytest.raises(PlanFormatError) as err:
        read_docx(path)
    assert str(err.value) == f"{path}: no such file"
