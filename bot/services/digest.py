"""The weekly digest for leaders: exception first, then changes, silence, targets, sections.

`build_digest` reads the plan in a fixed number of queries (every item's state now, the
latest reports as of the start of the week for the status each item had then, and the week's
reports), so its cost does not grow in queries with the number of items or reports.

The digest agrees with itself: each count it gives is the length of the list it sums up, the
week's reports are the standing ones (a corrected or withdrawn report is not news), and whoever
made one this week (滞后 with a reason included) is not listed as not having reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, col

from bot import memory
from bot.i18n import Translator, UserError
from bot.models import Contact, Plan, Report, Role, WorkItem
from bot.reporting import STATUSES, SectionProgress
from bot.services.items import (
    ItemView,
    TargetState,
    item_views,
    latest_reports,
    plan_start,
    standing,
)
from bot.services.progress import StatusRules, judge

SEVERITY = {"red": 0, "amber": 1, "none": 2, "green": 3, "done": 4}


@dataclass(frozen=True)
class WeekReport:
    """A report made during the digest's week."""

    item: int
    title: str
    contact: str
    percent: int | None
    status: str | None
    text: str
    at: datetime  # in the plan's time zone
    contact_id: int = 0


@dataclass(frozen=True)
class StatusChange:
    """An item whose status moved during the week."""

    view: ItemView
    before: str
    after: str


@dataclass
class Digest:
    """Everything the weekly digest says, ready for a template."""

    plan: Plan
    year: int
    week: int
    start: date
    end: date
    as_of: datetime
    views: list[ItemView]
    counts: dict[str, int]
    reports: list[WeekReport] = field(default_factory=list)
    changes: list[StatusChange] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    sections: list[SectionProgress] = field(default_factory=list)

    @property
    def label(self) -> str:
        """The ISO week, e.g. 2023-W23."""
        return f"{self.year}-W{self.week:02d}"

    @property
    def red(self) -> list[ItemView]:
        """Red items, most overdue first."""
        return [v for v in self.views if v.status == "red"]

    @property
    def amber(self) -> list[ItemView]:
        """Amber items."""
        return [v for v in self.views if v.status == "amber"]

    @property
    def completion_rate(self) -> int:
        """Items done, in whole percent of all items."""
        return round(100 * self.counts["done"] / len(self.views)) if self.views else 0

    @property
    def targets(self) -> list[tuple[ItemView, TargetState]]:
        """Every quantitative target with its item."""
        return [(v, s) for v in self.views for s in v.targets]


def parse_week(text: str) -> tuple[int, int]:
    """An ISO week written YYYY-Www (2023-W23), or a UserError with an example."""
    head, sep, tail = text.strip().upper().partition("-W")
    try:
        year, week = int(head), int(tail)
        date.fromisocalendar(year, week, 1)
    except ValueError:
        raise UserError("digest.bad_week", value=text) from None
    if not sep:
        raise UserError("digest.bad_week", value=text)
    return year, week


def _week_reports(
    session: Session, plan: Plan, start: datetime, as_of: datetime, tz: ZoneInfo
) -> list[WeekReport]:
    """The standing reports made from start to as_of (a correction replaces what it corrects)."""
    rows = session.execute(
        sa.select(
            col(WorkItem.number),
            col(WorkItem.title),
            col(Contact.name),
            col(Report.percent),
            col(Report.status),
            col(Report.text),
            col(Report.created_at),
            col(Report.contact_id),
        )
        .join(WorkItem, col(WorkItem.id) == Report.item_id)
        .join(Contact, col(Contact.id) == Report.contact_id)
        .where(
            col(WorkItem.plan_id) == plan.id,
            col(Report.created_at) >= start,
            standing(as_of),
        )
        .order_by(col(Report.created_at), col(Report.id))
    )
    return [
        WeekReport(n, title, who, pct, getattr(st, "value", st), text, at.astimezone(tz), cid)
        for n, title, who, pct, st, text, at, cid in rows
    ]


def section_progress(views: list[ItemView]) -> list[SectionProgress]:
    """Counts by status and the average percent of each section, in document order."""
    by_section: dict[int, list[ItemView]] = {}
    for view in views:
        by_section.setdefault(view.section.number, []).append(view)
    out = []
    for number in sorted(by_section):
        group = by_section[number]
        counts = dict.fromkeys(STATUSES, 0)
        for view in group:
            counts[view.status] += 1
        average = sum(v.percent or 0 for v in group) / len(group)
        section = group[0].section
        out.append(SectionProgress(number, section.label, section.title, counts, average))
    return out


def statuses_at(
    session: Session,
    plan: Plan,
    views: list[ItemView],
    moment: datetime,
    *,
    tz: ZoneInfo,
    rules: StatusRules,
) -> dict[int, str]:
    """Each item's status as of an earlier moment, by item id: what `item_views(...,
    as_of=moment)` says, in one query instead of six (the items, owners and deadlines are the
    views' own, and a status needs none of the targets' values).

    The status is judged as item_views judges it (keep the two alike), from the newest
    standing report and the newest figure as of the moment.
    """
    latest, figures = latest_reports(session, plan, moment)
    start = plan_start(plan)
    local = moment.astimezone(tz)
    out: dict[int, str] = {}
    for view in views:
        assert view.item.id is not None
        report = latest.get(view.item.id)
        figure = figures.get(view.item.id)
        out[view.item.id] = judge(
            percent=figure.percent if figure else None,
            reported_status=report.status if report else None,
            last_report_at=report.created_at if report else None,
            start=start,
            deadline=view.deadline,
            today=local.date(),
            now=local,
            rules=rules,
        ).status
    return out


@memory.collector_paused()
def build_digest(
    session: Session,
    plan: Plan,
    *,
    now: datetime,
    tz: ZoneInfo,
    rules: StatusRules,
    week: tuple[int, int] | None = None,
) -> Digest:
    """The digest of one ISO week (the current one by default), as of its end or now."""
    local_now = now.astimezone(tz)
    year, number = week or local_now.isocalendar()[:2]
    start = date.fromisocalendar(year, number, 1)
    end = start + timedelta(days=6)
    week_start = datetime.combine(start, time.min, tzinfo=tz)
    as_of = min(now, datetime.combine(end, time.max, tzinfo=tz))
    if as_of < week_start:
        raise UserError("digest.future_week", week=f"{year}-W{number:02d}")
    views = item_views(session, plan, now=now, tz=tz, rules=rules, as_of=as_of)
    before = statuses_at(session, plan, views, week_start, tz=tz, rules=rules)
    views.sort(key=lambda v: (SEVERITY[v.status], v.item.number))
    counts = dict.fromkeys(STATUSES, 0)
    for view in views:
        counts[view.status] += 1
    reports = _week_reports(session, plan, week_start, as_of, tz)
    reporters = {r.contact_id for r in reports}  # reports entered for someone count as theirs
    missing = sorted(
        {
            contact.name
            for view in views
            if view.status != "done"
            for contact, _ in view.people
            if contact.role == Role.official and contact.id not in reporters
        }
    )
    changes = []
    for view in views:
        was = before.get(view.item.id) if view.item.id is not None else None
        if was is not None and was != view.status:
            changes.append(StatusChange(view, was, view.status))
    by_number = sorted(views, key=lambda v: v.item.number)
    return Digest(
        plan=plan,
        year=year,
        week=number,
        start=start,
        end=end,
        as_of=as_of,
        views=views,
        counts=counts,
        reports=reports,
        changes=changes,
        missing=missing,
        sections=section_progress(by_number),
    )


def digest_json(digest: Digest, t: Translator) -> dict[str, Any]:
    """The digest as `duban digest --format json` prints it."""
    return {
        "plan": digest.plan.title,
        "week": digest.label,
        "start": digest.start.isoformat(),
        "end": digest.end.isoformat(),
        "counts": digest.counts,
        "completion_rate": digest.completion_rate,
        "items": [
            {
                "number": v.item.number,
                "title": v.item.title,
                "status": v.status,
                "percent": v.percent,
                "why": t(v.verdict.why.key, **v.verdict.why.params) if v.verdict.why else None,
                "owners": v.owner_units or [c.name for c, _ in v.people],
                "deadline": v.deadline.isoformat() if v.deadline else None,
            }
            for v in sorted(digest.views, key=lambda v: v.item.number)
        ],
        "missing_reports": digest.missing,
        "targets": [
            {
                "item": v.item.number,
                "metric": s.target.metric,
                "value": s.value,
                "target": s.target.value,
                "unit": s.target.unit,
                "share": s.share,
                "projection": s.projection,
            }
            for v, s in sorted(digest.targets, key=lambda p: p[0].item.number)
        ],
        "changes": [
            {
                "kind": "report",
                "item": r.item,
                "contact": r.contact,
                "percent": r.percent,
                "status": r.status,
                "at": r.at.isoformat(),
            }
            for r in digest.reports
        ]
        + [
            {"kind": "status", "item": c.view.item.number, "from": c.before, "to": c.after}
            for c in digest.changes
        ],
        "sections": [
            {
                "number": s.number,
                "title": s.title,
                "counts": s.counts,
                "average_percent": round(s.average_percent),
            }
            for s in digest.sections
        ],
    }
