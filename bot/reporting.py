"""Plain data the digest, the chart and the ledger are made from (no database, no rendering)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

STATUSES = ("green", "amber", "red", "done", "none")


@dataclass(frozen=True)
class SectionProgress:
    """How one section of the plan stands."""

    number: int
    label: str  # the document's own label, e.g. "一"
    title: str
    counts: dict[str, int] = field(default_factory=dict)  # by status key in STATUSES
    average_percent: float = 0.0  # mean latest percent over its items (no report counts as 0)

    @property
    def items(self) -> int:
        """How many items the section has."""
        return sum(self.counts.values())


@dataclass(frozen=True)
class LedgerRow:
    """One work item as the ledger (台账) lists it."""

    number: int  # 序号
    title: str  # 工作任务
    section: str  # 所属板块, e.g. "三、强化统筹协调,构建高质量教育体系"
    lead_units: str  # 牵头单位, joined with 、
    owners: str  # 责任人, joined with 、
    deadline: date | None  # 完成时限
    targets: str  # 量化目标: each target's phrase, one per line
    current: str  # 当前值: each target's current value and share, one per line
    latest: str  # 最新进展: the latest report's text
    percent: int | None  # 完成率
    status: str  # a key of STATUSES
    updated_at: datetime | None  # 更新时间 (aware; shown in the plan's time zone)


@dataclass(frozen=True)
class Reading:
    """A value reported against one of the item's targets."""

    metric: str
    value: float
    unit: str


@dataclass(frozen=True)
class HistoryRow:
    """One report as the ledger's history sheet lists it."""

    at: datetime  # aware
    item: int | str  # its number; CODE+NUMBER for another plan's item (民生3, J1)
    item_title: str
    contact: str
    percent: int | None
    status: str | None  # not_started | in_progress | delayed | done
    text: str
    values: str  # target values reported, e.g. "新增学位 6500"
    source: str  # chat | cli
    entered_by: str | None  # the admin who entered it on someone's behalf
    superseded: bool
    withdrawn: bool
    readings: tuple[Reading, ...] = ()  # the same values, one by one (for JSON)
    kind: str = "progress"  # progress | reopen (a task sent back by whoever handed it down)


@dataclass(frozen=True)
class EvidenceRow:
    """One evidence file (佐证材料) as the ledger lists it: by item, under its report."""

    at: datetime  # when it was sent (aware)
    item: int
    item_title: str
    sender: str
    report_at: datetime | None  # the report it is evidence of (None: of the item alone)
    report_percent: int | None
    report_text: str
    superseded: bool  # its report was corrected (the file stays with it)
    withdrawn: bool  # its report was taken back (and the file with it)
    name: str  # the display name (the sender's, cleaned)
    kind: str  # photo | document | video
    mime: str
    size: int
    sha256: str
    number: int  # its place among the item's files, oldest first
    link: str | None = None  # where `--evidence DIR` wrote it, relative to the workbook
