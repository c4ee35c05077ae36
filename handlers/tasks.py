"""交办 tasks in chat: /task hands one down, /reopen sends a task closed as done back.

`/task 做好暑期校园安全检查 @张敏 @李明 6月30日前 请形成书面报告` — the title, one or more
owners (the first leads), the deadline in any form people write, an optional note. The
owners are told at once; an owner closes the task by reporting it done (`J3 已办结 …`), and
the person who handed it down is told and may `/reopen J3 原因`.
"""

from __future__ import annotations

from bot.chat import ChatContext
from bot.dates import deadline_label
from bot.i18n import UserError
from bot.models import Role
from bot.services import tasks


def task(ctx: ChatContext) -> None:
    """Hand a task down (leaders and admins)."""
    assert ctx.contact is not None
    if not ctx.args.strip():
        raise UserError("task.usage")
    year = ctx.now.astimezone(ctx.settings.tz).year
    spec = tasks.parse_task(ctx.args, year=year)
    item, owners = tasks.create_task(
        ctx.session, spec, by=ctx.contact, now=ctx.now, actor=ctx.actor, t=ctx.t
    )
    ref = ctx.refs([item])[item.id or 0]
    ctx.reply(
        ctx.t(
            "task.created",
            ref=ref,
            title=item.title,
            owners="、".join(o.name for o in owners),
            deadline=deadline_label(item.deadline, ctx.t),
            note=ctx.t("task.created_note", note=item.note) if item.note else "",
        ),
        link_item_id=item.id,
    )


def reopen(ctx: ChatContext) -> None:
    """Reopen a task closed as done: `/reopen J3 原因` (who handed it down, or an admin)."""
    assert ctx.contact is not None
    ref, _, reason = ctx.args.strip().partition(" ")
    if not ref:
        raise UserError("task.reopen_usage")
    item = ctx.find_item(ref)
    tasks.reopen(
        ctx.session,
        item,
        by=ctx.contact,
        reason=reason,
        now=ctx.now,
        actor=ctx.actor,
        admin=ctx.contact.role == Role.admin,
    )
    shown = ctx.refs([item])[item.id or 0]
    ctx.say("task.reopened", ref=shown, title=item.title, reason=reason.strip())
