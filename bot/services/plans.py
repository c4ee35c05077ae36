"""Plans in the database: import (idempotent re-import) and look-ups."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam
from sqlmodel import Session, col, select

from bot.i18n import UserError
from bot.importer.model import ParsedPlan, ParsedTarget
from bot.models import (
    Assignment,
    Plan,
    PlanKind,
    Section,
    Target,
    TargetValue,
    WorkItem,
    utcnow,
)
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
_CURRENT_PLAN = (
    select(Plan)
    .where(col(Plan.closed_at).is_(None), Plan.kind == PlanKind.plan)
    .order_by(col(Plan.id))
    .limit(1)
)
_ACTIVE_PLANS = (
    select(Plan)
    .where(col(Plan.closed_at).is_(None))
    .order_by(col(Plan.kind), col(Plan.id))  # plans, then the tasks
)
_LIVE_ITEM = select(WorkItem).where(
    WorkItem.plan_id == bindparam("plan_id"), col(WorkItem.removed_at).is_(None)
)
_ITEM_BY_NUMBER = _LIVE_ITEM.where(WorkItem.number == bindparam("number"))
_ITEM_BY_LABEL = _LIVE_ITEM.where(WorkItem.label == bindparam("label"))


def current_plan(session: Session) -> Plan:
    """The default plan: the open plan imported first (this year's 工作要点 until it is closed;
    a number without a code means one of its items unless the sender's own items say
    otherwise, and its items are written without a code)."""
    plan = session.exec(_CURRENT_PLAN).first()
    if plan is None:
        raise UserError("plan.none")
    return plan


def default_plan_id(session: Session) -> int | None:
    """The default plan's id (None when there is no plan)."""
    default = session.exec(_CURRENT_PLAN).first()
    return default.id if default is not None else None


def written_ref(plan: Plan | None, number: int, default_id: int | None) -> str:
    """An item number as written: plain in the default plan (default_id), after its plan's
    code in any other (民生3, J2)."""
    if plan is None or plan.id == default_id:
        return str(number)
    return f"{plan.code}{number}"


def item_ref(session: Session, item: WorkItem) -> str:
    """How an item is written in chat and in messages: its number in the default plan,
    CODE+NUMBER in any other (民生3, J2), as a person would write it back."""
    return written_ref(session.get(Plan, item.plan_id), item.number, default_plan_id(session))


def active_plans(session: Session) -> list[Plan]:
    """Every plan not closed, imported plans first (in import order), then the tasks."""
    return list(session.exec(_ACTIVE_PLANS))


def all_plans(session: Session) -> list[Plan]:
    """Every plan, closed ones included."""
    return list(session.exec(select(Plan).order_by(col(Plan.kind), col(Plan.id))))


def plan_by_code(session: Session, code: str) -> Plan:
    """The plan with this code (a UserError listing the codes when none)."""
    wanted = code.strip()
    for plan in all_plans(session):
        if plan.code.casefold() == wanted.casefold():
            return plan
    codes = "、".join(p.code for p in all_plans(session)) or "—"
    raise UserError("plan.unknown_code", code=wanted, codes=codes)


# The words a plan's title is recognised by, each its default code (a number never ends a
# code: "民生3" must read as item 3 of 民生).
CODE_KEYWORDS = ("要点", "民生", "重点", "专项", "督办", "计划")
TASKS_CODE = "J"
_CODE_RE = re.compile(r"[A-Za-z\u4e00-\u9fff]{1,8}")


def split_ref(ref: str, codes: tuple[str, ...]) -> tuple[str, int] | None:
    """(code, number) of a reference that carries a plan code ("民生3", "j3"), else None."""
    folded = ref.strip().casefold()
    for code in sorted(codes, key=len, reverse=True):
        head = code.casefold()
        if folded.startswith(head):
            rest = folded[len(head) :].strip().lstrip("#＃").removeprefix("第")
            rest = rest.removesuffix("项").removesuffix("号").strip()
            if rest.isdecimal() and len(rest) <= 6:
                return code, int(rest)
    return None


def check_code(code: str) -> str:
    """A plan code as given, or a UserError: 1-8 letters or Chinese characters, no digits."""
    code = code.strip()
    if not _CODE_RE.fullmatch(code):
        raise UserError("plan.bad_code", code=code[:20])
    return code


def default_code(session: Session, title: str) -> str:
    """A short code for a new plan: the keyword its title has (要点, 民生 ...), with a letter
    after it when that is taken (要点B for next year's 要点)."""
    taken = {p.code.casefold() for p in all_plans(session)}
    base = next((k for k in CODE_KEYWORDS if k in title), "计划")
    for suffix in ("", *"BCDEFGHKLMNPQRSTUVWXYZ"):
        if (base + suffix).casefold() not in taken:
            return base + suffix
    raise UserError("plan.no_free_code", title=title)


def _claim_code(session: Session, plan: Plan | None, code: str) -> str:
    code = check_code(code)
    for other in all_plans(session):
        if other.code.casefold() == code.casefold() and (plan is None or other.id != plan.id):
            raise UserError("plan.code_taken", code=code, title=other.title)
    return code


_CODED_RE = re.compile(r"\s*[A-Za-z\u4e00-\u9fff]{1,8}\s*[#＃]?\s*第?\s*\d{1,6}\s*[项号]?\s*")


def find_item(session: Session, plan: Plan, ref: str) -> WorkItem:
    """The live item a person means by its number (9, #9, 第9项) or its document label (三.2)
    in the plan given, or by a reference with a plan code (民生3, J1) in that plan."""
    if _CODED_RE.fullmatch(ref) and not ref.strip().startswith("第"):
        coded = split_ref(ref, tuple(p.code for p in all_plans(session)))
        if coded is not None:
            code, number = coded
            plan = plan_by_code(session, code)
            ref = str(number)
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
    code: str | None = None,
) -> ImportResult:
    """Store a parsed plan; a re-import keeps assignments and reports and says what changed.

    code: the plan's short code (default: from its title, see `default_code`)."""
    plan = session.exec(select(Plan).where(Plan.title == parsed.title)).first()
    created = plan is None
    if plan is not None and plan.closed_at is not None:
        raise UserError("plan.closed", code=plan.code, title=plan.title)
    if plan is None:
        chosen = _claim_code(session, None, code) if code else default_code(session, parsed.title)
        plan = Plan(title=parsed.title, code=chosen)
        session.add(plan)
    elif code and code != plan.code:
        plan.code = _claim_code(session, plan, code)
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
        if item is not None and item.carried_from_id is not None:
            raise UserError("plan.number_carried", number=pi.number, code=plan.code)
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
        if item.carried_from_id is not None:
            continue  # carried over from last year's plan: not the document's to remove
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


def tasks_plan(session: Session, *, create: bool = False, title: str = "交办事项") -> Plan | None:
    """The one list of tasks handed down by command (code J), made on first use."""
    plan = session.exec(select(Plan).where(Plan.kind == PlanKind.tasks)).first()
    if plan is None and create:
        code = TASKS_CODE
        if TASKS_CODE.casefold() in {p.code.casefold() for p in all_plans(session)}:
            code = "交办"
        plan = Plan(title=title, code=code, kind=PlanKind.tasks, issued_on=None)
        session.add(plan)
        session.flush()
        session.add(Section(plan_id=plan.id or 0, number=1, label="一", title=title))
        session.flush()
    return plan


@dataclass
class CloseResult:
    """What closing a plan did."""

    plan: Plan
    unfinished: list[WorkItem] = field(default_factory=list)
    carried: list[tuple[WorkItem, WorkItem]] = field(default_factory=list)  # (old, new)


def close_plan(
    session: Session,
    plan: Plan,
    *,
    now: datetime,
    actor: str,
    unfinished: list[WorkItem],
    carry_to: Plan | None = None,
) -> CloseResult:
    """Close a plan at year end: read-only from now on, its history kept, no more reminders.

    unfinished: its items not done (the caller decides, by the digest's figures); with
    carry_to they are copied into that plan (numbers after its last), keeping their
    assignments, their quantitative targets and a link to the earlier item and its reports.
    """
    if plan.closed_at is not None:
        raise UserError("plan.already_closed", code=plan.code)
    if carry_to is not None and (carry_to.closed_at is not None or carry_to.id == plan.id):
        raise UserError("plan.bad_carry_target", code=carry_to.code)
    result = CloseResult(plan=plan, unfinished=unfinished)
    if carry_to is not None and unfinished:
        assert carry_to.id is not None
        last = session.exec(
            select(WorkItem.number)
            .where(WorkItem.plan_id == carry_to.id)
            .order_by(col(WorkItem.number).desc())
            .limit(1)
        ).first()
        number = last or 0
        section = _carry_section(session, carry_to, plan)
        for old in unfinished:
            number += 1
            new = WorkItem(
                plan_id=carry_to.id,
                section_id=section.id or 0,
                number=number,
                label=str(number),
                title=old.title,
                body=old.body,
                subsection=old.subsection,
                lead_units=list(old.lead_units),
                support_units=list(old.support_units),
                suggested_deadline=None,
                deadline=None,
                assigned_by_id=old.assigned_by_id,
                note=old.note,
                carried_from_id=old.id,
            )
            session.add(new)
            session.flush()
            for assignment in session.exec(select(Assignment).where(Assignment.item_id == old.id)):
                session.add(
                    Assignment(
                        item_id=new.id or 0,
                        contact_id=assignment.contact_id,
                        role=assignment.role,
                        deadline=None,
                    )
                )
            # Its quantitative targets go with it (values reported so far stay with the old
            # item's reports, reached through carried_from_id).
            for target in session.exec(
                select(Target).where(Target.item_id == old.id).order_by(col(Target.position))
            ):
                session.add(
                    Target(
                        item_id=new.id or 0,
                        position=target.position,
                        text=target.text,
                        metric=target.metric,
                        comparator=target.comparator,
                        value=target.value,
                        unit=target.unit,
                        additive=target.additive,
                    )
                )
            result.carried.append((old, new))
    plan.closed_at = now
    session.add(plan)
    audit.record(
        session,
        actor=actor,
        action="plan.close",
        plan=plan.code,
        unfinished=[i.number for i in unfinished],
        carried_to=carry_to.code if carry_to else None,
        carried=[[old.number, new.number] for old, new in result.carried],
    )
    session.flush()
    return result


def _carry_section(session: Session, target: Plan, source: Plan) -> Section:
    """The section of the target plan that carried-over items go into (made once)."""
    title = f"{source.title}（结转）"
    section = session.exec(
        select(Section).where(Section.plan_id == target.id, Section.title == title)
    ).first()
    if section is None:
        last = session.exec(
            select(Section.number)
            .where(Section.plan_id == target.id)
            .order_by(col(Section.number).desc())
            .limit(1)
        ).first()
        section = Section(plan_id=target.id or 0, number=(last or 0) + 1, label="", title=title)
        session.add(section)
        session.flush()
    return section
