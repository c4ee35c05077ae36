"""`duban reminders preview` and `duban remind now`: what the planner will send, and an ask
for progress at once."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from bot.cli.errors import bad_input_exits
from bot.cli.runtime import app, err, out, print_json, runtime

reminders_app = typer.Typer(help="Scheduled reminders.", no_args_is_help=True)
remind_app = typer.Typer(help="Ask for progress now.", no_args_is_help=True)
app.add_typer(reminders_app, name="reminders")
app.add_typer(remind_app, name="remind")


@reminders_app.command("preview")
@bad_input_exits
def reminders_preview(
    start: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option("--to", help="Last day, YYYY-MM-DD.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List what would be sent, when and to whom, using the planner, without sending."""
    from rich.progress import Progress
    from rich.table import Table

    from bot.models import utcnow
    from bot.services import accounts, assignments, contacts, plans
    from scheduler import reminders
    from scheduler.runner import work_calendar

    first, last = assignments.parse_date(start), assignments.parse_date(end)
    rt = runtime()
    with rt.session() as session:
        plan = plans.current_plan(session)
        planned = reminders.preview(
            session,
            plan,
            start=first,
            end=last,
            now=utcnow(),
            settings=rt.settings,
            calendar=work_calendar(rt.settings),
        )
        people = {c.id: c for c, _ in contacts.list_contacts(session) if c.id is not None}
        rows = reminders.preview_json(planned, people, accounts.accounts_of(session, people))
    if as_json:
        print_json(rows)
        return
    t = rt.t
    table = Table(title=t("cli.reminders.title", count=len(rows)))
    for key in ("at", "kind", "contact", "item", "channel"):
        table.add_column(t(f"cli.reminders.col.{key}"))
    with Progress(transient=True, console=err) as progress:
        for row in progress.track(rows, description=t("cli.reminders.progress")):
            at = datetime.fromisoformat(row["at"]).astimezone(rt.settings.tz)
            table.add_row(
                at.strftime("%Y-%m-%d %a %H:%M"),
                t(f"kind.{row['kind']}"),
                row["contact"] or "-",
                str(row["item"] or ""),
                row["channel"],
            )
    out.print(table)


@remind_app.command("now")
@bad_input_exits
def remind_now(
    item: Annotated[str | None, typer.Argument(help="Only this item's owners.")] = None,
) -> None:
    """Plan a progress ask at once (sent by the running bot, in working hours)."""
    from bot.models import utcnow
    from bot.services import audit, plans
    from scheduler import reminders

    rt = runtime()
    with rt.session() as session:
        plan = plans.current_plan(session)
        work_item = plans.find_item(session, plan, item) if item else None
        count = reminders.ask_now(
            session, plan, now=utcnow(), settings=rt.settings, item=work_item, actor=audit.CLI_ACTOR
        )
    out.print(rt.t("remind.queued", count=count) if count else rt.t("remind.none"))
