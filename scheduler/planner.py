"""The planner: turns plan state (assignments, deadlines, reports) into due messages.

`plan_day` says what is due on one day; it is pure, so the live scheduler, the preview and a
test playing a whole year all use it. Every message has a unique dedupe key (its kind, whom
and what it is about, and its date or cycle), so planning twice, or on two instances at
once, plans each message once. Each message also says until when it still means something:

- the weekly ask: until the next ask (an ask older than its cycle is dropped);
- a deadline reminder: until the deadline (then the overdue notice takes over);
- an overdue nag or escalation: until the next one is due (only the latest goes out after
  downtime, never a burst);
- a follow-up: until the end of its working day.

An owner who has answered in the current cycle (since the latest weekly ask) is not nagged
about an overdue item again in that cycle: a report on the item, 滞后 with a reason included,
is the answer the nag asks for. Escalations to leaders go on while the item stays overdue.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, col, select

from bot.models import Account, Assignment, Contact, Plan, Report, Role, Section, WorkItem
from bot.outbox import Message, enqueue
from bot.services.accounts import preferred
from bot.services.items import item_views, standing
from bot.services.plans import default_plan_id, written_ref
from bot.services.progress import StatusRules
from bot.settings import Settings
from scheduler.calendar import WorkCalendar

KINDS = ("ask", "deadline", "overdue", "escalation", "followup", "digest")


@dataclass(frozen=True)
class Schedule:
    """When each kind of message goes out (from settings)."""

    ask_weekday: int = 4
    ask_time: time = time(10)
    reminder_days: tuple[int, ...] = (7, 3, 1)
    overdue_every: int = 3
    overdue_max: int = 5
    escalate_from: int = 2
    followup_time: time = time(10)
    digest_weekday: int = 0
    digest_time: time = time(9)

    @classmethod
    def from_settings(cls, settings: Settings) -> Schedule:
        """The schedule configured in settings."""
        return cls(
            ask_weekday=settings.ask_weekday,
            ask_time=settings.ask_time,
            reminder_days=tuple(settings.reminder_days),
            overdue_every=settings.overdue_every_days,
            overdue_max=settings.overdue_max_nags,
            escalate_from=settings.escalate_from_nag,
            followup_time=settings.followup_time,
            digest_weekday=settings.digest_weekday,
            digest_time=settings.digest_time,
        )


@dataclass(frozen=True)
class Person:
    """A contact as the planner needs it."""

    id: int
    name: str
    role: Role
    channel: str  # the platform they are reached on (by channel priority), or none


@dataclass(frozen=True)
class OpenItem:
    """An item that is not done, with its deadline and owners."""

    id: int
    number: int
    title: str
    section_id: int
    deadline: date | None
    owners: tuple[tuple[int, int], ...]  # (assignment id, contact id)
    ref: str  # how messages name it: "9" in the default plan, "民生9" or "J2" in another


@dataclass
class PlanState:
    """What the planner reads from the database, once per run."""

    plan_id: int
    plan_title: str
    people: dict[int, Person]
    open_items: list[OpenItem]
    leaders: list[int]
    section_leader: dict[int, int]
    last_report_at: dict[int, datetime] = field(default_factory=dict)
    # (contact id, item id) of each assignment -> when that owner last reported on that item
    # (standing reports)
    item_reported_at: dict[tuple[int, int], datetime] = field(default_factory=dict)
    # "" for the default plan; ":p<id>" for the others, so each plan's weekly ask and
    # follow-up to a person are planned once each (and the default plan's keys never change)
    key_suffix: str = ""
    # a 交办 task's escalations go to whoever handed it down (item id -> contact id)
    item_leader: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Planned:
    """One message the planner wants sent."""

    key: str
    kind: str
    contact_id: int
    due_at: datetime
    expires_at: datetime | None
    message: str
    params: dict[str, Any]
    item_id: int | None = None
    item_number: int | None = None


_PEOPLE = sa.select(
    col(Contact.id),
    col(Contact.name),
    col(Contact.role),
).where(col(Contact.active).is_(True))
_ACCOUNTS = sa.select(col(Account.contact_id), col(Account.platform), col(Account.account_id))


def load_state(
    session: Session, plan: Plan, *, now: datetime, tz: ZoneInfo, rules: StatusRules
) -> PlanState:
    """Read what planning needs (a fixed number of queries)."""
    assert plan.id is not None
    views = item_views(session, plan, now=now, tz=tz, rules=rules)
    default_id = default_plan_id(session)
    people: dict[int, Person] = {}
    # Plain rows, not entities: ten thousand contacts load several times faster this way.
    held: dict[int, dict[str, str]] = {}
    for contact_id, platform, account_id in session.connection().execute(_ACCOUNTS):
        held.setdefault(contact_id, {})[platform] = account_id
    for row in session.connection().execute(_PEOPLE):
        channel = preferred(held.get(row.id, {}))
        people[row.id] = Person(row.id, row.name, Role(row.role), channel)
    open_items = [
        OpenItem(
            id=v.item.id or 0,
            number=v.item.number,
            ref=written_ref(plan, v.item.number, default_id),
            title=v.item.title,
            section_id=v.item.section_id,
            deadline=v.deadline,
            owners=tuple((a.id or 0, c.id or 0) for c, a in v.people if c.id in people),
        )
        for v in views
        if v.status != "done"
    ]
    item_leader = {
        v.item.id: v.item.assigned_by_id
        for v in views
        if v.item.id is not None and v.item.assigned_by_id in people and v.status != "done"
    }
    section_leader = {
        s.id: s.leader_id
        for s in session.exec(select(Section).where(Section.plan_id == plan.id))
        if s.id is not None and s.leader_id is not None
    }
    # The newest report of each active person, and of each owner on each item, read newest
    # first through an index: a row or a few each. Grouping every report instead read the
    # whole history on every tick; its time and SQLite's memory for it grew with the reports
    # (0.6 s and 6 MB of page cache and sorting at 150,000).
    last = dict(
        session.execute(
            sa.select(
                col(Contact.id),
                _newest_report_at(
                    col(Report.contact_id) == col(Contact.id),
                    col(Report.withdrawn_at).is_(None),
                    col(Report.created_at) <= now,
                    correlate=Contact,
                ),
            ).where(col(Contact.active).is_(True))
        ).all()
    )
    on_item = session.execute(
        sa.select(
            col(Assignment.contact_id),
            col(Assignment.item_id),
            _newest_report_at(
                col(Report.contact_id) == col(Assignment.contact_id),
                col(Report.item_id) == col(Assignment.item_id),
                standing(now),
                correlate=Assignment,
            ),
        )
        .join(WorkItem, col(WorkItem.id) == Assignment.item_id)
        .where(col(WorkItem.plan_id) == plan.id)
    ).all()
    return PlanState(
        plan_id=plan.id,
        plan_title=plan.title,
        people=people,
        open_items=open_items,
        leaders=sorted(p.id for p in people.values() if p.role == Role.leader),
        section_leader=section_leader,
        item_leader={k: v for k, v in item_leader.items() if v is not None},
        last_report_at={k: _aware(v) for k, v in last.items() if v is not None},
        item_reported_at={
            (contact_id, item_id): _aware(at)
            for contact_id, item_id, at in on_item
            if at is not None
        },
    )


def _newest_report_at(*where: Any, correlate: Any) -> Any:
    """When the newest report matching `where` was made: a scalar subquery correlated with
    `correlate` (NULL when there is none), read newest first through an index."""
    return (
        sa.select(col(Report.created_at))
        .where(*where)
        .order_by(col(Report.created_at).desc())
        .limit(1)
        .correlate(correlate)
        .scalar_subquery()
    )


def _aware(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo else value.replace(tzinfo=ZoneInfo("UTC"))


def ask_day(cal: WorkCalendar, sched: Schedule, day: date) -> date:
    """The day of the week's ask: its weekday, else the last working day of that week."""
    monday = day - timedelta(days=day.weekday())
    wanted = monday + timedelta(days=sched.ask_weekday)
    return wanted if cal.is_working_day(wanted) else cal.last_working_day_of_week(wanted)


def digest_day(cal: WorkCalendar, sched: Schedule, day: date) -> date:
    """The day of the week's digest: its weekday, else the first working day of that week."""
    monday = day - timedelta(days=day.weekday())
    wanted = monday + timedelta(days=sched.digest_weekday)
    return wanted if cal.is_working_day(wanted) else cal.first_working_day_of_week(wanted)


def _week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def plan_day(
    state: PlanState, day: date, cal: WorkCalendar, sched: Schedule, *, assume_silent: bool = False
) -> list[Planned]:
    """Every message due on one day (none on a day off).

    `assume_silent` plans follow-ups as if nobody answered the ask (the preview's view).
    """
    if not cal.is_working_day(day):
        return []
    out: list[Planned] = []
    at = cal.on_or_after
    by_contact: dict[int, list[OpenItem]] = defaultdict(list)
    for item in state.open_items:
        for _, contact_id in item.owners:
            if state.people[contact_id].role == Role.official:
                by_contact[contact_id].append(item)

    this_ask = ask_day(cal, sched, day)
    if day == this_ask:
        due = at(day, sched.ask_time)
        next_ask = ask_day(cal, sched, day + timedelta(days=7))
        for contact_id, items in by_contact.items():
            out.append(_ask(state, contact_id, items, due, at(next_ask, sched.ask_time), day))
    previous_ask = ask_day(cal, sched, day - timedelta(days=7))
    for asked in (this_ask, previous_ask):
        if asked < day and cal.add_working_days(asked, 1) == day:
            asked_at = at(asked, sched.ask_time)
            due = at(day, sched.followup_time)
            for contact_id, items in by_contact.items():
                answered = state.last_report_at.get(contact_id)
                if not assume_silent and answered is not None and answered >= asked_at:
                    continue
                person = state.people[contact_id]
                out.append(
                    Planned(
                        key=f"followup:{contact_id}:{_week(asked)}{state.key_suffix}",
                        kind="followup",
                        contact_id=contact_id,
                        due_at=due,
                        expires_at=at(day, cal.end),
                        message="remind.followup",
                        params={"name": person.name, "items": _item_lines(items)},
                        item_id=items[0].id if len(items) == 1 else None,
                        item_number=items[0].number if len(items) == 1 else None,
                    )
                )

    for item in state.open_items:
        if item.deadline is None:
            continue
        deadline = item.deadline
        for days_before in sched.reminder_days:
            if cal.add_working_days(deadline, -days_before) != day:
                continue
            for _, contact_id in item.owners:
                out.append(
                    _about(
                        item,
                        "deadline",
                        # keyed by item and person, never by a row id SQLite may give again
                        f"{item.id}:{contact_id}:{deadline}:{days_before}",
                        contact_id,
                        at(day, sched.ask_time),
                        datetime.combine(deadline, time.max, tzinfo=cal.tz),
                        _item_params(item, days=days_before),
                    )
                )
        if day <= deadline:
            continue
        first = cal.add_working_days(deadline, 1)
        if day < first:
            continue
        since = cal.working_days_between(first, day)
        if since % sched.overdue_every:
            continue
        nag = since // sched.overdue_every + 1
        if nag > sched.overdue_max:
            continue
        due = at(day, sched.ask_time)
        until = at(cal.add_working_days(day, sched.overdue_every), sched.ask_time)
        late = cal.working_days_between(deadline, day)
        # The cycle runs from the latest ask: an owner who reported on the item since has
        # answered this nag already.
        cycle = at(this_ask, sched.ask_time)
        if cycle > due:
            cycle = at(previous_ask, sched.ask_time)
        for _, contact_id in item.owners:
            answered = state.item_reported_at.get((contact_id, item.id))
            if not assume_silent and answered is not None and answered >= cycle:
                continue
            out.append(
                _about(
                    item,
                    "overdue",
                    f"{item.id}:{contact_id}:{deadline}:{nag}",
                    contact_id,
                    due,
                    until,
                    _item_params(item, days=late),
                )
            )
        if nag >= sched.escalate_from:
            leader = state.item_leader.get(item.id) or state.section_leader.get(item.section_id)
            owners = "、".join(state.people[c].name for _, c in item.owners) or "-"
            for leader_id in [leader] if leader else state.leaders:
                out.append(
                    _about(
                        item,
                        "escalation",
                        f"{item.id}:{deadline}:{nag}:{leader_id}",
                        leader_id,
                        due,
                        until,
                        {**_item_params(item, days=late), "owners": owners, "nag": nag},
                    )
                )

    if day == digest_day(cal, sched, day):
        last_week = day - timedelta(days=7)
        due = at(day, sched.digest_time)
        for leader_id in state.leaders:
            out.append(
                Planned(
                    key=f"digest:{state.plan_id}:{_week(last_week)}:{leader_id}",
                    kind="digest",
                    contact_id=leader_id,
                    due_at=due,
                    expires_at=at(digest_day(cal, sched, day + timedelta(days=7)), cal.start),
                    message="digest",
                    params={"week": _week(last_week)},
                )
            )
    return out


def _about(
    item: OpenItem,
    kind: str,
    key: str,
    contact_id: int,
    due_at: datetime,
    expires_at: datetime,
    params: dict[str, Any],
) -> Planned:
    """A reminder about one item: `remind.<kind>`, its dedupe key `<kind>:<key>`."""
    return Planned(
        key=f"{kind}:{key}",
        kind=kind,
        contact_id=contact_id,
        due_at=due_at,
        expires_at=expires_at,
        message=f"remind.{kind}",
        params=params,
        item_id=item.id,
        item_number=item.number,
    )


def _item_lines(items: list[OpenItem]) -> str:
    return "\n".join(
        f"{i.ref}. {i.title}" + (f"（{i.deadline.isoformat()}）" if i.deadline else "")
        for i in items
    )


def _item_params(item: OpenItem, *, days: int) -> dict[str, Any]:
    return {
        "item": item.ref,
        "title": item.title,
        "deadline": item.deadline.isoformat() if item.deadline else "-",
        "days": days,
    }


def _ask(
    state: PlanState,
    contact_id: int,
    items: list[OpenItem],
    due: datetime,
    expires: datetime,
    day: date,
) -> Planned:
    single = items[0] if len(items) == 1 else None
    example = items[0].ref
    return Planned(
        key=f"ask:{contact_id}:{_week(day)}{state.key_suffix}",
        kind="ask",
        contact_id=contact_id,
        due_at=due,
        expires_at=expires,
        message="remind.ask",
        params={
            "name": state.people[contact_id].name,
            "items": _item_lines(items),
            "example": example,
        },
        item_id=single.id if single else None,
        item_number=single.number if single else None,
    )


def store(session: Session, planned: list[Planned], *, now: datetime) -> int:
    """Insert planned messages into the outbox, each at most once (by dedupe key)."""
    messages = [
        Message(
            key=p.key,
            kind=p.kind,
            contact_id=p.contact_id,
            item_id=p.item_id,
            payload={"message": p.message, "params": p.params},
            due_at=p.due_at,
            expires_at=p.expires_at,
        )
        for p in planned
        if p.kind != "digest"
    ]
    added = 0
    for start in range(0, len(messages), 500):
        added += len(enqueue(session, messages[start : start + 500], now=now))
    return added
