"""Progress reports: record, withdraw (undo), and look up what an official has open."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import bindparam
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from bot.i18n import UserError
from bot.models import (
    Assignment,
    Contact,
    Plan,
    Report,
    ReportStatus,
    Target,
    TargetValue,
    WorkItem,
)
from bot.progress_parser import check_percent, status_word
from bot.refcache import detached_row
from bot.services.assignments import assignees
from bot.services.items import newest_report
from bot.services.plans import item_ref

UNDO_WINDOW = timedelta(minutes=10)

# Statements on the chat's hot path are built once (building one costs more than running it).
_IS_ASSIGNED = select(Assignment.id).where(
    Assignment.item_id == bindparam("item_id"), Assignment.contact_id == bindparam("contact_id")
)
_LATEST = (
    select(Report)
    .where(
        Report.item_id == bindparam("item_id"),
        col(Report.withdrawn_at).is_(None),
        col(Report.superseded_by_id).is_(None),
    )
    .order_by(col(Report.created_at).desc(), col(Report.id).desc())
    .limit(1)
)
_LATEST_BY = _LATEST.where(Report.contact_id == bindparam("contact_id"))
_INSERT_REPORT = sa.insert(Report)
_INSERT_VALUE = sa.insert(TargetValue)
# A correction in one statement: the contact's standing report on the item before the new one
# (by time, then id) is marked superseded by it when it is recent enough (`since`); the id it
# marked comes back, or nothing.
_EARLIER_STANDING = (
    sa.select(col(Report.id))
    .where(
        col(Report.item_id) == bindparam("of_item"),
        col(Report.contact_id) == bindparam("of_contact"),
        col(Report.withdrawn_at).is_(None),
        col(Report.superseded_by_id).is_(None),
        col(Report.id) != bindparam("new_report"),
    )
    .order_by(col(Report.created_at).desc(), col(Report.id).desc())
    .limit(1)
    .scalar_subquery()
)
_SUPERSEDE_EARLIER = (
    sa.update(Report)
    .where(col(Report.id) == _EARLIER_STANDING, col(Report.created_at) >= bindparam("since"))
    .values(superseded_by_id=bindparam("new_report"))
    .returning(col(Report.id))
)
_TARGETS = (
    select(Target).where(Target.item_id == bindparam("item_id")).order_by(col(Target.position))
)
_LATEST_KNOWN_PERCENT = newest_report(bindparam("item_id"), with_percent=True).with_only_columns(
    col(Report.percent)
)


def latest_report(session: Session, item_id: int, contact_id: int | None = None) -> Report | None:
    """The newest standing report on an item (by one contact, when given)."""
    if contact_id is None:
        return session.exec(_LATEST, params={"item_id": item_id}).first()
    return session.exec(_LATEST_BY, params={"item_id": item_id, "contact_id": contact_id}).first()


def record_report(
    session: Session,
    *,
    item: WorkItem,
    contact: Contact,
    now: datetime,
    percent: int | None = None,
    status: ReportStatus | None = None,
    text: str = "",
    values: Sequence[tuple[Target, float]] = (),
    source: str = "chat",
    entered_by: Contact | None = None,
    kind: str = "progress",
) -> Report:
    """Record a report with the percent it states, or none (`done` alone states 100).

    An unstated percent is not copied from an earlier report: the item's latest figure is
    derived when read (`latest_known_percent`). A second report by the same person on the same
    item within the undo window is a correction: the earlier one is kept, marked superseded by
    the new one.
    """
    check_percent(percent)
    if status == ReportStatus.done and percent is None:
        percent = 100
    if status is None and percent is not None:
        status = ReportStatus.done if percent == 100 else ReportStatus.in_progress
    assert item.id is not None and contact.id is not None
    plan = session.get(Plan, item.plan_id)  # in the session already on the chat's path
    if plan is not None and plan.closed_at is not None:
        raise UserError("plan.closed", code=plan.code, title=plan.title)
    if session.autoflush:
        session.flush()  # Core statements below: pending changes go first, as the ORM would
    row: dict[str, Any] = {
        "item_id": item.id,
        "contact_id": contact.id,
        "percent": percent,
        "status": status,
        "text": text,
        "source": source,
        "kind": kind,
        "entered_by_id": entered_by.id if entered_by else None,
        "superseded_by_id": None,
        "withdrawn_at": None,
        "created_at": now,
    }
    # A Core insert: the ORM's unit of work costs more than the insert itself on this path.
    connection = session.connection()
    inserted = connection.execute(_INSERT_REPORT, row).inserted_primary_key
    assert inserted is not None
    report_id = inserted[0]
    # What was recorded, as a detached row (not in the session: a rollback cannot leave an
    # instance behind for a row that no longer exists). Load it to change it.
    report = detached_row(Report, {"id": report_id, **row})
    # A second report within the undo window corrects the first: kept, marked, never deleted.
    earlier_id = connection.execute(
        _SUPERSEDE_EARLIER,
        {
            "of_item": item.id,
            "of_contact": contact.id,
            "new_report": report_id,
            "since": now - UNDO_WINDOW,
        },
    ).scalar()
    if earlier_id is not None:
        loaded = session.identity_map.get(session.identity_key(Report, earlier_id))
        if loaded is not None:  # loaded earlier in this transaction: keep it in step
            set_committed_value(loaded, "superseded_by_id", report_id)
    if values:
        connection.execute(
            _INSERT_VALUE,
            [
                {"report_id": report_id, "target_id": target.id, "value": value}
                for target, value in values
            ],
        )
    return report


def latest_known_percent(session: Session, item_id: int) -> int | None:
    """The item's latest figure: the percent of its newest standing report that has one."""
    if session.autoflush:
        session.flush()  # a Core read: pending changes go first, as the ORM would do
    return session.connection().execute(_LATEST_KNOWN_PERCENT, {"item_id": item_id}).scalar()


def undo_last(session: Session, contact: Contact, now: datetime) -> tuple[Report, WorkItem]:
    """Withdraw the contact's newest report when it is less than 10 minutes old."""
    report = session.exec(
        select(Report)
        .where(Report.contact_id == contact.id, col(Report.withdrawn_at).is_(None))
        .order_by(col(Report.created_at).desc(), col(Report.id).desc())
    ).first()
    if report is None or now - report.created_at > UNDO_WINDOW:
        raise UserError("undo.nothing", minutes=int(UNDO_WINDOW.total_seconds() // 60))
    report.withdrawn_at = now
    for corrected in session.exec(select(Report).where(Report.superseded_by_id == report.id)):
        corrected.superseded_by_id = None  # taking a correction back restores what it replaced
    item = session.get(WorkItem, report.item_id)
    assert item is not None
    plan = session.get(Plan, item.plan_id)
    if plan is not None and plan.closed_at is not None:
        raise UserError("plan.closed", code=plan.code, title=plan.title)
    return report, item


def assigned_items(
    session: Session, plan: Plan | Sequence[Plan], contact: Contact
) -> list[WorkItem]:
    """The live items of the plan (or plans, in their order) assigned to a contact, by number."""
    plans = [plan] if isinstance(plan, Plan) else list(plan)
    order = {p.id: n for n, p in enumerate(plans)}
    rows = session.exec(
        select(WorkItem)
        .join(Assignment, col(Assignment.item_id) == WorkItem.id)
        .where(
            Assignment.contact_id == contact.id,
            col(WorkItem.plan_id).in_(list(order)),
            col(WorkItem.removed_at).is_(None),
        )
        .order_by(col(WorkItem.number))
    )
    return sorted(rows, key=lambda i: (order[i.plan_id], i.number))


def open_items(session: Session, plan: Plan | Sequence[Plan], contact: Contact) -> list[WorkItem]:
    """A contact's assigned items that are not done yet: neither the newest standing report
    says done nor the item's latest figure is 100% (a note after "已完成" keeps it done)."""
    return [i for i in assigned_items(session, plan, contact) if not item_done(session, i)]


def item_done(session: Session, item: WorkItem) -> bool:
    """Whether an item is done: the newest standing report says done, or its latest figure
    is 100% (a reopen after either makes it open again)."""
    latest = latest_report(session, item.id or 0)
    if latest is not None and latest.kind == "reopen":
        return False
    if latest is not None and latest.status == ReportStatus.done:
        return True
    return latest is not None and latest_known_percent(session, item.id or 0) == 100


def is_assigned(session: Session, item: WorkItem, contact: Contact) -> bool:
    """Whether the contact answers for the item."""
    params = {"item_id": item.id, "contact_id": contact.id}
    if session.autoflush:
        session.flush()  # a Core read: pending changes go first, as the ORM would do
    return session.connection().execute(_IS_ASSIGNED, params).first() is not None


def item_targets(session: Session, item: WorkItem) -> list[Target]:
    """An item's targets in document order."""
    return list(session.exec(_TARGETS, params={"item_id": item.id}))


def parse_status(word: str | None) -> ReportStatus | None:
    """The status a status word names (done, 已完成, 滞后 ...); None for none given, UserError
    for a word that names no status."""
    if not word:
        return None
    status = status_word(word)
    if status is None:
        raise UserError("report.bad_status", value=word)
    return status


def require_assigned(session: Session, item: WorkItem, contact: Contact) -> None:
    """UserError, naming who does answer for the item, unless the contact does: a report is
    recorded only for the item's owners."""
    if is_assigned(session, item, contact):
        return
    assert item.id is not None
    owners = [c.name for c, _ in assignees(session, [item.id])[item.id]]
    if not owners:
        raise UserError(
            "report.cli_unassigned_item", item=item_ref(session, item), name=contact.name
        )
    raise UserError(
        "report.cli_not_assigned",
        item=item_ref(session, item),
        name=contact.name,
        owners="、".join(owners),
        owner=owners[0],
    )
