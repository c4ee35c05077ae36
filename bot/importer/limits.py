"""How big a plan file may be, and how much it may hold: the importer's limits, in one place.

A hostile or broken file (a .docx that unpacks to a million paragraphs, a YAML whose aliases
expand to a million targets, YAML nested 100,000 deep, a 50 MB text file, a single 50 MB line)
must be refused within seconds, not parsed for minutes. Each limit is checked as early and as
cheaply as it can be: the file size with ``stat`` before reading, the unpacked sizes of a .docx
from its zip directory and the paragraph count from a byte scan of ``word/document.xml`` before
python-docx parses it, YAML depth and alias expansion while the YAML is composed, item counts
before any item's text is read for units, deadlines and targets. The counts are generous for
real plans (a large one has a few hundred items in a few thousand lines) and small enough that
the largest plan inside them imports in seconds (``bench/importer_limits.py``).

A file over a limit is refused with a ``PlanFormatError`` whose one-line message names the file
and the limit (keys ``importer.limit.*``), e.g. ``plan.docx：解压后超过 50 MB 上限，未导入。``;
nothing is written.
"""

from __future__ import annotations

import stat
from pathlib import Path

from bot.importer.model import ParsedPlan, PlanFormatError

MB = 1024 * 1024

MAX_TEXT_FILE_BYTES = 2 * MB
"""A .txt, .text, .md, .tsv, .yaml or .yml file on disk."""
MAX_DOCX_FILE_BYTES = 20 * MB
"""A .docx file on disk (pictures make Word files large; only the text is read)."""
MAX_DOCX_UNPACKED_BYTES = 50 * MB
"""All parts of a .docx together, unpacked (python-docx loads every part it can reach)."""
MAX_DOCX_XML_BYTES = 20 * MB
"""The XML parts of a .docx together, unpacked (python-docx parses these into trees)."""
MAX_DOCX_BLOCKS = 50_000
"""Paragraphs, tables, table rows and cells in ``word/document.xml``."""
MAX_TABLE_COLUMNS = 64
"""Grid columns of one table row, merged cells counted by the columns they span (Word: 63)."""
MAX_TEXT_CHARS = 500_000
"""Characters of text in the whole file: a .docx counts its paragraphs and cells (a cell
merged down several rows once per row), YAML its scalars with each alias expanded."""
MAX_LINES = 20_000
"""Lines of a text file, or lines of the paragraphs of a .docx (outside tables)."""
MAX_LINE_CHARS = 10_000
"""Characters in one line of a text file, one .docx paragraph or table cell, one paragraph
joined from wrapped lines."""
MAX_ITEM_CHARS = 10_000
"""Characters in one item's text: its numbered paragraph and the paragraphs up to the next
item, or its task and measures in a table, or its title and body in YAML."""
MAX_TITLE_CHARS = 500
"""Characters in the title of the plan, a section or an item."""
MAX_ITEMS = 2_000
"""Work items in one plan."""
MAX_SECTIONS = 2_000
"""Sections in one plan."""
MAX_YAML_DEPTH = 32
"""Nesting of YAML collections and scalars (a plan needs 8: top, sections, section, items,
item, targets, target, value)."""
MAX_YAML_NODES = 100_000
"""YAML nodes, each alias counted as the nodes it stands for."""


def megabytes(size: int) -> str:
    """A byte count as the messages show it: ``20 MB``."""
    return f"{size / MB:g} MB"


def check_file_size(path: Path, limit: int) -> None:
    """Refuse a file larger than ``limit`` bytes before reading it (``stat`` only)."""
    try:
        info = path.stat()
    except OSError:
        return  # the reader reports a missing or unreadable file in its own words
    if stat.S_ISREG(info.st_mode) and info.st_size > limit:
        raise PlanFormatError("importer.limit.file_size", file=path.name, limit=megabytes(limit))


def read_at_most(path: Path, limit: int) -> bytes:
    """The bytes of a file, refused when there are more than ``limit`` of them.

    ``stat`` answers first; the read itself stops after ``limit + 1`` bytes, so a file that
    grows while it is read, or a device such as /dev/zero behind a plan's name, is bounded too.
    """
    check_file_size(path, limit)
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise PlanFormatError("importer.limit.file_size", file=path.name, limit=megabytes(limit))
    return data


def check_text(text: str, file: str) -> None:
    """Refuse text with too many lines, an overlong line, or too many characters."""
    if text.count("\n") >= MAX_LINES:
        raise PlanFormatError("importer.limit.lines", file=file, limit=MAX_LINES)
    for number, line in enumerate(text.split("\n"), start=1):
        if len(line) > MAX_LINE_CHARS:
            raise PlanFormatError(
                "importer.limit.line_length", file=file, line=number, limit=MAX_LINE_CHARS
            )
    if len(text) > MAX_TEXT_CHARS:
        raise PlanFormatError("importer.limit.text", file=file, limit=MAX_TEXT_CHARS)


def paragraph_too_long(text: str, file: str) -> PlanFormatError:
    """The error for a paragraph (a .docx paragraph, or lines joined into one) over the limit."""
    return PlanFormatError(
        "importer.limit.paragraph_length", file=file, limit=MAX_LINE_CHARS, start=_start(text)
    )


def cell_too_long(text: str, file: str) -> PlanFormatError:
    """The error for a table cell over the limit."""
    return PlanFormatError(
        "importer.limit.cell_length", file=file, limit=MAX_LINE_CHARS, start=_start(text)
    )


def check_item_length(chars: int, label: str, file: str) -> None:
    """Refuse an item whose text is too long to be read for units, deadlines and targets."""
    if chars > MAX_ITEM_CHARS:
        raise PlanFormatError(
            "importer.limit.item_length", file=file, item=label, limit=MAX_ITEM_CHARS
        )


def check_item_count(count: int, file: str) -> None:
    """Refuse a plan with more than MAX_ITEMS items."""
    if count > MAX_ITEMS:
        raise PlanFormatError("importer.limit.items", file=file, limit=MAX_ITEMS)


def check_section_count(count: int, file: str) -> None:
    """Refuse a plan with more than MAX_SECTIONS sections."""
    if count > MAX_SECTIONS:
        raise PlanFormatError("importer.limit.sections", file=file, limit=MAX_SECTIONS)


def check_plan(plan: ParsedPlan, file: str) -> None:
    """Refuse a parsed plan over the item, section, title or item text limits.

    Every reader checks the counts early, before the expensive part; this is the last word,
    the same for every kind of file.
    """
    check_item_count(len(plan.items), file)
    check_section_count(len(plan.sections), file)
    if len(plan.title) > MAX_TITLE_CHARS:
        raise PlanFormatError("importer.limit.title_length.plan", file=file, limit=MAX_TITLE_CHARS)
    for section in plan.sections:
        if len(section.title) > MAX_TITLE_CHARS:
            raise PlanFormatError(
                "importer.limit.title_length.section",
                file=file,
                section=section.number,
                limit=MAX_TITLE_CHARS,
            )
    for item in plan.items:
        if len(item.title) > MAX_TITLE_CHARS:
            raise PlanFormatError(
                "importer.limit.title_length.item",
                file=file,
                item=item.label,
                limit=MAX_TITLE_CHARS,
            )
        if len(item.subsection or "") > MAX_TITLE_CHARS:
            raise PlanFormatError(
                "importer.limit.title_length.subsection",
                file=file,
                item=item.label,
                limit=MAX_TITLE_CHARS,
            )
        check_item_length(len(item.title) + len(item.body), item.label, file)


def _start(text: str) -> str:
    """The first words of a long text, to find it by in the document."""
    words = " ".join(text[:40].split())
    return words[:20]
