"""Admin tools for reminders: preview what the planner would send, ask now, section leaders."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from bot.i18n import UserError
from bot.models import Contact, Plan, Role, Section, WorkItem
from bot.outbox import OUTBOX_TOUCHED, Message, enqueue
from bot.services import audit
from bot.services.accounts import preferred
from bot.services.notices import fresh_key
from bot.services.progress import StatusRules
from bot.settings import Settings
from scheduler.calendar import WorkCalendar
from scheduler.planner import Planned, Schedule, load_state, plan_day

ASK_VALID = timedelta(days=7)


def preview(
    session: Session,
    plan: Plan,
    *,
    start: date,
    end: date,
    now: datetime,
    settings: Settings,
    calendar: WorkCalendar,
) -> list[Planned]:
    """What the planner would send from start to end, planned as the plan stands now."""
    if end < start:
        raise UserError("reminders.bad_range", start=start.isoformat(), end=end.isoformat())
    if (end - start).days > 366:
        raise UserError("reminders.too_long", days=(end - start).days)
    state = load_state(
        session, plan, now=now, tz=settings.tz, rules=StatusRules.from_settings(settings)
    )
    schedule = Schedule.from_settings(settings)
    out: list[Planned] = []
    seen: set[str] = set()
    day = start
    while day <= end:
        for planned in plan_day(state, day, calendar, schedule, assume_silent=True):
            if planned.key not in seen:
                seen.add(planned.key)
                out.append(planned)
        day += timedelta(days=1)
    return sorted(out, key=lambda p: (p.due_at, p.kind, p.contact_id))


def preview_json(
    planned: list[Planned], people: dict[int, Contact], held: dict[int, dict[str, str]]
) -> list[dict[str, Any]]:
    """The preview as `duban reminders preview --json` prints it (`held`: the contacts'
    accounts, {contact id: {platform: account id}})."""
    out = []
    for p in planned:
        person = people.get(p.contact_id)
        channel = preferred(held.get(p.contact_id, {})) if person is not None else "none"
        out.append(
            {
                "at": p.due_at.isoformat(),
                "kind": p.kind,
                "contact": person.name if person else None,
                "item": p.item_number,
                "channel": channel,
            }
        )
    return out


def ask_now(
    session: Session,
    plan: Plan,
    *,
    now: datetime,
    settings: Settings,
    item: WorkItem | None,
    actor: str,
) -> int:
    """Plan a progress ask at once to the owners of one item, or of every open item."""
    state = load_state(
        session, plan, now=now, tz=settings.tz, rules=StatusRules.from_settings(settings)
    )
    by_contact: dict[int, list[Any]] = {}
    for open_item in state.open_items:
        if item is not None and open_item.id != item.id:
            continue
        for _, contact_id in open_item.owners:
            if state.people[contact_id].role == Role.official:
                by_contact.setdefault(contact_id, []).append(open_item)
    asks: list[Message] = []
    for contact_id, items in by_contact.items():
        single = items[0] if len(items) == 1 else None
        lines = "\n".join(f"{i.number}. {i.title}" for i in items)
        asks.append(
            Message(
                # asked on demand: twice in one second is two asks, not a clash
                key=fresh_key("ask-now", contact_id, item.id if item else "all"),
                kind="ask",
                contact_id=contact_id,
                item_id=single.id if single else None,
                payload={
                    "message": "remind.ask",
                    "params": {
                        "name": state.people[contact_id].name,
                        "items": lines,
                        "example": items[0].number,
                    },
                },
                due_at=now,
                expires_at=now + ASK_VALID,
            )
        )
    enqueue(session, asks, now=now)
    session.info[OUTBOX_TOUCHED] = True
    audit.record(
        session,
        actor=actor,
        action="remind.now",
        **(audit.of_item(session, item) if item else {"item": None}),
        contacts=len(by_contact),
    )
    return len(by_contact)


def find_section(session: Session, plan: Plan, ref: str) -> Section:
    """A section by its number (3) or its label (三)."""
    ref = ref.strip().rstrip("、.")
    for section in session.exec(select(Section).where(Section.plan_id == plan.id)):
        if ref in (section.label, str(section.number)):
            return section
    raise UserError("sections.unknown", ref=ref)


def set_section_leader(session: Session, section: Section, leader: Contact, *, actor: str) -> None:
    """Make a leader the one in charge of a section (分管领导): escalations go to them."""
    if leader.role != Role.leader:
        raise UserError("sections.not_leader", name=leader.name)
    section.leader_id = leader.id
    plan = session.get(Plan, section.plan_id)
    audit.record(
        session,
        actor=actor,
        action="section.leader",
        plan=plan.code if plan is not None else None,
        section=section.number,
        leader=leader.name,
    )
