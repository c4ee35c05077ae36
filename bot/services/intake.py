"""What a chat message is about, decided in one place: which items, may this person report
on them, which targets its numbers measure, or what to ask.

The handler reads the message (`bot.reply_reader`), calls `understand`, and renders the
outcome; `record` stores a decided report. The item a part of a message is about comes from,
in order: the numbers it names, the bot message it replies to, the sender's only open item,
or a question with buttons. Nothing is recorded on a guess.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from sqlmodel import Session, col, select

from bot.i18n import UserError
from bot.models import (
    Assignment,
    Contact,
    MessageLink,
    Plan,
    Report,
    Role,
    Target,
    WorkItem,
)
from bot.progress_parser import ParsedReport, check_percent, match_targets
from bot.reply_reader import MessageKind, ReadMessage
from bot.services import contacts, plans, reports


class Lookup(Protocol):
    """How the service finds items and checks assignments (the chat core caches both)."""

    def find_item(self, ref: str) -> WorkItem:
        """The live item a reference means (a UserError when none)."""
        ...

    def is_assigned(self, item: WorkItem, contact: Contact | None = None) -> bool:
        """Whether the contact (default: the sender) answers for the item."""
        ...

    def resolve(self, ref: str, owner: Contact | None = None) -> list[WorkItem]:
        """The items a reference may mean for a person: several when a number without a
        plan code names their items in more than one plan."""
        ...


@dataclass(frozen=True)
class Entry:
    """One report to record: the item, what the message said of it, the target values."""

    item: WorkItem
    report: ParsedReport
    values: list[tuple[Target, float]] = field(default_factory=list)


@dataclass(frozen=True)
class Outcome:
    """What to do with a message."""

    kind: str  # record | ask_item | ask_bare | status | smalltalk | unclear
    entries: tuple[Entry, ...] = ()
    owner: Contact | None = None  # whose report it is
    entered_by: Contact | None = None  # who typed it, when on someone's behalf
    candidates: tuple[WorkItem, ...] = ()  # ask_item: the sender's open items
    items: tuple[WorkItem, ...] = ()  # status: the items asked about; ask_bare: the item
    options: tuple[int, ...] = ()  # ask_bare: the figures that may be the percent


def linked_item(session: Session, platform: str, chat_id: str, message_id: str) -> WorkItem | None:
    """The live item a bot message was about (the message a reply answers), or None."""
    link = session.exec(
        select(MessageLink).where(
            MessageLink.platform == platform,
            MessageLink.chat_id == chat_id,
            MessageLink.message_id == message_id,
        )
    ).first()
    if link is None or link.item_id is None:
        return None
    item = session.get(WorkItem, link.item_id)
    return item if item is not None and item.removed_at is None else None


def owner_names(session: Session, item: WorkItem) -> list[str]:
    """The names of an item's owners, lead first."""
    rows = session.exec(
        select(Contact.name)
        .join(Assignment, col(Assignment.contact_id) == Contact.id)
        .where(Assignment.item_id == item.id)
        .order_by(col(Assignment.role), col(Contact.name))
    )
    return list(rows)


def _has_content(report: ParsedReport) -> bool:
    return bool(
        report.percent is not None or report.status is not None or report.numbers or report.note
    )


def _check_may_report(
    session: Session,
    lookup: Lookup,
    item: WorkItem,
    sender: Contact,
    owner: Contact,
    entry: ParsedReport,
) -> None:
    """UserError unless the sender may record this report on the item."""
    if owner is not sender:
        if not lookup.is_assigned(item, owner):
            raise UserError(
                "report.behalf_not_assigned", name=owner.name, item=plans.item_ref(session, item)
            )
        return
    if lookup.is_assigned(item, sender):
        return
    if sender.role == Role.official:
        raise UserError("report.not_yours", item=plans.item_ref(session, item))
    # An admin or a leader never replaces an owner's figure by writing about the item.
    names = owner_names(session, item)
    if not names:
        raise UserError("report.unassigned", item=plans.item_ref(session, item))
    figure = f"{entry.percent}%" if entry.percent is not None else "60%"
    ref = plans.item_ref(session, item)
    raise UserError(
        "report.someone_elses",
        item=ref,
        owners="、".join(names),
        example=f"/report {ref} {figure} @{names[0]}",
    )


def understand(
    session: Session,
    lookup: Lookup,
    *,
    plan: Plan | Sequence[Plan],
    sender: Contact,
    read: ReadMessage,
    linked: WorkItem | None = None,
    pick: WorkItem | None = None,
    answered: bool = False,
    answer: int | None = None,
) -> Outcome:
    """Decide what a read message means: record, ask, show a status, or answer small talk.

    linked: the item of the bot message this one replies to; pick: the item the sender
    picked with a button for a message that named none; answered/answer: the sender's
    answer to "is this figure the percent?" (answer None: none of them is).
    """
    if read.kind in (MessageKind.smalltalk, MessageKind.unclear) and pick is None:
        return Outcome(read.kind.value)
    if read.kind is MessageKind.question:
        return Outcome("status", items=tuple(lookup.find_item(ref) for ref in read.refs))

    owner, entered_by = sender, None
    if read.on_behalf is not None:
        if sender.role == Role.official:
            raise UserError("report.behalf_not_allowed")
        owner, entered_by = contacts.find_contact(session, read.on_behalf), sender

    entries: list[Entry] = []
    seen: set[int] = set()
    asked: tuple[WorkItem, list[int]] | None = None
    for part in read.parts:
        if part.refs:
            items = []
            for ref in part.refs:
                found = lookup.resolve(ref, owner)
                if len(found) > 1 and pick is not None and pick.id in {i.id for i in found}:
                    found = [pick]  # the sender's answer to "which of these?"
                if len(found) > 1:
                    return Outcome("ask_item", candidates=tuple(found), owner=owner)
                items.append(found[0])
        elif pick is not None:
            items = [pick]
        elif linked is not None:
            items = [linked]
        else:
            candidates = reports.open_items(session, plan, owner)
            if part.bare_number is not None and part.report.note == str(part.bare_number):
                # a number alone that is one of the sender's items: the item, without progress
                for item in candidates:
                    if str(item.number) == part.report.note:
                        raise UserError("report.empty_for_item", item=plans.item_ref(session, item))
            if not candidates:
                if reports.assigned_items(session, plan, owner):
                    raise UserError("report.all_done")
                return Outcome("unclear")  # no items at all: tell them how reporting works
            if len(candidates) > 1:
                return Outcome("ask_item", candidates=tuple(candidates), owner=owner)
            items = candidates
        for item in items:
            if item.id in seen:
                raise UserError("report.item_twice", item=plans.item_ref(session, item))
            seen.add(item.id or 0)
            _check_may_report(session, lookup, item, sender, owner, part.report)
            if not _has_content(part.report):
                raise UserError("report.empty_for_item", item=plans.item_ref(session, item))
            check_percent(part.report.percent)
            targets = reports.item_targets(session, item) if part.report.numbers else []
            values = match_targets(part.report.numbers, targets)
            report = part.report
            options = _figures_to_ask(part.bare_number, report, values)
            if options and asked is None:
                if answered:
                    report = replace(report, percent=answer)
                else:
                    asked = (item, options)
            elif not options and not values and _only_figures(report):
                raise UserError(
                    "report.unclear_figure", item=plans.item_ref(session, item), text=report.note
                )
            entries.append(Entry(item, report, values))

    if asked is not None:
        return Outcome("ask_bare", items=(asked[0],), options=tuple(asked[1]), owner=owner)
    return Outcome("record", entries=tuple(entries), owner=owner, entered_by=entered_by)


_FIGURES_ONLY_RE = re.compile(
    r"[\d\s.,，、:：%万千百十亿点一二三四五六七八九两成左右吧呢啊呀了约大概]+"
)


def _figures_to_ask(
    bare: int | None, report: ParsedReport, values: list[tuple[Target, float]]
) -> list[int]:
    """The figures of a part that may be its percent but were not written as one: a bare
    number after the item ("9 75 主体完工"), or percentages that name no target when the
    part has no percent of its own ("进度从50%提到了65%")."""
    if report.percent is not None:
        return []
    if bare is not None:
        return [bare]
    matched = {value for _, value in values}
    shares = {
        int(n.value)
        for n in report.numbers
        if n.unit == "%" and n.value not in matched and n.value.is_integer() and n.value <= 100
    }
    return sorted(shares)


def _only_figures(report: ParsedReport) -> bool:
    """Whether a part says nothing but figures with no meaning given ("9 1万", "26 七八成吧")."""
    return (
        report.status is None
        and bool(report.note)
        and _FIGURES_ONLY_RE.fullmatch(report.note) is not None
        and any(ch.isdigit() or ch in "一二三四五六七八九十两" for ch in report.note)
    )


def record(
    session: Session, outcome: Outcome, *, now: datetime, source: str = "chat"
) -> list[Report]:
    """Store the reports of a `record` outcome (one per item)."""
    assert outcome.kind == "record" and outcome.owner is not None
    return [
        reports.record_report(
            session,
            item=entry.item,
            contact=outcome.owner,
            now=now,
            percent=entry.report.percent,
            status=entry.report.status,
            text=entry.report.note,
            values=entry.values,
            source=source,
            entered_by=outcome.entered_by,
        )
        for entry in outcome.entries
    ]


def previous_percents(session: Session, items: Sequence[WorkItem]) -> dict[int, int | None]:
    """The latest known percent of each item (for "未填写（上次 60%）")."""
    return {item.id or 0: reports.latest_known_percent(session, item.id or 0) for item in items}
