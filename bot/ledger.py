"""The ledger (台账): the Excel workbook an office files, written by openpyxl in write-only mode."""

from __future__ import annotations

import contextlib
import os
import re
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from functools import cache
from itertools import chain
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, Cell
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.cell_range import CellRange

from bot.reporting import EvidenceRow, HistoryRow, LedgerRow

STATUS_FILLS = {
    "done": "C8E6C9",
    "green": "E8F5E9",
    "amber": "FFE082",
    "red": "EF9A9A",
    "none": "EEEEEE",
}
HEADER_FILL = "D9E1F2"
MIN_WIDTH = 6
MAX_WIDTH = 60
MAX_CELL_CHARS = 32_767  # Excel's limit for one cell's text
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet may read as a formula

PERCENT_FORMAT = "0%"
DATE_FORMAT = "yyyy-mm-dd"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm"


@dataclass(frozen=True)
class _Texts:
    """The words of the workbook in one locale."""

    ledger_sheet: str
    history_sheet: str
    title: str  # with {plan}
    generated: str  # with {at}
    ledger_headers: tuple[str, ...]
    history_headers: tuple[str, ...]
    statuses: dict[str, str]  # ledger status key -> words
    report_statuses: dict[str, str]  # report status -> words
    sources: dict[str, str]
    superseded: str
    withdrawn: str
    reopened: str
    no_deadline: str  # 完成时限 of an item that has none
    remark_joiner: str
    font: str  # what the office's spreadsheet shows the text in
    evidence_sheet: str = ""
    evidence_headers: tuple[str, ...] = ()
    kinds: dict[str, str] | None = None  # evidence kind -> words
    of_item: str = ""  # 进展时间 of a file filed under the item, not a report


_TEXTS = {
    "zh-CN": _Texts(
        ledger_sheet="台账",
        history_sheet="进展记录",
        title="{plan} 工作台账",
        generated="生成时间：{at}",
        ledger_headers=(
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
        ),
        history_headers=(
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
        ),
        statuses={
            "done": "已完成",
            "green": "正常",
            "amber": "预警",
            "red": "滞后",
            "none": "未报送",
        },
        report_statuses={
            "not_started": "未启动",
            "in_progress": "推进中",
            "delayed": "滞后",
            "done": "已完成",
        },
        sources={"chat": "聊天", "cli": "代录", "voice": "语音"},
        superseded="已被更正",
        withdrawn="已撤回",
        reopened="重新打开（交办人退回）",
        no_deadline="未设定",
        remark_joiner="；",
        font="宋体",
        evidence_sheet="佐证材料",
        evidence_headers=(
            "序号",
            "工作任务",
            "进展时间",
            "完成率",
            "进展说明",
            "提交人",
            "提交时间",
            "类型",
            "文件名",
            "大小",
            "SHA-256",
            "备注",
        ),
        kinds={"photo": "照片", "document": "文件", "video": "视频"},
        of_item="（事项）",
    ),
    "en": _Texts(
        ledger_sheet="Ledger",
        history_sheet="History",
        title="{plan} — work ledger",
        generated="Generated: {at}",
        ledger_headers=(
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
        ),
        history_headers=(
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
        ),
        statuses={
            "done": "done",
            "green": "on track",
            "amber": "at risk",
            "red": "behind",
            "none": "no report",
        },
        report_statuses={
            "not_started": "not started",
            "in_progress": "in progress",
            "delayed": "behind",
            "done": "done",
        },
        sources={"chat": "chat", "cli": "entered by admin", "voice": "voice"},
        superseded="corrected",
        withdrawn="withdrawn",
        reopened="reopened (sent back by whoever handed it down)",
        no_deadline="not set",
        remark_joiner="; ",
        font="Calibri",
        evidence_sheet="Evidence",
        evidence_headers=(
            "No.",
            "Work item",
            "Report time",
            "Completion",
            "Progress",
            "Sent by",
            "Sent",
            "Kind",
            "File",
            "Size",
            "SHA-256",
            "Remarks",
        ),
        kinds={"photo": "photo", "document": "document", "video": "video"},
        of_item="(the item)",
    ),
}

# Which ledger columns (0-based) wrap their text: 工作任务 所属板块 牵头单位 责任人 量化目标 当前值
# 最新进展. Other text wraps where it has several lines.
_LEDGER_WRAP = frozenset({1, 2, 3, 4, 6, 7, 8})

_THIN = Side(style="thin", color="A6A6A6")
_BORDER = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_TOP = Alignment(vertical="top")
_TOP_WRAP = Alignment(vertical="top", wrap_text=True)
_CENTER_TOP = Alignment(horizontal="center", vertical="top")


def _local(moment: datetime, tz: tzinfo) -> datetime:
    """A naive datetime in tz, to the second (Excel has no time zones); naive input is kept."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(tz).replace(tzinfo=None)
    return moment.replace(microsecond=0)


def _clean(text: str) -> str:
    """Text Excel accepts: no control characters, at most 32,767 characters."""
    if not text.isprintable():
        text = ILLEGAL_CHARACTERS_RE.sub("", text)
    return text[:MAX_CELL_CHARS]


@cache
def _wide_characters() -> re.Pattern[str]:
    """A pattern matching every wide or full-width character (east Asian width W or F)."""
    ranges: list[str] = []
    start: int | None = None
    for point in range(0x40000 + 1):  # nothing past plane 3 is wide
        wide = point <= 0x3FFFF and unicodedata.east_asian_width(chr(point)) in "WF"
        if wide and start is None:
            start = point
        elif not wide and start is not None:
            ranges.append(f"{re.escape(chr(start))}-{re.escape(chr(point - 1))}")
            start = None
    return re.compile(f"[{''.join(ranges)}]")


def display_width(text: str, limit: int | None = None) -> int:
    """The widest line of text in column units, wide (CJK) characters counting 2.

    With a limit, measuring stops once a line is known to be wider than it.
    """
    widest = 0
    for line in text.split("\n"):
        if limit is not None:
            line = line[: limit + 1]  # every character is at least 1 unit
        width = len(line)
        if not line.isascii():
            width += len(_wide_characters().findall(line))
        widest = max(widest, width)
        if limit is not None and widest > limit:
            break
    return widest


def column_width(texts: Iterable[str]) -> float:
    """A column width that fits the longest text, clamped to MIN_WIDTH..MAX_WIDTH."""
    longest = 0
    seen: set[str] = set()
    for text in texts:
        if text and text not in seen:
            seen.add(text)
            longest = max(longest, display_width(text, MAX_WIDTH))
            if longest + 2 >= MAX_WIDTH:
                break  # no need to read on: the column is as wide as it gets
    return float(min(max(longest + 2, MIN_WIDTH), MAX_WIDTH))


@dataclass(frozen=True)
class _Look:
    """How a cell looks."""

    number_format: str | None = None
    fill: str | None = None
    bold: bool = False
    size: float = 11
    italic: bool = False
    grey: bool = False
    wrap: bool = False
    center: bool = False
    border: bool = True


class _Style:
    """One look, registered once; each cell written with it copies its style array."""

    __slots__ = ("_array", "_ws")

    def __init__(self, ws: Any, look: _Look, font: str) -> None:
        """Register the look's font, fill, border, alignment and number format with the book."""
        prototype = Cell(ws)
        prototype.font = Font(
            name=font,
            bold=look.bold,
            italic=look.italic,
            size=look.size,
            color="808080" if look.grey else None,
        )
        if look.fill is not None:
            prototype.fill = PatternFill(
                fill_type="solid", start_color=look.fill, end_color=look.fill
            )
        if look.border:
            prototype.border = _BORDER
        prototype.alignment = _CENTER_TOP if look.center else (_TOP_WRAP if look.wrap else _TOP)
        if look.number_format is not None:
            prototype.number_format = look.number_format
        self._ws = ws
        self._array = prototype._style  # assigning font= etc. per cell is a lookup each: slow

    def cell(self, value: Any = None, *, row: int = 1, column: int = 1) -> Cell:
        """A write-only cell in this style holding value (placed where it goes only when
        something refers to its place, such as a hyperlink)."""
        return _put(Cell(self._ws, row=row, column=column, style_array=self._array), value)


def _put(cell: Cell, value: Any) -> Cell:
    """Set a cell's value; text is always stored as text, never read as a formula."""
    if isinstance(value, str):
        # Cleaned first, then judged: "\x00=1+1" is stored as "=1+1" and needs the guard.
        value = _clean(value) or None
    if isinstance(value, str):
        cell.value = value
        cell.data_type = "s"  # "=..." would otherwise become a formula, "#N/A" an error
        # Excel's leading apostrophe: the text stays text even when someone edits the cell.
        cell.quotePrefix = value.startswith(FORMULA_PREFIXES)
    else:
        cell.value = value
        cell.quotePrefix = False
    return cell


def _number_cells(cells: Iterable[Cell], row: int) -> Iterator[Cell]:
    """Place ready-made cells in a row, for the write-only worksheet's writer."""
    for column, cell in enumerate(cells, 1):
        cell.row = row
        cell.column = column
        yield cell


def _prepare_sheet(
    ws: Any, widths: Sequence[float], *, header_row: int, last_row: int, columns: int
) -> None:
    """Column widths, frozen header, autofilter and print setup (before any row is written)."""
    if hasattr(ws, "_values_to_row"):
        # openpyxl converts each appended value by trying it as a plain value first, which for
        # a ready-made cell means raising and catching an exception: about a third of the time.
        ws._values_to_row = _number_cells
    for index, width in enumerate(widths, 1):
        ws.column_dimensions[get_column_letter(index)].width = width
    ws.freeze_panes = f"A{header_row + 1}"
    ws.auto_filter.ref = f"A{header_row}:{get_column_letter(columns)}{last_row}"
    ws.print_title_rows = f"1:{header_row}"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = "9"  # A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True


def _header(ws: Any, headers: Sequence[str], font: str) -> list[Cell]:
    """The header row: bold, filled, bordered."""
    style = _Style(ws, _Look(bold=True, fill=HEADER_FILL, center=True), font)
    return [style.cell(text) for text in headers]


def _percent(percent: int | None) -> float | None:
    """A completion percentage as the fraction Excel's "0%" format shows."""
    return None if percent is None else percent / 100


def _percent_text(percent: int | None) -> str:
    """How a percentage reads, for measuring its column."""
    return "" if percent is None else f"{percent}%"


@dataclass(frozen=True)
class PlanSheet:
    """Another plan's sheet in the same workbook (several plans at once, the tasks)."""

    sheet_name: str
    plan_title: str
    rows: Sequence[LedgerRow]


def _sheet_title(name: str) -> str:
    """A worksheet title Excel accepts: at most 31 characters, none of []:*?/\\."""
    cleaned = "".join("_" if ch in "[]:*?/\\" else ch for ch in name).strip("'")
    return cleaned[:31] or "_"


def _write_ledger_sheet(
    wb: Workbook,
    texts: _Texts,
    *,
    plan_title: str,
    rows: Sequence[LedgerRow],
    tz: tzinfo,
    generated_at: datetime,
    sheet_name: str | None = None,
) -> None:
    """A plan's sheet: title, generation time, header, one row per work item."""
    ws = wb.create_sheet(_sheet_title(sheet_name) if sheet_name else texts.ledger_sheet)
    headers = texts.ledger_headers
    columns = len(headers)
    header_row = 3

    measured: list[Callable[[LedgerRow], str]] = [
        lambda r: str(r.number),
        lambda r: r.title,
        lambda r: r.section,
        lambda r: r.lead_units,
        lambda r: r.owners,
        lambda r: "0000-00-00" if r.deadline else texts.no_deadline,
        lambda r: r.targets,
        lambda r: r.current,
        lambda r: r.latest,
        lambda r: _percent_text(r.percent),
        lambda r: texts.statuses.get(r.status, r.status),
        lambda r: "0000-00-00 00:00" if r.updated_at else "",
    ]
    widths = [
        column_width(chain([header], map(text, rows)))
        for header, text in zip(headers, measured, strict=True)
    ]
    _prepare_sheet(
        ws, widths, header_row=header_row, last_row=header_row + len(rows), columns=columns
    )
    last_column = get_column_letter(columns)
    ws.merged_cells.add(CellRange(f"A1:{last_column}1"))
    ws.merged_cells.add(CellRange(f"A2:{last_column}2"))
    ws.row_dimensions[1].height = 28

    title = _Style(ws, _Look(bold=True, size=16, center=True, border=False), texts.font)
    ws.append([title.cell(texts.title.format(plan=plan_title))])
    stamp = _local(generated_at, tz).strftime("%Y-%m-%d %H:%M")
    note = _Style(ws, _Look(grey=True, border=False), texts.font)
    ws.append([note.cell(texts.generated.format(at=stamp))])
    ws.append(_header(ws, headers, texts.font))

    centered = _Style(ws, _Look(center=True), texts.font)
    plain = _Style(ws, _Look(), texts.font)
    wrapped = _Style(ws, _Look(wrap=True), texts.font)
    day = _Style(ws, _Look(number_format=DATE_FORMAT, center=True), texts.font)
    share = _Style(ws, _Look(number_format=PERCENT_FORMAT, center=True), texts.font)
    moment = _Style(ws, _Look(number_format=DATETIME_FORMAT, center=True), texts.font)
    status_styles = {
        status: _Style(ws, _Look(fill=fill, center=True), texts.font)
        for status, fill in STATUS_FILLS.items()
    }

    def text_cell(index: int, value: str) -> Cell:
        """A text cell, wrapped in the long-text columns and wherever it has several lines."""
        wrap = index in _LEDGER_WRAP or "\n" in value
        return (wrapped if wrap else plain).cell(value)

    for row in rows:
        ws.append(
            [
                centered.cell(row.number),
                text_cell(1, row.title),
                text_cell(2, row.section),
                text_cell(3, row.lead_units),
                text_cell(4, row.owners),
                day.cell(row.deadline) if row.deadline else centered.cell(texts.no_deadline),
                text_cell(6, row.targets),
                text_cell(7, row.current),
                text_cell(8, row.latest),
                share.cell(_percent(row.percent)),
                status_styles.get(row.status, centered).cell(
                    texts.statuses.get(row.status, row.status)
                ),
                moment.cell(None if row.updated_at is None else _local(row.updated_at, tz)),
            ]
        )


def _remarks(report: HistoryRow, texts: _Texts) -> str:
    """备注: whether a report was corrected or withdrawn."""
    notes = []
    if report.kind == "reopen":
        notes.append(texts.reopened)
    if report.superseded:
        notes.append(texts.superseded)
    if report.withdrawn:
        notes.append(texts.withdrawn)
    return texts.remark_joiner.join(notes)


def _history_styles(ws: Any, font: str, *, faded: bool) -> list[_Style]:
    """The style of each history column, in grey italic for corrected or withdrawn reports."""
    looks = [
        _Look(number_format=DATETIME_FORMAT, center=True),
        _Look(center=True),
        _Look(wrap=True),
        _Look(),
        _Look(number_format=PERCENT_FORMAT, center=True),
        _Look(center=True),
        _Look(wrap=True),
        _Look(wrap=True),
        _Look(center=True),
        _Look(),
        _Look(),
    ]
    if faded:
        looks = [replace(look, italic=True, grey=True) for look in looks]
    return [_Style(ws, look, font) for look in looks]


def _write_history_sheet(
    wb: Workbook, texts: _Texts, *, history: Sequence[HistoryRow], tz: tzinfo
) -> None:
    """Sheet 2: every report, newest first."""
    ws = wb.create_sheet(texts.history_sheet)
    headers = texts.history_headers
    columns = len(headers)
    reports = sorted(history, key=lambda report: report.at, reverse=True)

    def status(report: HistoryRow) -> str:
        """The report's status in words."""
        if not report.status:
            return ""
        return texts.report_statuses.get(report.status, report.status)

    measured: list[Callable[[HistoryRow], str]] = [
        lambda r: "0000-00-00 00:00",
        lambda r: str(r.item),
        lambda r: r.item_title,
        lambda r: r.contact,
        lambda r: _percent_text(r.percent),
        status,
        lambda r: r.text,
        lambda r: r.values,
        lambda r: texts.sources.get(r.source, r.source),
        lambda r: r.entered_by or "",
        lambda r: _remarks(r, texts),
    ]
    widths = [
        column_width(chain([header], map(text, reports)))
        for header, text in zip(headers, measured, strict=True)
    ]
    _prepare_sheet(ws, widths, header_row=1, last_row=1 + len(reports), columns=columns)
    ws.append(_header(ws, headers, texts.font))

    # A write-only sheet writes a row out as it is appended, so one set of cells per look
    # serves every row: making 100,000 x 11 fresh cells costs more than writing them.
    normal = [style.cell() for style in _history_styles(ws, texts.font, faded=False)]
    faded = [style.cell() for style in _history_styles(ws, texts.font, faded=True)]
    for report in reports:
        values = (
            _local(report.at, tz),
            report.item,
            report.item_title,
            report.contact,
            _percent(report.percent),
            status(report),
            report.text,
            report.values,
            texts.sources.get(report.source, report.source),
            report.entered_by,
            _remarks(report, texts),
        )
        cells = faded if report.superseded or report.withdrawn else normal
        for cell, value in zip(cells, values, strict=True):
            _put(cell, value)
        ws.append(cells)


def _file_size(size: int) -> str:
    """A file size as people read it: 820 KB, 1.2 MB."""
    if size < 1024 * 1024:
        return f"{max(1, round(size / 1024))} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def _write_evidence_sheet(
    wb: Workbook, texts: _Texts, *, evidence: Sequence[EvidenceRow], tz: tzinfo
) -> None:
    """Sheet 3: every evidence file, by item and under its report; the file name links to
    the copy `duban export --evidence DIR` wrote."""
    ws = wb.create_sheet(texts.evidence_sheet)
    headers = texts.evidence_headers
    kinds = texts.kinds or {}
    rows = sorted(
        evidence,
        key=lambda e: (e.item, e.report_at is None, e.report_at or e.at, e.at, e.number),
    )

    def remarks(row: EvidenceRow) -> str:
        notes = [texts.superseded] if row.superseded else []
        if row.withdrawn:
            notes.append(texts.withdrawn)
        return texts.remark_joiner.join(notes)

    measured: list[Callable[[EvidenceRow], str]] = [
        lambda r: str(r.item),
        lambda r: r.item_title,
        lambda r: "0000-00-00 00:00" if r.report_at else texts.of_item,
        lambda r: _percent_text(r.report_percent),
        lambda r: r.report_text,
        lambda r: r.sender,
        lambda r: "0000-00-00 00:00",
        lambda r: kinds.get(r.kind, r.kind),
        lambda r: r.name,
        lambda r: _file_size(r.size),
        lambda r: r.sha256,
        remarks,
    ]
    widths = [
        column_width(chain([header], map(text, rows)))
        for header, text in zip(headers, measured, strict=True)
    ]
    _prepare_sheet(ws, widths, header_row=1, last_row=1 + len(rows), columns=len(headers))
    ws.append(_header(ws, headers, texts.font))
    looks = [
        _Look(center=True),
        _Look(wrap=True),
        _Look(number_format=DATETIME_FORMAT, center=True),
        _Look(number_format=PERCENT_FORMAT, center=True),
        _Look(wrap=True),
        _Look(),
        _Look(number_format=DATETIME_FORMAT, center=True),
        _Look(center=True),
        _Look(wrap=True),
        _Look(center=True),
        _Look(grey=True),
        _Look(),
    ]
    normal = [_Style(ws, look, texts.font) for look in looks]
    faded = [_Style(ws, replace(look, italic=True, grey=True), texts.font) for look in looks]
    linked = _Style(ws, _Look(wrap=True), texts.font)
    for number, row in enumerate(rows, 2):
        styles = faded if row.withdrawn else normal
        values = (
            row.item,
            row.item_title,
            _local(row.report_at, tz) if row.report_at else texts.of_item,
            _percent(row.report_percent),
            row.report_text,
            row.sender,
            _local(row.at, tz),
            kinds.get(row.kind, row.kind),
            row.name,
            _file_size(row.size),
            row.sha256,
            remarks(row),
        )
        cells = [style.cell(value) for style, value in zip(styles, values, strict=True)]
        if row.link and not row.withdrawn:
            cells[8] = linked.cell(row.name, row=number, column=9)
            cells[8].hyperlink = row.link  # its reference is the cell's place, given above
            cells[8].font = Font(name=texts.font, color="0563C1", underline="single")
        ws.append(cells)


def write_ledger(
    path: Path,
    *,
    plan_title: str,
    rows: Sequence[LedgerRow],
    history: Sequence[HistoryRow],
    tz: tzinfo,
    locale: str = "zh-CN",
    generated_at: datetime,
    evidence: Sequence[EvidenceRow] = (),
    more: Sequence[PlanSheet] = (),
) -> Path:
    """Write the ledger workbook (台账 + 进展记录, and 佐证材料 when there is evidence) to path,
    atomically, and return path."""
    texts = _TEXTS.get(locale)
    if texts is None:
        raise ValueError(f"unknown locale {locale!r}; expected one of {sorted(_TEXTS)}")
    wb = Workbook(write_only=True)
    title = texts.title.format(plan=plan_title)
    wb.properties.title = _clean(title)
    wb.properties.creator = "Duban"
    wb.properties.lastModifiedBy = "Duban"
    created = generated_at if generated_at.tzinfo else generated_at.replace(tzinfo=tz)
    created = created.astimezone(UTC).replace(tzinfo=None, microsecond=0)
    wb.properties.created = created
    wb.properties.modified = created

    _write_ledger_sheet(
        wb, texts, plan_title=plan_title, rows=rows, tz=tz, generated_at=generated_at
    )
    for other in more:  # the other open plans and the tasks: a sheet each
        _write_ledger_sheet(
            wb,
            texts,
            plan_title=other.plan_title,
            rows=other.rows,
            tz=tz,
            generated_at=generated_at,
            sheet_name=other.sheet_name,
        )
    _write_history_sheet(wb, texts, history=history, tz=tz)
    if evidence:
        _write_evidence_sheet(wb, texts, evidence=evidence, tz=tz)

    path = Path(path)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        wb.save(temporary)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return path


__all__ = ["STATUS_FILLS", "PlanSheet", "column_width", "display_width", "write_ledger"]
