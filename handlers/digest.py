"""`/digest` and `/export` for leaders and admins: the weekly digest and the ledger on demand."""

from __future__ import annotations

from bot.channels.registry import markup_of
from bot.chat import ChatContext
from bot.events import Outgoing
from bot.services.digest import build_digest, parse_week
from bot.services.ledger_export import export_ledger
from bot.services.progress import StatusRules
from bot.services.sending import write_digest_chart
from bot.templating import render_digest


def digest(ctx: ChatContext) -> None:
    """Sends this week's digest (or `/digest 2023-W23`) with its chart."""
    week = parse_week(ctx.args.split()[0]) if ctx.args.strip() else None
    markup = markup_of(ctx.event.platform)
    first = None
    for plan in ctx.open_plans() or [ctx.plan]:  # every open plan, one digest each
        result = build_digest(
            ctx.session,
            plan,
            now=ctx.now,
            tz=ctx.settings.tz,
            rules=StatusRules.from_settings(ctx.settings),
            week=week,
        )
        if not result.sections and first is not None:
            continue  # an empty list of tasks is not worth a message
        first = first or result
        ctx.outgoing.append(
            Outgoing(
                chat_id=ctx.event.chat_id,
                text=render_digest(result, markup, ctx.t.locale),
                markup=markup,
            )
        )
    assert first is not None
    chart = ctx.settings.data_dir / "charts" / f"digest-{first.plan.id}-{first.label}.png"
    write_digest_chart(first, chart, ctx.t.locale)
    ctx.outgoing.append(Outgoing(chat_id=ctx.event.chat_id, photo=chart))


def export(ctx: ChatContext) -> None:
    """Sends the ledger (台账) workbook."""
    stamp = ctx.now.astimezone(ctx.settings.tz).strftime("%Y%m%d-%H%M")
    path = ctx.settings.data_dir / "exports" / f"ledger-{ctx.plan.id}-{stamp}.xlsx"
    export_ledger(ctx.session, ctx.plan, path, settings=ctx.settings, now=ctx.now)
    ctx.outgoing.append(
        Outgoing(
            chat_id=ctx.event.chat_id, file=path, text=ctx.t("export.caption", title=ctx.plan.title)
        )
    )
