"""Read models of work items: what `duban items` and the chat show about each item."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlmodel import Session, col, select

from bot.models import Assignment, Contact, Plan, Report, ReportStatus, Section, Target, WorkItem
from bot.services.assignments import assignees
from bot.services.plans import live_items


@dataclass
class ItemView:
    """An item with what is known about it."""

    item: WorkItem
    section: Section
    targets: list[Target]
    people: list[tuple[Contact, Assignment]] = field(default_factory=list)
    latest: Report | None = None

    @property
    def deadline(self) -> date | None:
        """The effective deadline: the item's own, else the earliest lead's, else the document's."""
        if self.item.deadline:
            return self.item.deadline
        lead_deadlines = [a.deadline for _, a in self.people if a.deadline]
        if lead_deadlines:
            return min(lead_deadlines)
        return self.item.suggested_deadline

    @property
    def percent(self) -> int | None:
        """The latest reported percent, or None."""
        return self.latest.percent if self.latest else None

    @property
    def status(self) -> str:
        """green | amber | red | done, or none before any report (full rules: the status issue)."""
        if self.latest is None:
            return "none"
        if self.latest.status == ReportStatus.done or self.latest.percent == 100:
            return "done"
        if self.latest.status == ReportStatus.delayed:
            return "red"
        return "green"


def item_views(session: Session, plan: Plan) -> list[ItemView]:
    """Every live item of the plan with section, targets, assignees and latest report."""
    items = live_items(session, plan)
    ids = [i.id for i in items if i.id is not None]
    sections = {s.id: s for s in session.exec(select(Section).where(Section.plan_id == plan.id))}
    targets: dict[int, list[Target]] = {i: [] for i in ids}
    for t in session.exec(
        select(Target).where(col(Target.item_id).in_(ids)).order_by(col(Target.position))
    ):
        targets[t.item_id].append(t)
    people = assignees(session, ids)
    latest: dict[int, Report] = {}
    for r in session.exec(
        select(Report)
        .where(
            col(Report.item_id).in_(ids),
            col(Report.superseded_by_id).is_(None),
            col(Report.withdrawn_at).is_(None),
        )
        .order_by(col(Report.created_at), col(Report.id))
    ):
        latest[r.item_id] = r
    return [
        ItemView(
            item=i,
            section=sections[i.section_id],
            targets=targets.get(i.id or 0, []),
            people=people.get(i.id or 0, []),
            latest=latest.get(i.id or 0),
        )
        for i in items
    ]


def target_json(t: Any) -> dict[str, Any]:
    """A target as JSON (Target rows and ParsedTarget alike)."""
    return {
        "text": t.text,
        "metric": t.metric,
        "comparator": t.comparator,
        "value": t.value,
        "unit": t.unit,
    }


def item_json(view: ItemView) -> dict[str, Any]:
    """An item as `duban items --json` prints it."""
    item = view.item
    return {
        "number": item.number,
        "label": item.label,
        "section": view.section.number,
        "subsection": item.subsection,
        "title": item.title,
        "body": item.body,
        "lead_units": item.lead_units,
        "support_units": item.support_units,
        "deadline": view.deadline.isoformat() if view.deadline else None,
        "targets": [target_json(t) for t in view.targets],
        "assignees": [c.name for c, _ in view.people],
        "percent": view.percent,
        "status": view.status,
    }
