"""Evidence files and voice messages in chat; `/files` for leaders.

A file (photo, document, video) is kept as evidence (佐证材料): of the report its caption
makes (`9 60% 见附件`), of the item its caption names (`第9项`), of the sender's report of the
last minutes, or of the item they pick with a button. The chat core fetched and checked it
before this transaction; a refused file is one line back and nothing kept.

A voice message's recognised text (where the platform's speech recognition gives one) is read as
if typed, once its sender confirmed it (确认 / 取消): recognition errs. Without such text it
cannot be read, and nothing is recorded.

What a caption or a recognised text means is decided where typed text is decided
(handlers/report.py, bot/services/intake.py): this module hands the text over, then files
what came with it under the reports that recorded (`ctx.recorded`), or under the "which
item?" question it asked (and files it once that question is answered: `continuing`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import bindparam, update
from sqlmodel import col, select

from bot.chat import ChatContext
from bot.events import Attachment, Button, EventKind, Outgoing, StoredFile
from bot.evidence import TYPES, size_text
from bot.i18n import UserError
from bot.models import (
    Contact,
    Evidence,
    PendingChoice,
    PendingVoice,
    Report,
    Role,
    UTCDateTime,
    WorkItem,
)
from bot.progress_parser import ParsedReport
from bot.reply_reader import MessageKind, ReadMessage, read_message
from bot.services import evidence, intake, reports
from handlers import report

MAX_BUTTONS = 8  # items offered for a file; more: name the item in the caption
_CODED_ANSWER = re.compile(r"[A-Za-z\u4e00-\u9fff]{1,8}\s*\d{1,6}")  # 民生3, J12
MAX_ANSWER = 16  # the longest typed answer to "which item?" looked at (9, 民生3, J12)
MAX_SENT = 10  # files /files sends at once (the newest)
CANCEL = "x"
VOICE_TTL = evidence.WAIT_TTL
# The sender's newest question, and those this message answered (resolved at its time).
_NEWEST_CHOICE = (
    select(PendingChoice.id)
    .where(PendingChoice.contact_id == bindparam("contact_id"))
    .order_by(col(PendingChoice.id).desc())
    .limit(1)
)
_ANSWERED_NOW = select(PendingChoice.id).where(
    PendingChoice.contact_id == bindparam("contact_id"),
    col(PendingChoice.resolved_at) == bindparam("now", type_=UTCDateTime),
)


# --- files ---------------------------------------------------------------------------------


def file_received(ctx: ChatContext) -> None:
    """Keeps a file as evidence of the report its caption makes, of the sender's report of the
    last minutes, or of the item they pick."""
    assert ctx.contact is not None
    attachment = ctx.event.attachment
    if attachment is None or attachment.stored is None:
        raise _refusal(ctx, attachment.refused if attachment is not None else None)
    evidence.drop_expired(ctx.session, ctx.contact, ctx.now, ctx.files)
    caption = ctx.args
    if caption and _by_caption(ctx, attachment, attachment.stored, caption):
        return
    _join_or_ask(ctx, attachment, attachment.stored, note=caption)


def _refusal(ctx: ChatContext, reason: str | None) -> UserError:
    """The one line a refused file gets."""
    families: list[str] = []
    for ext in TYPES:  # in the table's order: PDF, Word, Excel ..., pictures, video
        family = TYPES[ext].family
        if ext in ctx.settings.evidence_types.split(",") and family not in families:
            families.append(family)
    return UserError(
        f"evidence.refused.{reason if reason in ('too_big', 'type') else 'failed'}",
        max=size_text(ctx.settings.evidence_max_bytes),
        types="、".join(ctx.t(f"evidence.family.{f}") for f in families),
    )


def _by_caption(ctx: ChatContext, attachment: Attachment, file: StoredFile, caption: str) -> bool:
    """File by what the caption says (a report, or item numbers alone); False when it says
    neither (then it is the file's note)."""
    read = read_message(caption, english=ctx.t.locale == "en", codes=ctx.codes())
    if read.kind is not MessageKind.report:
        return False
    named = _named_items(ctx, read)
    if isinstance(named, str):  # a lone number that is no item: words about the file
        return False
    if named is not None:
        _file_under_items(ctx, attachment, file, named)
        return True
    run = _run_report(ctx, caption)
    if run.recorded:
        _file_under_reports(ctx, attachment, file, run.recorded, run.start)
        return True
    if run.choice_id is not None:  # the report asked which item: the file waits with it
        evidence.keep(
            ctx.session,
            file,
            attachment,
            contact=_sender(ctx),
            platform=ctx.event.platform,
            now=ctx.now,
            choice_id=run.choice_id,
        )
        _add_line(ctx, run.start, _with_kind(ctx, "evidence.waits", attachment.kind, file.name))
        return True
    return False


def _named_items(ctx: ChatContext, read: ReadMessage) -> list[WorkItem] | str | None:
    """The items a caption only names ("第9项", "9"), "note" for a lone number that is no
    item, None when the caption says more (a report)."""
    parts = read.parts
    if len(parts) == 1 and not parts[0].refs and parts[0].bare_number is not None:
        ref = str(parts[0].bare_number)
        if parts[0].report.note != ref:
            return None
        try:
            return _resolve(ctx, ref)
        except UserError:
            return "note"  # "80" and no item 80: words about the file
    if not all(part.refs for part in parts) or any(_says_something(p.report) for p in parts):
        return None
    items: list[WorkItem] = []
    for part in parts:
        for ref in part.refs:
            items.extend(i for i in _resolve(ctx, ref) if i not in items)
    return items


def _says_something(parsed: ParsedReport) -> bool:
    return bool(
        parsed.percent is not None or parsed.status is not None or parsed.numbers or parsed.note
    )


def _resolve(ctx: ChatContext, ref: str) -> list[WorkItem]:
    """The items a reference may mean for the sender (the report handler's rule)."""
    return ctx.resolve(ref)


def _may_file(ctx: ChatContext, item: WorkItem) -> bool:
    """Whether the sender may file evidence on an item: theirs, or any item for an admin."""
    assert ctx.contact is not None
    return ctx.contact.role == Role.admin or ctx.is_assigned(item)


def _file_under_items(
    ctx: ChatContext, attachment: Attachment, file: StoredFile, items: list[WorkItem]
) -> None:
    """File under each item the caption named (with the sender's recent report on it)."""
    if len(items) > 1 and len({i.number for i in items}) == 1:  # 9 of two plans: ask
        _ask(ctx, attachment, file, items, note="")
        return
    for item in items:
        if not _may_file(ctx, item):
            raise UserError("report.not_yours", item=_ref(ctx, item))
    for item in items:
        joined = evidence.report_to_join(
            ctx.session, _sender(ctx), item, ctx.now - evidence.JOIN_WINDOW
        )
        _keep_on(ctx, attachment, file, item, joined)


def _file_under_reports(
    ctx: ChatContext,
    attachment: Attachment,
    file: StoredFile,
    recorded: list[Report],
    start: int,
) -> None:
    """File under the reports the caption recorded; their confirmation names the file."""
    items = {r.item_id: ctx.session.get(WorkItem, r.item_id) for r in recorded}
    for saved in recorded:
        item = items[saved.item_id]
        assert item is not None
        evidence.keep(
            ctx.session,
            file,
            attachment,
            contact=_sender(ctx),
            platform=ctx.event.platform,
            now=ctx.now,
            item=item,
            report=saved,
        )
    _add_line(ctx, start, ctx.t("evidence.attached", name=file.name, size=size_text(file.size)))


def _join_or_ask(ctx: ChatContext, attachment: Attachment, file: StoredFile, note: str) -> None:
    """A file without a report of its own: goes to the item of the message it replies to,
    joins the sender's report of the last minutes, goes to their only item, or waits for them
    to pick the item."""
    sender = _sender(ctx)
    replied = ctx.event.reply_to_message_id
    linked = (
        intake.linked_item(ctx.session, ctx.event.platform, ctx.event.chat_id, replied)
        if replied
        else None
    )
    if linked is not None and _may_file(ctx, linked):
        since = ctx.now - evidence.JOIN_WINDOW
        joined = evidence.report_to_join(ctx.session, sender, linked, since)
        _keep_on(ctx, attachment, file, linked, joined, note=note)
        return
    recent = evidence.recent_reports(ctx.session, sender, ctx.now)
    if len(recent) == 1:
        item = ctx.session.get(WorkItem, recent[0].item_id)
        assert item is not None
        _keep_on(ctx, attachment, file, item, recent[0], note=note)
        return
    if recent:  # "9 60% 10 50%" a minute ago: which of the two
        found = (ctx.session.get(WorkItem, r.item_id) for r in recent)
        candidates = [i for i in found if i is not None]
    else:
        candidates = reports.assigned_items(ctx.session, ctx.open_plans(), sender)
    if not candidates:
        raise UserError("evidence.no_items", kind=ctx.t(f"evidence.kind.{attachment.kind}"))
    if len(candidates) == 1:
        _keep_on(ctx, attachment, file, candidates[0], None, note=note)
        return
    _ask(ctx, attachment, file, candidates, note=note)


def _keep_on(
    ctx: ChatContext,
    attachment: Attachment,
    file: StoredFile,
    item: WorkItem,
    joined: Report | None,
    *,
    note: str = "",
) -> None:
    """Keep the file on an item (and report) and say so."""
    evidence.keep(
        ctx.session,
        file,
        attachment,
        contact=_sender(ctx),
        platform=ctx.event.platform,
        now=ctx.now,
        item=item,
        report=joined,
        note=note,
    )
    ctx.reply(
        _filed(ctx, attachment.kind, file.name, file.size, item, joined), link_item_id=item.id
    )


def _filed(
    ctx: ChatContext, kind: str, name: str, size: int, item: WorkItem, joined: Report | None
) -> str:
    params = {
        "kind": ctx.t(f"evidence.kind.{kind}"),
        "name": name,
        "size": size_text(size),
        "item": _ref(ctx, item),
        "title": item.title,
    }
    if joined is None:
        return ctx.t("evidence.attached_item", **params)
    return ctx.t("evidence.attached_report", time=_time(ctx, joined.created_at), **params)


def _ask(
    ctx: ChatContext,
    attachment: Attachment,
    file: StoredFile,
    candidates: list[WorkItem],
    *,
    note: str,
) -> None:
    """Keep the file waiting and ask which item it is evidence of (a button per item)."""
    row = evidence.keep(
        ctx.session,
        file,
        attachment,
        contact=_sender(ctx),
        platform=ctx.event.platform,
        now=ctx.now,
        note=note,
    )
    shown = candidates[:MAX_BUTTONS]
    refs = _refs(ctx, shown)
    rows: list[tuple[Button, ...]] = [
        (Button(f"{refs[i.id or 0]}. {_short(i.title)}", f"file:{row.id}:{i.id}"),) for i in shown
    ]
    rows.append((Button(ctx.t("evidence.cancel"), f"file:{row.id}:{CANCEL}"),))
    text = ctx.t(
        "evidence.which_item",
        kind=ctx.t(f"evidence.kind.{attachment.kind}"),
        name=file.name,
        size=size_text(file.size),
    )
    if len(candidates) > len(shown):
        text += "\n" + ctx.t("evidence.which_item_more", shown=len(shown))
    ctx.reply(text, buttons=tuple(rows))


def file_pick(ctx: ChatContext) -> None:
    """Files a waiting file under the item whose button was clicked (or drops it)."""
    sender = _sender(ctx)
    evidence_id, _, picked = ctx.args.partition(":")
    row = evidence.waiting(ctx.session, evidence_id, sender, ctx.now)
    kind = ctx.t(f"evidence.kind.{row.kind}")
    if picked == CANCEL:
        evidence.drop(ctx.session, row, ctx.files)
        ctx.say("evidence.cancelled", kind=kind, name=row.name)
        return
    item_id = int(picked) if picked.isdecimal() and len(picked) <= 18 else None
    item = ctx.session.get(WorkItem, item_id) if item_id is not None else None
    since = row.created_at - evidence.JOIN_WINDOW
    joined = evidence.report_to_join(ctx.session, sender, item, since) if item else None
    if item is None or item.removed_at is not None or not (joined or _may_file(ctx, item)):
        raise UserError("chat.stale_button")
    evidence.place(row, item, joined)
    ctx.reply(_filed(ctx, row.kind, row.name, row.size, item, joined), link_item_id=item.id)


# --- what waited on a "which item?" question --------------------------------------------------


@dataclass(frozen=True)
class _Run:
    """What handing a text to the report handler did."""

    recorded: list[Report]  # the reports it recorded
    choice_id: int | None  # the "which item?" question it asked, if it asked one
    start: int  # where its replies begin in ctx.outgoing


def _run_report(ctx: ChatContext, text: str, *, voice: bool = False) -> _Run:
    """Hand a text to the report handler as if typed; then file what waited on a question
    it answered."""
    sender = _sender(ctx)
    start, before = len(ctx.outgoing), len(ctx.recorded)
    newest = ctx.session.exec(_NEWEST_CHOICE, params={"contact_id": sender.id}).first() or 0
    ctx.args = text
    report.plain_text(ctx)
    recorded = ctx.recorded[before:]
    if voice and recorded:
        _from_voice(ctx, recorded, start)
    _after_answer(ctx, start, force=True)
    asked = ctx.session.exec(
        select(PendingChoice.id).where(
            PendingChoice.contact_id == sender.id,
            col(PendingChoice.id) > newest,
            col(PendingChoice.resolved_at).is_(None),
        )
    ).all()
    return _Run(list(recorded), max((i for i in asked if i is not None), default=None), start)


def continuing(handler: Callable[[ChatContext], None]) -> Callable[[ChatContext], None]:
    """A report handler that may answer a "which item?" question, and then files what waited
    on that question (a file, a voice message)."""

    def run(ctx: ChatContext) -> None:
        start = len(ctx.outgoing)
        handler(ctx)
        _after_answer(ctx, start, force=ctx.event.kind is EventKind.button)

    run.__doc__ = handler.__doc__
    run.__name__ = getattr(handler, "__name__", "continuing")
    return run


def _may_answer(text: str) -> bool:
    """Whether typed text may answer a "which item?" question: a number or a short reference
    (9, 民生3). Other text (a report: "9 60% 主体完工") is not looked at again: no query."""
    typed = text.strip()
    return 0 < len(typed) <= MAX_ANSWER and (
        typed.isdecimal() or _CODED_ANSWER.fullmatch(typed) is not None
    )


def _after_answer(ctx: ChatContext, start: int, *, force: bool = False) -> None:
    """File what waited on the questions this message answered: a file goes under the report
    recorded (or is dropped with a "not a report"); a voice report is marked as such."""
    if ctx.contact is None or not (force or _may_answer(ctx.event.text)):
        return
    found = ctx.session.exec(_ANSWERED_NOW, params={"contact_id": ctx.contact.id, "now": ctx.now})
    ids = [i for i in found if i is not None]
    if not ids:
        return
    voices = ctx.session.exec(
        select(PendingVoice).where(
            PendingVoice.contact_id == ctx.contact.id, col(PendingVoice.choice_id).in_(ids)
        )
    ).all()
    for voice in voices:
        voice.choice_id = None  # answered: what it asked is recorded now
    if voices and ctx.recorded:
        _from_voice(ctx, ctx.recorded, start)
    for row in evidence.waiting_on(ctx.session, ctx.contact, ids):
        kind = ctx.t(f"evidence.kind.{row.kind}")
        if not ctx.recorded:
            evidence.drop(ctx.session, row, ctx.files)
            _add_line(ctx, start, ctx.t("evidence.dropped", kind=kind, name=row.name))
            continue
        first, *others = ctx.recorded
        item = ctx.session.get(WorkItem, first.item_id)
        assert item is not None
        evidence.place(row, item, first)
        for saved in others:  # one message on several items: the file is of each
            fields = row.model_dump(exclude={"id"})
            fields.update(item_id=saved.item_id, report_id=saved.id)
            ctx.session.add(Evidence(**fields))
        line = ctx.t("evidence.attached", name=row.name, size=size_text(row.size))
        _add_line(ctx, start, line)


def _from_voice(ctx: ChatContext, recorded: list[Report], start: int) -> None:
    """Mark reports as recorded from speech recognition, and say so."""
    ids = [r.id for r in recorded]
    ctx.session.execute(update(Report).where(col(Report.id).in_(ids)).values(source="voice"))
    _add_line(ctx, start, ctx.t("evidence.voice.recorded"))


def _add_line(ctx: ChatContext, start: int, line: str) -> None:
    """Add a line to the last plain reply since start (a message with buttons stays as it is:
    on a card channel it becomes a card with little room), or send it as a reply of its own."""
    for index in range(len(ctx.outgoing) - 1, start - 1, -1):
        out = ctx.outgoing[index]
        if out.file is None and out.photo is None and not out.buttons and out.text:
            ctx.outgoing[index] = replace(out, text=f"{out.text}\n{line}")
            return
        break
    ctx.reply(line)


# --- voice ---------------------------------------------------------------------------------


def voice_received(ctx: ChatContext) -> None:
    """Asks the sender to confirm what speech recognition heard before it is read as a report;
    without recognised text, says that voice cannot be read."""
    sender = _sender(ctx)
    text = ctx.args
    if not text:
        ctx.say("evidence.voice.unreadable")
        return
    read = read_message(text, english=ctx.t.locale == "en", codes=ctx.codes())
    if read.kind is not MessageKind.report:  # small talk, a question: nothing to record
        _run_report(ctx, text)
        return
    row = PendingVoice(contact_id=sender.id or 0, text=text, created_at=ctx.now)
    ctx.session.add(row)
    ctx.session.flush()
    ctx.say("evidence.voice.heard", text=text)
    ok = Button(ctx.t("evidence.voice.yes_button"), f"voice:{row.id}:ok")
    no = Button(ctx.t("evidence.voice.no_button"), f"voice:{row.id}:no")
    ctx.reply(ctx.t("evidence.voice.confirm"), buttons=((ok, no),))


def voice_answer(ctx: ChatContext) -> None:
    """Reads a confirmed voice message as if typed (and marks what it records as from voice),
    or drops it."""
    sender = _sender(ctx)
    voice_id, _, answer = ctx.args.partition(":")
    number = int(voice_id) if voice_id.isdecimal() and len(voice_id) <= 18 else None
    row = ctx.session.get(PendingVoice, number) if number is not None else None
    if (
        row is None
        or row.contact_id != sender.id
        or row.resolved_at is not None
        or ctx.now - row.created_at > VOICE_TTL
        or answer not in ("ok", "no")
    ):
        raise UserError("chat.stale_button")
    row.resolved_at = ctx.now
    if answer == "no":
        ctx.say("evidence.voice.cancelled")
        return
    run = _run_report(ctx, row.text, voice=True)
    row.choice_id = run.choice_id  # a "which item?" question: voice once it is answered


# --- /files --------------------------------------------------------------------------------


def files(ctx: ChatContext) -> None:
    """Sends the evidence files of an item (`/files 9`), the newest first."""
    if not ctx.args.strip():
        raise UserError("evidence.files.usage")
    item = ctx.find_item(ctx.args.split()[0])
    shown = evidence.of_item(ctx.session, item.id or 0)
    ref = _ref(ctx, item)
    if not shown:
        ctx.say("evidence.files.none", item=ref, title=item.title)
        return
    sent = shown[:MAX_SENT]
    more = ctx.t("evidence.files.more", shown=len(sent)) if len(shown) > len(sent) else ""
    lines = [
        ctx.t("evidence.files.header", item=ref, title=item.title, count=len(shown), more=more)
    ]
    for n, entry in enumerate(shown, 1):
        row = entry.evidence
        of_report = ""
        if entry.report is not None:
            of_report = ctx.t(
                "evidence.files.of_report", report_time=_time(ctx, entry.report.created_at)
            )
        lines.append(
            ctx.t(
                "evidence.files.line",
                n=n,
                name=row.name,
                kind=ctx.t(f"evidence.kind.{row.kind}"),
                size=size_text(row.size),
                sender=entry.sender,
                time=_time(ctx, row.created_at),
                report=of_report,
            )
        )
    missing: list[str] = []
    attachments: list[Outgoing] = []
    for n, entry in enumerate(sent, 1):
        row = entry.evidence
        path = ctx.files.named_copy(row.sha256, row.name) if ctx.files is not None else None
        if path is None:
            missing.append(row.name)
            continue
        caption = ctx.t(
            "evidence.files.caption",
            item=ref,
            n=n,
            count=len(shown),
            name=row.name,
            sender=entry.sender,
            time=_time(ctx, row.created_at),
        )
        attachments.append(Outgoing(chat_id=ctx.event.chat_id, file=path, text=caption))
    if missing:
        lines.append(ctx.t("evidence.files.missing", names="、".join(missing)))
    ctx.reply("\n".join(lines), link_item_id=item.id)
    ctx.outgoing.extend(attachments)


# --- small things --------------------------------------------------------------------------


def _sender(ctx: ChatContext) -> Contact:
    assert ctx.contact is not None
    return ctx.contact


def _ref(ctx: ChatContext, item: WorkItem) -> str:
    return _refs(ctx, [item])[item.id or 0]


def _refs(ctx: ChatContext, items: list[WorkItem]) -> dict[int, str]:
    """How items are written in chat (民生3 in another plan), by id."""
    return ctx.refs(items)


def _short(title: str, limit: int = 24) -> str:
    return title if len(title) <= limit else title[: limit - 1] + "…"


def _time(ctx: ChatContext, moment: datetime) -> str:
    return moment.astimezone(ctx.settings.tz).strftime("%m-%d %H:%M")


def _with_kind(ctx: ChatContext, key: str, kind: str, name: str) -> str:
    return ctx.t(key, kind=ctx.t(f"evidence.kind.{kind}"), name=name)
