"""Plans given as a table: one work item per row.

The table comes from a .docx (``readers.read_docx``) or from tab-separated text (a sheet
saved as "Text (Tab delimited)", read with ``read_text_file``).

Header row
    ``find_table_header`` looks at the first 10 rows for one whose cells name columns.
    A cell names a column when, with all whitespace and a trailing parenthetical such as
    ``（年月）`` or a trailing colon removed, it is exactly one of:

    ========  ================================================================
    number    序号, 编号
    section   所属板块, 板块, 类别, 工作类别, 领域
    task      任务, 工作任务, 重点任务, 任务内容, 工作内容, 重点工作, 工作事项
    body      具体措施, 工作措施, 主要措施
    lead      牵头单位, 责任单位, 负责单位, 牵头部门, 责任部门, 牵头
    support   配合单位, 协办单位, 配合部门, 参与单位, 协同单位, 配合
    deadline  完成时限, 时间节点, 完成时间, 时限, 完成期限
    ========  ================================================================

    A row is the header when it names the task column and at least one other. When the next
    row only holds column names or repeats the cell above (a two-row header such as 责任单位
    over 牵头单位 | 配合单位), its names are merged in and the data starts after it. The first
    column with a given name wins. Later rows that are a header again (a header repeated on
    each page of a pasted table) are skipped.

Rows
    * An empty row, or a row whose only text starts with 注/备注/说明, is skipped.
    * A heading row has exactly one non-empty cell, whose text is a section heading
      ``一、xxx`` (also ``第一部分 xxx``), a subsection heading ``（一）xxx``, or any other
      non-numeric text in the number, section or first column (a heading typed across a
      merged row). A section heading starts a new section; a subsection heading sets
      ``ParsedItem.subsection`` for the following items of that section.
    * A continuation row has an empty task cell, or the same task text as the item above
      (a task cell merged over several rows), and an empty or equal number cell. Its
      measures are appended to the item's body, its units added to the item's units and the
      later of the two deadlines kept.
    * Every other row with a task is an item.

Sections
    When a section column exists, its distinct values, in order of first appearance, become
    the sections (an empty cell keeps the section of the row above); heading rows also
    start sections. A value or heading like ``一、xxx`` gives the label ``一`` and the title
    ``xxx``; otherwise the label is the section's running number. Items before any section
    go to an implicit section titled after the plan. Sections that end up without items are
    dropped; sections are numbered 1, 2, ... in order.

Items
    * Number: the number cells (or, without a number column, a leading ``1.``/``1、``/``（1）``
      on the task text) when every item has one, as a positive integer, and they are all
      different; the label is then the number. Otherwise items are numbered 1, 2, ... in
      table order, and the label is ``<section label>.<number in the cell>`` when the cell
      holds a number (numbering restarting in each section), else the running number.
    * Title: the task text (without its leading number) up to the first 。；; or line
      break, without trailing punctuation; body: the rest of the task text, then the
      measures column, joined with a line break.
    * Units: the lead and support cells split with ``responsibility.split_units`` (on
      、，,；;/, spaces and line breaks outside brackets, so ``各县（市、区）教育局`` stays
      whole); duplicates are dropped. A cell written as a note (``牵头单位：X；配合单位：Y``)
      is read with ``extract_responsibility``. When the lead column is named 责任单位,
      负责单位 or 责任部门 and there is no support column, the first unit leads and the
      others support (as ``responsibility`` does for text). When both unit cells are empty,
      responsibility notes in the task text (``（牵头单位：…）``, ``（X牵头，Y配合）``) give
      the units; such notes are removed from the task text either way.
    * Deadline: ``extract_deadline`` on the deadline cell (with ``default_year``), else a
      full date in it (``parse_cn_date``: 2023年6月30日, 2023-06-30, 2023.6.30); when the
      cell is empty or there is no deadline column, ``extract_deadline`` on the task and
      measures text. A cell such as 全年 or 长期 gives no deadline.
    * Targets: ``extract_targets`` on the task and measures text, each line ended with 。
      when it has no end punctuation (``join_sentences``).

Tab-separated text
    ``looks_like_tsv`` is true when more than half of the non-empty lines contain a tab
    and a header row is found. Fields follow the spreadsheet convention: a field may be
    quoted with ``"`` to hold tabs or line breaks. Lines without tabs before the header give
    the plan title (``plan_header_from_lines``).

Limits (``limits``)
    A cell of tab-separated text may hold at most 10,000 characters, an item (its task and
    measures, over all its rows) as many; a table may give at most 2,000 items and 2,000
    sections. The counts are checked row by row, as the items are found.

Title lines (``plan_header_from_lines``)
    Among the lines before a table, ``附件``/``附件1`` lines are skipped; the first line
    holding a document number (``江教办〔2023〕5号``, at most 40 characters) is the document
    number; the first other line is the title, or the X of ``关于印发《X》的通知`` when it
    is such a notice title. The year for deadlines without one is the first 20xx in the
    title, else in the document number.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date

from bot.importer import limits
from bot.importer.deadlines import extract_deadline, parse_cn_date
from bot.importer.model import ParsedItem, ParsedPlan, ParsedSection, PlanFormatError
from bot.importer.responsibility import extract_responsibility, split_units
from bot.importer.targets import extract_targets

HEADER_WORDS: dict[str, tuple[str, ...]] = {
    "number": ("序号", "编号"),
    "section": ("所属板块", "板块", "类别", "工作类别", "领域"),
    "task": ("任务", "工作任务", "重点任务", "任务内容", "工作内容", "重点工作", "工作事项"),
    "body": ("具体措施", "工作措施", "主要措施"),
    "lead": ("牵头单位", "责任单位", "负责单位", "牵头部门", "责任部门", "牵头"),
    "support": ("配合单位", "协办单位", "配合部门", "参与单位", "协同单位", "配合"),
    "deadline": ("完成时限", "时间节点", "完成时间", "时限", "完成期限"),
}
_ROLE_OF_WORD = {word: role for role, words in HEADER_WORDS.items() for word in words}
_HEADER_SCAN_ROWS = 10

_CN_NUMERAL = "一二三四五六七八九十百零〇"
_SECTION_HEADING = re.compile(
    rf"^(?:(?P<label>[{_CN_NUMERAL}]+)\s*[、.．]|第(?P<part>[{_CN_NUMERAL}]+)(?:部分|板块|章))"
    r"[\s:：]*(?P<title>.+)$",
    re.S,
)
_SUBSECTION_HEADING = re.compile(rf"^[（(](?P<label>[{_CN_NUMERAL}]+)[）)]\s*(?P<title>.+)$", re.S)
_NOTE_ROW = re.compile(r"^(?:备注|注|说明)\s*\d*\s*[:：]")
_ITEM_NUMBER = re.compile(r"^\s*[（(]?\s*(\d+)\s*[）)]?\s*[.．、]?\s*$")
_LEADING_NUMBER = re.compile(r"^\s*(?:(\d+)\s*[.．、](?!\d)|[（(]\s*(\d+)\s*[）)])\s*")
_SENTENCE_END = re.compile(r"[。；;\n]")
_DOC_NUMBER = re.compile(r"[〔\[［(（]\s*\d{4}\s*[〕\]］)）]\s*\d+\s*号")
_YEAR = re.compile(r"(?<!\d)(20\d{2})(?!\d)")
_ATTACHMENT = re.compile(r"^附\s*件\s*\d*\s*[:：]?$")
_NOTICE_TITLE = re.compile(r"关于(?:印发|下发|转发|发布|印送)\s*《([^《》]+)》")
_TRAILING_PUNCT = "。；;，,：:、 \t"
_SENTENCE_PUNCT = frozenset("。；;！？!?.")
# Lead-column names that list every responsible unit, the lead first.
_RESPONSIBLE_WORDS = frozenset(("责任单位", "负责单位", "责任部门"))


@dataclass(frozen=True)
class TableHeader:
    """Where a table's header is and which column holds what."""

    row: int  # index of the (last) header row; data starts at row + 1
    columns: dict[str, int]  # role ("number", "task", "lead", ...) -> column index
    names: dict[str, str] = field(default_factory=dict)  # role -> the header's own word


def find_table_header(rows: Sequence[Sequence[str]]) -> TableHeader | None:
    """Find the header row among the first rows of a table, or None when there is none."""
    for index, row in enumerate(rows[:_HEADER_SCAN_ROWS]):
        roles = _row_roles(row)
        if "task" not in roles.values() or len(roles) < 2:
            continue
        words = {column: _header_word(row[column]) for column in roles}
        last = index
        if index + 1 < len(rows) and _is_sub_header(rows[index + 1], row):
            sub_roles = _row_roles(rows[index + 1])
            roles.update(sub_roles)
            words.update({column: _header_word(rows[index + 1][column]) for column in sub_roles})
            last = index + 1
        columns: dict[str, int] = {}
        for column in sorted(roles):
            columns.setdefault(roles[column], column)
        names = {role: words[column] for role, column in columns.items()}
        return TableHeader(row=last, columns=columns, names=names)
    return None


def parse_table_rows(
    rows: Sequence[Sequence[str]],
    *,
    title: str,
    source: str = "",
    default_year: int | None = None,
) -> ParsedPlan:
    """Turn the rows of a plan table (header included) into a ParsedPlan."""
    name = source or "table"
    header = find_table_header(rows)
    if header is None:
        raise PlanFormatError("importer.table.no_header", file=name)
    builder = _Builder(
        title=title,
        columns=header.columns,
        default_year=default_year,
        lead_first=header.names.get("lead") in _RESPONSIBLE_WORDS
        and "support" not in header.columns,
    )
    for row in rows[header.row + 1 :]:
        builder.add_row(list(row))
        limits.check_item_count(len(builder.drafts), name)
        limits.check_section_count(len(builder.sections), name)
        if builder.drafts:
            draft = builder.drafts[-1]
            label = draft.number_text or str(len(builder.drafts))
            limits.check_item_length(draft.chars, label, name)
    plan = builder.finish()
    if not plan.items:
        raise PlanFormatError("importer.table.no_rows", file=name)
    return plan


def looks_like_tsv(text: str, *, source: str = "") -> bool:
    """Tell whether text is a tab-separated plan table (mostly tab lines and a header)."""
    lines = [line for line in text.splitlines() if line.strip()]
    with_tabs = sum(1 for line in lines if "\t" in line)
    if not lines or with_tabs * 2 <= len(lines):
        return False
    return find_table_header(split_tsv(text, source=source)) is not None


def split_tsv(text: str, *, source: str = "") -> list[list[str]]:
    """Split tab-separated text into rows of stripped cells (spreadsheet quoting allowed)."""
    reader = csv.reader(io.StringIO(text), delimiter="\t", quotechar='"')
    rows: list[list[str]] = []
    row_start = 0  # lines read before the row being read
    try:
        for row in reader:
            rows.append([_clean(cell) for cell in row])
            for cell in rows[-1]:
                if len(cell) > limits.MAX_LINE_CHARS:
                    raise limits.cell_too_long(cell, source or "table")
            row_start = reader.line_num
    except csv.Error as exc:  # a quoted cell over csv's own limit (131,072 characters)
        first_line = text.split("\n", row_start + 1)[row_start]
        raise limits.cell_too_long(first_line, source or "table") from exc
    return rows


def parse_tsv_text(
    text: str, *, source: str = "", default_title: str = "", default_year: int | None = None
) -> ParsedPlan:
    """Parse a tab-separated plan table; title lines may precede the header row."""
    rows = split_tsv(text, source=source)
    header = find_table_header(rows)
    before = [" ".join(cell for cell in row if cell) for row in rows[: header.row if header else 0]]
    title, doc_number = plan_header_from_lines(before)
    title = title or default_title
    year = default_year or year_in(title) or year_in(doc_number or "")
    plan = parse_table_rows(rows, title=title, source=source, default_year=year)
    plan.doc_number = doc_number
    return plan


def plan_header_from_lines(lines: Iterable[str]) -> tuple[str, str | None]:
    """Return (title, doc number) from the lines before a plan table."""
    title = ""
    doc_number: str | None = None
    for raw in lines:
        line = raw.strip()
        if not line or _ATTACHMENT.match(line):
            continue
        if doc_number is None and _DOC_NUMBER.search(line) and len(line) <= 40:
            doc_number = line
        elif not title:
            notice = _NOTICE_TITLE.search(line)
            title = notice.group(1).strip() if notice else line
    return title, doc_number


def year_in(text: str) -> int | None:
    """Return the first year (20xx) written in text, or None."""
    match = _YEAR.search(text)
    return int(match.group(1)) if match else None


def join_sentences(parts: Iterable[str]) -> str:
    """Join texts, one sentence or more per line, ending each line with 。 when it has no
    end punctuation (so a target extractor never reads two lines as one sentence)."""
    lines = [line.strip() for part in parts for line in part.splitlines() if line.strip()]
    return "\n".join(line if line[-1] in _SENTENCE_PUNCT else line + "。" for line in lines)


def split_title(text: str) -> tuple[str, str]:
    """Split task text into its first sentence (up to 。；; or a line break) and the rest."""
    text = text.strip()
    match = _SENTENCE_END.search(text)
    if match is None:
        return text.rstrip(_TRAILING_PUNCT), ""
    title = text[: match.start()].strip().rstrip(_TRAILING_PUNCT)
    rest = text[match.end() :].strip()
    if not title:
        return rest.rstrip(_TRAILING_PUNCT), ""
    return title, rest


def _clean(cell: str) -> str:
    return "\n".join(line.strip() for line in cell.strip().splitlines() if line.strip())


def _header_word(cell: str) -> str:
    word = re.sub(r"\s+", "", cell)
    word = re.sub(r"[（(][^（()）]*[）)]$", "", word)
    return word.rstrip(":：*")


def _row_roles(row: Sequence[str]) -> dict[int, str]:
    """Column index -> role for the cells of row that name a column."""
    roles: dict[int, str] = {}
    for column, cell in enumerate(row):
        role = _ROLE_OF_WORD.get(_header_word(cell))
        if role is not None:
            roles[column] = role
    return roles


def _is_sub_header(row: Sequence[str], above: Sequence[str]) -> bool:
    """A second header row: only column names, or the text of the cell above (merged)."""
    roles = _row_roles(row)
    if not roles:
        return False
    for column, cell in enumerate(row):
        if not cell or column in roles:
            continue
        if column >= len(above) or cell != above[column]:
            return False
    return True


def _heading_kind(text: str, column: int, columns: dict[str, int]) -> str | None:
    """'section' or 'subsection' when a row's only text is a heading, else None."""
    if _SUBSECTION_HEADING.match(text):
        return "subsection"
    if _SECTION_HEADING.match(text):
        return "section"
    if column == columns.get("task") or _ITEM_NUMBER.match(text):
        return None
    if column in (columns.get("number"), columns.get("section"), 0):
        return "section"
    return None


def _split_heading(text: str, pattern: re.Pattern[str]) -> tuple[str, str]:
    """(label, title) of a heading; label "" when the text has no numbering."""
    match = pattern.match(text)
    if match is None:
        return "", text.strip().rstrip(_TRAILING_PUNCT)
    label = match.group("label") or match.groupdict().get("part") or ""
    return label, match.group("title").strip().rstrip(_TRAILING_PUNCT)


def _parse_number(text: str) -> int | None:
    match = _ITEM_NUMBER.match(text)
    return int(match.group(1)) if match else None


@dataclass
class _Draft:
    section_key: str
    subsection: str | None
    number_text: str
    task_text: str
    title: str
    body_parts: list[str]
    lead_units: list[str]
    support_units: list[str]
    deadline: date | None
    target_text: list[str]
    chars: int = 0  # of the task and measures, for the item length limit


@dataclass
class _Builder:
    title: str
    columns: dict[str, int]
    default_year: int | None
    lead_first: bool = False  # a 责任单位 column and no support column: the first unit leads
    sections: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> label, title
    drafts: list[_Draft] = field(default_factory=list)
    section_key: str | None = None
    subsection: str | None = None

    def cell(self, row: list[str], role: str) -> str:
        column = self.columns.get(role)
        if column is None or column >= len(row):
            return ""
        return _clean(row[column])

    def add_row(self, row: list[str]) -> None:
        row = [_clean(cell) for cell in row]
        filled = [(column, cell) for column, cell in enumerate(row) if cell]
        if not filled:
            return
        texts = {cell for _, cell in filled}
        if len(texts) == 1 and _NOTE_ROW.match(filled[0][1]):
            return
        if len(texts) == 1:
            kind = _heading_kind(filled[0][1], filled[0][0], self.columns)
            if kind is not None:
                self.start_heading(filled[0][1], kind)
                return
        roles = _row_roles(row)
        if "task" in roles.values() and len(roles) >= 2:
            return  # a repeated header
        section_value = self.cell(row, "section")
        if section_value:
            self.start_section(section_value)
        self.add_item(row)

    def start_heading(self, text: str, kind: str) -> None:
        if kind == "subsection":
            self.subsection = _split_heading(text, _SUBSECTION_HEADING)[1]
        else:
            self.start_section(text)

    def start_section(self, text: str) -> None:
        label, title = _split_heading(text, _SECTION_HEADING)
        key = title
        if key != self.section_key:
            self.subsection = None
        self.sections.setdefault(key, (label, title))
        self.section_key = key

    def add_item(self, row: list[str]) -> None:
        task = self.cell(row, "task")
        number_text = self.cell(row, "number")
        measures = self.cell(row, "body")
        lead, support = self.units(row)
        deadline_cell = self.cell(row, "deadline")
        previous = self.drafts[-1] if self.drafts else None
        if (
            previous is not None
            and (not task or task == previous.task_text)
            and (not number_text or number_text == previous.number_text)
        ):
            self.extend(previous, measures, lead, support, deadline_cell)
            return
        if not task:
            return  # nothing to attach the row to
        text = task
        leading = _LEADING_NUMBER.match(task)
        if leading is not None:
            text = task[leading.end() :]
            if "number" not in self.columns:
                number_text = leading.group(1) or leading.group(2)
        text, noted_lead, noted_support = extract_responsibility(text)
        if not lead and not support:
            lead, support = noted_lead, noted_support
        title, rest = split_title(text)
        target_text = [text, measures] if measures else [text]
        if self.section_key is None:
            self.sections.setdefault("", ("", self.title))
            self.section_key = ""
        self.drafts.append(
            _Draft(
                section_key=self.section_key,
                subsection=self.subsection,
                number_text=number_text,
                task_text=task,
                title=title,
                body_parts=[part for part in (rest, measures) if part],
                lead_units=lead,
                support_units=support,
                deadline=self.deadline(deadline_cell, join_sentences(target_text)),
                target_text=target_text,
                chars=sum(map(len, target_text)),
            )
        )

    def units(self, row: list[str]) -> tuple[list[str], list[str]]:
        """The lead and support units of a row's unit cells."""
        lead_cell = self.cell(row, "lead").replace("\n", "、")
        support_cell = self.cell(row, "support").replace("\n", "、")
        lead: list[str] = []
        support: list[str] = []
        for cell, role in ((lead_cell, "lead"), (support_cell, "support")):
            if not cell:
                continue
            _, noted_lead, noted_support = extract_responsibility(cell)
            if noted_lead or noted_support:  # a cell such as 牵头单位：X；配合单位：Y
                found_lead, found_support = noted_lead, noted_support
            elif role == "support":
                found_lead, found_support = [], split_units(cell)
            elif self.lead_first:
                units = split_units(cell)
                found_lead, found_support = units[:1], units[1:]
            else:
                found_lead, found_support = split_units(cell), []
            lead.extend(unit for unit in found_lead if unit not in lead)
            support.extend(unit for unit in found_support if unit not in support)
        return lead, [unit for unit in support if unit not in lead]

    def extend(
        self, draft: _Draft, measures: str, lead: list[str], support: list[str], deadline: str
    ) -> None:
        if measures and measures not in draft.body_parts:
            draft.body_parts.append(measures)
            draft.target_text.append(measures)
            draft.chars += len(measures)
        draft.lead_units.extend(unit for unit in lead if unit not in draft.lead_units)
        draft.support_units.extend(
            unit
            for unit in support
            if unit not in draft.support_units and unit not in draft.lead_units
        )
        found = self.deadline(deadline, measures)
        if found is not None and (draft.deadline is None or found > draft.deadline):
            draft.deadline = found

    def deadline(self, cell: str, text: str) -> date | None:
        if not cell:
            return extract_deadline(text, self.default_year) if text else None
        return extract_deadline(cell, self.default_year) or parse_cn_date(cell)

    def finish(self) -> ParsedPlan:
        used = [key for key in self.sections if any(d.section_key == key for d in self.drafts)]
        sections: list[ParsedSection] = []
        section_of: dict[str, ParsedSection] = {}
        for position, key in enumerate(used, start=1):
            label, title = self.sections[key]
            section = ParsedSection(number=position, label=label or str(position), title=title)
            sections.append(section)
            section_of[key] = section
        numbers = [_parse_number(draft.number_text) for draft in self.drafts]
        own_numbers = all(n is not None and n > 0 for n in numbers) and len(set(numbers)) == len(
            numbers
        )
        items: list[ParsedItem] = []
        for position, (draft, own) in enumerate(zip(self.drafts, numbers, strict=True), 1):
            section = section_of[draft.section_key]
            if own_numbers and own is not None:
                number, label = own, str(own)
            elif own is not None and self.sections[draft.section_key][0]:
                number, label = position, f"{section.label}.{own}"
            else:
                number, label = position, str(position)
            items.append(
                ParsedItem(
                    number=number,
                    label=label,
                    section=section.number,
                    title=draft.title,
                    body="\n".join(draft.body_parts),
                    subsection=draft.subsection,
                    lead_units=draft.lead_units,
                    support_units=draft.support_units,
                    deadline=draft.deadline,
                    targets=extract_targets(join_sentences(draft.target_text)),
                )
            )
        return ParsedPlan(title=self.title, sections=sections, items=items)
