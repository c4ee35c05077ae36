"""The ledger (台账) from the database: every item as it stands, every report, and the
evidence files (written out too, a folder per item, with `--evidence DIR`)."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from bot.evidence import EvidenceStore
from bot.models import Contact, Plan, Report, Target, TargetValue, WorkItem
from bot.reporting import EvidenceRow, HistoryRow, LedgerRow, Reading
from bot.services import evidence, plans
from bot.services.items import ItemView, item_views
from bot.services.progress import StatusRules
from bot.settings import Settings
from bot.templating import format_number


def ledger_rows(views: list[ItemView]) -> list[LedgerRow]:
    """One ledger row per item, by number."""
    rows = []
    for view in sorted(views, key=lambda v: v.item.number):
        item = view.item
        latest = view.latest
        rows.append(
            LedgerRow(
                number=item.number,
                title=item.title,
                section=f"{view.section.label}、{view.section.title}",
                lead_units="、".join(view.owner_units),
                owners="、".join(c.name for c, _ in view.people),
                deadline=view.deadline,
                targets="\n".join(s.target.text for s in view.targets),
                current="\n".join(
                    f"{s.target.metric} {format_number(s.value)}"
                    + (f"（{s.share}%）" if s.share is not None else "")
                    for s in view.targets
                    if s.value is not None
                ),
                latest=latest.text if latest else "",
                percent=view.percent,
                status=view.status,
                updated_at=latest.created_at if latest else None,
            )
        )
    return rows


def history_rows(session: Session, plan: Plan) -> list[HistoryRow]:
    """Every report of the plan, newest first, with its target values (two queries)."""
    entered = aliased(Contact)
    rows = session.execute(
        sa.select(
            col(Report.id),
            col(Report.created_at),
            col(WorkItem.number),
            col(WorkItem.title),
            col(Contact.name),
            col(Report.percent),
            col(Report.status),
            col(Report.text),
            col(Report.source),
            col(entered.name),
            col(Report.superseded_by_id),
            col(Report.withdrawn_at),
            col(Report.kind),
        )
        .join(WorkItem, col(WorkItem.id) == Report.item_id)
        .join(Contact, col(Contact.id) == Report.contact_id)
        .outerjoin(entered, col(entered.id) == Report.entered_by_id)
        .where(col(WorkItem.plan_id) == plan.id)
        .order_by(col(Report.created_at).desc(), col(Report.id).desc())
    ).all()
    values: dict[int, list[Reading]] = defaultdict(list)
    for report_id, metric, value, unit in session.execute(
        sa.select(
            col(TargetValue.report_id), col(Target.metric), col(TargetValue.value), col(Target.unit)
        )
        .join(Target, col(Target.id) == TargetValue.target_id)
        .join(WorkItem, col(WorkItem.id) == Target.item_id)
        .where(col(WorkItem.plan_id) == plan.id)
        .order_by(col(TargetValue.report_id), col(Target.position))
    ):
        values[report_id].append(Reading(metric, float(value), unit))
    return [
        HistoryRow(
            at=r[1],
            item=r[2],
            item_title=r[3],
            contact=r[4],
            percent=r[5],
            status=getattr(r[6], "value", r[6]),
            text=r[7],
            values="；".join(f"{v.metric} {format_number(v.value)}" for v in values.get(r[0], [])),
            source=r[8],
            entered_by=r[9],
            superseded=r[10] is not None,
            withdrawn=r[11] is not None,
            readings=tuple(values.get(r[0], [])),
            kind=r[12],
        )
        for r in rows
    ]


def export_ledger(
    session: Session,
    plan: Plan,
    path: Path,
    *,
    settings: Settings,
    now: datetime,
    evidence_dir: Path | None = None,
    others: Sequence[Plan] | None = None,
) -> Path:
    """Write the plan's ledger workbook to path: its sheet first, then one sheet for each
    other open plan and the tasks (others; default: every other open plan), the history of
    them all, and the evidence; with evidence_dir, also the evidence files (a folder per
    item), each linked from the workbook's evidence sheet."""
    from bot.ledger import PlanSheet, write_ledger  # openpyxl is only needed here

    rules = StatusRules.from_settings(settings)
    views = item_views(session, plan, now=now, tz=settings.tz, rules=rules)
    if others is None:
        others = [p for p in plans.active_plans(session) if p.id != plan.id]
    more = [
        PlanSheet(
            sheet_name=f"{p.code} {p.title}",
            plan_title=p.title,
            rows=ledger_rows(item_views(session, p, now=now, tz=settings.tz, rules=rules)),
        )
        for p in others
    ]
    history = history_rows(session, plan)
    for p in others:
        history += [replace(h, item=f"{p.code}{h.item}") for h in history_rows(session, p)]
    path.parent.mkdir(parents=True, exist_ok=True)
    files = evidence.ledger_evidence(session, plan)
    if evidence_dir is not None:
        files = write_evidence(files, evidence_dir, settings=settings, workbook=path)
    return write_ledger(
        path,
        plan_title=plan.title,
        rows=ledger_rows(views),
        history=history,
        tz=settings.tz,
        locale=settings.locale,
        generated_at=now,
        evidence=files,
        more=more,
    )


def write_evidence(
    rows: list[EvidenceRow], folder: Path, *, settings: Settings, workbook: Path
) -> list[EvidenceRow]:
    """Write the standing evidence files into folder, a folder per item; the rows with the
    link to each file, relative to the workbook where it can be (absolute otherwise)."""
    store = EvidenceStore.from_settings(settings)
    written = evidence.export_files(rows, folder, store)
    base = workbook.resolve().parent
    linked = []
    for row in rows:
        target = written.get((row.item, row.number))
        if target is None:
            linked.append(row)
            continue
        try:
            link = Path(os.path.relpath(target.resolve(), base)).as_posix()
        except ValueError:  # another drive (Windows): an absolute link
            link = target.resolve().as_uri()
        linked.append(replace(row, link=link))
    return linked
