"""`duban import`, `duban items`, `duban plans` and `duban plan close`: plan documents into the
database, their items out, every plan with its code and figures, and a plan closed at year end
(its unfinished items carried over into another plan)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.cli.errors import bad_input_exits
from bot.cli.runtime import Runtime, app, err, out, print_json, runtime

if TYPE_CHECKING:
    from rich.table import Table
    from sqlmodel import Session

    from bot.i18n import Translator
    from bot.importer.model import ParsedPlan
    from bot.models import Plan
    from bot.services.plans import ImportResult

plan_app = typer.Typer(help="Close a plan at year end.", no_args_is_help=True)
app.add_typer(plan_app, name="plan")


@app.command("import")
@bad_input_exits
def import_cmd(
    path: Annotated[
        Path, typer.Argument(help="Plan file: .txt (UTF-8 or GB18030), .docx or .yaml.")
    ],
    code: Annotated[
        str | None,
        typer.Option(
            "--code",
            help="The plan's short code, e.g. 民生 (references write 民生3); "
            "default: from its title.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the parsed plan as JSON.")] = False,
) -> None:
    """Import or re-import a plan document; re-importing keeps assignments and reports."""
    from rich.progress import Progress

    from bot.importer.parse import parse_plan_file
    from bot.services import audit, plans

    if code is not None:
        code = plans.check_code(code)  # before the file and the database: nothing is changed
    rt = runtime()
    with Progress(transient=True, console=err, disable=as_json) as bar:
        reading = bar.add_task(rt.t("cli.import.reading", name=path.name), total=None)
        parsed = parse_plan_file(path)  # before the database: bad files change nothing
        bar.update(reading, total=1, completed=1)
        storing = bar.add_task(rt.t("cli.import.storing"), total=len(parsed.items))
        with rt.session() as session:
            result = plans.import_plan(
                session,
                parsed,
                source_file=path.name,
                actor=audit.CLI_ACTOR,
                progress=lambda: bar.advance(storing),
                code=code,
            )
            session.commit()
    with rt.session() as session:
        result.plan = session.merge(result.plan)
        if as_json:
            print_json({"code": result.plan.code, **plan_json(parsed)})
            return
        t = rt.t
        if result.created:
            line = t(
                "cli.import.created",
                title=parsed.title,
                sections=len(parsed.sections),
                items=len(parsed.items),
                targets=sum(len(i.targets) for i in parsed.items),
            )
        elif not result.changed:
            line = t("cli.import.unchanged", title=parsed.title, items=len(parsed.items))
        else:
            line = t("cli.import.changed", title=parsed.title, summary=import_summary(result, t))
        out.print(t("cli_plans.import_code", line=line, code=result.plan.code))
        out.print(items_table(rt, session, result.plan))


@app.command("items")
@bad_input_exits
def items_cmd(
    plan_code: Annotated[
        str | None,
        typer.Option("--plan", help="The plan's code, e.g. 民生 or J (default: the default plan)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List a plan's work items with assignees, deadline and progress."""
    from bot.models import PlanKind
    from bot.services import plans
    from bot.services.items import item_json

    rt = runtime()
    with rt.session() as session:
        plan = plans.plan_by_code(session, plan_code) if plan_code else plans.current_plan(session)
        if not as_json:
            out.print(items_table(rt, session, plan))
            return
        givers = assigners(session, plan)
        rows = []
        for view in rt.views(session, plan):
            row = {**item_json(view), "ref": f"{plan.code}{view.item.number}"}
            if plan.kind == PlanKind.tasks:
                row["assigned_by"] = givers.get(view.item.assigned_by_id or 0)
                row["note"] = view.item.note
            rows.append(row)
        print_json({"plan": plan.title, "code": plan.code, "kind": plan.kind.value, "items": rows})


@app.command("plans")
@bad_input_exits
def plans_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List every plan, closed ones too: its code, kind, state and how many items are done."""
    from bot.services import plans

    rt = runtime()
    with rt.session() as session:
        default = default_plan_id(session)
        rows = [plan_figures(rt, session, p, default=default) for p in plans.all_plans(session)]
    if as_json:
        print_json({"plans": rows})
        return
    t = rt.t
    if not rows:
        out.print(t("cli_plans.no_plans"))
        return
    from rich.table import Table

    table = Table()
    for key in ("code", "title", "kind", "state", "items", "done", "open"):
        wide = key == "title"
        table.add_column(t(f"cli_plans.col.{key}"), overflow="fold", min_width=10 if wide else None)
    for row in rows:
        state = t(f"plan.state_{row['state']}")
        if row["closed_on"]:
            state = t("cli_plans.state_closed_on", state=state, date=row["closed_on"])
        code = row["code"] + (t("cli_plans.default_mark") if row["default"] else "")
        table.add_row(
            code,
            row["title"],
            t(f"cli_plans.kind.{row['kind']}"),
            state,
            str(row["items"]),
            str(row["done"]),
            str(row["open"]),
        )
    out.print(table)


def plan_figures(
    rt: Runtime, session: Session, plan: Plan, *, default: int | None
) -> dict[str, Any]:
    """A plan as `duban plans --json` prints it: code, title, kind, state, its live items and
    how many of them are done (as reports.item_done has it) or open."""
    from bot.services import plans, reports

    items = plans.live_items(session, plan)
    done = sum(1 for item in items if reports.item_done(session, item))
    closed = plan.closed_at
    return {
        "code": plan.code,
        "title": plan.title,
        "kind": plan.kind.value,
        "state": "open" if closed is None else "closed",
        "closed_on": closed.astimezone(rt.settings.tz).date().isoformat() if closed else None,
        "default": plan.id == default,
        "items": len(items),
        "done": done,
        "open": len(items) - done,
    }


@plan_app.command("close")
@bad_input_exits
def plan_close(
    code: Annotated[str, typer.Argument(help="The code of the plan to close, e.g. 要点.")],
    carry_to: Annotated[
        str | None,
        typer.Option(
            "--carry-over-to",
            help="Copy its unfinished items, with their assignments, into this open plan.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Close a plan at year end: read-only from then on, no more reminders, history kept.

    Its unfinished items (not reported done) can be carried over into another open plan."""
    from bot.models import utcnow
    from bot.services import audit, plans, reports

    rt = runtime()
    with rt.session() as session:
        plan = plans.plan_by_code(session, code)
        target = plans.plan_by_code(session, carry_to) if carry_to else None
        items = plans.live_items(session, plan)
        unfinished = [item for item in items if not reports.item_done(session, item)]
        result = plans.close_plan(
            session,
            plan,
            now=utcnow(),
            actor=audit.CLI_ACTOR,
            unfinished=unfinished,
            carry_to=target,
        )
        assert plan.closed_at is not None
        data: dict[str, Any] = {
            "code": plan.code,
            "title": plan.title,
            "closed_at": plan.closed_at.astimezone(rt.settings.tz).isoformat(),
            "items": len(items),
            "done": len(items) - len(unfinished),
            "unfinished": [item.number for item in unfinished],
            "carried_to": target.code if target else None,
            "carried": [
                {
                    "from": old.number,
                    "to": new.number,
                    "ref": f"{target.code}{new.number}" if target else str(new.number),
                    "title": new.title,
                }
                for old, new in result.carried
            ],
        }
        target_title = target.title if target else ""
    if as_json:
        print_json(data)
        return
    t = rt.t
    out.print(
        t(
            "cli_plans.closed",
            code=data["code"],
            title=data["title"],
            items=data["items"],
            done=data["done"],
            open=len(unfinished),
        ),
        markup=False,
    )
    if data["carried"]:
        refs = t("cli.import.summary.number_sep").join(c["ref"] for c in data["carried"])
        out.print(
            t(
                "cli_plans.carried",
                count=len(data["carried"]),
                code=data["carried_to"],
                title=target_title,
                refs=refs,
            ),
            markup=False,
        )
        from rich.table import Table

        table = Table()
        for key in ("old", "title", "new"):
            table.add_column(t(f"cli_plans.col.carried_{key}"), overflow="fold")
        for c in data["carried"]:
            table.add_row(str(c["from"]), c["title"], c["ref"])
        out.print(table)
    elif unfinished:
        out.print(t("cli_plans.not_carried", count=len(unfinished), code=data["code"]))


def items_table(rt: Runtime, session: Session, plan: Plan) -> Table:
    """The plan's items as a table: number, title, lead unit, deadline, assignees, progress;
    a plan other than the default numbers them with its code (民生3), and the tasks show who
    handed each down (交办人) and the note instead of the lead unit."""
    from rich.table import Table

    from bot.models import PlanKind

    t = rt.t
    tasks = plan.kind == PlanKind.tasks
    default = default_plan_id(session) == plan.id
    givers = assigners(session, plan) if tasks else {}
    table = Table(title=plan.title, show_lines=False)
    columns = [t(f"cli.items.col.{key}") for key in ("no", "title")]
    if tasks:
        columns.append(t("cli_plans.col.assigned_by"))
    else:
        columns.append(t("cli.items.col.lead"))
    columns += [t(f"cli.items.col.{key}") for key in ("deadline", "assignees", "progress")]
    if tasks:
        columns.append(t("cli_plans.col.note"))
    for header in columns:
        table.add_column(header, overflow="fold")
    for view in rt.views(session, plan):
        item = view.item
        progress = "" if view.percent is None else f"{view.percent}%"
        row = [str(item.number) if default else f"{plan.code}{item.number}", item.title]
        if tasks:
            row.append(givers.get(item.assigned_by_id or 0) or t("task.by_office"))
        else:
            row.append("、".join(item.lead_units))
        row += [
            view.deadline.isoformat() if view.deadline else "",
            "、".join(c.name for c, _ in view.people),
            progress,
        ]
        if tasks:
            row.append(item.note)
        table.add_row(*row)
    return table


def default_plan_id(session: Session) -> int | None:
    """The id of the default plan (whose items are written without a code), None when none."""
    from bot.i18n import UserError
    from bot.services import plans

    try:
        return plans.current_plan(session).id
    except UserError:
        return None


def assigners(session: Session, plan: Plan) -> dict[int, str]:
    """The names of the people who handed the plan's items down (交办人), by contact id."""
    from sqlmodel import col, select

    from bot.models import Contact, WorkItem

    given = select(WorkItem.assigned_by_id).where(
        WorkItem.plan_id == plan.id, col(WorkItem.assigned_by_id).is_not(None)
    )
    rows = session.exec(select(Contact.id, Contact.name).where(col(Contact.id).in_(given)))
    return {contact_id or 0: name for contact_id, name in rows}


def plan_json(parsed: ParsedPlan) -> dict[str, Any]:
    """A parsed plan in the shape `duban import --json` prints."""
    from bot.services.items import target_json

    return {
        "plan": {
            "title": parsed.title,
            "doc_number": parsed.doc_number,
            "issuer": parsed.issuer,
            "issued_on": parsed.issued_on.isoformat() if parsed.issued_on else None,
            "contact_name": parsed.contact_name,
            "contact_phone": parsed.contact_phone,
        },
        "sections": [
            {"number": s.number, "label": s.label, "title": s.title} for s in parsed.sections
        ],
        "items": [
            {
                "number": i.number,
                "label": i.label,
                "section": i.section,
                "subsection": i.subsection,
                "title": i.title,
                "body": i.body,
                "lead_units": i.lead_units,
                "support_units": i.support_units,
                "deadline": i.deadline.isoformat() if i.deadline else None,
                "targets": [target_json(t) for t in i.targets],
            }
            for i in parsed.items
        ],
    }


def import_summary(result: ImportResult, t: Translator) -> str:
    """What a re-import changed, as a sentence: `新增 0 项，修改 1 项（第 9 项），未变 25 项`."""

    def part(key: str, numbers: list[int]) -> str:
        which = ""
        if numbers:
            listed = t("cli.import.summary.number_sep").join(str(n) for n in numbers)
            one = "_one" if len(numbers) == 1 else ""
            which = t(f"cli.import.summary.numbers{one}", numbers=listed)
        return t(f"cli.import.summary.{key}", count=len(numbers), numbers=which)

    parts = [part("added_one" if len(result.added) == 1 else "added", result.added)]
    parts.append(part("changed", result.updated))
    if result.removed:
        parts.append(part("removed", result.removed))
    parts.append(t("cli.import.summary.unchanged", count=result.unchanged))
    if result.sections_changed:
        parts.append(t("cli.import.summary.sections", count=result.sections_changed))
    return t("cli.import.summary.sep").join(parts)
