"""`duban assign`: items to contacts, one at a time, from a CSV file, or by lead unit."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from bot.cli.errors import bad_input_exits
from bot.cli.runtime import Runtime, app, out, print_json, runtime


@app.command("assign")
@bad_input_exits
def assign_cmd(
    item: Annotated[str | None, typer.Argument(help="Item number (9) or label (三.2).")] = None,
    contact: Annotated[str | None, typer.Argument(help="The contact's name.")] = None,
    deadline: Annotated[
        str | None, typer.Option("--deadline", help="A date: 2023-12-31, 12月31日, 6月底, 年底.")
    ] = None,
    support: Annotated[bool, typer.Option("--support", help="Support (配合), not lead.")] = False,
    csv_file: Annotated[
        Path | None, typer.Option("--csv", help="Columns: item,contact,unit,role,deadline.")
    ] = None,
    unit: Annotated[
        str | None, typer.Option("--unit", help="Assign every item this unit leads.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Assign items to contacts: one item, a whole CSV file, or every item a unit leads."""
    from bot.i18n import UserError
    from bot.models import AssignmentRole
    from bot.services import assignments, audit, contacts, plans

    rt = runtime()
    t = rt.t
    due = _deadline(rt, deadline) if deadline else None
    if csv_file is not None:
        if item or contact or unit:
            raise UserError("cli.assign.csv_alone")
        text = read_csv(csv_file)
        with rt.session() as session:
            plan = plans.current_plan(session)
            rows = assignments.read_assignment_csv(session, plan, text)
            assigned, created = assignments.apply_assignment_csv(
                session, rows, actor=audit.CLI_ACTOR
            )
        if as_json:
            print_json({"assigned": assigned, "contacts_created": created})
        else:
            out.print(t("cli.assign.csv_done", assigned=assigned, created=created))
        return
    if unit is not None:
        # `duban assign --unit UNIT CONTACT`: the one positional argument is the contact.
        name = contact or item
        if not name or (item and contact):
            raise UserError("cli.assign.unit_usage")
        with rt.session() as session:
            plan = plans.current_plan(session)
            person = contacts.find_contact(session, name)
            done = assignments.assign_unit(
                session, plan=plan, unit=unit, contact=person, deadline=due, actor=audit.CLI_ACTOR
            )
        numbers = [i.number for i in done]
        if as_json:
            print_json({"contact": name, "items": numbers})
        else:
            out.print(t("cli.assign.unit_done", name=name, unit=unit, items=_numbers(numbers)))
        return
    if not item or not contact:
        raise UserError("cli.assign.usage")
    with rt.session() as session:
        plan = plans.current_plan(session)
        work_item = plans.find_item(session, plan, item)
        person = contacts.find_contact(session, contact)
        role = AssignmentRole.support if support else AssignmentRole.lead
        assignment, created = assignments.assign(
            session, item=work_item, contact=person, role=role, deadline=due, actor=audit.CLI_ACTOR
        )
        if as_json:
            print_json(
                {
                    "item": work_item.number,
                    "contact": person.name,
                    "role": role.value,
                    "deadline": assignment.deadline.isoformat() if assignment.deadline else None,
                    "created": created,
                }
            )
        else:
            out.print(
                t(
                    "cli.assign.done",
                    item=work_item.number,
                    title=work_item.title,
                    name=person.name,
                    role=t(f"assignment_role.{role.value}"),
                    deadline=assignment.deadline.isoformat() if assignment.deadline else "-",
                )
            )


def _deadline(rt: Runtime, text: str) -> date:
    from bot.services import plans
    from bot.services.items import typed_deadline

    with rt.session() as session:
        return typed_deadline(plans.current_plan(session), text)


def _numbers(numbers: list[int]) -> str:
    return ", ".join(str(n) for n in numbers) if numbers else "-"


def read_csv(path: Path) -> str:
    """The text of a CSV file in UTF-8 (with or without BOM) or GB18030, as Excel saves it."""
    from bot.i18n import UserError

    try:
        raw = path.read_bytes()
    except OSError:
        raise UserError("csv.unreadable", path=str(path)) from None
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise UserError("csv.undecodable", path=str(path))
