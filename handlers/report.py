"""Progress reports: /report, plain words, replies to reminders, item buttons, /undo."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from bot.chat import ChatContext
from bot.events import Button
from bot.i18n import UserError
from bot.models import MessageLink, PendingChoice, Report, Role, Target, WorkItem
from bot.progress_parser import ParsedReport, match_targets, parse_report_text
from bot.services import reports
from bot.templating import render

CHOICE_TTL = timedelta(days=1)
MAX_CHOICES = 10


def report_command(ctx: ChatContext) -> None:
    """Records `/report ITEM PERCENT [text]`."""
    if not ctx.args.strip():
        raise UserError("report.usage")
    parsed = parse_report_text(ctx.args, command=True)
    if parsed.item_ref is None:
        raise UserError("report.usage")
    _record_parsed(ctx, parsed, ctx.args)


def plain_text(ctx: ChatContext) -> None:
    """Records progress written in plain words, or asks which item it is about."""
    parsed = parse_report_text(ctx.args)
    _record_parsed(ctx, parsed, ctx.args)


def _linked_item(ctx: ChatContext) -> WorkItem | None:
    reply_to = ctx.event.reply_to_message_id
    if not reply_to:
        return None
    link = ctx.session.exec(
        select(MessageLink).where(
            MessageLink.platform == ctx.event.platform,
            MessageLink.chat_id == ctx.event.chat_id,
            MessageLink.message_id == reply_to,
        )
    ).first()
    if link is None or link.item_id is None:
        return None
    item = ctx.session.get(WorkItem, link.item_id)
    return item if item is not None and item.removed_at is None else None


def _record_parsed(ctx: ChatContext, parsed: ParsedReport, raw: str) -> None:
    assert ctx.contact is not None
    if parsed.item_ref is not None:
        item = ctx.find_item(parsed.item_ref)
        _check_may_report(ctx, item)
        _record(ctx, item, parsed)
        return
    linked = _linked_item(ctx)
    if linked is not None:
        _check_may_report(ctx, linked)
        _record(ctx, linked, parsed)
        return
    candidates = reports.open_items(ctx.session, ctx.plan, ctx.contact)
    if not candidates:
        if reports.assigned_items(ctx.session, ctx.plan, ctx.contact):
            raise UserError("report.all_done")
        raise UserError("report.not_understood")
    if len(candidates) == 1:
        _record(ctx, candidates[0], parsed)
        return
    _ask_which(ctx, candidates[:MAX_CHOICES], raw)


def _check_may_report(ctx: ChatContext, item: WorkItem) -> None:
    assert ctx.contact is not None
    if ctx.contact.role == Role.admin:
        return
    if not ctx.is_assigned(item):
        raise UserError("report.not_yours", item=item.number)


def _has_content(parsed: ParsedReport) -> bool:
    return bool(
        parsed.percent is not None or parsed.status is not None or parsed.numbers or parsed.note
    )


def _record(ctx: ChatContext, item: WorkItem, parsed: ParsedReport) -> None:
    assert ctx.contact is not None
    if not _has_content(parsed):
        raise UserError("report.empty_for_item", item=item.number)
    targets = reports.item_targets(ctx.session, item) if parsed.numbers else []
    values = match_targets(parsed.numbers, targets)
    report = reports.record_report(
        ctx.session,
        item=item,
        contact=ctx.contact,
        now=ctx.now,
        percent=parsed.percent,
        status=parsed.status,
        text=parsed.note,
        values=values,
    )
    _confirm(ctx, item, report, values)


def _confirm(
    ctx: ChatContext, item: WorkItem, report: Report, values: list[tuple[Target, float]]
) -> None:
    ctx.reply(
        render(
            "report_recorded",
            ctx.t.locale,
            item=item,
            report=report,
            values=values,
            undo_minutes=int(reports.UNDO_WINDOW.total_seconds() // 60),
        ),
        link_item_id=item.id,
    )


def _ask_which(ctx: ChatContext, candidates: list[WorkItem], raw: str) -> None:
    assert ctx.contact is not None and ctx.contact.id is not None
    choice = PendingChoice(
        contact_id=ctx.contact.id,
        text=raw,
        candidates=[i.number for i in candidates],
        created_at=ctx.now,
    )
    ctx.session.add(choice)
    ctx.session.flush()
    buttons = tuple(
        (Button(label=f"{i.number}. {_short(i.title)}", data=f"pick:{choice.id}:{i.number}"),)
        for i in candidates
    )
    ctx.reply(ctx.t("report.which_item"), buttons=buttons)


def _short(title: str, limit: int = 24) -> str:
    return title if len(title) <= limit else title[: limit - 1] + "…"


def pick_item(ctx: ChatContext) -> None:
    """Records the pending report against the item whose button was clicked."""
    assert ctx.contact is not None
    choice_id, _, number = ctx.args.partition(":")
    if not choice_id.isdigit() or not number.isdigit():
        raise UserError("chat.stale_button")
    choice = ctx.session.get(PendingChoice, int(choice_id))
    if (
        choice is None
        or choice.contact_id != ctx.contact.id
        or choice.resolved_at is not None
        or ctx.now - choice.created_at > CHOICE_TTL
        or int(number) not in choice.candidates
    ):
        raise UserError("chat.stale_button")
    choice.resolved_at = ctx.now
    item = ctx.find_item(number)
    _check_may_report(ctx, item)
    _record(ctx, item, parse_report_text(choice.text))


def undo(ctx: ChatContext) -> None:
    """Takes the sender's last report back (within 10 minutes)."""
    assert ctx.contact is not None
    _, item = reports.undo_last(ctx.session, ctx.contact, ctx.now)
    ctx.say("undo.done", item=item.number, title=item.title)
