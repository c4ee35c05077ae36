"""Every chat handler, registered in one place, in order."""

from __future__ import annotations

from bot.channels import registry
from bot.events import EventKind
from bot.router import ADMINS, LEADERS, Router
from handlers import (
    admin,
    board,
    bulletin,
    digest,
    evidence,
    my_items,
    remind,
    report,
    start,
    status,
    tasks,
)


def build_router() -> Router:
    """The router with every command, button and the plain-text handler."""
    router = Router()
    router.command("start", start.start, unbound=True, menu=False)
    router.command("help", start.help_)
    router.command("my", my_items.my_items)
    router.command("report", report.report_command)
    router.command("undo", report.undo)
    router.command("status", status.status)
    router.command("overdue", status.overdue, roles=LEADERS)
    router.command("digest", digest.digest, roles=LEADERS)
    router.command("export", digest.export, roles=LEADERS)
    router.command("bulletin", bulletin.bulletin, roles=LEADERS)
    router.command("files", evidence.files, roles=LEADERS)
    router.command("board", board.board, roles=LEADERS)
    router.command("task", tasks.task, roles=LEADERS)
    router.command("reopen", tasks.reopen, roles=LEADERS)
    router.command("assign", admin.assign, roles=ADMINS)
    router.command("unassign", admin.unassign, roles=ADMINS)
    router.command("deadline", admin.deadline, roles=ADMINS)
    router.command("invite", admin.invite, roles=ADMINS)
    router.command("contacts", admin.contacts_list, roles=ADMINS)
    for spec in registry.specs().values():  # where admins bind accounts by id
        if spec.admin_binds:
            router.command(spec.name, admin.account_binder(spec.name), roles=ADMINS)
    router.command("remind", remind.remind, roles=ADMINS)
    # An answer to "which item?" may also file what waited on the question (a file, a voice).
    router.button("pick", evidence.continuing(report.pick_item))
    router.button("page", report.next_page)
    router.button("bare", evidence.continuing(report.bare_number))
    router.button("file", evidence.file_pick)
    router.button("voice", evidence.voice_answer)
    router.enter(start.enter)
    router.kind(EventKind.file, evidence.file_received)
    router.kind(EventKind.voice, evidence.voice_received)
    router.text(evidence.continuing(report.plain_text))
    return router
