"""Admin commands: /assign, /unassign, /deadline, /invite, /contacts and a channel's account
binding (/<channel> NAME ID) (all audited).

/assign, /unassign and /deadline take their words in any order: `/assign 9 张三`,
`/assign 张三 9`, `/assign 张三 9 10 年底` (one person, one item or more, one deadline for
them all). Each word is read as a date (bot/dates.py: 2023-12-31, 12月31日, 6月底, 年底 ...),
an item (9, #9, 第9项, 三.2) or a contact's name. A word that is both an item and a name is
refused with the way to tell them apart: `第9项` is always the item. One command is one
transaction: when any word is wrong, nothing is changed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from bot.channels import registry
from bot.chat import ChatContext
from bot.dates import read_typed_date
from bot.i18n import UserError
from bot.models import Assignment, AssignmentRole, Contact, WorkItem
from bot.services import accounts, assignments, contacts
from bot.services.items import plan_start
from bot.templating import render

# An item reference by its form alone: 9, #9, 第9项, 9号, 三.2, 3.2.
_ITEM_LIKE = re.compile(
    r"[#＃]?第?\s*(?:[0-9０-９]+|[0-9０-９一二三四五六七八九十]+[.．][0-9０-９]+)\s*[项号]?"
)
# Marked as an item (#9, 第9项): never taken for a name (but 第五伦 is a name).
_ITEM_MARKED = re.compile(r"[#＃].+|第.+项")
# Written like a date, though not one that could be read (6月低, 2023-1-).
_DATE_LIKE = re.compile(r"[0-9０-９]\s*[年月日号]|[0-9０-９]{4}\s*[.．/／\-－]")


def _args(ctx: ChatContext, count: int, usage: str) -> list[str]:
    parts = ctx.args.split()
    if len(parts) < count:
        raise UserError(usage)
    return parts


@dataclass
class _Words:
    """The words of an admin command, each read as what it names."""

    items: list[WorkItem] = field(default_factory=list)
    people: list[Contact] = field(default_factory=list)
    dates: list[tuple[str, date]] = field(default_factory=list)


def _find_item(ctx: ChatContext, word: str) -> WorkItem | None:
    try:
        return ctx.find_item(word)
    except UserError:
        return None


def _find_contact(ctx: ChatContext, word: str) -> Contact | None:
    try:
        return contacts.find_contact(ctx.session, word)
    except UserError:
        return None


def _read_words(ctx: ChatContext, command: str, *, names: bool) -> _Words:
    """Reads every word of the command as a date, an item or (when `names`) a contact; a
    word that is none of them, or both an item and a name, is a UserError."""
    year = plan_start(ctx.plan).year  # 12月31日, 年底: in the plan's year
    words = _Words()
    for word in ctx.args.split():
        when = read_typed_date(word, year=year)
        if when is not None:
            words.dates.append((word, when))
            continue
        item = _find_item(ctx, word)
        person = _find_contact(ctx, word) if names and not _ITEM_MARKED.fullmatch(word) else None
        if item is not None and person is not None:
            raise UserError("assign.ambiguous", ref=word, command=command)
        if item is not None:
            if all(i.id != item.id for i in words.items):
                words.items.append(item)
        elif person is not None:
            if all(p.id != person.id for p in words.people):
                words.people.append(person)
        elif _ITEM_LIKE.fullmatch(word):
            raise UserError("item.unknown", ref=word)
        elif names and not _DATE_LIKE.search(word):
            raise UserError("contact.unknown", name=word)
        else:
            raise UserError("date.unreadable", value=word)
    return words


def _one_date(words: _Words) -> date | None:
    if len(words.dates) > 1:
        raise UserError("date.several", dates="、".join(w for w, _ in words.dates))
    return words.dates[0][1] if words.dates else None


def _one_person(words: _Words, usage: str) -> Contact:
    if len(words.people) > 1:
        names = "、".join(p.name for p in words.people)
        raise UserError("assign.two_names", names=names, name=words.people[0].name)
    if not words.people or not words.items:
        raise UserError(usage)
    return words.people[0]


def _due_label(ctx: ChatContext, item: WorkItem, assignment: Assignment) -> str:
    # assignments.due_text holds the rule (the assignment's deadline, else the item's) and
    # writes "-" for none; people read "未设定" (the label of bot.dates.deadline_label).
    due = assignments.due_text(item, assignment)
    return ctx.t("deadline.not_set") if due == "-" else due


def assign(ctx: ChatContext) -> None:
    """Assigns items to a contact (`/assign ITEM... NAME [DEADLINE]`, any order) and tells them."""
    words = _read_words(ctx, "assign", names=True)
    deadline = _one_date(words)
    person = _one_person(words, "assign.usage")
    lines = []
    for item in words.items:
        assignment, _ = assignments.assign(
            ctx.session,
            item=item,
            contact=person,
            role=AssignmentRole.lead,
            deadline=deadline,
            actor=ctx.actor,
            now=ctx.now,
        )
        due = _due_label(ctx, item, assignment)
        lines.append(
            ctx.t(
                "assign.done", item=ctx.ref(item), title=item.title, name=person.name, deadline=due
            )
        )
    ctx.reply("\n".join(lines))


def unassign(ctx: ChatContext) -> None:
    """Removes assignments (`/unassign ITEM... NAME`, any order)."""
    words = _read_words(ctx, "unassign", names=True)
    if words.dates:
        raise UserError("unassign.usage")
    person = _one_person(words, "unassign.usage")
    lines = []
    for item in words.items:
        assignments.unassign(ctx.session, item=item, contact=person, actor=ctx.actor)
        lines.append(ctx.t("unassign.done", item=ctx.ref(item), name=person.name))
    ctx.reply("\n".join(lines))


def deadline(ctx: ChatContext) -> None:
    """Sets items' deadline (`/deadline ITEM... DATE`, any order) and tells their owners."""
    words = _read_words(ctx, "deadline", names=False)
    new = _one_date(words)
    if new is None or not words.items:
        raise UserError("deadline.usage")
    lines = []
    for item in words.items:  # the service audits it and tells the owners, as the CLI's does
        assignments.set_deadline(ctx.session, item=item, deadline=new, actor=ctx.actor, now=ctx.now)
        lines.append(
            ctx.t("deadline.done", item=ctx.ref(item), title=item.title, deadline=new.isoformat())
        )
    ctx.reply("\n".join(lines))


def invite(ctx: ChatContext) -> None:
    """Issues a one-time invite code for a contact (`/invite NAME`)."""
    parts = _args(ctx, 1, "invite.usage")
    person = contacts.find_contact(ctx.session, parts[0])
    code, inv = contacts.create_invite(
        ctx.session, person, valid_days=ctx.settings.invite_valid_days, actor=ctx.actor, now=ctx.now
    )
    expires = inv.expires_at.astimezone(ctx.settings.tz).strftime("%Y-%m-%d %H:%M")
    ctx.say("invite.done", name=person.name, code=code, expires=expires)


def account_binder(platform: str) -> Callable[[ChatContext], None]:
    """The handler of `/<platform> NAME ACCOUNT`: an admin ties a contact to their account on
    a channel whose accounts an admin may bind (its spec's admin_binds)."""

    spec = registry.specs()[platform]

    def bind(ctx: ChatContext) -> None:
        parts = ctx.args.split()
        if len(parts) < 2:
            raise UserError(
                "account.usage",
                command=platform,
                platform=accounts.label(platform),
                example=spec.example,
            )
        person = contacts.find_contact(ctx.session, parts[0])
        stored = accounts.bind_by_admin(ctx.session, person, platform, parts[1], actor=ctx.actor)
        ctx.say("account.done", name=person.name, platform=accounts.label(platform), value=stored)

    bind.__doc__ = f"Ties a contact to their account on {platform} (`/{platform} NAME ID`)."
    return bind


def contacts_list(ctx: ChatContext) -> None:
    """Lists every contact with unit, role, bound accounts and number of items."""
    rows = contacts.list_contacts(ctx.session)
    held = accounts.accounts_of(ctx.session, [c.id for c, _ in rows if c.id is not None])
    shown = {
        contact_id: [(ctx.t(f"channel.{name}.label"), value) for name, value in found.items()]
        for contact_id, found in held.items()
    }
    ctx.reply(render("contacts", ctx.t.locale, rows=rows, accounts=shown))
