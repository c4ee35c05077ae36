"""`duban sections list | leader`: the plan's sections and the leader in charge of each, to
whom its items' escalations go."""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli.errors import bad_input_exits
from bot.cli.runtime import app, out, print_json, runtime

sections_app = typer.Typer(help="Sections of the plan and their leaders.", no_args_is_help=True)
app.add_typer(sections_app, name="sections")


@sections_app.command("list")
@bad_input_exits
def sections_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List the plan's sections and the leader in charge of each (分管领导)."""
    from rich.table import Table

    from bot.services import contacts, plans

    rt = runtime()
    with rt.session() as session:
        plan = plans.current_plan(session)
        people = {c.id: c.name for c, _ in contacts.list_contacts(session)}
        rows = [
            {
                "number": s.number,
                "label": s.label,
                "title": s.title,
                "leader": people.get(s.leader_id) if s.leader_id else None,
            }
            for s in sorted(plans.sections_of(session, plan), key=lambda s: s.number)
        ]
    if as_json:
        print_json({"sections": rows})
        return
    table = Table()
    for key in ("number", "title", "leader"):
        table.add_column(rt.t(f"cli.sections.col.{key}"), overflow="fold")
    for row in rows:
        table.add_row(str(row["label"]), str(row["title"]), str(row["leader"] or "-"))
    out.print(table)


@sections_app.command("leader")
@bad_input_exits
def sections_leader(
    section: Annotated[str, typer.Argument(help="Section number (3) or label (三).")],
    name: Annotated[str, typer.Argument(help="The leader in charge (a contact with role leader).")],
) -> None:
    """Set the leader in charge of a section: escalations of its items go to them."""
    from bot.services import audit, contacts, plans
    from scheduler import reminders

    rt = runtime()
    with rt.session() as session:
        plan = plans.current_plan(session)
        found = reminders.find_section(session, plan, section)
        leader = contacts.find_contact(session, name)
        reminders.set_section_leader(session, found, leader, actor=audit.CLI_ACTOR)
        label, title = found.label, found.title
    out.print(rt.t("cli.sections.leader", label=label, title=title, name=name))
