"""`/my`: the sender's items with deadline, their latest progress and a status colour."""

from __future__ import annotations

from bot.chat import ChatContext
from bot.services.reports import latest_report
from bot.templating import render


def my_items(ctx: ChatContext) -> None:
    """Lists the items assigned to the sender."""
    assert ctx.contact is not None
    rows = []
    for view in ctx.views():
        if not any(c.id == ctx.contact.id for c, _ in view.people):
            continue
        mine = latest_report(ctx.session, view.item.id or 0, ctx.contact.id)
        rows.append({"view": view, "mine": mine})
    ctx.reply(render("my_items", ctx.t.locale, rows=rows, plan=ctx.plan))
