"""The ledger (台账) from the database: every item as it stands, and every report."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from bot.models import Contact, Plan, Report, Target, TargetValue, WorkItem
from bot.reporting import HistoryRow, LedgerRow, Reading
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
        )
        for r in rows
    ]


def export_ledger(
    session: Session, plan: Plan, path: Path, *, settings: Settings, now: datetime
) -> Path:
    """Write the plan's ledger workbook to path."""
    from bot.ledger import write_ledger  # openpyxl is only needed here

    views = item_views(
        session, plan, now=now, tz=settings.tz, rules=StatusRules.from_settings(settings)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_ledger(
        path,
        plan_title=plan.title,
        rows=ledger_rows(views),
        history=history_rows(session, plan),
        tz=settings.tz,
        locale=settings.locale,
        generated_at=now,
    )
