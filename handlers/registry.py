"""Every chat handler, registered in one place, in order."""

from __future__ import annotations

from bot.router import ADMINS, LEADERS, Router
from handlers import admin, digest, my_items, remind, report, start, status


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
    router.command("assign", admin.assign, roles=ADMINS)
    router.command("unassign", admin.unassign, roles=ADMINS)
    router.command("deadline", admin.deadline, roles=ADMINS)
    router.command("invite", admin.invite, roles=ADMINS)
    router.command("contacts", admin.contacts_list, roles=ADMINS)
    router.command("wecom", admin.bind_wecom, roles=ADMINS)
    router.command("remind", remind.remind, roles=ADMINS)
    router.button("pick", report.pick_item)
    router.button("page", report.next_page)
    router.button("bare", report.bare_number)
    router.enter(start.enter)
    router.text(report.plain_text)
    return router
