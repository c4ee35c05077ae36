"""Progress reports: /report, plain words, replies to reminders, the buttons that answer a
question, /undo. What a message means is decided by `bot.services.intake`; this module only
answers."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import col, select

from bot.chat import ChatContext
from bot.events import Button
from bot.i18n import UserError
from bot.models import PendingChoice, WorkItem
from bot.reply_reader import ReadMessage, read_message
from bot.services import intake, reports, tasks
from bot.services.plans import split_ref
from bot.templating import render
from handlers import status

CHOICE_TTL = timedelta(days=1)
PAGE = 8  # item buttons per message; more come on the next page
NOT_A_REPORT = "0"  # the "not a report" button's item number
MAX_DIGITS = 18  # the longest number a button or an answer may carry (a row id fits)


def report_command(ctx: ChatContext) -> None:
    """Records `/report ITEM PERCENT [text] [@NAME]` (@NAME: on that person's behalf)."""
    if not ctx.args.strip():
        raise UserError("report.usage")
    read = _read(ctx, ctx.args, command=True)
    if not read.refs:
        raise UserError("report.usage")
    _answer(ctx, read, f"/report {ctx.args}")


def plain_text(ctx: ChatContext) -> None:
    """Records progress written in plain words, or asks what it is about."""
    typed = ctx.args.strip()
    if _number(typed) is not None or split_ref(typed, ctx.codes()) is not None:
        pending = _waiting_choice(ctx)  # perhaps the answer to an open "which item?"
        if pending is not None:
            if typed == NOT_A_REPORT:
                _resolve_pick(ctx, pending, None)
            else:
                _resolve_pick(ctx, pending, _typed_pick(ctx, pending, typed))
            return
    _answer(ctx, _read(ctx, ctx.args), ctx.args)


def _read(
    ctx: ChatContext, text: str, *, command: bool = False, bare: bool | None = None
) -> ReadMessage:
    return read_message(
        text,
        command=command,
        english=ctx.t.locale == "en",
        bare_is_percent=bare,
        codes=ctx.codes(),
    )


def _answer(
    ctx: ChatContext,
    read: ReadMessage,
    raw: str,
    *,
    pick: WorkItem | None = None,
    answered: bool = False,
    answer: int | None = None,
) -> None:
    """Decide what the message means and answer: record and confirm, ask, or show."""
    assert ctx.contact is not None
    linked = None
    if ctx.event.reply_to_message_id:
        linked = intake.linked_item(
            ctx.session, ctx.event.platform, ctx.event.chat_id, ctx.event.reply_to_message_id
        )
    outcome = intake.understand(
        ctx.session,
        ctx,
        plan=ctx.open_plans(),
        sender=ctx.contact,
        read=read,
        linked=linked,
        pick=pick,
        answered=answered,
        answer=answer,
    )
    if outcome.kind == "smalltalk":
        ctx.say("report.smalltalk", name=ctx.contact.name)
    elif outcome.kind == "unclear":
        ctx.say("report.unclear")
    elif outcome.kind == "status":
        for item in outcome.items:
            status.show(ctx, item)
    elif outcome.kind == "ask_item":
        _ask_which(ctx, list(outcome.candidates), raw)
    elif outcome.kind == "ask_bare":
        _ask_bare(ctx, outcome.items[0], list(outcome.options), raw)
    else:
        _record(ctx, outcome)


def _record(ctx: ChatContext, outcome: intake.Outcome) -> None:
    saved = intake.record(ctx.session, outcome, now=ctx.now)
    ctx.recorded.extend(saved)  # for what came with the message (evidence, handlers/evidence.py)
    items = [entry.item for entry in outcome.entries]
    tasks.after_reports(ctx.session, saved, items, now=ctx.now)
    previous = intake.previous_percents(
        ctx.session, [e.item for e in outcome.entries if e.report.percent is None]
    )
    refs = ctx.refs(items)
    records = [
        {
            "ref": refs[entry.item.id or 0],
            "item": entry.item,
            "report": report,
            "matched": entry.values,
            "previous": previous.get(entry.item.id or 0),
        }
        for entry, report in zip(outcome.entries, saved, strict=True)
    ]
    entered_for = outcome.owner.name if outcome.entered_by is not None and outcome.owner else None
    ctx.reply(
        render(
            "report_recorded",
            ctx.t.locale,
            records=records,
            entered_for=entered_for,
            undo_minutes=int(reports.UNDO_WINDOW.total_seconds() // 60),
        ),
        link_item_id=items[0].id if len(items) == 1 else None,
    )


def _new_choice(ctx: ChatContext, raw: str, candidates: list[int]) -> PendingChoice:
    assert ctx.contact is not None and ctx.contact.id is not None
    choice = PendingChoice(
        contact_id=ctx.contact.id, text=raw, candidates=candidates, created_at=ctx.now
    )
    ctx.session.add(choice)
    ctx.session.flush()
    return choice


def _ask_which(ctx: ChatContext, candidates: list[WorkItem], raw: str) -> None:
    choice = _new_choice(ctx, raw, [i.id or 0 for i in candidates])
    _send_page(ctx, choice, candidates, 0)


def _send_page(
    ctx: ChatContext, choice: PendingChoice, candidates: list[WorkItem], offset: int
) -> None:
    """One page of item buttons, with "more" while there are more, and "not a report"."""
    page = candidates[offset : offset + PAGE]
    refs = ctx.refs(candidates)
    rows: list[tuple[Button, ...]] = [
        (Button(label=f"{refs[i.id or 0]}. {_short(i.title)}", data=f"pick:{choice.id}:{i.id}"),)
        for i in page
    ]
    if offset + PAGE < len(candidates):
        label = ctx.t("report.more_items", left=len(candidates) - offset - PAGE)
        rows.append((Button(label=label, data=f"page:{choice.id}:{offset + PAGE}"),))
    rows.append(
        (Button(label=ctx.t("report.not_a_report"), data=f"pick:{choice.id}:{NOT_A_REPORT}"),)
    )
    numbers = "、".join(refs[i.id or 0] for i in candidates)
    key = "report.which_item" if offset == 0 else "report.which_item_more"
    example = refs[candidates[0].id or 0]
    ctx.reply(ctx.t(key, numbers=numbers, example=example), buttons=tuple(rows))


def _ask_bare(ctx: ChatContext, item: WorkItem, options: list[int], raw: str) -> None:
    """Ask which figure, if any, is the item's percent (one button each, and "none")."""
    choice = _new_choice(ctx, raw, [item.id or 0])
    figures_row = [Button(label=f"{n}%", data=f"bare:{choice.id}:{n}") for n in options]
    none = Button(label=ctx.t("report.bare_not_percent"), data=f"bare:{choice.id}:n")
    buttons = ((*figures_row, none),)
    figures = "、".join(str(n) for n in options)
    ctx.reply(ctx.t("report.bare_number", item=ctx.ref(item), number=figures), buttons=buttons)


def _short(title: str, limit: int = 24) -> str:
    return title if len(title) <= limit else title[: limit - 1] + "…"


def _number(text: str) -> int | None:
    """A whole number written in digits, or None. Not str.isdigit(): "²" passes it and is no
    number for int(); and a forged button's 30-digit id fits no database column."""
    return int(text) if text.isdecimal() and len(text) <= MAX_DIGITS else None


def _choice(ctx: ChatContext, choice_id: str) -> PendingChoice:
    """The sender's open question behind a button (a UserError when stale)."""
    assert ctx.contact is not None
    number = _number(choice_id)
    if number is None:
        raise UserError("chat.stale_button")
    choice = ctx.session.get(PendingChoice, number)
    if (
        choice is None
        or choice.contact_id != ctx.contact.id
        or choice.resolved_at is not None
        or ctx.now - choice.created_at > CHOICE_TTL
    ):
        raise UserError("chat.stale_button")
    return choice


def _waiting_choice(ctx: ChatContext) -> PendingChoice | None:
    """The sender's newest unanswered "which item?" question, if any."""
    assert ctx.contact is not None
    choice = ctx.session.exec(
        select(PendingChoice)
        .where(
            PendingChoice.contact_id == ctx.contact.id,
            col(PendingChoice.resolved_at).is_(None),
        )
        .order_by(col(PendingChoice.created_at).desc(), col(PendingChoice.id).desc())
        .limit(1)
    ).first()
    if choice is None or ctx.now - choice.created_at > CHOICE_TTL or len(choice.candidates) < 2:
        return None
    return choice


def _reread(ctx: ChatContext, choice: PendingChoice, *, bare: bool | None = None) -> ReadMessage:
    text = choice.text
    if text.startswith("/report"):
        return _read(ctx, text[len("/report") :], command=True, bare=bare)
    return _read(ctx, text, bare=bare)


def _offered_items(ctx: ChatContext, choice: PendingChoice) -> list[WorkItem]:
    """The live items a question offered, in its order."""
    items = [ctx.session.get(WorkItem, item_id) for item_id in choice.candidates]
    return [i for i in items if i is not None and i.removed_at is None]


def _typed_pick(ctx: ChatContext, choice: PendingChoice, typed: str) -> WorkItem:
    """The offered item a typed answer names ("9", or "民生3" when two share a number)."""
    offered = _offered_items(ctx, choice)
    refs = ctx.refs(offered)
    wanted = typed.strip().casefold()
    named = [i for i in offered if refs[i.id or 0].casefold() == wanted]
    if not named and wanted.isdecimal():
        named = [i for i in offered if str(i.number) == wanted]
    if len(named) != 1:
        raise UserError(
            "report.pick_unknown",
            number=typed,
            numbers="、".join(refs[i.id or 0] for i in offered),
        )
    return named[0]


def _resolve_pick(ctx: ChatContext, choice: PendingChoice, item: WorkItem | None) -> None:
    """Answer a "which item?" question with the item picked (None: not a report)."""
    choice.resolved_at = ctx.now
    if item is None:
        ctx.say("report.dismissed")
        return
    _answer(ctx, _reread(ctx, choice), choice.text, pick=item)


def pick_item(ctx: ChatContext) -> None:
    """Records the pending report against the item whose button was clicked."""
    choice_id, _, picked = ctx.args.partition(":")
    choice = _choice(ctx, choice_id)
    if picked == NOT_A_REPORT:
        _resolve_pick(ctx, choice, None)
        return
    item_id = _number(picked)
    if item_id is None or item_id not in choice.candidates:
        raise UserError("chat.stale_button")
    item = ctx.session.get(WorkItem, item_id)
    if item is None or item.removed_at is not None:
        raise UserError("chat.stale_button")
    _resolve_pick(ctx, choice, item)


def next_page(ctx: ChatContext) -> None:
    """Shows the next page of items to pick from."""
    choice_id, _, raw_offset = ctx.args.partition(":")
    choice = _choice(ctx, choice_id)
    offset = _number(raw_offset)
    if offset is None or offset >= len(choice.candidates):
        raise UserError("chat.stale_button")
    _send_page(ctx, choice, _offered_items(ctx, choice), offset)


def _offered(ctx: ChatContext, choice: PendingChoice, item: WorkItem) -> tuple[int, ...]:
    """The figures the question behind a `bare:` button offered, read again as it was asked."""
    assert ctx.contact is not None
    outcome = intake.understand(
        ctx.session,
        ctx,
        plan=ctx.open_plans(),
        sender=ctx.contact,
        read=_reread(ctx, choice),
        pick=item,
    )
    return outcome.options if outcome.kind == "ask_bare" else ()


def bare_number(ctx: ChatContext) -> None:
    """Records the pending report once its sender said which figure, if any, is the percent."""
    choice_id, _, answer = ctx.args.partition(":")
    choice = _choice(ctx, choice_id)
    percent = _number(answer)
    if len(choice.candidates) != 1:  # a "which item?" question (two items or more)
        raise UserError("chat.stale_button")
    if answer != "n" and (percent is None or percent > 100):
        raise UserError("chat.stale_button")
    # The item asked about stands for a message that named none (a reply, the only item).
    item = ctx.session.get(WorkItem, choice.candidates[0])
    if item is None or item.removed_at is not None:
        raise UserError("chat.stale_button")
    if percent is not None and percent not in _offered(ctx, choice, item):
        raise UserError("chat.stale_button")  # a figure the question never offered: forged
    choice.resolved_at = ctx.now
    read = _reread(ctx, choice, bare=percent is not None)
    _answer(ctx, read, choice.text, pick=item, answered=True, answer=percent)


def undo(ctx: ChatContext) -> None:
    """Takes the sender's last report back (within 10 minutes)."""
    assert ctx.contact is not None
    _, item = reports.undo_last(ctx.session, ctx.contact, ctx.now)
    ctx.say("undo.done", item=ctx.ref(item), title=item.title)
