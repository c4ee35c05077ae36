"""The progress bulletin (进展情况通报): a month's or a quarter's progress, as a Word document.

`build_bulletin` reads each plan as the digest does (`item_views`, at the end of the period
and at its start), so every figure it gives is the digest's and the ledger's: the status, the
latest percent, the time-elapsed share (序时进度), the targets' values and shares. Its counts
are the lengths of the lists they sum up. `render_bulletin` puts the words of
templates/<locale>/bulletin.j2 around them; `bot.docx_official` lays them out as an official
document (GB/T 9704-2012). With several plans, each is reported in its own part.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlmodel import Session, col

from bot.db import resource_dir
from bot.i18n import Translator, UserError
from bot.models import Plan, Report, WorkItem
from bot.reporting import STATUSES, SectionProgress
from bot.services.digest import section_progress
from bot.services.items import ItemView, TargetState, item_views, standing
from bot.services.progress import StatusRules
from bot.settings import Settings
from bot.templating import format_number, template_locale

if TYPE_CHECKING:
    from bot.docx_official import Block

# How many items a paragraph list names before it says "and N more" (the attached table
# lists every item).
LISTED = 15
# The attached table: 序号 工作任务 责任单位 完成时限 进度 状态 最新进展, in mm (156 in all).
TABLE_WIDTHS_MM = (11.0, 35.0, 22.0, 22.0, 12.0, 17.0, 37.0)
TABLE_CENTERED = frozenset({0, 3, 4, 5})

_MONTH = re.compile(r"(\d{4})\s*(?:-|/|\.|年)\s*(\d{1,2})\s*月?")
_QUARTER = re.compile(
    r"(\d{4})\s*(?:-|年)?\s*(?:Q|第)\s*(\d{1,2}|[一二三四五六七八九十]+)\s*(?:季度?)?"
)
_CN_DIGITS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
YEARS = range(1900, 10000)


@dataclass(frozen=True)
class Period:
    """A calendar month or quarter of the plan's time zone."""

    kind: Literal["month", "quarter"]
    year: int
    number: int  # the month 1-12, or the quarter 1-4

    @property
    def start(self) -> date:
        """Its first day."""
        month = self.number if self.kind == "month" else 3 * self.number - 2
        return date(self.year, month, 1)

    @property
    def end(self) -> date:
        """Its last day."""
        following = self.start.month + (1 if self.kind == "month" else 3)  # 13 is next January
        year, month = self.year + (following - 1) // 12, (following - 1) % 12 + 1
        return date(year, month, 1) - timedelta(days=1)

    @property
    def key(self) -> str:
        """How it is written: 2023-06 or 2023-Q2."""
        if self.kind == "month":
            return f"{self.year}-{self.number:02d}"
        return f"{self.year}-Q{self.number}"

    def label(self, t: Translator) -> str:
        """How people read it: 2023年6月, 2023年第二季度; June 2023, Q2 2023."""
        return t(
            f"bulletin.period.{self.kind}",
            year=self.year,
            name=t(f"bulletin.{self.kind}_name.{self.number}"),
        )


def _normal(text: str) -> str:
    """Full-width digits and letters folded (２０２３－０６ is 2023-06), upper case, trimmed."""
    return unicodedata.normalize("NFKC", text).strip().upper()


def parse_month(text: str) -> Period:
    """A month written YYYY-MM (also 2023/6, 2023年6月), or a UserError with an example."""
    match = _MONTH.fullmatch(_normal(text))
    if match is None or int(match.group(1)) not in YEARS:
        raise UserError("bulletin.not_month", value=text.strip())
    month = int(match.group(2))
    if not 1 <= month <= 12:
        raise UserError("bulletin.bad_month", value=text.strip(), month=month)
    return Period("month", int(match.group(1)), month)


def parse_quarter(text: str) -> Period:
    """A quarter written YYYY-Qn or YYYYQn (also 2023年第二季度), or a UserError with an
    example."""
    match = _QUARTER.fullmatch(_normal(text))
    if match is None or int(match.group(1)) not in YEARS:
        raise UserError("bulletin.not_quarter", value=text.strip())
    raw = match.group(2)
    quarter = int(raw) if raw.isdigit() else _CN_DIGITS.get(raw, 0)
    if not 1 <= quarter <= 4:
        raise UserError("bulletin.bad_quarter", value=text.strip())
    return Period("quarter", int(match.group(1)), quarter)


def parse_period(text: str) -> Period:
    """A month (2023-06) or a quarter (2023-Q2), whichever the text is."""
    folded = _normal(text)
    if "Q" in folded or "季" in folded:
        return parse_quarter(text)
    if _MONTH.fullmatch(folded):
        return parse_month(text)
    raise UserError("bulletin.not_period", value=text.strip())


def current_month(now: datetime, tz: ZoneInfo) -> Period:
    """The month now is in, in the plan's time zone."""
    local = now.astimezone(tz)
    return Period("month", local.year, local.month)


def period_from_options(
    month: str | None, quarter: str | None, *, now: datetime, tz: ZoneInfo
) -> Period:
    """The period of `duban bulletin --month/--quarter` (the current month when neither)."""
    if month and quarter:
        raise UserError("bulletin.cli_month_and_quarter")
    if month:
        return parse_month(month)
    if quarter:
        return parse_quarter(quarter)
    return current_month(now, tz)


@dataclass(frozen=True)
class Advance:
    """An item that moved ahead in the period: its figure then and now."""

    view: ItemView
    before: int | None  # the latest percent at the start of the period
    lead: int  # points ahead of 序时进度 (time elapsed to its deadline)


@dataclass
class PlanPart:
    """What the bulletin says about one plan."""

    plan: Plan
    views: list[ItemView]  # every live item as of the period's end, by number
    reports: int  # standing reports made during the period
    finished: list[ItemView]  # done by the end, not at the start
    advances: list[Advance]  # on track, moved on, and ahead of 序时进度; furthest ahead first
    sections: list[SectionProgress] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """Items by status (the keys of STATUSES)."""
        counts = dict.fromkeys(STATUSES, 0)
        for view in self.views:
            counts[view.status] += 1
        return counts

    @property
    def completion_rate(self) -> int:
        """Items done, in whole percent of all items (as the digest says it)."""
        return _rate(self.counts["done"], len(self.views))

    @property
    def average_percent(self) -> int:
        """The mean latest percent over the items (no figure counts as 0), whole."""
        return round(sum(v.percent or 0 for v in self.views) / len(self.views)) if self.views else 0

    @property
    def red(self) -> list[ItemView]:
        """Items behind (滞后), by number."""
        return [v for v in self.views if v.status == "red"]

    @property
    def amber(self) -> list[ItemView]:
        """Items at risk (预警), by number."""
        return [v for v in self.views if v.status == "amber"]

    @property
    def targets(self) -> list[tuple[ItemView, TargetState]]:
        """Every quantitative target with its item, by item number."""
        return [(v, s) for v in self.views for s in v.targets]


@dataclass
class Bulletin:
    """Everything the bulletin says, ready for its template."""

    period: Period
    as_of: datetime  # the end of the period, or now when it has not ended (plan's time zone)
    issued_on: date  # 成文日期: the day it is written
    parts: list[PlanPart]

    @property
    def views(self) -> list[ItemView]:
        """Every item of every plan."""
        return [v for part in self.parts for v in part.views]

    @property
    def counts(self) -> dict[str, int]:
        """Items of every plan by status."""
        return {key: sum(p.counts[key] for p in self.parts) for key in STATUSES}

    @property
    def completion_rate(self) -> int:
        """Items done, in whole percent of the items of every plan."""
        return _rate(self.counts["done"], len(self.views))

    @property
    def reports(self) -> int:
        """Standing reports made during the period, on every plan."""
        return sum(p.reports for p in self.parts)

    @property
    def finished(self) -> int:
        """Items of every plan finished during the period."""
        return sum(len(p.finished) for p in self.parts)

    @property
    def issuer(self) -> str:
        """The issuer the plans share (发文机关), or "" when they differ or name none."""
        issuers = {p.plan.issuer or "" for p in self.parts}
        return issuers.pop() if len(issuers) == 1 else ""


def _rate(part: int, whole: int) -> int:
    return round(100 * part / whole) if whole else 0


def _reports_made(session: Session, plan: Plan, start: datetime, as_of: datetime) -> int:
    """How many standing reports were made on the plan's items from start to as_of."""
    count = session.execute(
        sa.select(sa.func.count())
        .select_from(Report)
        .join(WorkItem, col(WorkItem.id) == Report.item_id)
        .where(
            col(WorkItem.plan_id) == plan.id,
            col(WorkItem.removed_at).is_(None),
            col(Report.created_at) >= start,
            standing(as_of),
        )
    ).scalar_one()
    return int(count)


def _plan_part(
    session: Session,
    plan: Plan,
    *,
    start: datetime,
    as_of: datetime,
    now: datetime,
    tz: ZoneInfo,
    rules: StatusRules,
) -> PlanPart:
    views = item_views(session, plan, now=now, tz=tz, rules=rules, as_of=as_of)
    views.sort(key=lambda v: v.item.number)
    before = {
        v.item.id: v for v in item_views(session, plan, now=now, tz=tz, rules=rules, as_of=start)
    }
    finished = [v for v in views if v.status == "done" and before[v.item.id].status != "done"]
    advances = []
    for view in views:
        then = before[view.item.id].percent
        expected = view.verdict.expected
        if view.status != "green" or view.percent is None or expected is None:
            continue
        if view.percent > (then or 0) and view.percent >= expected:
            advances.append(Advance(view, then, view.percent - expected))
    advances.sort(key=lambda a: (-a.lead, a.view.item.number))
    return PlanPart(
        plan=plan,
        views=views,
        reports=_reports_made(session, plan, start, as_of),
        finished=finished,
        advances=advances,
        sections=section_progress(views),
    )


def build_bulletin(
    session: Session,
    plans: list[Plan],
    period: Period,
    *,
    now: datetime,
    tz: ZoneInfo,
    rules: StatusRules,
) -> Bulletin:
    """The bulletin of a period for the plans, as of the period's end (or now, before it)."""
    start = datetime.combine(period.start, time.min, tzinfo=tz)
    if now < start:
        raise UserError("bulletin.future", period=period.key)
    as_of = min(now, datetime.combine(period.end, time.max, tzinfo=tz)).astimezone(tz)
    parts = [
        _plan_part(session, plan, start=start, as_of=as_of, now=now, tz=tz, rules=rules)
        for plan in plans
    ]
    return Bulletin(period=period, as_of=as_of, issued_on=now.astimezone(tz).date(), parts=parts)


# --- words and layout -----------------------------------------------------------------------

# Characters that would end a block's line (or that XML cannot hold) in a value: spaces.
_LINE_BREAKS = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]+")


def one_line(value: object) -> str:
    """A value as one line of text: line breaks and control characters become one space."""
    return _LINE_BREAKS.sub(" ", str(value))


@cache
def _environment() -> Environment:
    """The bulletin's template environment: every {{ value }} is one line, so no value can
    start a block of its own."""
    env = Environment(
        loader=FileSystemLoader(str(resource_dir("templates"))),
        autoescape=False,
        finalize=one_line,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters["num"] = format_number
    return env


def render_bulletin(bulletin: Bulletin, locale: str) -> list[Block]:
    """The bulletin's blocks in a locale (templates/<locale>/bulletin.j2)."""
    from bot.docx_official import parse_blocks  # python-docx is only needed for a bulletin

    locale = template_locale(locale)
    t = Translator(locale)
    template = _environment().get_template(f"{locale}/bulletin.j2")
    markup = template.render(
        t=t,
        b=bulletin,
        period=bulletin.period.label(t),
        listed=LISTED,
    )
    return parse_blocks(markup)


def save_bulletin(bulletin: Bulletin, path: Path, *, locale: str, created: datetime) -> Path:
    """Write a built bulletin as a .docx file to path."""
    from bot.docx_official import write_official_document

    blocks = render_bulletin(bulletin, locale)
    title = "".join(b.text for b in blocks if b.kind == "title")  # its lines, as one
    return write_official_document(
        blocks,
        path,
        title=title,
        created=created,
        table_widths_mm=TABLE_WIDTHS_MM,
        centered_columns=TABLE_CENTERED,
    )


def write_bulletin(
    session: Session,
    plans: list[Plan],
    period: Period,
    path: Path,
    *,
    settings: Settings,
    now: datetime,
) -> Path:
    """Write the bulletin of a period for the plans to path (.docx) and return path."""
    bulletin = build_bulletin(
        session,
        plans,
        period,
        now=now,
        tz=settings.tz,
        rules=StatusRules.from_settings(settings),
    )
    return save_bulletin(bulletin, path, locale=settings.locale, created=now)


def bulletin_file_name(period: Period, t: Translator) -> str:
    """The file name people see: 进展情况通报-2023-06.docx."""
    return t("bulletin.file_name", period=period.key)


__all__ = [
    "Advance",
    "Bulletin",
    "Period",
    "PlanPart",
    "build_bulletin",
    "current_month",
    "parse_month",
    "parse_period",
    "parse_quarter",
    "period_from_options",
    "render_bulletin",
    "write_bulletin",
]
