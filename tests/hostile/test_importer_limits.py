"""Hostile plan files: each is refused by `duban import` with one line naming the limit, exit 2,
and no database file; the files are generated here, small on disk (issue #12, point 5).

No test times anything: the work is bounded by design (bot/importer/limits.py), and
bench/importer_limits.py prints the figures.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.importer.limits import MB
from bot.importer.model import PlanFormatError
from bot.importer.parse import parse_plan_file

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" ContentType="application/'
    'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
)
_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="word/document.xml"/></Relationships>'
)
_DOC_HEAD = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document '
    'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
)


def write_docx(path: Path, body: Iterable[str], extra: dict[str, bytes] | None = None) -> Path:
    """A minimal .docx whose body is the given XML, streamed into a deflated zip."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _RELS)
        with archive.open("word/document.xml", "w") as stream:
            stream.write(_DOC_HEAD.encode())
            batch: list[str] = []
            for piece in body:
                batch.append(piece)
                if len(batch) == 10_000:
                    stream.write("".join(batch).encode())
                    batch.clear()
            stream.write(("".join(batch) + "</w:body></w:document>").encode())
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return path


def para(text: str) -> str:
    return f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p>"


def cell(inner: str, props: str = "") -> str:
    return f"<w:tc>{f'<w:tcPr>{props}</w:tcPr>' if props else ''}{inner}</w:tc>"


class Importer:
    """`duban import` in zh-CN against a SQLite file that does not exist yet."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.database = tmp_path / "fresh.db"
        monkeypatch.chdir(tmp_path)  # no stray .env from the checkout
        monkeypatch.setenv("DATABASE_URL", f"sqlite:///{self.database}")
        monkeypatch.setenv("LOCALE", "zh-CN")

    def refuses(self, path: Path, chinese: str, english: str) -> str:
        """Import path: exit 2, one line naming the file and the limit, nothing written."""
        result = CliRunner().invoke(app, ["import", str(path)])
        message = result.stderr.strip()
        assert result.exit_code == 2, (result.exit_code, result.output)
        assert "\n" not in message, "one line"
        assert "Traceback" not in result.output
        assert message.startswith(f"{path.name}：") and message.endswith("未导入。"), message
        assert chinese in message, message
        assert not self.database.exists(), "nothing written, not even a database file"
        with pytest.raises(PlanFormatError) as err:
            parse_plan_file(path)
        assert english in str(err.value), str(err.value)  # LOCALE=en
        assert str(err.value).endswith("nothing imported")
        return message


@pytest.fixture
def importer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Importer:
    return Importer(tmp_path, monkeypatch)


# ---- .docx --------------------------------------------------------------------------------


def test_docx_that_unpacks_to_a_million_paragraphs(importer: Importer, tmp_path: Path) -> None:
    """A ~130 KB .docx whose word/document.xml unpacks to a million paragraphs (45 MB)."""
    path = write_docx(tmp_path / "plan.docx", (para("一、段落") for _ in range(1_000_000)))
    assert path.stat().st_size < 200 * 1024
    importer.refuses(path, "文档的 XML 部分解压后超过 20 MB 上限", "larger than the 20 MB limit")


def test_docx_with_a_million_empty_paragraphs(importer: Importer, tmp_path: Path) -> None:
    """A 9 KB .docx of a million empty paragraphs (6 MB of XML, under the size limits)."""
    path = write_docx(tmp_path / "plan.docx", ("<w:p/>" for _ in range(1_000_000)))
    importer.refuses(
        path,
        "段落和表格单元格超过 50000 个上限",
        "paragraphs and table cells than the limit of 50,000",
    )


def test_docx_with_a_picture_that_unpacks_to_60_mb(importer: Importer, tmp_path: Path) -> None:
    """A .docx whose other parts (a 'picture' of zeros) unpack to more than 50 MB in all."""
    path = write_docx(
        tmp_path / "plan.docx", [para("一、板块")], {"word/media/image1.png": bytes(60 * MB)}
    )
    importer.refuses(
        path, "plan.docx：解压后超过 50 MB 上限，未导入。", "the 50 MB limit when unpacked"
    )


def test_docx_whose_zip_understates_the_unpacked_size(importer: Importer, tmp_path: Path) -> None:
    """A .docx whose zip directory declares 1,000 bytes for a 45 MB word/document.xml."""
    path = write_docx(tmp_path / "plan.docx", (para("一、段落") for _ in range(1_000_000)))
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02")
    while at >= 0:  # each central directory entry: uncompressed size at +24, name at +46
        name_len = int.from_bytes(data[at + 28 : at + 30], "little")
        if data[at + 46 : at + 46 + name_len] == b"word/document.xml":
            data[at + 24 : at + 28] = (1000).to_bytes(4, "little")
        at = data.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))
    result = CliRunner().invoke(app, ["import", str(path)])
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert (
        message.startswith("plan.docx：不是有效的 .docx 文件（zip 压缩包已损坏：")
        and "CRC" in message
    )
    assert not importer.database.exists()


def test_docx_cell_spanning_a_billion_columns(importer: Importer, tmp_path: Path) -> None:
    """A table cell with gridSpan 1,000,000,000 (python-docx would yield it that many times)."""
    row = "<w:tr>" + cell(para("序号"), '<w:gridSpan w:val="1000000000"/>') + "</w:tr>"
    path = write_docx(tmp_path / "plan.docx", [f"<w:tbl>{row}</w:tbl>"])
    importer.refuses(path, "表格超过 64 列上限", "wider than the limit of 64 columns")


def test_docx_paragraph_of_20000_characters(importer: Importer, tmp_path: Path) -> None:
    """One .docx paragraph of 20,000 characters."""
    path = write_docx(tmp_path / "plan.docx", [para("一、板块"), para("很长" * 10_000)])
    importer.refuses(
        path,
        "有一段超过 10000 字上限（以“很长很长",
        "a paragraph is longer than the limit of 10,000",
    )


def test_docx_column_merged_down_2000_rows_is_read_row_by_row(tmp_path: Path) -> None:
    """A column merged down 2,000 rows: python-docx resolves each row by recursing up the
    merge (quadratic time, and past Python's recursion limit); it is read in one pass."""
    header = "<w:tr>" + cell(para("序号")) + cell(para("任务")) + cell(para("牵头单位")) + "</w:tr>"
    rows = [
        "<w:tr>"
        + cell(para(str(n)))
        + cell(para(f"任务{n}"))
        + (cell(para("基础教育科"), '<w:vMerge w:val="restart"/>') if n == 1 else "")
        + (cell(para(""), "<w:vMerge/>") if n > 1 else "")
        + "</w:tr>"
        for n in range(1, 2_001)
    ]
    path = write_docx(tmp_path / "plan.docx", ["<w:tbl>", header, *rows, "</w:tbl>"])
    plan = parse_plan_file(path)
    assert len(plan.items) == 2_000
    assert all(item.lead_units == ["基础教育科"] for item in plan.items)


def test_docx_long_cell_merged_down_100_rows(importer: Importer, tmp_path: Path) -> None:
    """A 9,000-character task cell merged down 100 rows: 900,000 characters to read, from 20 KB."""
    header = "<w:tr>" + cell(para("序号")) + cell(para("任务")) + "</w:tr>"
    rows = [
        "<w:tr>"
        + cell(para(str(n)))
        + (
            cell(para("任务" * 4_500), '<w:vMerge w:val="restart"/>')
            if n == 1
            else cell(para(""), "<w:vMerge/>")
        )
        + "</w:tr>"
        for n in range(1, 101)
    ]
    path = write_docx(tmp_path / "plan.docx", ["<w:tbl>", header, *rows, "</w:tbl>"])
    importer.refuses(path, "文字超过 500000 字上限", "more text than the limit of 500,000")


# ---- YAML ---------------------------------------------------------------------------------


def billion_laughs() -> str:
    """YAML of under 2 KB whose aliases stand for 10**6 targets of one item."""
    lines = ['t0: &t0 {metric: 学位, comparator: ">=", value: 1}']
    lines += [f"t{k}: &t{k} [" + ", ".join([f"*t{k - 1}"] * 10) + "]" for k in range(1, 7)]
    lines += ["plan: {title: x}", "sections: [{title: s, items: [{title: i, targets: *t6}]}]"]
    return "\n".join(lines) + "\n"


def test_yaml_billion_laughs(importer: Importer, tmp_path: Path) -> None:
    """A 1.9 KB YAML whose aliases expand to a million targets ("billion laughs")."""
    path = tmp_path / "plan.yaml"
    path.write_text(billion_laughs(), encoding="utf-8")
    assert path.stat().st_size < 2_000
    importer.refuses(
        path,
        "YAML 节点（别名按展开后计）超过 100000 个上限",
        "YAML nodes than the limit of 100,000",
    )


def test_yaml_long_text_aliased_into_100_items(importer: Importer, tmp_path: Path) -> None:
    """A 9,000-character body given once and aliased into 100 items (900,000 characters)."""
    items = "".join(f"      - {{title: 任务{n}, body: *long}}\n" for n in range(2, 101))
    text = (
        "plan:\n  title: x\nsections:\n  - title: s\n    items:\n"
        f"      - {{title: 任务1, body: &long {'推进' * 4_500}}}\n" + items
    )
    path = tmp_path / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    importer.refuses(path, "文字超过 500000 字上限", "more text than the limit of 500,000")


def test_yaml_nested_100000_deep(importer: Importer, tmp_path: Path) -> None:
    """YAML nested 100,000 deep, in lines of 1,000 brackets (PyYAML composes by recursion)."""
    path = tmp_path / "plan.yaml"
    path.write_text(("[" * 1000 + "\n") * 100 + ("]" * 1000 + "\n") * 100, encoding="utf-8")
    importer.refuses(path, "YAML 嵌套超过 32 层上限", "nested deeper than the limit of 32 levels")


def test_yaml_nested_100000_deep_on_one_line(importer: Importer, tmp_path: Path) -> None:
    """YAML nested 100,000 deep on one line: the line is over the length limit first."""
    path = tmp_path / "plan.yaml"
    path.write_text("[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    importer.refuses(path, "第 1 行超过 10000 字上限", "line 1 is longer than the limit of 10,000")


def test_yaml_nested_mappings_40_deep(importer: Importer, tmp_path: Path) -> None:
    """Block mappings nested 40 deep under an item."""
    nested = "".join(" " * (8 + 2 * k) + f"k{k}:\n" for k in range(40))
    text = "plan:\n  title: x\nsections:\n  - title: s\n    items:\n      - title: i\n" + nested
    path = tmp_path / "plan.yml"
    path.write_text(text, encoding="utf-8")
    importer.refuses(path, "YAML 嵌套超过 32 层上限", "deeper than the limit of 32 levels")


def test_yaml_with_2001_items(importer: Importer, tmp_path: Path) -> None:
    """A YAML plan of 2,001 items, four of them aliases standing for 500 items each."""
    items = "".join(f"      - {{title: 任务{n}}}\n" for n in range(1, 501))
    text = (
        "plan:\n  title: x\nsections:\n  - title: a\n    items: &many\n"
        + items
        + "  - {title: b, items: *many}\n  - {title: c, items: *many}\n"
        + "  - {title: d, items: *many}\n  - {title: e, items: [{title: one more}]}\n"
    )
    path = tmp_path / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    importer.refuses(path, "事项超过 2000 项上限", "more items than the limit of 2,000")


# ---- text ---------------------------------------------------------------------------------


def test_text_file_of_50_mb(importer: Importer, tmp_path: Path) -> None:
    """A 50 MB text file (sparse: refused on its size alone, before it is read)."""
    path = tmp_path / "plan.txt"
    with path.open("wb") as handle:
        handle.write("一、板块\n1. 任务\n".encode())
        handle.truncate(50 * MB)
    importer.refuses(path, "plan.txt：文件超过 2 MB 上限，未导入。", "larger than the 2 MB limit")


def test_single_line_of_50_mb(importer: Importer, tmp_path: Path) -> None:
    """A text file that is one 50 MB line."""
    path = tmp_path / "plan.txt"
    path.write_bytes(b"x" * (50 * MB))
    importer.refuses(path, "文件超过 2 MB 上限", "larger than the 2 MB limit")


def test_single_line_under_the_file_size_limit(importer: Importer, tmp_path: Path) -> None:
    """A text file that is one line of 1.9 MB, under the file size limit."""
    path = tmp_path / "plan.txt"
    path.write_bytes(b"1. " + b"x" * (19 * MB // 10))
    importer.refuses(path, "第 1 行超过 10000 字上限", "line 1 is longer than the limit of 10,000")


def test_text_of_more_than_500000_characters(importer: Importer, tmp_path: Path) -> None:
    """A 1.5 MB text file of 500,001 characters, in lines under the length limit."""
    path = tmp_path / "plan.txt"
    path.write_text("\n".join(["一、板块"] + ["长" * 9_999] * 50 + ["长" * 45]), encoding="utf-8")
    importer.refuses(path, "文字超过 500000 字上限", "more text than the limit of 500,000")


def test_plan_of_100000_lines(importer: Importer, tmp_path: Path) -> None:
    """A plan of 100,000 numbered lines (1.3 MB, under the file size limit)."""
    path = tmp_path / "plan.txt"
    lines = ["2023年工作要点", "一、板块", *(f"{n}. 任务{n}" for n in range(1, 99_999))]
    path.write_text("\n".join(lines), encoding="utf-8")
    importer.refuses(path, "超过 20000 行上限", "more lines than the limit of 20,000")


def test_plan_of_2001_items(importer: Importer, tmp_path: Path) -> None:
    """A plan of 2,001 items, inside the line limit."""
    path = tmp_path / "plan.txt"
    lines = ["2023年工作要点", "一、板块", *(f"{n}. 任务{n}。" for n in range(1, 2_002))]
    path.write_text("\n".join(lines), encoding="utf-8")
    importer.refuses(path, "事项超过 2000 项上限", "more items than the limit of 2,000")


def test_item_title_of_600_characters(importer: Importer, tmp_path: Path) -> None:
    """An item whose title (its heading up to the first 。) is 600 characters long."""
    path = tmp_path / "plan.txt"
    path.write_text("一、板块\n1. " + "标题" * 300 + "。正文。\n2. 任务。", encoding="utf-8")
    importer.refuses(
        path, "第 1 项的标题超过 500 字上限", "title of item 1 is longer than the limit of 500"
    )


def test_item_of_wrapped_lines_over_10000_characters(importer: Importer, tmp_path: Path) -> None:
    """An item whose body is 30 paragraphs of 400 characters (12,000 in all)."""
    path = tmp_path / "plan.txt"
    body = "\n".join("推进" * 199 + "。" for _ in range(30))
    path.write_text(f"一、板块\n1. 任务。\n{body}\n2. 任务。", encoding="utf-8")
    importer.refuses(
        path, "第 1 项的文字超过 10000 字上限", "text of item 1 is longer than the limit of 10,000"
    )


def test_paragraph_joined_from_wrapped_lines_over_10000_characters(
    importer: Importer, tmp_path: Path
) -> None:
    """Lines broken mid-sentence (no punctuation) that join into one 12,000-character paragraph."""
    path = tmp_path / "plan.txt"
    path.write_text("一、板块\n1. 任务\n" + "\n".join(["推进相关工作" * 50] * 40), encoding="utf-8")
    importer.refuses(
        path, "有一段超过 10000 字上限", "a paragraph is longer than the limit of 10,000"
    )


def test_tab_separated_cell_past_the_csv_field_limit(importer: Importer, tmp_path: Path) -> None:
    """A tab-separated table whose quoted cell never closes (over csv's 131,072 characters)."""
    lines = ["序号\t任务\t牵头单位", '1\t"任务', *(["很长的\t内容" * 500] * 60)]
    path = tmp_path / "plan.tsv"
    path.write_text("\n".join(lines), encoding="utf-8")
    importer.refuses(
        path, "表格中有一格超过 10000 字上限", "a table cell is longer than the limit of 10,000"
    )


def test_runs_of_digits_are_read_in_linear_time(tmp_path: Path) -> None:
    """Items whose bodies are 9,900 digits, or 〇: the target pattern, failing to find a unit,
    used to retry from every digit of the run (minutes per item); now a plain import."""
    path = tmp_path / "plan.txt"
    lines = ["一、板块"]
    for number, run in enumerate(["1" * 9_900, "〇" * 9_900, "1,000" * 1_980], start=1):
        lines += [f"{number}. 任务{number}。", run]
    path.write_text("\n".join(lines), encoding="utf-8")
    plan = parse_plan_file(path)
    assert [item.number for item in plan.items] == [1, 2, 3]
    assert all(item.targets == [] for item in plan.items)


# ---- item numbers of 1000 and up ----------------------------------------------------------


def test_item_numbers_998_to_1002_are_five_items(tmp_path: Path) -> None:
    """Items numbered on to 1002: 1000, 1001 and 1002 are items, not text in item 999."""
    path = tmp_path / "plan.txt"
    lines = [
        "2023年工作要点",
        "一、板块",
        *(f"{n}. 第{n}项任务。内容{n}。" for n in range(1, 1_003)),
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    plan = parse_plan_file(path)
    last = plan.items[-5:]
    assert [item.number for item in last] == [998, 999, 1000, 1001, 1002]
    assert [item.label for item in last] == ["998", "999", "1000", "1001", "1002"]
    assert [item.title for item in last] == [f"第{n}项任务" for n in range(998, 1_003)]
    assert [item.body for item in last] == [f"内容{n}。" for n in range(998, 1_003)]


@pytest.mark.parametrize(
    ("form", "full_width"), [("（{n}）", False), ("{n}、", False), ("{n}．", True)]
)
def test_four_digit_numbers_in_other_heading_forms(
    tmp_path: Path, form: str, full_width: bool
) -> None:
    """Four-digit numbers in the other arabic heading forms, full-width digits too."""
    to_full_width = str.maketrans("0123456789", "０１２３４５６７８９")
    lines = ["一、板块"]
    for n in range(1, 1_003):
        number = str(n).translate(to_full_width) if full_width else str(n)
        lines.append(form.format(n=number) + f"任务{n}。")
    path = tmp_path / "plan.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    plan = parse_plan_file(path)
    assert [(item.number, item.title) for item in plan.items[-3:]] == [
        (1000, "任务1000"),
        (1001, "任务1001"),
        (1002, "任务1002"),
    ]


def test_table_with_numbers_998_to_1002_gives_five_items(tmp_path: Path) -> None:
    """A tab-separated task table numbered 998..1002."""
    rows = ["序号\t任务\t牵头单位", *(f"{n}\t任务{n}\t基础教育科" for n in range(998, 1_003))]
    path = tmp_path / "plan.tsv"
    path.write_text("\n".join(rows), encoding="utf-8")
    plan = parse_plan_file(path)
    assert [(item.number, item.title) for item in plan.items] == [
        (n, f"任务{n}") for n in range(998, 1_003)
    ]
