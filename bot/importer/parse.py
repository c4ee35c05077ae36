"""The importer's entry point: a plan file of any supported kind -> ParsedPlan.

Dispatch on the file's suffix (case does not matter):

* ``.txt``, ``.text``, ``.md``, ``.tsv``: ``read_text_file``; when the text is a
  tab-separated table (``table_plan.looks_like_tsv``) it is a table plan, otherwise a
  Chinese official document given to ``document.parse_plan_lines`` line by line.
* ``.docx``: ``read_docx``. The first table with a recognisable header row makes it a table
  plan (see below); otherwise the body paragraphs, split at soft line breaks, go to
  ``parse_plan_lines``.
* ``.yaml``, ``.yml``: the plain YAML form (``yaml_plan``).
* ``.doc`` and ``.wps`` (old binary formats): refused with a hint to save as .docx;
  ``.xls``, ``.xlsx``, ``.et`` and ``.csv``: refused with a hint to save the sheet as
  tab-separated text; any other suffix: refused, naming the supported ones.

A table plan in a .docx
    The rows of the header table come first. Every later table is appended: one with its
    own header row (a table per section, or a table split across pages) without its header,
    one without a header when it has the same number of columns (a continuation). A
    paragraph like ``一、xxx`` right before an appended table, or before the first table,
    starts a section there (it is added as a heading row). The paragraphs before the first
    table give the title and ``doc_number`` (``table_plan.plan_header_from_lines``: the
    first line that is not a 附件 line or a document number like ``江教办〔2023〕5号``).
    Without such a paragraph the title is the first row above the header, if any, else
    the file name without its suffix. The year for deadlines without one is the first
    20xx in the title, else in the document number.

Tab-separated text
    Lines without tabs before the header row give the title and document number in the same
    way (``table_plan.plan_header_from_lines``); the default title is the file name
    without its suffix.

Limits
    Every kind of file is held to the limits in ``limits`` (file size before reading, then
    what it holds); a file over one is refused with a message naming the file and the limit
    (``importer.limit.*``). Whatever the reader, the parsed plan is checked last
    (``limits.check_plan``: counts, titles, item text), so no kind of file gets past them.

Errors are ``PlanFormatError`` with one line naming the file (keys under ``importer.`` in
templates/locales/<locale>.importer.yaml): a missing path gives ``<path>: no such file``
(``importer.no_such_file``), a directory ``<path>: is a directory, not a plan file``
(``importer.is_directory``), in English; zh-CN by default when rendered for a user.
"""

from __future__ import annotations

import re
from pathlib import Path

from bot.importer import limits
from bot.importer.document import parse_plan_lines
from bot.importer.model import ParsedPlan, PlanFormatError
from bot.importer.readers import DocxContent, read_docx, read_text_file
from bot.importer.table_plan import (
    find_table_header,
    looks_like_tsv,
    parse_table_rows,
    parse_tsv_text,
    plan_header_from_lines,
    year_in,
)
from bot.importer.yaml_plan import parse_yaml_plan

TEXT_SUFFIXES = (".txt", ".text", ".md", ".tsv")
DOCX_SUFFIXES = (".docx",)
YAML_SUFFIXES = (".yaml", ".yml")
_OLD_WORD_SUFFIXES = (".doc", ".wps")
_SHEET_SUFFIXES = (".xls", ".xlsx", ".et", ".csv")
_SECTION_PARAGRAPH = re.compile(r"^[一二三四五六七八九十百零〇]+\s*[、.．]\s*\S")


def parse_plan_file(path: Path) -> ParsedPlan:
    """Read a plan file (.txt, .docx, .yaml, or a table) into a ParsedPlan."""
    path = Path(path)
    if not path.exists():
        raise PlanFormatError("importer.no_such_file", file=str(path))
    if path.is_dir():
        raise PlanFormatError("importer.is_directory", file=str(path))
    plan = _parse_by_suffix(path)
    limits.check_plan(plan, path.name)
    return plan


def _parse_by_suffix(path: Path) -> ParsedPlan:
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return _parse_text(path)
    if suffix in DOCX_SUFFIXES:
        return _parse_docx(path)
    if suffix in YAML_SUFFIXES:
        return parse_yaml_plan(path)
    if suffix in _OLD_WORD_SUFFIXES:
        raise PlanFormatError("importer.old_format", file=path.name, suffix=suffix)
    if not suffix:
        raise PlanFormatError("importer.unsupported.no_suffix", file=path.name)
    if suffix in _SHEET_SUFFIXES:
        raise PlanFormatError("importer.unsupported.sheet", file=path.name, suffix=suffix)
    raise PlanFormatError("importer.unsupported.other", file=path.name, suffix=suffix)


def _parse_text(path: Path) -> ParsedPlan:
    text = read_text_file(path)
    if looks_like_tsv(text, source=path.name):
        return parse_tsv_text(text, source=path.name, default_title=path.stem)
    return parse_plan_lines(text.splitlines(), source=path.name)


def _parse_docx(path: Path) -> ParsedPlan:
    content = read_docx(path)
    first = next(
        (k for k, table in enumerate(content.tables) if find_table_header(table) is not None),
        None,
    )
    if first is not None:
        return _parse_docx_table(path, content, first)
    lines = [line for paragraph in content.paragraphs for line in paragraph.splitlines()]
    if not lines:
        if content.tables:
            raise PlanFormatError("importer.docx.no_plan", file=path.name)
        raise PlanFormatError("importer.docx.empty", file=path.name)
    return parse_plan_lines(lines, source=path.name)


def _parse_docx_table(path: Path, content: DocxContent, first: int) -> ParsedPlan:
    header_rows = content.tables[first]
    header = find_table_header(header_rows)
    assert header is not None
    width = max(len(row) for row in header_rows)
    rows: list[list[str]] = [list(row) for row in header_rows[: header.row + 1]]
    for k in range(first, len(content.tables)):
        table = content.tables[k]
        table_header = find_table_header(table)
        if table_header is None and max(map(len, table), default=0) != width:
            continue  # an unrelated table (signatures, contacts, ...)
        heading = _heading_before(content, k)
        if heading is not None:
            rows.append([heading] + [""] * (width - 1))
        if table_header is None:
            rows.extend(list(row) for row in table)
        else:
            rows.extend(
                _remap(row, table_header.columns, header.columns, width)
                for row in table[table_header.row + 1 :]
            )
    before = content.paragraphs[: content.table_positions[first]]
    title, doc_number = plan_header_from_lines(
        line
        for paragraph in before
        for line in paragraph.splitlines()
        if not _SECTION_PARAGRAPH.match(line)
    )
    if not title:
        above = (" ".join(cell for cell in row if cell) for row in header_rows[: header.row])
        title = next((line for line in above if line), "")
    title = title or path.stem
    year = year_in(title) or year_in(doc_number or "")
    plan = parse_table_rows(rows, title=title, source=path.name, default_year=year)
    plan.doc_number = doc_number
    return plan


def _remap(
    row: list[str], columns: dict[str, int], target: dict[str, int], width: int
) -> list[str]:
    """Move the cells of a row from one table's column layout to another's."""
    if columns == target or sum(1 for cell in row if cell) <= 1:
        return list(row)  # same layout, or a heading row
    moved = [""] * width
    for role, column in columns.items():
        if role in target and column < len(row):
            moved[target[role]] = row[column]
    return moved


def _heading_before(content: DocxContent, k: int) -> str | None:
    """The section heading paragraph right before table k (after table k - 1), if any."""
    position = content.table_positions[k]
    previous_end = content.table_positions[k - 1] if k > 0 else 0
    if position == 0 or (k > 0 and position <= previous_end):
        return None
    paragraph = content.paragraphs[position - 1]
    if "\n" in paragraph or not _SECTION_PARAGRAPH.match(paragraph):
        return None
    return paragraph
