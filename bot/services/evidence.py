"""Evidence (佐证材料) in the database: which report or item a file belongs to, what stands,
and the files of a plan for the ledger.

A file belongs to a report (the one its caption made, or the sender's report of the last
minutes) or to an item alone (picked with a button). It counts while its report stands:
evidence of a withdrawn report is withdrawn with it, evidence of a corrected report stays
with it (and counts). A row without an item is a file waiting for its sender's answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from bot.events import Attachment, StoredFile
from bot.evidence import TYPES, EvidenceStore, file_name, safe_part
from bot.i18n import UserError
from bot.models import Contact, Evidence, Plan, Report, WorkItem
from bot.reporting import EvidenceRow

JOIN_WINDOW = timedelta(minutes=10)  # a file without a caption joins a report this recent
WAIT_TTL = timedelta(days=1)  # how long a file waits for its sender to say which item

# Evidence that counts: placed on an item, and its report (if any) not withdrawn.
_STANDING = sa.and_(
    col(Evidence.item_id).is_not(None),
    sa.or_(col(Evidence.report_id).is_(None), col(Report.withdrawn_at).is_(None)),
)


def keep(
    session: Session,
    file: StoredFile,
    attachment: Attachment,
    *,
    contact: Contact,
    platform: str,
    now: datetime,
    item: WorkItem | None = None,
    report: Report | None = None,
    note: str = "",
    choice_id: int | None = None,
) -> Evidence:
    """A row for a stored file: on a report, on an item, or waiting (no item yet)."""
    assert contact.id is not None
    row = Evidence(
        item_id=item.id if item is not None else None,
        report_id=report.id if report is not None else None,
        contact_id=contact.id,
        sha256=file.sha256,
        size=file.size,
        mime=file.mime,
        kind=attachment.kind,
        name=file.name,
        note=note[:500],
        platform=platform,
        platform_file_id=attachment.file_id[:512],
        choice_id=choice_id,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def place(evidence: Evidence, item: WorkItem, report: Report | None) -> None:
    """Put a waiting file on its item (and report)."""
    evidence.item_id = item.id
    evidence.report_id = report.id if report is not None else None
    evidence.choice_id = None


def _mine(contact: Contact) -> sa.ColumnElement[bool]:
    """Reports a contact made: their own, or entered by them on someone's behalf."""
    return sa.or_(col(Report.contact_id) == contact.id, col(Report.entered_by_id) == contact.id)


def _standing_reports(contact: Contact, since: datetime) -> SelectOfScalar[Report]:
    return (
        select(Report)
        .where(
            _mine(contact),
            col(Report.withdrawn_at).is_(None),
            col(Report.superseded_by_id).is_(None),
            col(Report.created_at) >= since,
        )
        .order_by(col(Report.created_at).desc(), col(Report.id).desc())
    )


def recent_reports(session: Session, contact: Contact, now: datetime) -> list[Report]:
    """The reports of the sender's last report message, when it is less than JOIN_WINDOW old
    (one per item it named); empty when there is none."""
    rows = list(session.exec(_standing_reports(contact, now - JOIN_WINDOW)))
    return [r for r in rows if r.created_at == rows[0].created_at] if rows else []


def report_to_join(
    session: Session, contact: Contact, item: WorkItem, since: datetime
) -> Report | None:
    """The sender's newest standing report on the item made since then, or None."""
    query = _standing_reports(contact, since).where(col(Report.item_id) == item.id).limit(1)
    return session.exec(query).first()


def waiting(session: Session, evidence_id: str, contact: Contact, now: datetime) -> Evidence:
    """The sender's file still waiting for an item (a UserError when the button is stale)."""
    number = int(evidence_id) if evidence_id.isdecimal() and len(evidence_id) <= 18 else None
    row = session.get(Evidence, number) if number is not None else None
    if (
        row is None
        or row.contact_id != contact.id
        or row.item_id is not None
        or now - row.created_at > WAIT_TTL
    ):
        raise UserError("chat.stale_button")
    return row


def waiting_on(session: Session, contact: Contact, choice_ids: Iterable[int]) -> list[Evidence]:
    """The sender's files waiting on the given "which item?" questions of their message."""
    ids = list(choice_ids)
    if not ids:
        return []
    query = select(Evidence).where(
        Evidence.contact_id == contact.id,
        col(Evidence.item_id).is_(None),
        col(Evidence.choice_id).in_(ids),
    )
    return list(session.exec(query.order_by(col(Evidence.id))))


def drop(session: Session, evidence: Evidence, files: EvidenceStore | None) -> None:
    """Forget a file that never found its item (its stored copy goes unless still used)."""
    session.delete(evidence)
    session.flush()
    if files is not None:
        files.release(evidence.sha256)


def drop_expired(
    session: Session, contact: Contact, now: datetime, files: EvidenceStore | None
) -> None:
    """Forget the sender's files that waited for an item longer than WAIT_TTL."""
    rows = session.exec(
        select(Evidence).where(
            Evidence.contact_id == contact.id,
            col(Evidence.item_id).is_(None),
            col(Evidence.created_at) < now - WAIT_TTL,
        )
    ).all()
    for row in rows:
        drop(session, row, files)


def count(session: Session, item_id: int) -> int:
    """How many evidence files of the item stand."""
    query = (
        sa.select(sa.func.count())
        .select_from(Evidence)
        .outerjoin(Report, col(Report.id) == Evidence.report_id)
        .where(col(Evidence.item_id) == item_id, _STANDING)
    )
    return int(session.execute(query).scalar_one())


@dataclass(frozen=True)
class Shown:
    """One standing evidence file of an item, with who sent it and the report it is of."""

    evidence: Evidence
    sender: str
    report: Report | None


def of_item(session: Session, item_id: int) -> list[Shown]:
    """The standing evidence files of an item, newest first."""
    rows = session.execute(
        sa.select(Evidence, col(Contact.name), Report)
        .join(Contact, col(Contact.id) == Evidence.contact_id)
        .outerjoin(Report, col(Report.id) == Evidence.report_id)
        .where(col(Evidence.item_id) == item_id, _STANDING)
        .order_by(col(Evidence.created_at).desc(), col(Evidence.id).desc())
    ).all()
    return [Shown(evidence, name, report) for evidence, name, report in rows]


def ledger_evidence(session: Session, plan: Plan) -> list[EvidenceRow]:
    """Every placed evidence file of the plan, by item and report, oldest first."""
    sender = aliased(Contact)
    rows = session.execute(
        sa.select(Evidence, col(WorkItem.number), col(WorkItem.title), col(sender.name), Report)
        .join(WorkItem, col(WorkItem.id) == Evidence.item_id)
        .join(sender, col(sender.id) == Evidence.contact_id)
        .outerjoin(Report, col(Report.id) == Evidence.report_id)
        .where(col(WorkItem.plan_id) == plan.id)
        .order_by(col(WorkItem.number), col(Evidence.created_at), col(Evidence.id))
    ).all()
    out: list[EvidenceRow] = []
    numbers: dict[int, int] = {}
    for evidence, number, title, name, report in rows:
        numbers[number] = numbers.get(number, 0) + 1
        out.append(
            EvidenceRow(
                at=evidence.created_at,
                item=number,
                item_title=title,
                sender=name,
                report_at=report.created_at if report is not None else None,
                report_percent=report.percent if report is not None else None,
                report_text=report.text if report is not None else "",
                superseded=report is not None and report.superseded_by_id is not None,
                withdrawn=report is not None and report.withdrawn_at is not None,
                name=evidence.name,
                kind=evidence.kind,
                mime=evidence.mime,
                size=evidence.size,
                sha256=evidence.sha256,
                number=numbers[number],
            )
        )
    return out


def export_files(
    rows: Sequence[EvidenceRow], folder: Path, files: EvidenceStore
) -> dict[tuple[int, int], Path]:
    """Write the standing files into folder, one folder per item (`009-<title>`), each named
    `<n>-<its name>`; returns where each went, by (item, number). Withdrawn files and files
    missing from the store are left out."""
    written: dict[tuple[int, int], Path] = {}
    for row in rows:
        if row.withdrawn:
            continue
        item_folder = folder / f"{row.item:03d}-{safe_part(row.item_title, 24)}"
        ext = next((t.ext for t in TYPES.values() if t.mime == row.mime), "")
        name = file_name(row.name if row.name.endswith(f".{ext}") else f"{row.name}.{ext}")
        target = item_folder / f"{row.number:02d}-{name}"
        if files.copy_to(row.sha256, target):
            written[(row.item, row.number)] = target
    return written
