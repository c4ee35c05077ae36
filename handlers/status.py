"""`/status ITEM` and `/overdue`: where an item stands, and what is past its deadline."""

from __future__ import annotations

from bot.chat import ChatContext
from bot.i18n import UserError
from bot.models import Role, WorkItem
from bot.services import evidence
from bot.services.reports import latest_report
from bot.templating import render


def status(ctx: ChatContext) -> None:
    """Shows one item: deadline, owners and their latest progress, targets."""
    assert ctx.contact is not None
    if not ctx.args:
        raise UserError("status.usage")
    show(ctx, ctx.find_item(ctx.args.split()[0]))


def show(ctx: ChatContext, item: WorkItem) -> None:
    """Shows where one item stands (officials see only their own items)."""
    assert ctx.contact is not None
    if ctx.contact.role == Role.official and not ctx.is_assigned(item):
        raise UserError("status.not_yours", item=item.number)
    view = next(v for v in ctx.views() if v.item.id == item.id)
    owners = [
        {"contact": c, "assignment": a, "report": latest_report(ctx.session, item.id or 0, c.id)}
        for c, a in view.people
    ]
    ctx.reply(
        render(
            "status",
            ctx.t.locale,
            view=view,
            owners=owners,
            evidence=evidence.count(ctx.session, item.id or 0),
            leader=ctx.contact.role != Role.official,
        ),
        link_item_id=item.id,
    )


def overdue(ctx: ChatContext) -> None:
    """Lists items past their deadline and not done."""
    today = ctx.now.astimezone(ctx.settings.tz).date()
    rows = [
        v
        for v in ctx.views()
        if v.deadline is not None and v.deadline < today and v.status != "done"
    ]
    ctx.reply(render("overdue", ctx.t.locale, rows=rows, today=today))
