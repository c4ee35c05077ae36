"""`/status ITEM` and `/overdue`: where an item stands, and what is past its deadline."""

from __future__ import annotations

from bot.chat import ChatContext
from bot.i18n import UserError
from bot.models import Plan, Role, WorkItem
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
        raise UserError("status.not_yours", item=ctx.ref(item))
    # the item's own plan: an item of another plan (民生9, J2) is not among the current one's
    plan = ctx.session.get(Plan, item.plan_id)
    view = next(v for v in ctx.views(plan) if v.item.id == item.id)
    owners = [
        {"contact": c, "assignment": a, "report": latest_report(ctx.session, item.id or 0, c.id)}
        for c, a in view.people
    ]
    ctx.reply(
        render(
            "status",
            ctx.t.locale,
            view=view,
            ref=ctx.ref(item),
            owners=owners,
            evidence=evidence.count(ctx.session, item.id or 0),
            leader=ctx.contact.role != Role.official,
        ),
        link_item_id=item.id,
    )


def overdue(ctx: ChatContext) -> None:
    """Lists the items of every open plan (the tasks handed down too) past their deadline
    and not done."""
    today = ctx.now.astimezone(ctx.settings.tz).date()
    rows = [
        v
        for plan in ctx.open_plans()
        for v in ctx.views(plan)
        if v.deadline is not None and v.deadline < today and v.status != "done"
    ]
    refs = ctx.refs([v.item for v in rows])
    ctx.reply(render("overdue", ctx.t.locale, rows=rows, refs=refs, today=today))
