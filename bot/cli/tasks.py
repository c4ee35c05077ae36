"""`duban task add | list | reopen`: 交办 tasks handed down from the command line.

A task is an item of the one tasks plan (code J, made on first use): its owners are told in
chat as when a leader hands it down there, and it is reminded, nagged and reported like any
plan item (bot/services/tasks.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.cli.errors import bad_input_exits
from bot.cli.runtime import app, out, print_json, runtime

if TYPE_CHECKING:
    from datetime import date

    from sqlmodel import Session

    from bot.models import Plan, WorkItem

task_app = typer.Typer(
    help="交办 tasks: hand one down, list them, reopen one.", no_args_is_help=True
)
app.add_typer(task_app, name="task")


@task_app.command("add")
@bad_input_exits
def task_add(
    title: Annotated[str, typer.Argument(help="What is to be done, e.g. 做好暑期校园安全检查.")],
    to: Annotated[
        list[str],
        typer.Option("--to", help="An owner (a contact's name); repeat it, the first leads."),
    ],
    deadline: Annotated[
        str, typer.Option("--deadline", help="A date: 2023-06-30, 6月30日前, 6月底, 年底.")
    ],
    by: Annotated[
        str | None, typer.Option("--from", help="Who hands it down (交办人), a contact's name.")
    ] = None,
    note: Annotated[str, typer.Option("--note", help="What is asked for (要求).")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Hand down a task (交办): its owners are told in chat; the first --to leads."""
    from bot.dates import parse_typed_date
    from bot.events import clean_text
    from bot.i18n import UserError
    from bot.models import Plan, utcnow
    from bot.services import audit, contacts
    from bot.services.tasks import TaskSpec, create_task, ref_of

    title = " ".join(clean_text(title).split())
    note = " ".join(clean_text(note).split())
    if not title:
        raise UserError("cli_plans.task_no_title")
    rt = runtime()
    now = utcnow()
    # A deadline with no year is in this year (the plan's time zone); read before the database.
    due = parse_typed_date(deadline, year=now.astimezone(rt.settings.tz).year)
    spec = TaskSpec(title=title, owners=tuple(name.strip() for name in to), deadline=due, note=note)
    with rt.session() as session:
        leader = contacts.find_contact(session, by) if by else None
        item, owners = create_task(session, spec, by=leader, now=now, actor=audit.CLI_ACTOR, t=rt.t)
        plan = session.get(Plan, item.plan_id)
        assert plan is not None
        data: dict[str, Any] = {
            "ref": ref_of(plan, item),
            "number": item.number,
            "title": item.title,
            "owners": [
                {"name": p.name, "role": "lead" if n == 0 else "support"}
                for n, p in enumerate(owners)
            ],
            "deadline": due.isoformat(),
            "assigned_by": leader.name if leader else None,
            "note": item.note,
        }
    if as_json:
        print_json(data)
        return
    out.print(
        rt.t(
            "task.cli_created",
            ref=data["ref"],
            title=data["title"],
            owners="、".join(o["name"] for o in data["owners"]),
            deadline=data["deadline"],
        ),
        markup=False,  # a title is what a person typed: [紧急] is text, not a style
    )


@task_app.command("list")
@bad_input_exits
def task_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List the tasks: reference, title, owners, deadline and state (办理中/已办结/逾期)."""
    from bot.models import utcnow
    from bot.services import plans

    rt = runtime()
    today = utcnow().astimezone(rt.settings.tz).date()
    with rt.session() as session:
        plan = plans.tasks_plan(session)
        rows = tasks_json(session, plan, today) if plan is not None else []
        title = plan.title if plan is not None else rt.t("plan.tasks_title")
    if as_json:
        print_json({"tasks": rows})
        return
    t = rt.t
    if not rows:
        out.print(t("cli_plans.no_tasks"))
        return
    from rich.table import Table

    table = Table(title=title)
    for key in ("ref", "task", "owners", "deadline", "assigned_by", "task_state"):
        table.add_column(t(f"cli_plans.col.{key}"), overflow="fold")
    for row in rows:
        table.add_row(
            row["ref"],
            row["title"],
            "、".join(row["owners"]),
            row["deadline"] or t("deadline.not_set"),
            row["assigned_by"] or t("task.by_office"),
            t(f"cli_plans.task_state.{row['state']}"),
        )
    out.print(table)


@task_app.command("reopen")
@bad_input_exits
def task_reopen(
    ref: Annotated[str, typer.Argument(help="The task, e.g. J3.")],
    reason: Annotated[str, typer.Option("--reason", help="Why it is to be done again.")],
    as_name: Annotated[
        str, typer.Option("--as", help="Who reopens it: the 交办人, or an admin (a contact).")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Reopen a task reported done (办结): its owners are told why, and carry on."""
    from bot.events import clean_text
    from bot.models import Role, utcnow
    from bot.services import audit, contacts
    from bot.services.tasks import reopen

    reason = " ".join(clean_text(reason).split())
    rt = runtime()
    with rt.session() as session:
        plan, item = find_task(session, ref)
        person = contacts.find_contact(session, as_name)
        owners = reopen(
            session,
            item,
            by=person,
            reason=reason,
            now=utcnow(),
            actor=audit.CLI_ACTOR,
            admin=person.role == Role.admin,
        )
        data = {
            "ref": f"{plan.code}{item.number}",
            "title": item.title,
            "reason": reason,
            "by": person.name,
            "owners": [o.name for o in owners],
        }
    if as_json:
        print_json(data)
        return
    said = rt.t("task.reopened", ref=data["ref"], title=data["title"], reason=reason)
    out.print(said, markup=False)


def find_task(session: Session, ref: str) -> tuple[Plan, WorkItem]:
    """The tasks plan and the task a reference names (J3, or its number 3)."""
    from bot.i18n import UserError
    from bot.services import plans

    plan = plans.tasks_plan(session)
    if plan is None:
        raise UserError("cli_plans.no_tasks")
    text = ref.strip()
    found = plans.split_ref(text, (plan.code,))
    number = str(found[1]) if found else text
    if not number.isdecimal():
        raise UserError("cli_plans.task_bad_ref", ref=text[:20], code=plan.code)
    try:
        return plan, plans.find_item(session, plan, number)
    except UserError:
        raise UserError("cli_plans.task_bad_ref", ref=text[:20], code=plan.code) from None


def task_state(session: Session, item: WorkItem, deadline: date | None, today: date) -> str:
    """done (办结 reported), overdue (past its deadline and not done) or open."""
    from bot.services import reports

    if reports.item_done(session, item):
        return "done"
    if deadline is not None and deadline < today:
        return "overdue"
    return "open"


def tasks_json(session: Session, plan: Plan, today: date) -> list[dict[str, Any]]:
    """The tasks as `duban task list --json` prints them, in the order they were handed down."""
    from bot.cli.plans import assigners
    from bot.services.items import owners as owners_of
    from bot.services.plans import live_items

    people = owners_of(session, plan)
    givers = assigners(session, plan)
    rows = []
    for item in live_items(session, plan):
        duties = people.get(item.id or 0, [])
        deadline = item.deadline  # a task's own (its owners' assignments have none)
        rows.append(
            {
                "ref": f"{plan.code}{item.number}",
                "number": item.number,
                "title": item.title,
                "owners": [o.name for o, _ in duties],
                "lead": next((o.name for o, d in duties if d.role.value == "lead"), None),
                "deadline": deadline.isoformat() if deadline else None,
                "assigned_by": givers.get(item.assigned_by_id or 0),
                "note": item.note,
                "state": task_state(session, item, deadline, today),
            }
        )
    return rows
