"""The `duban` command line: import plans, manage contacts and assignments, run the bot."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property, wraps
from pathlib import Path
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot import db
from bot.i18n import Translator, UserError
from bot.importer.model import ParsedPlan, PlanFormatError
from bot.models import AssignmentRole
from bot.services import assignments as assign_svc
from bot.services import audit, contacts, plans
from bot.services.items import item_json, item_views, target_json
from bot.settings import Settings, load_settings

EXIT_BAD_INPUT = 2

app = typer.Typer(
    help="Duban (督办): carry an annual work plan through the year in chat.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
contacts_app = typer.Typer(help="Register contacts and issue invite codes.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(contacts_app, name="contacts")
app.add_typer(db_app, name="db")

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class Runtime:
    """What a CLI command works with: settings, translator, the database."""

    settings: Settings

    @cached_property
    def t(self) -> Translator:
        """The translator for LOCALE."""
        return Translator(self.settings.locale)

    @cached_property
    def engine(self) -> Engine:
        """The database engine, migrated to the newest schema."""
        engine = db.make_engine(self.settings.database_url)
        db.upgrade(engine)
        return engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success; the connections are closed afterwards."""
        try:
            with db.session_scope(self.engine) as session:
                yield session
        finally:
            self.engine.dispose()


out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _runtime() -> Runtime:
    return Runtime(load_settings())


def _fail(message: str) -> NoReturn:
    err.print(message, markup=False, highlight=False)
    raise typer.Exit(EXIT_BAD_INPUT)


def settings_problem(exc: ValidationError) -> str:
    """One line naming each bad setting and what is wrong with it (never its value)."""
    problems = "; ".join(
        f"{'.'.join(str(p) for p in error['loc']).upper()}: {error['msg']}"
        for error in exc.errors()
    )
    return f"settings: {problems}"


def bad_input_exits(func: Callable[P, R]) -> Callable[P, R]:
    """Turn bad input (UserError, an unreadable plan, bad settings) into a message and exit 2."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ValidationError as exc:
            _fail(settings_problem(exc))
        except (UserError, PlanFormatError) as exc:
            _fail(exc.render(Translator(load_settings().locale)))
        except db.DatabaseURLError as exc:
            _fail(str(exc))

    return wrapper


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def plan_json(parsed: ParsedPlan) -> dict[str, Any]:
    """A parsed plan in the shape `duban import --json` prints."""
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


def _items_table(rt: Runtime, session: Session, plan: Any) -> Table:
    t = rt.t
    table = Table(title=plan.title, show_lines=False)
    for key in ("no", "title", "lead", "deadline", "assignees", "progress"):
        table.add_column(t(f"cli.items.col.{key}"), overflow="fold")
    for view in item_views(session, plan):
        item = view.item
        progress = "" if view.percent is None else f"{view.percent}%"
        table.add_row(
            str(item.number),
            item.title,
            "、".join(item.lead_units),
            view.deadline.isoformat() if view.deadline else "",
            "、".join(c.name for c, _ in view.people),
            progress,
        )
    return table


@app.command("import")
@bad_input_exits
def import_cmd(
    path: Annotated[
        Path, typer.Argument(help="Plan file: .txt (UTF-8 or GB18030), .docx or .yaml.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the parsed plan as JSON.")] = False,
) -> None:
    """Import or re-import a plan document; re-importing keeps assignments and reports."""
    from bot.importer.parse import parse_plan_file  # python-docx is heavy: only when needed

    parsed = parse_plan_file(path)  # before touching the database: bad files change nothing
    rt = _runtime()
    with rt.session() as session:
        result = plans.import_plan(session, parsed, source_file=path.name, actor=audit.CLI_ACTOR)
        if as_json:
            _print_json(plan_json(parsed))
            return
        t = rt.t
        if result.created:
            out.print(
                t(
                    "cli.import.created",
                    title=parsed.title,
                    sections=len(parsed.sections),
                    items=len(parsed.items),
                    targets=sum(len(i.targets) for i in parsed.items),
                )
            )
        elif not result.changed:
            out.print(t("cli.import.unchanged", title=parsed.title, items=len(parsed.items)))
        else:
            out.print(
                t(
                    "cli.import.changed",
                    title=parsed.title,
                    added=_numbers(result.added),
                    updated=_numbers(result.updated),
                    removed=_numbers(result.removed),
                    unchanged=result.unchanged,
                )
            )
        out.print(_items_table(rt, session, result.plan))


def _numbers(numbers: list[int]) -> str:
    return ", ".join(str(n) for n in numbers) if numbers else "-"


@app.command("items")
@bad_input_exits
def items_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List the current plan's work items with assignees, deadline and progress."""
    rt = _runtime()
    with rt.session() as session:
        plan = plans.current_plan(session)
        if as_json:
            _print_json(
                {"plan": plan.title, "items": [item_json(v) for v in item_views(session, plan)]}
            )
        else:
            out.print(_items_table(rt, session, plan))


@contacts_app.command("add")
@bad_input_exits
def contacts_add(
    name: Annotated[str, typer.Argument(help="The person's name, unique.")],
    unit: Annotated[str, typer.Option("--unit", help="Their unit, e.g. 基础教育科.")] = "",
    role: Annotated[str, typer.Option("--role", help="official, leader or admin.")] = "official",
    telegram: Annotated[int | None, typer.Option("--telegram", help="Telegram user id.")] = None,
    wecom: Annotated[str | None, typer.Option("--wecom", help="WeCom userid.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Register a contact."""
    parsed_role = contacts.parse_role(role)
    rt = _runtime()
    with rt.session() as session:
        contact = contacts.add_contact(
            session,
            name=name,
            unit=unit,
            role=parsed_role,
            telegram_id=telegram,
            wecom_userid=wecom,
            actor=audit.CLI_ACTOR,
        )
        if as_json:
            _print_json(_contact_json(contact, 0))
        else:
            out.print(
                rt.t(
                    "cli.contacts.added",
                    name=contact.name,
                    unit=contact.unit or "-",
                    role=rt.t(f"role.{contact.role.value}"),
                )
            )


def _contact_json(contact: Any, items: int) -> dict[str, Any]:
    return {
        "name": contact.name,
        "unit": contact.unit,
        "role": contact.role.value,
        "telegram_id": contact.telegram_id,
        "wecom_userid": contact.wecom_userid,
        "items": items,
    }


@contacts_app.command("list")
@bad_input_exits
def contacts_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List every contact with their unit, role, bound accounts and number of items."""
    rt = _runtime()
    with rt.session() as session:
        rows = contacts.list_contacts(session)
        if as_json:
            _print_json({"contacts": [_contact_json(c, n) for c, n in rows]})
            return
        t = rt.t
        table = Table()
        for key in ("name", "unit", "role", "telegram", "wecom", "items"):
            table.add_column(t(f"cli.contacts.col.{key}"))
        for c, n in rows:
            table.add_row(
                c.name,
                c.unit,
                t(f"role.{c.role.value}"),
                str(c.telegram_id or ""),
                c.wecom_userid or "",
                str(n),
            )
        out.print(table)


@contacts_app.command("invite")
@bad_input_exits
def contacts_invite(
    name: Annotated[str, typer.Argument(help="The contact's name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Print a one-time code that binds the contact's chat account (valid 7 days)."""
    rt = _runtime()
    with rt.session() as session:
        contact = contacts.find_contact(session, name)
        code, invite = contacts.create_invite(
            session, contact, valid_days=rt.settings.invite_valid_days, actor=audit.CLI_ACTOR
        )
        expires = invite.expires_at.astimezone(rt.settings.tz)
        if as_json:
            _print_json({"name": contact.name, "code": code, "expires_at": expires.isoformat()})
        else:
            out.print(
                rt.t(
                    "cli.contacts.invite",
                    name=contact.name,
                    code=code,
                    expires=expires.strftime("%Y-%m-%d %H:%M"),
                )
            )


@app.command("assign")
@bad_input_exits
def assign_cmd(
    item: Annotated[str | None, typer.Argument(help="Item number (9) or label (三.2).")] = None,
    contact: Annotated[str | None, typer.Argument(help="The contact's name.")] = None,
    deadline: Annotated[str | None, typer.Option("--deadline", help="YYYY-MM-DD.")] = None,
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
    rt = _runtime()
    t = rt.t
    due = assign_svc.parse_date(deadline) if deadline else None
    if csv_file is not None:
        if item or contact or unit:
            raise UserError("cli.assign.csv_alone")
        text = _read_csv(csv_file)
        with rt.session() as session:
            plan = plans.current_plan(session)
            rows = assign_svc.read_assignment_csv(session, plan, text)
            assigned, created = assign_svc.apply_assignment_csv(
                session, rows, actor=audit.CLI_ACTOR
            )
        if as_json:
            _print_json({"assigned": assigned, "contacts_created": created})
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
            done = assign_svc.assign_unit(
                session, plan=plan, unit=unit, contact=person, deadline=due, actor=audit.CLI_ACTOR
            )
        numbers = [i.number for i in done]
        if as_json:
            _print_json({"contact": name, "items": numbers})
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
        assignment, created = assign_svc.assign(
            session, item=work_item, contact=person, role=role, deadline=due, actor=audit.CLI_ACTOR
        )
        if as_json:
            _print_json(
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


def _read_csv(path: Path) -> str:
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


@db_app.command("upgrade")
@bad_input_exits
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply database migrations (they also run on every start)."""
    settings = load_settings()
    engine = db.make_engine(settings.database_url)
    try:
        db.upgrade(engine, revision)
        current = db.current_revision(engine)
    finally:
        engine.dispose()
    out.print(Translator(settings.locale)("cli.db.upgraded", revision=current))


@app.command("run")
@bad_input_exits
def run_cmd() -> None:
    """Run the bot: the configured channels, the web app (/healthz) and the scheduler."""
    import asyncio
    import logging

    from bot.app import DubanApp, configured_channels

    settings = load_settings()
    t = Translator(settings.locale)
    if not configured_channels(settings):
        names = {c.name for c in app.registered_commands}
        _fail(t("run.no_channel") + (" " + t("run.try_demo") if "demo" in names else ""))
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines carry the token
    asyncio.run(DubanApp(settings).run_until_signal())


def main() -> None:
    """Console entry point."""
    app()
