"""What the board shows, read from the database: the wall, an item, the week.

Every figure is the digest's: the wall reads where each item stands as `item_views` does (the
same reads and the same status rule, without the targets' values it does not show), an item
page and the week use `item_views` and `build_digest` themselves. A page costs a fixed number
of queries per active plan, however many items and reports there are. Officials see the items
they answer for, nobody else's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from bot import memory
from bot.board.auth import Viewer
from bot.models import Contact, Outbox, Plan, Report, Section, Target, TargetValue, WorkItem
from bot.reporting import STATUSES, Reading
from bot.services import plans
from bot.services.digest import SEVERITY, Digest, build_digest, section_progress
from bot.services.items import ItemView, item_views, latest_reports, owners, plan_start
from bot.services.plans import live_items
from bot.services.progress import StatusRules, judge

# The outbox kinds that are reminders about an item (replies and notices are not).
REMINDER_KINDS = ("ask", "followup", "deadline", "overdue", "escalation")
REMINDERS_SHOWN = 100  # the newest reminders of an item on its page
MAX_ID = 2**31 - 1  # ids in the database are 32-bit: a bigger number names nothing
MAX_UNIT = 100  # characters of a unit name in a filter


def active_plans(session: Session) -> list[Plan]:
    """The plans people are working on: every open plan, the tasks last (none: an empty
    board)."""
    return plans.active_plans(session)


class BadFilter(ValueError):
    """A filter value that is malformed or names nothing on the board."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def parse_id(value: str) -> int | None:
    """A database id written in a URL, or None when it is not one (digits only, 32-bit; a
    number of thousands of digits is refused before int() would choke on it)."""
    if not (value.isascii() and value.isdigit()) or len(value) > 10 or int(value) > MAX_ID:
        return None
    return int(value)


def _id_param(name: str, value: str | None) -> int | None:
    if value is None or value == "":
        return None
    found = parse_id(value)
    if found is None:
        raise BadFilter(name)
    return found


@dataclass(frozen=True)
class Filters:
    """What the wall is narrowed to: a section, a unit, a status, an owner (None: all)."""

    section: int | None = None  # a section id
    unit: str | None = None
    status: str | None = None
    owner: int | None = None  # a contact id

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> Filters:
        """The filters of a query string; a malformed value raises BadFilter naming it."""
        status = params.get("status") or None
        if status is not None and status not in STATUSES:
            raise BadFilter("status")
        unit = (params.get("unit") or "").strip() or None
        if unit is not None and len(unit) > MAX_UNIT:
            raise BadFilter("unit")
        return cls(
            section=_id_param("section", params.get("section")),
            unit=unit,
            status=status,
            owner=_id_param("owner", params.get("owner")),
        )

    @property
    def active(self) -> bool:
        """Whether any filter is set."""
        return any(v is not None for v in (self.section, self.unit, self.status, self.owner))

    def query(self, **changes: object) -> str:
        """The query string of these filters with some changed ("" when none is set)."""
        values = {**self.__dict__, **changes}
        return urlencode({k: v for k, v in values.items() if v is not None})

    def keeps(self, view: ItemView) -> bool:
        """Whether an item passes the filters."""
        if self.section is not None and view.section.id != self.section:
            return False
        if self.unit is not None and self.unit not in item_units(view):
            return False
        if self.status is not None and view.status != self.status:
            return False
        return self.owner is None or self.owner in owner_ids(view)


def item_units(view: ItemView) -> list[str]:
    """The units an item concerns: lead units, support units, its owners' units."""
    units = [*view.item.lead_units, *view.item.support_units, *(c.unit for c, _ in view.people)]
    return list(dict.fromkeys(u for u in units if u))


def owner_ids(view: ItemView) -> set[int]:
    """The contacts who answer for an item."""
    return {c.id for c, _ in view.people}


def visible(views: Iterable[ItemView], viewer: Viewer) -> list[ItemView]:
    """The items a viewer may see: all for leaders and admins, their own for officials."""
    if viewer.sees_all:
        return list(views)
    return [v for v in views if viewer.contact_id in owner_ids(v)]


def count_statuses(views: Iterable[ItemView]) -> dict[str, int]:
    """How many items have each status."""
    counts = dict.fromkeys(STATUSES, 0)
    for view in views:
        counts[view.status] += 1
    return counts


def _severity(view: ItemView) -> tuple[int, int]:
    return SEVERITY[view.status], view.item.number


@dataclass(frozen=True)
class SectionGroup:
    """Items the wall lists together: a section's, or (section None) those needing attention."""

    section: Section | None
    items: list[ItemView]


@dataclass
class PlanWall:
    """One plan on the wall: red and amber items first, then the others by section."""

    plan: Plan
    attention: list[ItemView]
    sections: list[SectionGroup]
    counts: dict[str, int]

    @property
    def total(self) -> int:
        """Items listed for the plan."""
        return sum(self.counts.values())

    @property
    def groups(self) -> list[SectionGroup]:
        """The lists in the order shown: red and amber first, then each section."""
        first = [SectionGroup(None, self.attention)] if self.attention else []
        return first + self.sections


@dataclass(frozen=True)
class Choices:
    """What the filters offer: the values found among the items the viewer may see."""

    sections: list[tuple[Plan, list[Section]]]
    units: list[str]
    owners: list[tuple[int, str]]


@dataclass
class Wall:
    """Every active plan's items, filtered, with counts that add up to the lists."""

    plans: list[PlanWall]
    counts: dict[str, int]
    choices: Choices
    filters: Filters

    @property
    def total(self) -> int:
        """Items listed."""
        return sum(self.counts.values())


@memory.collector_paused()
def wall_views(
    session: Session, plan: Plan, *, now: datetime, tz: ZoneInfo, rules: StatusRules
) -> list[ItemView]:
    """Every live item of a plan as `item_views` sees it, without its targets' values (the
    wall does not show them, and reading them is a third of the work at 1,000 items).

    The same reads (`live_items`, `owners`, `latest_reports`) and the same rule (`judge`) as
    `item_views`, put together the same way; tests/test_board.py holds the two to the same
    statuses, figures and deadlines.
    """
    items = live_items(session, plan)
    sections = {s.id: s for s in session.exec(select(Section).where(Section.plan_id == plan.id))}
    people = owners(session, plan)
    latest, figures = latest_reports(session, plan, now)
    start = plan_start(plan)
    local_now = now.astimezone(tz)
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
        report = view.latest
        view.verdict = judge(
            percent=view.percent,
            reported_status=report.status if report else None,
            last_report_at=report.created_at if report else None,
            start=start,
            deadline=view.deadline,
            today=local_now.date(),
            now=local_now,
            rules=rules,
        )
        views.append(view)
    return views


def _plan_views(
    session: Session,
    viewer: Viewer,
    plans: list[Plan],
    *,
    now: datetime,
    tz: ZoneInfo,
    rules: StatusRules,
) -> list[tuple[Plan, list[ItemView]]]:
    return [
        (plan, visible(wall_views(session, plan, now=now, tz=tz, rules=rules), viewer))
        for plan in plans
    ]


def _choices(per_plan: list[tuple[Plan, list[ItemView]]]) -> Choices:
    sections = []
    units: set[str] = set()
    owners: dict[int, str] = {}
    for plan, views in per_plan:
        found = {v.section.id: v.section for v in views}
        sections.append((plan, sorted(found.values(), key=lambda s: s.number)))
        for view in views:  # what item_units() gives, for a thousand items at once
            units.update(view.item.lead_units, view.item.support_units)
            for contact, _ in view.people:
                units.add(contact.unit)
                owners[contact.id] = contact.name
    units.discard("")
    return Choices(
        sections=sections,
        units=sorted(units),
        owners=sorted(owners.items(), key=lambda pair: pair[1]),
    )


def _check(filters: Filters, choices: Choices) -> None:
    """A filter value that names nothing the viewer can see is refused, not quietly empty."""
    section_ids = {s.id for _, sections in choices.sections for s in sections}
    if filters.section is not None and filters.section not in section_ids:
        raise BadFilter("section")
    if filters.unit is not None and filters.unit not in choices.units:
        raise BadFilter("unit")
    if filters.owner is not None and filters.owner not in dict(choices.owners):
        raise BadFilter("owner")


def load_wall(
    session: Session,
    viewer: Viewer,
    filters: Filters,
    *,
    now: datetime,
    tz: ZoneInfo,
    rules: StatusRules,
    plans: list[Plan] | None = None,
) -> Wall:
    """The wall as a viewer sees it with these filters (of the active plans, or of `plans`)."""
    if plans is None:
        plans = active_plans(session)
    per_plan = _plan_views(session, viewer, plans, now=now, tz=tz, rules=rules)
    choices = _choices(per_plan)
    _check(filters, choices)
    walls = []
    for plan, views in per_plan:
        kept = sorted(filter(filters.keeps, views) if filters.active else views, key=_severity)
        attention = [v for v in kept if v.status in ("red", "amber")]
        by_section: dict[int, list[ItemView]] = defaultdict(list)
        sections: dict[int, Section] = {}
        for view in kept:
            if view.status not in ("red", "amber"):
                by_section[view.section.number].append(view)
                sections[view.section.number] = view.section
        groups = [SectionGroup(sections[n], by_section[n]) for n in sorted(by_section)]
        walls.append(PlanWall(plan, attention, groups, count_statuses(kept)))
    counts = dict.fromkeys(STATUSES, 0)
    for wall in walls:
        for status, n in wall.counts.items():
            counts[status] += n
    return Wall(plans=walls, counts=counts, choices=choices, filters=filters)


# --- one item ----------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryEntry:
    """One report on an item, standing or not."""

    id: int
    at: datetime  # aware
    contact: str
    percent: int | None
    status: str | None
    text: str
    readings: tuple[Reading, ...]
    source: str
    entered_by: str | None
    superseded: bool  # replaced by a correction
    withdrawn: bool
    correction: bool  # it corrects an earlier report

    @property
    def standing(self) -> bool:
        """Whether the report counts (not corrected, not withdrawn)."""
        return not (self.superseded or self.withdrawn)


@dataclass(frozen=True)
class ReminderSent:
    """A reminder about the item that went out."""

    kind: str
    contact: str
    at: datetime  # aware


@dataclass
class ItemPage:
    """An item with its history, its targets' values and the reminders sent about it."""

    plan: Plan
    view: ItemView
    history: list[HistoryEntry] = field(default_factory=list)
    reminders: list[ReminderSent] = field(default_factory=list)


def item_history(session: Session, item_id: int) -> list[HistoryEntry]:
    """Every report on an item, newest first, corrections and withdrawals marked (2 queries)."""
    entered = aliased(Contact)
    rows = session.execute(
        sa.select(
            col(Report.id),
            col(Report.created_at),
            col(Contact.name),
            col(Report.percent),
            col(Report.status),
            col(Report.text),
            col(Report.source),
            col(entered.name).label("entered_by"),
            col(Report.superseded_by_id),
            col(Report.withdrawn_at),
        )
        .join(Contact, col(Contact.id) == Report.contact_id)
        .outerjoin(entered, col(entered.id) == Report.entered_by_id)
        .where(col(Report.item_id) == item_id)
        .order_by(col(Report.created_at).desc(), col(Report.id).desc())
    ).all()
    readings: dict[int, list[Reading]] = defaultdict(list)
    for report_id, metric, value, unit in session.execute(
        sa.select(
            col(TargetValue.report_id), col(Target.metric), col(TargetValue.value), col(Target.unit)
        )
        .join(Target, col(Target.id) == TargetValue.target_id)
        .where(col(Target.item_id) == item_id)
        .order_by(col(TargetValue.report_id), col(Target.position))
    ):
        readings[report_id].append(Reading(metric, float(value), unit))
    corrections = {r.superseded_by_id for r in rows if r.superseded_by_id is not None}
    return [
        HistoryEntry(
            id=r.id,
            at=r.created_at,
            contact=r.name,
            percent=r.percent,
            status=getattr(r.status, "value", r.status),
            text=r.text,
            readings=tuple(readings.get(r.id, [])),
            source=r.source,
            entered_by=r.entered_by,
            superseded=r.superseded_by_id is not None,
            withdrawn=r.withdrawn_at is not None,
            correction=r.id in corrections,
        )
        for r in rows
    ]


def reminders_sent(session: Session, item_id: int) -> list[ReminderSent]:
    """The reminders about an item that were delivered, newest first."""
    rows = session.execute(
        sa.select(col(Outbox.kind), col(Contact.name), col(Outbox.sent_at))
        .outerjoin(Contact, col(Contact.id) == Outbox.contact_id)
        .where(
            col(Outbox.item_id) == item_id,
            col(Outbox.state) == "sent",
            col(Outbox.kind).in_(REMINDER_KINDS),
        )
        .order_by(col(Outbox.sent_at).desc(), col(Outbox.id).desc())
        .limit(REMINDERS_SHOWN)
    )
    return [ReminderSent(kind, name or "-", at) for kind, name, at in rows if at is not None]


def load_item(
    session: Session,
    viewer: Viewer,
    item_id: int,
    *,
    now: datetime,
    tz: ZoneInfo,
    rules: StatusRules,
) -> ItemPage | None:
    """An item's page, or None when there is no such live item or the viewer may not see it."""
    if not 0 < item_id <= MAX_ID:
        return None
    item = session.get(WorkItem, item_id)
    if item is None or item.removed_at is not None:
        return None
    plan = next((p for p in active_plans(session) if p.id == item.plan_id), None)
    if plan is None:
        return None
    # The same read as the wall and the digest (one plan, a fixed number of queries).
    views = visible(item_views(session, plan, now=now, tz=tz, rules=rules), viewer)
    view = next((v for v in views if v.item.id == item_id), None)
    if view is None:
        return None
    return ItemPage(
        plan=plan,
        view=view,
        history=item_history(session, item_id),
        reminders=reminders_sent(session, item_id),
    )


# --- the week ----------------------------------------------------------------------------


def visible_digest(digest: Digest, viewer: Viewer) -> Digest:
    """The digest narrowed to what a viewer may see (officials: their items, no roll call)."""
    if viewer.sees_all:
        return digest
    views = visible(digest.views, viewer)
    numbers = {v.item.number for v in views}
    return replace(
        digest,
        views=views,
        counts=count_statuses(views),
        reports=[r for r in digest.reports if r.item in numbers],
        changes=[c for c in digest.changes if c.view.item.number in numbers],
        missing=[],
        sections=section_progress(sorted(views, key=lambda v: v.item.number)),
    )


@dataclass(frozen=True)
class PlanWeek:
    """One plan's week as the viewer may see it, and its items' ids by number (for links)."""

    digest: Digest
    item_ids: dict[int, int]


def load_week(
    session: Session,
    viewer: Viewer,
    *,
    now: datetime,
    tz: ZoneInfo,
    rules: StatusRules,
    plan_id: int | None = None,
) -> list[PlanWeek]:
    """This week's digest of every active plan (or of one), as the viewer may see it."""
    weeks = []
    for plan in active_plans(session):
        if plan_id is not None and plan.id != plan_id:
            continue
        digest = visible_digest(build_digest(session, plan, now=now, tz=tz, rules=rules), viewer)
        ids = {v.item.number: v.item.id for v in digest.views if v.item.id is not None}
        weeks.append(PlanWeek(digest, ids))
    return weeks
