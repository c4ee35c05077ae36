"""Admin commands: /assign, /unassign, /deadline, /invite, /contacts (all audited)."""

from __future__ import annotations

from bot.chat import ChatContext
from bot.i18n import UserError
from bot.models import AssignmentRole
from bot.services import assignments, contacts
from bot.services.plans import find_item
from bot.templating import render


def _args(ctx: ChatContext, count: int, usage: str) -> list[str]:
    parts = ctx.args.split()
    if len(parts) < count:
        raise UserError(usage)
    return parts


def assign(ctx: ChatContext) -> None:
    """Assigns an item to a contact (`/assign ITEM NAME [YYYY-MM-DD]`) and tells them."""
    parts = _args(ctx, 2, "assign.usage")
    if len(parts) > 3:
        raise UserError("assign.usage")
    item = find_item(ctx.session, ctx.plan, parts[0])
    person = contacts.find_contact(ctx.session, parts[1])
    deadline = assignments.parse_date(parts[2]) if len(parts) == 3 else None
    assignment, _ = assignments.assign(
        ctx.session,
        item=item,
        contact=person,
        role=AssignmentRole.lead,
        deadline=deadline,
        actor=ctx.actor,
        now=ctx.now,
    )
    due = assignments.due_text(item, assignment)
    ctx.say("assign.done", item=item.number, title=item.title, name=person.name, deadline=due)


def unassign(ctx: ChatContext) -> None:
    """Removes an assignment (`/unassign ITEM NAME`)."""
    parts = _args(ctx, 2, "unassign.usage")
    item = find_item(ctx.session, ctx.plan, parts[0])
    person = contacts.find_contact(ctx.session, parts[1])
    assignments.unassign(ctx.session, item=item, contact=person, actor=ctx.actor)
    ctx.say("unassign.done", item=item.number, name=person.name)


def deadline(ctx: ChatContext) -> None:
    """Sets an item's deadline (`/deadline ITEM YYYY-MM-DD`) and tells its owners."""
    parts = _args(ctx, 2, "deadline.usage")
    item = find_item(ctx.session, ctx.plan, parts[0])
    new = assignments.parse_date(parts[1])
    old = item.deadline
    item.deadline = new
    ctx.audit(
        "deadline", item=item.number, old=old.isoformat() if old else None, new=new.isoformat()
    )
    ctx.say("deadline.done", item=item.number, title=item.title, deadline=new.isoformat())
    for person, _ in assignments.assignees(ctx.session, [item.id or 0])[item.id or 0]:
        ctx.notify(
            person,
            "deadline.notice",
            item_id=item.id,
            item=item.number,
            title=item.title,
            deadline=new.isoformat(),
        )


def invite(ctx: ChatContext) -> None:
    """Issues a one-time invite code for a contact (`/invite NAME`)."""
    parts = _args(ctx, 1, "invite.usage")
    person = contacts.find_contact(ctx.session, parts[0])
    code, inv = contacts.create_invite(
        ctx.session, person, valid_days=ctx.settings.invite_valid_days, actor=ctx.actor, now=ctx.now
    )
    expires = inv.expires_at.astimezone(ctx.settings.tz).strftime("%Y-%m-%d %H:%M")
    ctx.say("invite.done", name=person.name, code=code, expires=expires)


def bind_wecom(ctx: ChatContext) -> None:
    """Ties a contact to their WeCom account (`/wecom NAME USERID`)."""
    parts = _args(ctx, 2, "wecom.usage")
    person = contacts.find_contact(ctx.session, parts[0])
    contacts.bind_wecom(ctx.session, person, parts[1], actor=ctx.actor)
    ctx.say("wecom.done", name=person.name, userid=parts[1])


def contacts_list(ctx: ChatContext) -> None:
    """Lists every contact with unit, role, bound accounts and number of items."""
    rows = contacts.list_contacts(ctx.session)
    ctx.reply(render("contacts", ctx.t.locale, rows=rows))
