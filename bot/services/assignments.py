"""Assignments: which contact answers for which work item, lead or support, by when."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime

from sqlmodel import Session, col, select

from bot.i18n import UserError
from bot.models import Assignment, AssignmentRole, Contact, Plan, Role, WorkItem, utcnow
from bot.services import audit
from bot.services.contacts import add_contact
from bot.services.notices import fresh_key, queue_notice
from bot.services.plans import find_item, item_ref, live_items

CSV_COLUMNS = ("item", "contact", "unit", "role", "deadline")


def parse_date(value: str) -> date:
    """A YYYY-MM-DD date, or a UserError saying what is wrong."""
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise UserError("date.bad", value=value) from None


def check_writable(session: Session, item: WorkItem) -> None:
    """Refuse to change who answers for an item of a closed plan (read-only, as imports and
    reports on it are): the one-line `plan.closed`."""
    plan = session.get(Plan, item.plan_id)
    if plan is not None and plan.closed_at is not None:
        raise UserError("plan.closed", code=plan.code, title=plan.title)


def assign(
    session: Session,
    *,
    item: WorkItem,
    contact: Contact,
    role: AssignmentRole = AssignmentRole.lead,
    deadline: date | None = None,
    actor: str,
    now: datetime | None = None,
) -> tuple[Assignment, bool]:
    """Assign an item to a contact (or update the assignment); returns it and whether it is new.

    A new assignment queues a notice to the assignee in the same transaction, under a fresh
    key: an unassigned assignment's row id comes back on SQLite, so it cannot be the key.
    An item of a closed plan is refused (`plan.closed`).
    """
    check_writable(session, item)
    existing = session.exec(
        select(Assignment).where(Assignment.item_id == item.id, Assignment.contact_id == contact.id)
    ).first()
    created = existing is None
    if existing is None:
        assert item.id is not None and contact.id is not None
        existing = Assignment(item_id=item.id, contact_id=contact.id, role=role, deadline=deadline)
        session.add(existing)
    else:
        existing.role = role
        if deadline is not None:
            existing.deadline = deadline
    session.flush()
    if created:
        queue_notice(
            session,
            contact,
            "assign.notice",
            key=fresh_key("assign", item.id, contact.id),
            now=now or utcnow(),
            item_id=item.id,
            item=item_ref(session, item),
            title=item.title,
            deadline=due_param(item, existing),
        )
    audit.record(
        session,
        actor=actor,
        action="assign",
        **audit.of_item(session, item),
        contact=contact.name,
        role=role.value,
        deadline=deadline.isoformat() if deadline else None,
    )
    return existing, created


def due_text(item: WorkItem, assignment: Assignment) -> str:
    """The deadline that applies to an assignment, as text ("-" when none)."""
    deadline = assignment.deadline or item.deadline or item.suggested_deadline
    return deadline.isoformat() if deadline else "-"


def due_param(item: WorkItem, assignment: Assignment) -> str | dict[str, str]:
    """The deadline for a queued message's parameters: the date, or the catalog's word for
    "not set" (translated when the message is sent, in the bot's locale)."""
    due = due_text(item, assignment)
    return {"key": "deadline.not_set"} if due == "-" else due


def set_deadline(
    session: Session,
    *,
    item: WorkItem,
    deadline: date,
    actor: str,
    now: datetime | None = None,
) -> list[Contact]:
    """Set an item's deadline and tell each of its owners (through the outbox); returns them.
    An item of a closed plan is refused (`plan.closed`)."""
    assert item.id is not None
    check_writable(session, item)
    old = item.deadline
    item.deadline = deadline
    audit.record(
        session,
        actor=actor,
        action="deadline",
        **audit.of_item(session, item),
        old=old.isoformat() if old else None,
        new=deadline.isoformat(),
    )
    owners = [person for person, _ in assignees(session, [item.id])[item.id]]
    for person in owners:
        queue_notice(
            session,
            person,
            "deadline.notice",
            key=fresh_key("deadline-set", item.id, person.id),
            now=now or utcnow(),
            item_id=item.id,
            item=item_ref(session, item),
            title=item.title,
            deadline=deadline.isoformat(),
        )
    return owners


def assign_unit(
    session: Session, *, plan: Plan, unit: str, contact: Contact, deadline: date | None, actor: str
) -> list[WorkItem]:
    """Assign (as lead) every item whose lead units include unit."""
    unit = unit.strip()
    done: list[WorkItem] = []
    for item in live_items(session, plan):
        if unit in item.lead_units:
            assign(
                session,
                item=item,
                contact=contact,
                role=AssignmentRole.lead,
                deadline=deadline,
                actor=actor,
            )
            done.append(item)
    if not done:
        raise UserError("assign.unit_none", unit=unit)
    return done


@dataclass
class CsvRow:
    """One validated row of an assignment CSV."""

    line: int
    item: WorkItem
    contact_name: str
    unit: str
    role: AssignmentRole
    deadline: date | None


def _csv_role(value: str) -> AssignmentRole | None:
    value = value.strip().lower()
    mapping = {
        "": AssignmentRole.lead,
        "lead": AssignmentRole.lead,
        "牵头": AssignmentRole.lead,
        "support": AssignmentRole.support,
        "配合": AssignmentRole.support,
    }
    return mapping.get(value)


def read_assignment_csv(session: Session, plan: Plan, text: str) -> list[CsvRow]:
    """Validate a whole assignment CSV first; every error names its row and column."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in ("item", "contact") if c not in header]
    if missing:
        raise UserError(
            "csv.missing_columns", columns=", ".join(missing), expected=",".join(CSV_COLUMNS)
        )
    rows: list[CsvRow] = []
    errors: list[UserError] = []
    for line, raw in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        if not any(row.values()):
            continue
        try:
            item = find_item(session, plan, row.get("item", ""))
        except UserError:
            errors.append(UserError("csv.row.item", line=line, value=row.get("item", "")))
            continue
        name = row.get("contact", "")
        if not name:
            errors.append(UserError("csv.row.contact", line=line))
            continue
        role = _csv_role(row.get("role", ""))
        if role is None:
            errors.append(UserError("csv.row.role", line=line, value=row.get("role", "")))
            continue
        deadline = None
        if row.get("deadline"):
            try:
                deadline = date.fromisoformat(row["deadline"])
            except ValueError:
                errors.append(UserError("csv.row.deadline", line=line, value=row["deadline"]))
                continue
        rows.append(CsvRow(line, item, name, row.get("unit", ""), role, deadline))
    if errors:
        raise UserError("csv.invalid", count=len(errors), errors=errors)
    if not rows:
        raise UserError("csv.empty")
    return rows


def apply_assignment_csv(session: Session, rows: list[CsvRow], *, actor: str) -> tuple[int, int]:
    """Apply validated rows, creating missing contacts; returns (rows, new contacts)."""
    created = 0
    for row in rows:
        contact = session.exec(select(Contact).where(Contact.name == row.contact_name)).first()
        if contact is None:
            contact = add_contact(
                session, name=row.contact_name, unit=row.unit, role=Role.official, actor=actor
            )
            created += 1
        assign(
            session,
            item=row.item,
            contact=contact,
            role=row.role,
            deadline=row.deadline,
            actor=actor,
        )
    return len(rows), created


def assignees(session: Session, item_ids: list[int]) -> dict[int, list[tuple[Contact, Assignment]]]:
    """The contacts assigned to each item, lead first."""
    out: dict[int, list[tuple[Contact, Assignment]]] = {i: [] for i in item_ids}
    rows = session.exec(
        select(Contact, Assignment)
        .join(Assignment, col(Assignment.contact_id) == Contact.id)
        .where(col(Assignment.item_id).in_(item_ids))
        .order_by(col(Assignment.role), col(Contact.name))
    )
    for contact, assignment in rows:
        out[assignment.item_id].append((contact, assignment))
    return out


def unassign(session: Session, *, item: WorkItem, contact: Contact, actor: str) -> None:
    """Remove a contact's assignment to an item (not on a closed plan: `plan.closed`)."""
    check_writable(session, item)
    existing = session.exec(
        select(Assignment).where(Assignment.item_id == item.id, Assignment.contact_id == contact.id)
    ).first()
    if existing is None:
        raise UserError("assign.not_assigned", item=item_ref(session, item), name=contact.name)
    session.delete(existing)
    audit.record(
        session,
        actor=actor,
        action="unassign",
        **audit.of_item(session, item),
        contact=contact.name,
    )
