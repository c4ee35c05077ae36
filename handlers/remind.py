"""`/remind [ITEM]` for admins: ask for progress now (sent in working hours)."""

from __future__ import annotations

from bot.chat import ChatContext
from scheduler import reminders


def remind(ctx: ChatContext) -> None:
    """Plans a progress ask to the owners of one item, or of every open item."""
    item = ctx.find_item(ctx.args.split()[0]) if ctx.args.strip() else None
    count = reminders.ask_now(
        ctx.session, ctx.plan, now=ctx.now, settings=ctx.settings, item=item, actor=ctx.actor
    )
    ctx.say("remind.queued" if count else "remind.none", count=count)
