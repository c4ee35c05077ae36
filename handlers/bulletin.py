"""`/bulletin` for leaders: the progress bulletin (进展情况通报) of a month or a quarter, as a
Word document (`/bulletin`, `/bulletin 2023-05`, `/bulletin 2023-Q2`)."""

from __future__ import annotations

from bot.chat import ChatContext
from bot.events import Outgoing
from bot.services.bulletin import bulletin_file_name, current_month, parse_period, write_bulletin


def bulletin(ctx: ChatContext) -> None:
    """Sends this month's progress bulletin, or that of the month or quarter named."""
    period = (
        parse_period(ctx.args.split()[0])
        if ctx.args.strip()
        else current_month(ctx.now, ctx.settings.tz)
    )
    stamp = ctx.now.astimezone(ctx.settings.tz).strftime("%Y%m%d-%H%M%S")
    # a folder per request, so the file people receive has a plain name
    folder = ctx.settings.data_dir / "exports" / f"bulletin-{stamp}-{ctx.event.update_id}"
    path = folder / bulletin_file_name(period, ctx.t)
    write_bulletin(
        ctx.session,
        ctx.open_plans() or [ctx.plan],
        period,
        path,
        settings=ctx.settings,
        now=ctx.now,
    )
    ctx.outgoing.append(
        Outgoing(
            chat_id=ctx.event.chat_id,
            file=path,
            text=ctx.t("bulletin.caption", period=period.label(ctx.t)),
        )
    )
