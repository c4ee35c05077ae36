"""Where every item stands: one read of the plan in a fixed number of queries.

`item_views` loads the items with their section, owners, targets, the latest report as of a
moment and the targets' current values, then applies the status rule. The number of queries
does not grow with the number of items or reports (the digest relies on that).

One rule says which reports count (`standing`: not withdrawn, not superseded by a correction)
and what an item's latest figure is (`newest_report(..., with_percent=True)`: the percent of
its newest standing report that has one, whoever gave it). The digest, /status, /my, the
ledger, `duban items` and the chat's confirmation all read the figure through it.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from bot import memory
from bot.models import (
    Assignment,
    AssignmentRole,
    Contact,
    Plan,
    Report,
    Role,
    Section,
    Target,
    TargetValue,
    WorkItem,
)
from bot.services.plans import live_items
from bot.services.progress import StatusRules, Verdict, judge, projection, target_share


class Owner(NamedTuple):
    """The fields of an item's owner the views need (named as on Contact)."""

    id: int
    name: str
    unit: str
    role: Role


class Duty(NamedTuple):
    """The fields of an assignment the views need (named as on Assignment)."""

    id: int
    item_id: int
    contact_id: int
    role: AssignmentRole
    deadline: date | None


# Plain rows, not entities: an item view is read-only, and a plan with ten thousand
# assignments loads several times faster this way (the planner reads them every run).
_OWNERS: Any = (  # a Select (its inferred column types trip mypy up)
    sa.select(
        col(Contact.id),
        col(Contact.name),
        col(Contact.unit),
        col(Contact.role),
        col(Assignment.id).label("assignment_id"),
        col(Assignment.item_id),
        col(Assignment.role).label("assignment_role"),
        col(Assignment.deadline),
    )
    .join(Assignment, col(Assignment.contact_id) == Contact.id)
    .join(WorkItem, col(WorkItem.id) == Assignment.item_id)
    .where(col(WorkItem.plan_id) == sa.bindparam("plan_id"))
    .order_by(col(Assignment.role), col(Contact.name))
)


def owners(session: Session, plan: Plan) -> dict[int, list[tuple[Owner, Duty]]]:
    """The owners of every item of a plan, lead first, by item id."""
    out: dict[int, list[tuple[Owner, Duty]]] = defaultdict(list)
    for row in session.connection().execute(_OWNERS, {"plan_id": plan.id}):
        out[row.item_id].append(
            (
                Owner(row.id, row.name, row.unit, Role(row.role)),
                Duty(
                    row.assignment_id,
                    row.item_id,
                    row.id,
                    AssignmentRole(row.assignment_role),
                    row.deadline,
                ),
            )
        )
    return out


class ReportRow(NamedTuple):
    """The fields of a report the views need."""

    id: int
    item_id: int
    contact_id: int
    percent: int | None
    status: str | None
    text: str
    created_at: datetime
    contact: str = ""  # the name of the person the report is for


@dataclass
class TargetState:
    """A target with its current value, share, reporters and projection."""

    target: Target
    value: float | None = None
    share: int | None = None
    reporters: int = 0
    reports: int = 0
    projection: float | None = None


@dataclass
class ItemView:
    """An item with what is known about it, and its status."""

    item: WorkItem
    section: Section
    targets: list[TargetState]
    people: list[tuple[Owner, Duty]] = field(default_factory=list)
    latest: ReportRow | None = None  # the newest standing report
    figure: ReportRow | None = None  # the newest standing report with a percent
    verdict: Verdict = field(default_factory=lambda: Verdict("none", None, None))
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))  # the plan's time zone

    @functools.cached_property
    def deadline(self) -> date | None:
        """The effective deadline: the item's own, else the earliest lead's, else the document's
        (a view is read-only once built: computed once)."""
        if self.item.deadline:
            return self.item.deadline
        lead_deadlines = [a.deadline for _, a in self.people if a.deadline]
        if lead_deadlines:
            return min(lead_deadlines)
        return self.item.suggested_deadline

    @property
    def percent(self) -> int | None:
        """The item's latest figure: the newest percent anyone gave on it, or None."""
        return self.figure.percent if self.figure else None

    def local(self, moment: datetime) -> datetime:
        """A moment in the plan's time zone (what people are shown)."""
        return moment.astimezone(self.tz)

    @property
    def status(self) -> str:
        """green | amber | red | done | none."""
        return self.verdict.status

    @property
    def owner_units(self) -> list[str]:
        """The units answering for the item: its lead units, else its owners' units."""
        if self.item.lead_units:
            return list(self.item.lead_units)
        return sorted({c.unit for c, _ in self.people if c.unit})


def plan_start(plan: Plan) -> date:
    """Where the plan's time runs from: its issue date, else 1 January of its year."""
    if plan.issued_on:
        return plan.issued_on
    return date(plan.created_at.year, 1, 1)


def standing(as_of: Any = None) -> Any:
    """Reports that count: not withdrawn and not superseded by a correction (as of a moment,
    when given, a datetime or a bind parameter: made by then, and not withdrawn or corrected by
    then)."""
    if as_of is None:
        return sa.and_(col(Report.withdrawn_at).is_(None), col(Report.superseded_by_id).is_(None))
    correction = aliased(Report)
    corrected = (
        sa.select(col(correction.id))
        .where(
            col(correction.id) == col(Report.superseded_by_id),
            col(correction.created_at) <= as_of,
        )
        .exists()
    )
    return sa.and_(
        col(Report.created_at) <= as_of,
        sa.or_(col(Report.withdrawn_at).is_(None), col(Report.withdrawn_at) > as_of),
        sa.or_(col(Report.superseded_by_id).is_(None), ~corrected),
    )


def newest_report(item_id: Any, *, as_of: Any = None, with_percent: bool = False) -> Any:
    """The id of an item's newest standing report; with_percent: of the newest one that has a
    percent, whose percent is the item's latest figure (a Select, LIMIT 1).

    `item_id` is a value, a bind parameter or a column to correlate with.
    """
    query = sa.select(col(Report.id)).where(col(Report.item_id) == item_id, standing(as_of))
    if with_percent:
        query = query.where(col(Report.percent).is_not(None))
    return query.order_by(col(Report.created_at).desc(), col(Report.id).desc()).limit(1)


# The reads of latest_reports and _target_values are built once (per dialect) with bind
# parameters: building and caching a statement of this size cost more Python than running it.
_PLAN_ID: Any = sa.bindparam("plan_id")
_AS_OF: Any = sa.bindparam("as_of")


@functools.cache
def _latest_statement(dialect: str) -> Any:
    ids = sa.union(
        *(
            sa.select(
                newest_report(col(WorkItem.id), as_of=_AS_OF, with_percent=with_percent)
                .correlate(WorkItem)
                .scalar_subquery()
            )
            .select_from(WorkItem)
            .where(col(WorkItem.plan_id) == _PLAN_ID)
            for with_percent in (False, True)
        )
    )
    if dialect == "postgresql":
        # PostgreSQL plans `id IN (subquery)` as a hash join over every report of the table
        # (it expects the ids' index lookups to cost more); an array of the ids is read through
        # the primary key instead: 24 ms -> 11 ms at 1,000 items and 100,000 reports.
        chosen = col(Report.id) == sa.any_(sa.func.array(ids.scalar_subquery()))
    else:
        chosen = col(Report.id).in_(ids)
    return (
        sa.select(
            col(Report.id),
            col(Report.item_id),
            col(Report.contact_id),
            col(Report.percent),
            col(Report.status),
            col(Report.text),
            col(Report.created_at),
            col(Contact.name),
        )
        .join(Contact, col(Contact.id) == Report.contact_id)
        .where(chosen)
    )


def latest_reports(
    session: Session, plan: Plan, as_of: datetime
) -> tuple[dict[int, ReportRow], dict[int, ReportRow]]:
    """Per item as of a moment: its newest standing report, and its figure (its newest standing
    report with a percent), in one query.

    Each item's reports are found through the (item_id, created_at) index with a correlated
    LIMIT 1, which stays fast with many reports per item (a window over every report of the
    plan did not).
    """
    statement = _latest_statement(session.get_bind().dialect.name)
    if session.autoflush:
        session.flush()  # a Core read: pending changes go first, as the ORM would do
    rows = session.connection().execute(statement, {"plan_id": plan.id, "as_of": as_of})
    latest: dict[int, ReportRow] = {}
    figure: dict[int, ReportRow] = {}
    for rid, item_id, contact_id, percent, status, text, created, name in rows:
        report = ReportRow(
            rid, item_id, contact_id, percent, getattr(status, "value", status), text, created, name
        )
        # At most two rows per item: the newest, and the newest with a percent (often the same).
        key = (created, rid)
        if item_id not in latest or key > _order(latest[item_id]):
            latest[item_id] = report
        if percent is not None and (item_id not in figure or key > _order(figure[item_id])):
            figure[item_id] = report
    return latest, figure


def _order(report: ReportRow) -> tuple[datetime, int]:
    return report.created_at, report.id


@functools.cache
def _target_values_statement() -> Any:
    base = (
        sa.select(
            col(TargetValue.target_id),
            col(Report.contact_id),
            col(TargetValue.value),
            col(Report.created_at),
            sa.func.row_number()
            .over(
                partition_by=(col(TargetValue.target_id), col(Report.contact_id)),
                order_by=(col(Report.created_at).desc(), col(Report.id).desc()),
            )
            .label("latest"),
            sa.func.row_number()
            .over(
                partition_by=col(TargetValue.target_id),
                order_by=(col(Report.created_at), col(Report.id)),
            )
            .label("first"),
            sa.func.count().over(partition_by=col(TargetValue.target_id)).label("n"),
        )
        .select_from(Target)
        .join(TargetValue, col(TargetValue.target_id) == Target.id)
        .join(Report, col(Report.id) == TargetValue.report_id)
        .join(WorkItem, col(WorkItem.id) == Target.item_id)
        .where(col(WorkItem.plan_id) == _PLAN_ID, standing(_AS_OF))
        .subquery()
    )
    return sa.select(base).where(sa.or_(base.c.latest == 1, base.c.first == 1))


def _target_values(
    session: Session, plan: Plan, as_of: datetime
) -> tuple[dict[int, dict[int, tuple[datetime, float]]], dict[int, tuple[datetime, float, int]]]:
    """Per target: each contact's latest value; and the first value with the count of values."""
    if session.autoflush:
        session.flush()  # a Core read: pending changes go first, as the ORM would do
    rows = session.connection().execute(
        _target_values_statement(), {"plan_id": plan.id, "as_of": as_of}
    )
    latest: dict[int, dict[int, tuple[datetime, float]]] = defaultdict(dict)
    first: dict[int, tuple[datetime, float, int]] = {}
    for row in rows:
        at = row.created_at
        if row.latest == 1:
            latest[row.target_id][row.contact_id] = (at, float(row.value))
        if row.first == 1:
            first[row.target_id] = (at, float(row.value), int(row.n))
    return latest, first


def _target_state(
    target: Target,
    latest: dict[int, tuple[datetime, float]],
    first: tuple[datetime, float, int] | None,
    deadline: datetime,
    tz: ZoneInfo,
) -> TargetState:
    state = TargetState(target=target, reporters=len(latest), reports=first[2] if first else 0)
    if not latest:
        return state
    newest_at = max(at for at, _ in latest.values())
    if target.additive:
        state.value = sum(value for _, value in latest.values())
    else:
        state.value = max(latest.values())[1]  # the newest report's value
    state.share = target_share(target.comparator, target.value, state.value)
    if first is not None and state.reports >= 2:
        # The first value is where the (summed) value stood when reporting began.
        state.projection = projection(
            (first[0], first[1]),
            (newest_at, state.value),
            deadline,
            goal=target.value,
            unit=target.unit,
            tz=tz,
        )
    return state


@memory.collector_paused()
def item_views(
    session: Session,
    plan: Plan,
    *,
    now: datetime,
    tz: ZoneInfo,
    rules: StatusRules | None = None,
    as_of: datetime | None = None,
) -> list[ItemView]:
    """Every live item of the plan with section, owners, targets, latest report, latest figure
    and status."""
    rules = rules or StatusRules()
    as_of = as_of or now
    items = live_items(session, plan)
    sections = {s.id: s for s in session.exec(select(Section).where(Section.plan_id == plan.id))}
    targets: dict[int, list[Target]] = defaultdict(list)
    for t in session.exec(
        select(Target)
        .join(WorkItem, col(WorkItem.id) == Target.item_id)
        .where(WorkItem.plan_id == plan.id)
        .order_by(col(Target.position))
    ):
        targets[t.item_id].append(t)
    people = owners(session, plan)
    latest, figures = latest_reports(session, plan, as_of)
    values, firsts = _target_values(session, plan, as_of)
    start = plan_start(plan)
    today = as_of.astimezone(tz).date()
    views = []
    for item in items:
        assert item.id is not None
        view = ItemView(
            item=item,
            section=sections[item.section_id],
            targets=[],
            people=people.get(item.id, []),
            latest=latest.get(item.id),
            figure=figures.get(item.id),
            tz=tz,
        )
        deadline = view.deadline or date(start.year, 12, 31)
        end = datetime.combine(deadline, datetime.max.time(), tzinfo=tz)
        view.targets = [
            _target_state(t, values.get(t.id or 0, {}), firsts.get(t.id or 0), end, tz)
            for t in targets[item.id]
        ]
        report = view.latest
        view.verdict = judge(
            percent=view.percent,
            reported_status=report.status if report else None,
            last_report_at=report.created_at if report else None,
            start=start,
            deadline=view.deadline,
            today=today,
            now=as_of.astimezone(tz),
            rules=rules,
        )
        views.append(view)
    return views


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
        "targets": [
            {**target_json(s.target), "current": s.value, "share": s.share} for s in view.targets
        ],
        "assignees": [c.name for c, _ in view.people],
        "percent": view.percent,
        "status": view.status,
    }


def typed_deadline(plan: Plan, text: str) -> date:
    """A deadline as people write it (bot/dates.py: 2023-12-31, 12月31日, 年底); a date that
    names no year is in the plan's year."""
    from bot.dates import parse_typed_date  # the importer's deadline rules: only when asked

    return parse_typed_date(text, year=plan_start(plan).year)
