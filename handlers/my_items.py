"""`/my`: the sender's items in every open plan (grouped by plan), with deadline, their latest
progress and a status colour."""

from __future__ import annotations

from typing import Any

from bot.chat import ChatContext
from bot.services.reports import latest_report
from bot.templating import render


def my_items(ctx: ChatContext) -> None:
    """Lists the items assigned to the sender, plan by plan."""
    assert ctx.contact is not None
    rows: list[dict[str, Any]] = []
    for plan in ctx.open_plans() or [ctx.plan]:
        views = [v for v in ctx.views(plan) if any(c.id == ctx.contact.id for c, _ in v.people)]
        refs = ctx.refs(v.item for v in views)
        for view in views:
            mine = latest_report(ctx.session, view.item.id or 0, ctx.contact.id)
            rows.append({"view": view, "mine": mine, "plan": plan, "ref": refs[view.item.id or 0]})
    grouped = len({row["plan"].id for row in rows}) > 1
    ctx.reply(render("my_items", ctx.t.locale, rows=rows, plan=ctx.plan, grouped=grouped))
