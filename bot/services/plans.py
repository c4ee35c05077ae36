"""Plans in the database: import (idempotent re-import) and look-ups."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam
from sqlmodel import Session, col, select

from bot.i18n import UserError
from bot.importer.model import ParsedPlan, ParsedTarget
from bot.models import Plan, Section, Target, TargetValue, WorkItem, utcnow
from bot.services import audit


@dataclass
class ImportResult:
    """What an import did."""

    plan: Plan
    created: bool
    added: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    unchanged: int = 0
    sections_changed: int = 0

    @property
    def changed(self) -> bool:
        """Whether the import changed anything."""
        return self.created or bool(
            self.added or self.updated or self.removed or self.sections_changed
        )


# Statements on the chat's hot path are built once (building one costs more than running it).
_CURRENT_PLAN = select(Plan).order_by(col(Plan.updated_at).desc(), col(Plan.id).desc()).limit(1)
_LIVE_ITEM = select(WorkItem).where(
    WorkItem.plan_id == bindparam("plan_id"), col(WorkItem.removed_at).is_(None)
)
_ITEM_BY_NUMBER = _LIVE_ITEM.where(WorkItem.number == bindparam("number"))
_ITEM_BY_LABEL = _LIVE_ITEM.where(WorkItem.label == bindparam("label"))


def current_plan(session: Session) -> Plan:
    """The plan people are working on: the one imported or re-imported last."""
    plan = session.exec(_CURRENT_PLAN).first()
    if plan is None:
        raise UserError("plan.none")
    return plan


def find_item(session: Session, plan: Plan, ref: str) -> WorkItem:
    """The live item a person means by its number (9, #9, 第9项) or its document label (三.2)."""
    text = (
        ref.strip().lstrip("#＃").removeprefix("第").removesuffix("项").removesuffix("号").strip()
    )
    item = None
    if text.isdigit():
        item = session.exec(
            _ITEM_BY_NUMBER, params={"plan_id": plan.id, "number": int(text)}
        ).first()
    if item is None and text:
        item = session.exec(_ITEM_BY_LABEL, params={"plan_id": plan.id, "label": text}).first()
    if item is None:
        item = _item_by_position(session, plan, text)
    if item is None:
        raise UserError("item.unknown", ref=ref)
    return item


def _item_by_position(session: Session, plan: Plan, text: str) -> WorkItem | None:
    """`三.2` (or `3.2`): the second item of section 三, whatever the document numbers it."""
    head, sep, tail = text.replace("．", ".").partition(".")
    if not sep or not tail.isdigit() or int(tail) < 1:
        return None
    section_number = int(head) if head.isdigit() else None
    section = session.exec(
        select(Section).where(
            Section.plan_id == plan.id,
            (Section.number == section_number) if section_number else (Section.label == head),
        )
    ).first()
    if section is None:
        return None
    items = session.exec(
        select(WorkItem)
        .where(WorkItem.section_id == section.id, col(WorkItem.removed_at).is_(None))
        .order_by(col(WorkItem.number))
        .offset(int(tail) - 1)
    ).first()
    return items


def sections_of(session: Session, plan: Plan) -> list[Section]:
    """The plan's sections."""
    return list(session.exec(select(Section).where(Section.plan_id == plan.id)))


def live_items(session: Session, plan: Plan) -> list[WorkItem]:
    """The plan's items that are still in its document, by number."""
    return list(
        session.exec(
            select(WorkItem)
            .where(WorkItem.plan_id == plan.id, col(WorkItem.removed_at).is_(None))
            .order_by(col(WorkItem.number))
        )
    )


def _target_key(t: Target | ParsedTarget) -> tuple[str, str, float, str]:
    return (t.metric, t.comparator, float(t.value), t.unit)


def _sync_targets(session: Session, item: WorkItem, parsed: list[ParsedTarget]) -> bool:
    """Make the item's targets match the document; targets with reported values are kept."""
    assert item.id is not None
    existing = list(session.exec(select(Target).where(Target.item_id == item.id)))
    by_key = {_target_key(t): t for t in existing}
    changed = False
    kept: set[int] = set()
    for position, pt in enumerate(parsed):
        target = by_key.pop(_target_key(pt), None)
        if target is None:
            target = Target(
                item_id=item.id,
                position=position,
                text=pt.text,
                metric=pt.metric,
                comparator=pt.comparator,
                value=pt.value,
                unit=pt.unit,
                additive=pt.additive,
            )
            session.add(target)
            changed = True
            continue
        if (target.position, target.text) != (position, pt.text):
            target.position, target.text = position, pt.text
            changed = True
        assert target.id is not None
        kept.add(target.id)
    for target in by_key.values():
        has_values = session.exec(
            select(TargetValue.id).where(TargetValue.target_id == target.id)
        ).first()
        if has_values is None:
            session.delete(target)
            changed = True
    return changed


def import_plan(
    session: Session,
    parsed: ParsedPlan,
    *,
    source_file: str | None,
    actor: str,
    progress: Callable[[], None] | None = None,
) -> ImportResult:
    """Store a parsed plan; a re-import keeps assignments and reports and says what changed."""
    plan = session.exec(select(Plan).where(Plan.title == parsed.title)).first()
    created = plan is None
    if plan is None:
        plan = Plan(title=parsed.title)
        session.add(plan)
    plan.doc_number = parsed.doc_number
    plan.issuer = parsed.issuer
    plan.issued_on = parsed.issued_on
    plan.contact_name = parsed.contact_name
    plan.contact_phone = parsed.contact_phone
    plan.source_file = source_file
    plan.updated_at = utcnow()
    session.flush()
    assert plan.id is not None
    result = ImportResult(plan=plan, created=created)

    sections = {
        s.number: s for s in session.exec(select(Section).where(Section.plan_id == plan.id))
    }
    for ps in parsed.sections:
        section = sections.get(ps.number)
        if section is None:
            section = Section(plan_id=plan.id, number=ps.number, label=ps.label, title=ps.title)
            session.add(section)
            sections[ps.number] = section
            result.sections_changed += 1
        elif (section.label, section.title) != (ps.label, ps.title):
            section.label, section.title = ps.label, ps.title
            result.sections_changed += 1
    session.flush()

    items = {i.number: i for i in session.exec(select(WorkItem).where(WorkItem.plan_id == plan.id))}
    seen: set[int] = set()
    for pi in parsed.items:
        if progress is not None:
            progress()  # one step per item (the CLI shows a progress bar)
        seen.add(pi.number)
        section_id = sections[pi.section].id
        assert section_id is not None
        fields: dict[str, Any] = {
            "section_id": section_id,
            "label": pi.label,
            "title": pi.title,
            "body": pi.body,
            "subsection": pi.subsection,
            "lead_units": list(pi.lead_units),
            "support_units": list(pi.support_units),
            "suggested_deadline": pi.deadline,
        }
        item = items.get(pi.number)
        if item is None:
            item = WorkItem(plan_id=plan.id, number=pi.number, **fields)
            session.add(item)
            session.flush()
            _sync_targets(session, item, pi.targets)
            if not created:
                result.added.append(pi.number)
            continue
        changed = item.removed_at is not None
        item.removed_at = None
        for name, value in fields.items():
            if getattr(item, name) != value:
                setattr(item, name, value)
                changed = True
        changed = _sync_targets(session, item, pi.targets) or changed
        if changed:
            result.updated.append(pi.number)
        else:
            result.unchanged += 1
    for number, item in items.items():
        if number not in seen and item.removed_at is None:
            item.removed_at = datetime.now(UTC)
            result.removed.append(number)
    if created:
        result.added = [pi.number for pi in parsed.items]
    audit.record(
        session,
        actor=actor,
        action="plan.import",
        plan=plan.title,
        source=source_file,
        added=len(result.added),
        updated=result.updated,
        removed=result.removed,
    )
    session.flush()
    return result
