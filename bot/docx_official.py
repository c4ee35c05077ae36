"""A Word document in the layout of Chinese official documents (GB/T 9704-2012), from blocks.

The words come as block markup, one block a line (`@kind text`), so a template can say what
the document says while this module alone decides how it looks:

    @title 关于……的通报          the title: 方正小标宋简体 22 pt (二号), centred
    @subtitle （2023年6月）      under the title: 楷体_GB2312 16 pt, centred
    @blank                       an empty line of the body
    @addressee 各责任单位：      主送机关: the body font, flush left
    @h1 一、总体情况             headings by level: 黑体, 楷体_GB2312, 仿宋_GB2312 bold
    @h2 （一）……   @h3 1.……
    @p 正文……                    a body paragraph: 仿宋_GB2312 16 pt (三号), indented two characters
    @attachments 附件：……        附件说明: indented two characters
    @signature 某某办公室         发文机关署名 and 成文日期, right-aligned as the standard says
    @date 2023年6月16日
    @pagebreak
    @attachment_label 附件       on the attachment's first line: 黑体, flush left
    @attachment_title ……         the attachment's title, centred
    @table / @header / @row / @group TEXT / @cell TEXT / @endtable
                                 a table: a header row (repeated on each page), rows of cells,
                                 and group rows that span every column

The page is A4 with margins of 37/35/28/26 mm (top, bottom, left, right), lines of about
28.95 pt (22 lines a page), and page numbers `— 1 —` in 宋体 14 pt (四号) under the text block,
odd pages on the right and even pages on the left, each one character in. Every run names its
East Asian font (w:eastAsia), so Word shows the official fonts where they are installed and
substitutes where not (the font table names a common alternative for each). The file is
deterministic: the same blocks and the same `created` make the same bytes.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import unicodedata
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from docx import Document
from docx.enum.section import WD_SECTION_START
from docx.enum.style import WD_STYLE_TYPE
from docx.enum.table import WD_CELL_VERTICAL_ALIGNMENT, WD_TABLE_ALIGNMENT
from docx.enum.text import WD_BREAK, WD_LINE_SPACING, WD_PARAGRAPH_ALIGNMENT
from docx.oxml import OxmlElement, parse_xml
from docx.oxml.ns import qn
from docx.shared import Length, Mm, Pt
from docx.text.paragraph import Paragraph
from lxml import etree

PAGE_WIDTH, PAGE_HEIGHT = Mm(210), Mm(297)  # A4
MARGIN_TOP, MARGIN_BOTTOM, MARGIN_LEFT, MARGIN_RIGHT = Mm(37), Mm(35), Mm(28), Mm(26)
TEXT_WIDTH_MM = 210 - 28 - 26  # the text block (版心) is 156 mm wide
# The page number's line starts about 7 mm under the text block.
FOOTER_DISTANCE = Mm(23)
HEADER_DISTANCE = Mm(15)

# The fonts the standard names, and a common font Word may use where one is missing.
TITLE_FONT = "方正小标宋简体"
BODY_FONT = "仿宋_GB2312"
H1_FONT = "黑体"
H2_FONT = "楷体_GB2312"
PAGE_NUMBER_FONT = "宋体"
LATIN_FONT = "Times New Roman"
ALTERNATIVES = {TITLE_FONT: "宋体", BODY_FONT: "仿宋", H2_FONT: "楷体"}
# w:family in the font table: serif faces are "roman", 黑体 is "swiss" (a hint for substitutes).
FAMILIES = {
    TITLE_FONT: "roman",
    BODY_FONT: "roman",
    H1_FONT: "swiss",
    H2_FONT: "roman",
    PAGE_NUMBER_FONT: "roman",
}

TITLE_SIZE = Pt(22)  # 二号
BODY_SIZE = Pt(16)  # 三号
PAGE_NUMBER_SIZE = Pt(14)  # 四号
TABLE_SIZE = Pt(10.5)  # 五号
BODY_LINE = Pt(28.95)  # 22 lines in the 225 mm text block
TITLE_LINE = Pt(35)
TABLE_LINE = Pt(16)
CELL_MARGIN = 57  # 1 mm in twentieths of a point
CHAR = 320  # one body character (16 pt) in twentieths of a point
PAGE_NUMBER_CHAR = 280  # one page-number character (14 pt)

BLOCK_KINDS = frozenset(
    {
        "title",
        "subtitle",
        "blank",
        "addressee",
        "h1",
        "h2",
        "h3",
        "p",
        "attachments",
        "signature",
        "date",
        "pagebreak",
        "attachment_label",
        "attachment_title",
        "table",
        "header",
        "row",
        "group",
        "cell",
        "endtable",
    }
)
# Characters XML 1.0 cannot hold (python-docx refuses them): dropped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_BLOCK = re.compile(r"@([a-z_0-9]+)(?: (.*))?")


@dataclass(frozen=True)
class Block:
    """One block of the document: its kind and its text."""

    kind: str
    text: str = ""


def parse_blocks(markup: str) -> list[Block]:
    """The blocks of a markup text (one `@kind text` a line; empty lines are skipped)."""
    blocks = []
    for number, line in enumerate(markup.splitlines(), 1):
        if not line.strip():
            continue
        match = _BLOCK.fullmatch(line.strip())
        if match is None or match.group(1) not in BLOCK_KINDS:
            raise ValueError(f"line {number} is not a block (@kind text): {line[:60]!r}")
        blocks.append(Block(match.group(1), (match.group(2) or "").strip()))
    return blocks


@dataclass(frozen=True)
class Table:
    """A table gathered from its blocks."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...] | str, ...]  # cells, or the text of a group row


def _gather_table(blocks: Sequence[Block], start: int) -> tuple[Table, int]:
    """The table whose @table block is at start, and the index after its @endtable."""
    header: list[str] = []
    rows: list[tuple[str, ...] | str] = []
    current: list[str] | None = None
    in_header = False

    def close() -> None:
        if current is not None and not in_header:
            rows.append(tuple(current))

    index = start + 1
    while index < len(blocks):
        block = blocks[index]
        if block.kind == "endtable":
            close()
            if not header:
                raise ValueError("a table needs a @header row")
            widths = {len(r) for r in rows if isinstance(r, tuple)}
            if widths - {len(header)}:
                raise ValueError(
                    f"table rows have {sorted(widths)} cells, the header {len(header)}"
                )
            return Table(tuple(header), tuple(rows)), index + 1
        if block.kind == "header":
            close()
            current, in_header = header, True
        elif block.kind == "row":
            close()
            current, in_header = [], False
        elif block.kind == "group":
            close()
            current = None
            rows.append(block.text)
        elif block.kind == "cell":
            if current is None:
                raise ValueError("@cell outside a @header or @row")
            current.append(block.text)
        else:
            raise ValueError(f"@{block.kind} inside a table")
        index += 1
    raise ValueError("@table without @endtable")


# --- fonts and styles -----------------------------------------------------------------------


def set_fonts(rpr: Any, east_asian: str, latin: str = LATIN_FONT) -> None:
    """Name a run's (or style's) fonts: Latin for ascii/hAnsi, the CJK font for eastAsia."""
    fonts = rpr.find(qn("w:rFonts"))
    if fonts is None:
        fonts = OxmlElement("w:rFonts")
        rpr.insert(0, fonts)
    for theme in ("w:asciiTheme", "w:hAnsiTheme", "w:eastAsiaTheme", "w:cstheme"):
        fonts.attrib.pop(qn(theme), None)  # a theme font would win over the named one
    fonts.set(qn("w:ascii"), latin)
    fonts.set(qn("w:hAnsi"), latin)
    fonts.set(qn("w:eastAsia"), east_asian)
    fonts.set(qn("w:cs"), latin)
    fonts.set(qn("w:hint"), "eastAsia")


@dataclass(frozen=True)
class _Look:
    """How a paragraph style looks."""

    font: str
    size: Length
    line: Length
    align: int = WD_PARAGRAPH_ALIGNMENT.JUSTIFY
    bold: bool = False
    first_line_chars: int = 0  # indent, in characters of the body
    outline: int | None = None  # heading level, 0-based
    latin: str = LATIN_FONT


def _style(document: Any, name: str, look: _Look) -> None:
    """Define (or redefine) a paragraph style from scratch."""
    styles = document.styles
    try:
        style = styles[name]
    except KeyError:
        style = styles.add_style(name, WD_STYLE_TYPE.PARAGRAPH)
    if style.style_id != _STYLE_IDS[name]:
        raise ValueError(f"style {name!r} has the id {style.style_id!r}")
    element = style.element
    for tag in ("w:link", "w:rsid", "w:unhideWhenUsed", "w:pPr", "w:rPr"):
        for child in element.findall(qn(tag)):
            element.remove(child)
    ppr, rpr = OxmlElement("w:pPr"), OxmlElement("w:rPr")
    element.extend((ppr, rpr))  # the last children of a paragraph style, in this order
    if name != "Normal":
        style.base_style = styles["Normal"]
    fmt = style.paragraph_format
    fmt.alignment = look.align
    fmt.line_spacing_rule = WD_LINE_SPACING.EXACTLY
    fmt.line_spacing = look.line
    fmt.space_before = Pt(0)
    fmt.space_after = Pt(0)
    fmt.widow_control = True
    # No extra space between Chinese and Latin letters or digits: "2023年6月" stays as set,
    # and a date's width is what the signature block is measured with.
    spacing = ppr.find(qn("w:spacing"))
    for tag in ("w:autoSpaceDE", "w:autoSpaceDN"):
        off = OxmlElement(tag)
        off.set(qn("w:val"), "0")
        spacing.addprevious(off)
    if look.first_line_chars:
        fmt.first_line_indent = Pt(look.first_line_chars * CHAR / 20)
        # in characters too: Word and WPS keep two characters when the font size changes
        ppr.find(qn("w:ind")).set(qn("w:firstLineChars"), str(look.first_line_chars * 100))
    if look.outline is not None:
        fmt.keep_with_next = True
        level = OxmlElement("w:outlineLvl")
        level.set(qn("w:val"), str(look.outline))
        ppr.append(level)
    set_fonts(rpr, look.font, look.latin)
    style.font.size = look.size
    style.font.bold = look.bold
    style.font.color.rgb = None
    lang = OxmlElement("w:lang")
    lang.set(qn("w:val"), "en-US")
    lang.set(qn("w:eastAsia"), "zh-CN")
    rpr.append(lang)


STYLES = {
    "Normal": _Look(BODY_FONT, BODY_SIZE, BODY_LINE),
    "Body Text": _Look(BODY_FONT, BODY_SIZE, BODY_LINE, first_line_chars=2),
    "Title": _Look(
        TITLE_FONT, TITLE_SIZE, TITLE_LINE, WD_PARAGRAPH_ALIGNMENT.CENTER, latin=TITLE_FONT
    ),
    # Headings are set wholly in their font, digits and letters too; the body's digits are in
    # Times New Roman.
    "Subtitle": _Look(H2_FONT, BODY_SIZE, BODY_LINE, WD_PARAGRAPH_ALIGNMENT.CENTER, latin=H2_FONT),
    "Heading 1": _Look(H1_FONT, BODY_SIZE, BODY_LINE, first_line_chars=2, outline=0, latin=H1_FONT),
    "Heading 2": _Look(H2_FONT, BODY_SIZE, BODY_LINE, first_line_chars=2, outline=1, latin=H2_FONT),
    "Heading 3": _Look(BODY_FONT, BODY_SIZE, BODY_LINE, bold=True, first_line_chars=2, outline=2),
    "Attachment Label": _Look(
        H1_FONT, BODY_SIZE, BODY_LINE, WD_PARAGRAPH_ALIGNMENT.LEFT, latin=H1_FONT
    ),
    "Table Text": _Look(BODY_FONT, TABLE_SIZE, TABLE_LINE, WD_PARAGRAPH_ALIGNMENT.LEFT),
    "Table Heading": _Look(
        H1_FONT, TABLE_SIZE, TABLE_LINE, WD_PARAGRAPH_ALIGNMENT.CENTER, latin=H1_FONT
    ),
    "Footer": _Look(  # the page number: 半角宋体, digits included
        PAGE_NUMBER_FONT, PAGE_NUMBER_SIZE, Pt(18), latin=PAGE_NUMBER_FONT
    ),
}
# The id of each style (what w:pStyle names): Word's own for built-in styles, else the name.
_STYLE_IDS = {name: name.replace(" ", "") for name in STYLES}
# The style of each paragraph block.
BLOCK_STYLES = {
    "title": "Title",
    "subtitle": "Subtitle",
    "blank": "Normal",
    "addressee": "Normal",
    "h1": "Heading 1",
    "h2": "Heading 2",
    "h3": "Heading 3",
    "p": "Body Text",
    "attachments": "Body Text",
    "signature": "Normal",
    "date": "Normal",
    "attachment_label": "Attachment Label",
    "attachment_title": "Title",
}


def _defaults(document: Any) -> None:
    """Document defaults without theme fonts, in Chinese."""
    defaults = document.styles.element.find(qn("w:docDefaults"))
    rpr = defaults.find(qn("w:rPrDefault")).find(qn("w:rPr"))
    set_fonts(rpr, BODY_FONT)
    lang = rpr.find(qn("w:lang"))
    if lang is None:
        lang = OxmlElement("w:lang")
        rpr.append(lang)
    lang.set(qn("w:val"), "en-US")
    lang.set(qn("w:eastAsia"), "zh-CN")


def _font_table(document: Any) -> None:
    """Add the official fonts to the font table, each with its family and an alternative."""
    part = next(
        p for p in document.part.package.iter_parts() if p.partname == "/word/fontTable.xml"
    )
    root = parse_xml(part.blob)
    for name, family in FAMILIES.items():
        font = OxmlElement("w:font")
        font.set(qn("w:name"), name)
        if name in ALTERNATIVES:
            alternative = OxmlElement("w:altName")
            alternative.set(qn("w:val"), ALTERNATIVES[name])
            font.append(alternative)
        for tag, value in (("w:charset", "86"), ("w:family", family), ("w:pitch", "variable")):
            child = OxmlElement(tag)
            child.set(qn("w:val"), value)
            font.append(child)
        root.append(font)
    # A part python-docx does not model: its bytes are all there is to change.
    part._blob = etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)


# --- page setup and page numbers ------------------------------------------------------------


def _page(section: Any) -> None:
    """A4 portrait with the standard's margins."""
    section.start_type = WD_SECTION_START.NEW_PAGE
    section.page_width, section.page_height = PAGE_WIDTH, PAGE_HEIGHT
    section.top_margin, section.bottom_margin = MARGIN_TOP, MARGIN_BOTTOM
    section.left_margin, section.right_margin = MARGIN_LEFT, MARGIN_RIGHT
    section.header_distance, section.footer_distance = HEADER_DISTANCE, FOOTER_DISTANCE
    section.gutter = Mm(0)
    grid = section._sectPr.find(qn("w:docGrid"))
    if grid is not None:
        grid.set(qn("w:linePitch"), str(round(BODY_LINE.pt * 20)))


def _field(paragraph: Paragraph, instruction: str, shown: str) -> None:
    """A field (e.g. PAGE) in a paragraph, with the text shown until it is updated."""
    for kind, text in (("begin", None), ("instr", instruction), ("separate", None), ("end", None)):
        run = paragraph.add_run()
        if kind == "instr":
            code = OxmlElement("w:instrText")
            code.set(qn("xml:space"), "preserve")
            code.text = f" {text} "
            run._r.append(code)
            continue
        char = OxmlElement("w:fldChar")
        char.set(qn("w:fldCharType"), kind)
        run._r.append(char)
        if kind == "separate":
            paragraph.add_run(shown)


def _page_number(footer: Any, *, odd: bool) -> None:
    """`— N —` in the footer: right and one character in on odd pages, left on even ones."""
    footer.is_linked_to_previous = False
    paragraph = _styled(footer.paragraphs[0], "Footer")
    fmt = paragraph.paragraph_format
    if odd:
        fmt.alignment = WD_PARAGRAPH_ALIGNMENT.RIGHT
        fmt.right_indent = Pt(PAGE_NUMBER_CHAR / 20)
    else:
        fmt.alignment = WD_PARAGRAPH_ALIGNMENT.LEFT
        fmt.left_indent = Pt(PAGE_NUMBER_CHAR / 20)
    paragraph.add_run("— ")
    _field(paragraph, "PAGE", "1")
    paragraph.add_run(" —")


# --- blocks to paragraphs -------------------------------------------------------------------


def _clean(text: str) -> str:
    return _NOT_XML.sub("", text)


def text_width(text: str) -> float:
    """The width of a line in body characters: a CJK or full-width character is 1, others ½."""
    return sum(1.0 if unicodedata.east_asian_width(c) in "WF" else 0.5 for c in text)


def _signature_indents(signature: str, day: str) -> tuple[float, float]:
    """The right indents (in characters) of 发文机关署名 and 成文日期: the signature two
    characters in, the date starting two characters right of the signature's start."""
    sign, date = text_width(signature), text_width(day)
    date_indent = sign - date
    if date_indent < 2:  # a date longer than the signature: the date two in, the name moves
        return date + 4 - sign, 2.0
    return 2.0, date_indent


def _styled(paragraph: Paragraph, style: str) -> Paragraph:
    """Give a paragraph one of STYLES by its id (python-docx's look-up by name is slow)."""
    paragraph._p.style = _STYLE_IDS[style]
    return paragraph


def _paragraph(document: Any, kind: str, text: str) -> Paragraph:
    paragraph = _styled(document.add_paragraph(), BLOCK_STYLES[kind])
    if text:
        paragraph.add_run(_clean(text))
    return paragraph


def _right_indent(paragraph: Paragraph, chars: float) -> None:
    paragraph.paragraph_format.alignment = WD_PARAGRAPH_ALIGNMENT.RIGHT
    paragraph.paragraph_format.right_indent = Pt(chars * CHAR / 20)


def _table(document: Any, table: Table, widths_mm: Sequence[float], centered: set[int]) -> None:
    """The table: a repeated header row, bordered cells, fixed column widths."""
    columns = len(table.header)
    if len(widths_mm) != columns:
        raise ValueError(f"{columns} columns but {len(widths_mm)} widths")
    if sum(widths_mm) > TEXT_WIDTH_MM:
        raise ValueError(f"the columns are {sum(widths_mm)} mm wide, the page {TEXT_WIDTH_MM}")
    grid = document.add_table(rows=0, cols=columns)
    grid.style = "Table Grid"  # thin single borders on every cell
    grid.alignment = WD_TABLE_ALIGNMENT.CENTER
    grid.autofit = False  # a fixed layout: the columns keep their widths
    tblpr = grid._tbl.tblPr
    width = tblpr.find(qn("w:tblW"))
    width.set(qn("w:w"), str(round(sum(widths_mm) / 25.4 * 1440)))
    width.set(qn("w:type"), "dxa")
    margins = OxmlElement("w:tblCellMar")  # 1 mm either side: more of a narrow column for text
    for side in ("left", "right"):
        margin = OxmlElement(f"w:{side}")
        margin.set(qn("w:w"), str(CELL_MARGIN))
        margin.set(qn("w:type"), "dxa")
        margins.append(margin)
    tblpr.find(qn("w:tblLayout")).addnext(margins)
    for column, mm in zip(grid.columns, widths_mm, strict=True):
        column.width = Mm(mm)

    def fill(cells: Any, texts: Sequence[str], style: str) -> None:
        for index, (cell, text) in enumerate(zip(cells, texts, strict=True)):
            cell.width = Mm(widths_mm[index])
            paragraph = _styled(cell.paragraphs[0], style)
            if index in centered or style == "Table Heading":
                paragraph.alignment = WD_PARAGRAPH_ALIGNMENT.CENTER
            paragraph.add_run(_clean(text))
            cell.vertical_alignment = WD_CELL_VERTICAL_ALIGNMENT.CENTER

    header = grid.add_row()
    fill(header.cells, table.header, "Table Heading")
    header_props = header._tr.get_or_add_trPr()
    repeat = OxmlElement("w:tblHeader")
    header_props.append(repeat)
    for row in table.rows:
        added = grid.add_row()
        if isinstance(row, str):
            merged = added.cells[0].merge(added.cells[-1])
            paragraph = _styled(merged.paragraphs[0], "Table Heading")
            paragraph.alignment = WD_PARAGRAPH_ALIGNMENT.LEFT
            paragraph.add_run(_clean(row))
        else:
            fill(added.cells, row, "Table Text")


def build_document(
    blocks: Sequence[Block],
    *,
    title: str,
    created: datetime,
    table_widths_mm: Sequence[float] = (),
    centered_columns: frozenset[int] = frozenset(),
) -> Any:
    """A python-docx Document laid out as an official document from the blocks."""
    document = Document()
    _defaults(document)
    for name, look in STYLES.items():
        _style(document, name, look)
    _font_table(document)
    _page(document.sections[0])
    document.settings.odd_and_even_pages_header_footer = True
    section = document.sections[0]
    _page_number(section.footer, odd=True)
    _page_number(section.even_page_footer, odd=False)
    body = document.element.body
    for paragraph in list(document.paragraphs):  # the template's one empty paragraph
        body.remove(paragraph._p)

    index = 0
    signature: str | None = None
    made: list[tuple[str, Paragraph | None]] = []  # what each block made (None: a table)
    while index < len(blocks):
        block = blocks[index]
        index += 1
        if block.kind == "table":
            table, index = _gather_table(blocks, index - 1)
            _table(document, table, table_widths_mm, set(centered_columns))
            made.append(("table", None))
        elif block.kind == "pagebreak":
            paragraph = _styled(document.add_paragraph(), "Normal")
            paragraph.add_run().add_break(WD_BREAK.PAGE)
            made.append((block.kind, paragraph))
        elif block.kind in ("header", "row", "group", "cell", "endtable"):
            raise ValueError(f"@{block.kind} outside a table")
        elif block.kind == "signature":
            signature = block.text
            paragraph = _paragraph(document, "signature", block.text)
            following = blocks[index] if index < len(blocks) else None
            day = following.text if following and following.kind == "date" else ""
            _right_indent(paragraph, _signature_indents(block.text, day)[0])
            made.append((block.kind, paragraph))
        elif block.kind == "date":
            paragraph = _paragraph(document, "date", block.text)
            _right_indent(
                paragraph,
                _signature_indents(signature, block.text)[1] if signature else 4.0,
            )
            made.append((block.kind, paragraph))
        else:
            made.append((block.kind, _paragraph(document, block.kind, block.text)))
    _keep_closing_together(made)

    moment = created.astimezone(UTC).replace(tzinfo=None, microsecond=0)
    props = document.core_properties
    props.title = _clean(title)
    props.author = props.last_modified_by = "Duban"
    props.created = props.modified = moment
    props.last_printed = moment
    props.revision = 1
    props.comments = ""
    _drop_thumbnail(document)
    return document


CLOSING = ("attachments", "signature", "date")


def _keep_closing_together(made: Sequence[tuple[str, Paragraph | None]]) -> None:
    """附件说明, 署名 and 成文日期 stay on a page with the body's last paragraph: the standard
    never leaves a signature or a date alone on a page."""
    kinds = [kind for kind, _ in made]
    ends = [i for i, kind in enumerate(kinds) if kind == "date"]
    for end in ends:
        start = end
        while start > 0 and kinds[start - 1] in ("blank", *CLOSING):
            start -= 1
        if start > 0 and kinds[start - 1] == "p":
            start -= 1  # the body's last paragraph comes along
        for _, paragraph in made[start:end]:
            if paragraph is not None:
                paragraph.paragraph_format.keep_with_next = True


def _drop_thumbnail(document: Any) -> None:
    """The template's thumbnail shows an empty page: not this document, so it goes."""
    package = document.part.package
    for rel_id, rel in list(package.rels.items()):
        if rel.reltype.endswith("/thumbnail"):
            del package.rels[rel_id]


def _stable_zip(data: bytes) -> bytes:
    """The same archive with fixed timestamps, so the same document makes the same bytes."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for info in source.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            target.writestr(fixed, source.read(info))
    return out.getvalue()


def write_official_document(
    blocks: Sequence[Block],
    path: Path,
    *,
    title: str,
    created: datetime,
    table_widths_mm: Sequence[float] = (),
    centered_columns: frozenset[int] = frozenset(),
) -> Path:
    """Write the blocks as an official document to path, atomically, and return path."""
    document = build_document(
        blocks,
        title=title,
        created=created,
        table_widths_mm=table_widths_mm,
        centered_columns=centered_columns,
    )
    buffer = io.BytesIO()
    document.save(buffer)
    data = _stable_zip(buffer.getvalue())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return path
