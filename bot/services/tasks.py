"""交办 tasks: handed down by command (in chat or on the command line), closed with a 办结
report by an owner, reopened by the person who handed them down.

A task is an item of the one tasks plan (code J, made on first use): reminders, nags,
escalation, the digest, the ledger and /status treat it like any plan item. What is special
is kept on the item: who handed it down (told when it is done or falls behind) and the note.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from sqlmodel import Session, col, select

from bot.dates import read_typed_date
from bot.i18n import Translator, UserError
from bot.models import (
    Assignment,
    AssignmentRole,
    Contact,
    Plan,
    PlanKind,
    Report,
    ReportStatus,
    Section,
    WorkItem,
)
from bot.services import assignments, audit, contacts, plans, reports
from bot.services.notices import fresh_key, queue_notice

MAX_TITLE = 200
MAX_NOTE = 500
_AT_RE = re.compile(r"[@＠]\s*(?P<name>[^\s@＠，,;；]+)")


@dataclass(frozen=True)
class TaskSpec:
    """A task as an admin or a leader wrote it."""

    title: str
    owners: tuple[str, ...]  # names, the lead first
    deadline: date
    note: str = ""


def parse_task(text: str, *, year: int) -> TaskSpec:
    """Read `TITLE @OWNER [@SUPPORT ...] DEADLINE [NOTE]` (the deadline in any form people
    write: 6月30日前, 2023-06-30, 年底 ...); a UserError that says what is missing."""
    text = text.strip()
    if not text:
        raise UserError("task.usage")
    first_at = _AT_RE.search(text)
    if first_at is None:
        raise UserError("task.no_owner")
    title = text[: first_at.start()].strip()
    if not title:
        raise UserError("task.no_title")
    owners = tuple(m.group("name") for m in _AT_RE.finditer(text))
    rest = _AT_RE.sub(" ", text[first_at.start() :]).split()
    deadline: date | None = None
    note_words: list[str] = []
    for i, word in enumerate(rest):
        if deadline is None and not note_words:
            found = read_typed_date(word, year=year)
            if found is None and i + 1 < len(rest):
                found = read_typed_date(word + rest[i + 1], year=year)
                if found is not None:
                    rest[i + 1] = ""
            if found is not None:
                deadline = found
                continue
        if word:
            note_words.append(word)
    if deadline is None:
        raise UserError("task.no_deadline")
    return TaskSpec(title=title, owners=owners, deadline=deadline, note=" ".join(note_words))


def ref_of(plan: Plan, item: WorkItem) -> str:
    """How people write an item of a plan that is not the default one: CODE+NUMBER."""
    return f"{plan.code}{item.number}"


def create_task(
    session: Session,
    spec: TaskSpec,
    *,
    by: Contact | None,
    now: datetime,
    actor: str,
    t: Translator,
) -> tuple[WorkItem, list[Contact]]:
    """Store a task with its owners (the first leads, the rest support) and tell each owner.

    Every owner is checked before anything is written: a wrong name changes nothing.
    """
    if len(spec.title) > MAX_TITLE:
        raise UserError("task.title_too_long", length=len(spec.title), max=MAX_TITLE)
    people = [contacts.find_contact(session, name) for name in dict.fromkeys(spec.owners)]
    plan = plans.tasks_plan(session, create=True, title=t("plan.tasks_title"))
    assert plan is not None and plan.id is not None
    if plan.closed_at is not None:
        raise UserError("plan.closed", code=plan.code, title=plan.title)
    section = session.exec(select(Section).where(Section.plan_id == plan.id)).first()
    assert section is not None and section.id is not None
    last = session.exec(
        select(WorkItem.number)
        .where(WorkItem.plan_id == plan.id)
        .order_by(col(WorkItem.number).desc())
        .limit(1)
    ).first()
    number = (last or 0) + 1
    note = spec.note[:MAX_NOTE]
    item = WorkItem(
        plan_id=plan.id,
        section_id=section.id,
        number=number,
        label=f"{plan.code}{number}",
        title=spec.title,
        body=note,
        note=note,
        deadline=spec.deadline,
        assigned_by_id=by.id if by else None,
    )
    session.add(item)
    session.flush()
    assert item.id is not None
    ref = ref_of(plan, item)
    for n, person in enumerate(people):
        role = AssignmentRole.lead if n == 0 else AssignmentRole.support
        session.add(Assignment(item_id=item.id, contact_id=person.id or 0, role=role))
        queue_notice(
            session,
            person,
            "task.told_owner",
            key=fresh_key("task", item.id, person.id),
            now=now,
            item_id=item.id,
            ref=ref,
            by=by.name if by else t("task.by_office"),
            title=item.title,
            role={"key": f"task.role_{role.value}"},
            deadline=spec.deadline.isoformat(),
            note={"key": "task.created_note", "params": {"note": note}} if note else "",
        )
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="task.create",
        task=ref,
        title=item.title,
        owners=[p.name for p in people],
        deadline=spec.deadline.isoformat(),
        assigned_by=by.name if by else None,
    )
    return item, people


def is_task(session: Session, item: WorkItem) -> Plan | None:
    """The tasks plan when the item is a task, else None."""
    plan = session.get(Plan, item.plan_id)
    return plan if plan is not None and plan.kind == PlanKind.tasks else None


def after_reports(
    session: Session, saved: list[Report], items: list[WorkItem], *, now: datetime
) -> None:
    """Tell whoever handed a task down that an owner reports it 办结 (done)."""
    for report, item in zip(saved, items, strict=True):
        if report.status != ReportStatus.done or item.assigned_by_id is None:
            continue
        plan = is_task(session, item)
        leader = session.get(Contact, item.assigned_by_id)
        owner = session.get(Contact, report.contact_id)
        if plan is None or leader is None or owner is None or not leader.active:
            continue
        queue_notice(
            session,
            leader,
            "task.done_to_leader",
            key=fresh_key("task-done", item.id, leader.id),
            now=now,
            item_id=item.id,
            ref=ref_of(plan, item),
            title=item.title,
            owner=owner.name,
            text=report.text or "",
        )


def reopen(
    session: Session,
    item: WorkItem,
    *,
    by: Contact,
    reason: str,
    now: datetime,
    actor: str,
    admin: bool,
) -> list[Contact]:
    """Reopen a task closed as done: the 办结 reports stop counting (kept in the history,
    marked as reopened), a reopen report says why, and the owners are told."""
    plan = is_task(session, item)
    ref = ref_of(plan, item) if plan else str(item.number)
    if plan is None:
        raise UserError("task.reopen_not_task", ref=ref)
    if not reason.strip():
        raise UserError("task.reopen_reason_needed")
    if not admin and item.assigned_by_id != by.id:
        raise UserError("task.reopen_not_yours", ref=ref)
    if not reports.item_done(session, item):
        raise UserError("task.reopen_not_done", ref=ref)
    report = reports.record_report(
        session,
        item=item,
        contact=by,
        now=now,
        status=ReportStatus.in_progress,
        text=reason.strip()[:MAX_NOTE],
        source="chat" if actor.startswith("contact:") else "cli",
        kind="reopen",
    )
    session.connection().execute(
        Report.__table__.update()  # type: ignore[attr-defined]
        .where(
            Report.item_id == item.id,
            col(Report.id) != report.id,
            col(Report.withdrawn_at).is_(None),
            col(Report.superseded_by_id).is_(None),
            (Report.status == ReportStatus.done) | (Report.percent == 100),
        )
        .values(superseded_by_id=report.id)
    )
    owners = [
        contact for contact, _ in assignments.assignees(session, [item.id or 0])[item.id or 0]
    ]
    for owner in owners:
        queue_notice(
            session,
            owner,
            "task.reopened_to_owner",
            key=fresh_key("task-reopen", item.id, owner.id),
            now=now,
            item_id=item.id,
            ref=ref,
            by=by.name,
            title=item.title,
            reason=reason.strip()[:MAX_NOTE],
        )
    audit.record(session, actor=actor, action="task.reopen", task=ref, reason=reason.strip())
    return owners
