"""The `duban` command line: import plans, manage contacts and assignments, run the bot."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import cached_property, wraps
from pathlib import Path
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar
from zoneinfo import ZoneInfo

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot import db
from bot.cn_numbers import parse_number
from bot.dates import parse_typed_date
from bot.db_errors import describe as describe_database_problem
from bot.events import clean_text
from bot.i18n import Translator, UserError
from bot.importer.model import ParsedPlan, PlanFormatError
from bot.models import AssignmentRole, Plan, Target, WorkItem, utcnow
from bot.progress_parser import check_length, check_percent, status_word
from bot.redaction import Redactor, install_redaction, redact
from bot.reporting import HistoryRow, Reading
from bot.services import assignments as assign_svc
from bot.services import audit, contacts, plans, reports
from bot.services.digest import Digest, build_digest, digest_json, parse_week
from bot.services.items import ItemView, item_json, item_views, plan_start, target_json
from bot.services.ledger_export import export_ledger, history_rows
from bot.services.progress import StatusRules
from bot.services.sending import queue_digest, write_digest_chart
from bot.settings import Settings, load_settings
from bot.templating import DIGEST_FORMATS, format_number, render_digest
from scheduler import reminders
from scheduler.runner import work_calendar

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2

log = logging.getLogger(__name__)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

app = typer.Typer(
    help="Duban (督办): carry an annual work plan through the year in chat.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
contacts_app = typer.Typer(help="Register contacts and issue invite codes.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
targets_app = typer.Typer(help="Quantitative targets.", no_args_is_help=True)
reminders_app = typer.Typer(help="Scheduled reminders.", no_args_is_help=True)
remind_app = typer.Typer(help="Ask for progress now.", no_args_is_help=True)
sections_app = typer.Typer(help="Sections of the plan and their leaders.", no_args_is_help=True)
app.add_typer(contacts_app, name="contacts")
app.add_typer(targets_app, name="targets")
app.add_typer(reminders_app, name="reminders")
app.add_typer(remind_app, name="remind")
app.add_typer(sections_app, name="sections")
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

    def views(self, session: Session, plan: Plan) -> list[ItemView]:
        """Where every item of the plan stands now."""
        return item_views(
            session,
            plan,
            now=utcnow(),
            tz=self.settings.tz,
            rules=StatusRules.from_settings(self.settings),
        )

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success; the connections are closed afterwards."""
        try:
            with db.session_scope(self.engine) as session:
                yield session
        finally:
            if "engine" in self.__dict__:  # made (not when making it failed: no second try)
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
    """Turn bad input (UserError, an unreadable plan, bad settings) into a message and exit 2,
    and anything unexpected into one line and exit 1."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ValidationError as exc:
            _fail(settings_problem(exc))
        except (UserError, PlanFormatError) as exc:
            _fail(exc.render(Translator(load_settings().locale)))
        except db.DatabaseURLError as exc:
            _fail(redact(str(exc), load_settings()))  # it quotes the URL, password and all
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # typer's own ways out (Exit and Abort are RuntimeErrors)
        except Exception as exc:
            problem = database_problem(exc)
            if problem is not None:
                _fail(problem)  # an operator's to fix (read-only, wrong path, server down): 2
            say_unexpected(exc)
            raise typer.Exit(EXIT_FAILED) from None

    return wrapper


def error_line(exc: BaseException) -> str:
    """What went wrong, in one line: a database error's own message, not its SQL."""
    cause = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    name = type(cause).__name__
    return f"{name}: {lines[0][:300]}" if lines else name


def database_problem(exc: BaseException) -> str | None:
    """One line for a database that cannot be used (read-only, a wrong path, PostgreSQL down
    or refusing the login): what is wrong and what to do, no password; None for other errors.
    The traceback goes to the log at DEBUG only."""
    try:
        settings = load_settings()
    except Exception:  # the settings themselves may be what is broken
        return None
    problem = describe_database_problem(exc, settings.database_url)
    if problem is None:
        return None
    if settings.log_level.upper() == "DEBUG":
        _log_traceback(exc, Redactor.from_settings(settings), "database unavailable")
    return redact(problem.render(Translator(settings.locale)), settings)


def _log_traceback(exc: BaseException, redactor: Redactor, what: str) -> None:
    logging.basicConfig(level=logging.DEBUG, format=LOG_FORMAT)
    install_redaction(redactor)
    log.debug(what, exc_info=exc)


def say_unexpected(exc: BaseException) -> None:
    """Print one line for an unexpected error; the traceback goes to the log at DEBUG only."""
    settings: Settings | None = None
    try:
        settings = load_settings()
        locale, level = settings.locale, settings.log_level.upper()
    except Exception:  # the settings themselves may be what is broken
        locale, level = "zh-CN", "INFO"
    redactor = Redactor.from_settings(settings)  # PTB's InvalidToken quotes the token
    if level == "DEBUG":
        _log_traceback(exc, redactor, "unexpected error")
    detail = redactor(error_line(exc))
    err.print(Translator(locale)("cli.unexpected", detail=detail), markup=False, highlight=False)


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
    for view in rt.views(session, plan):
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

    rt = _runtime()
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
            )
            session.commit()
    with rt.session() as session:
        result.plan = session.merge(result.plan)
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
                t("cli.import.changed", title=parsed.title, summary=import_summary(result, t))
            )
        out.print(_items_table(rt, session, result.plan))


def import_summary(result: plans.ImportResult, t: Translator) -> str:
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
                {"plan": plan.title, "items": [item_json(v) for v in rt.views(session, plan)]}
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


def _typed_deadline(rt: Runtime, text: str) -> date:
    """A deadline as people write it (bot/dates.py); a date without a year is in the plan's."""
    with rt.session() as session:
        year = plan_start(plans.current_plan(session)).year
    return parse_typed_date(text, year=year)


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
    rt = _runtime()
    t = rt.t
    due = _typed_deadline(rt, deadline) if deadline else None
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


def _digest(rt: Runtime, session: Session, week: str | None) -> Digest:
    plan = plans.current_plan(session)
    return build_digest(
        session,
        plan,
        now=utcnow(),
        tz=rt.settings.tz,
        rules=StatusRules.from_settings(rt.settings),
        week=parse_week(week) if week else None,
    )


@app.command("digest")
@bad_input_exits
def digest_cmd(
    week: Annotated[str | None, typer.Option("--week", help="ISO week, e.g. 2023-W23.")] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="text, telegram (HTML), wecom (markdown) or json.")
    ] = "text",
    chart: Annotated[Path | None, typer.Option("--chart", help="Also write the PNG chart.")] = None,
    send: Annotated[
        bool, typer.Option("--send", help="Queue it for every leader (and the group robot).")
    ] = False,
) -> None:
    """Preview the weekly digest (the current week by default), or send it to the leaders."""
    if fmt not in (*DIGEST_FORMATS, "json"):
        raise UserError("digest.bad_format", value=fmt)
    rt = _runtime()
    with rt.session() as session:
        digest = _digest(rt, session, week)
        if send:
            queued = queue_digest(session, digest, locale=rt.settings.locale, now=utcnow())
            out.print(rt.t("cli.digest.queued", count=queued, week=digest.label))
            return
    if chart is not None:
        write_digest_chart(digest, chart, rt.settings.locale)
    if fmt == "json":
        _print_json(digest_json(digest, rt.t))
    else:
        sys.stdout.write(render_digest(digest, fmt, rt.settings.locale) + "\n")


@app.command("export")
@bad_input_exits
def export_cmd(
    path: Annotated[Path, typer.Argument(help="The workbook to write, e.g. 台账.xlsx.")],
) -> None:
    """Write the ledger (台账) as an Excel workbook: every item, and every report."""
    if path.suffix.lower() != ".xlsx":
        raise UserError("export.bad_suffix", path=str(path))
    rt = _runtime()
    with Progress(transient=True, console=err) as bar, rt.session() as session:
        task = bar.add_task(rt.t("cli.export.writing", path=path.name), total=None)
        plan = plans.current_plan(session)
        written = export_ledger(session, plan, path, settings=rt.settings, now=utcnow())
        bar.update(task, total=1, completed=1)
    out.print(rt.t("cli.export.done", path=str(written)))


def _target_values(targets: list[Target], given: list[str]) -> list[tuple[Target, float]]:
    """`METRIC=V` pairs matched to the item's targets (by metric, or its number 1, 2, ...)."""
    pairs: list[tuple[Target, float]] = []
    for raw in given:
        metric, sep, number = raw.partition("=")
        value = parse_number(number.strip()) if sep else None
        if value is None:
            raise UserError("report.bad_value", value=raw)
        name = metric.strip()
        matches = [
            t
            for i, t in enumerate(targets, start=1)
            if name == str(i) or (name and (name in t.metric or t.metric in name))
        ]
        if len(matches) != 1:
            known = "；".join(f"{i}={t.metric}" for i, t in enumerate(targets, start=1)) or "-"
            raise UserError("report.unknown_metric", metric=name, known=known)
        pairs.append((matches[0], value))
    return pairs


def _not_assigned(session: Session, item: WorkItem, name: str) -> UserError:
    """A report on behalf of someone who does not answer for the item: who does instead."""
    assert item.id is not None
    owners = [c.name for c, _ in assign_svc.assignees(session, [item.id])[item.id]]
    if not owners:
        return UserError("report.cli_unassigned_item", item=item.number, name=name)
    return UserError(
        "report.cli_not_assigned",
        item=item.number,
        name=name,
        owners="、".join(owners),
        owner=owners[0],
    )


@app.command("report")
@bad_input_exits
def report_cmd(
    item: Annotated[str, typer.Argument(help="Item number (9) or label (三.2).")],
    as_name: Annotated[str, typer.Option("--as", help="Whose report it is (a contact).")],
    percent: Annotated[int | None, typer.Option("--percent", help="0-100.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="done, in_progress, delayed, not_started.")
    ] = None,
    text: Annotated[str, typer.Option("--text", help="What was said.")] = "",
    value: Annotated[
        list[str] | None, typer.Option("--value", help="METRIC=V for a target, repeatable.")
    ] = None,
    by: Annotated[str | None, typer.Option("--by", help="The admin entering it.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Record a report received by phone or on paper, on someone's behalf."""
    text = clean_text(text)  # as from chat: no control characters (PostgreSQL refuses NUL)
    check_percent(percent)
    word = status_word(status) if status else None
    if status and word is None:
        raise UserError("report.bad_status", value=status)
    check_length(text)
    if percent is None and word is None and not text.strip() and not value:
        raise UserError("report.cli_empty")
    rt = _runtime()
    with rt.session() as session:
        plan = plans.current_plan(session)
        work_item = plans.find_item(session, plan, item)
        person = contacts.find_contact(session, as_name)
        if not reports.is_assigned(session, work_item, person):
            raise _not_assigned(session, work_item, person.name)
        admin = contacts.find_contact(session, by) if by else None
        pairs = _target_values(reports.item_targets(session, work_item), value or [])
        report = reports.record_report(
            session,
            item=work_item,
            contact=person,
            now=utcnow(),
            percent=percent,
            status=word,
            text=text.strip(),
            values=pairs,
            source="cli",
            entered_by=admin,
        )
        audit.record(
            session,
            actor=audit.CLI_ACTOR,
            action="report.on_behalf",
            item=work_item.number,
            contact=person.name,
        )
        if as_json:
            _print_json(
                {
                    "item": work_item.number,
                    "contact": person.name,
                    "percent": report.percent,
                    "status": report.status,
                    "values": [
                        {"metric": target.metric, "value": v, "unit": target.unit}
                        for target, v in pairs
                    ],
                }
            )
        else:
            out.print(
                rt.t(
                    "cli.report.done",
                    item=work_item.number,
                    title=work_item.title,
                    name=person.name,
                    percent=report.percent if report.percent is not None else "-",
                    status=rt.t(f"report_status.{report.status}") if report.status else "-",
                )
            )


def readings_json(readings: Iterable[Reading]) -> list[dict[str, Any]]:
    """Target values as JSON: a list of `{metric, value, unit}`."""
    return [{"metric": r.metric, "value": r.value, "unit": r.unit} for r in readings]


def history_json(row: HistoryRow, tz: ZoneInfo) -> dict[str, Any]:
    """One report as `duban history --json` prints it (`at` in the plan's time zone)."""
    return {
        "item": row.item,
        "at": row.at.astimezone(tz).isoformat(),
        "contact": row.contact,
        "percent": row.percent,
        "status": row.status,
        "text": row.text,
        "values": readings_json(row.readings),
        "source": row.source,
        "entered_by": row.entered_by,
        "superseded": row.superseded,
        "withdrawn": row.withdrawn,
    }


def _since(value: str, tz: ZoneInfo) -> datetime:
    """The start of a YYYY-MM-DD day in the plan's time zone."""
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        raise UserError("cli.history.bad_since", value=value) from None
    return datetime.combine(day, time.min, tzinfo=tz)


@app.command("history")
@bad_input_exits
def history_cmd(
    item: Annotated[
        str | None, typer.Argument(help="Item number (9) or label (三.2); every item if left out.")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only reports from this day on, YYYY-MM-DD.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List reports, newest first, corrections and withdrawals included: one item's, or all."""
    rt = _runtime()
    tz = rt.settings.tz
    start = _since(since, tz) if since is not None else None
    with rt.session() as session:
        plan = plans.current_plan(session)
        work_item = plans.find_item(session, plan, item) if item is not None else None
        rows = [
            r
            for r in history_rows(session, plan)
            if (work_item is None or r.item == work_item.number)
            and (start is None or r.at >= start)
        ]
        title = plan.title
    if as_json:
        reports_json = [history_json(r, tz) for r in rows]
        if work_item is None:
            _print_json({"plan": title, "reports": reports_json})
        else:
            _print_json(
                {"item": work_item.number, "title": work_item.title, "reports": reports_json}
            )
        return
    t = rt.t
    heading = title if work_item is None else f"{work_item.number}. {work_item.title}"
    table = Table(title=heading)
    columns = ["at", "contact", "percent", "status", "text", "note"]
    if work_item is None:
        columns.insert(1, "item")
    for key in columns:
        table.add_column(t(f"cli.history.col.{key}"), overflow="fold")
    for r in rows:
        note = t("cli.history.superseded") if r.superseded else ""
        note = t("cli.history.withdrawn") if r.withdrawn else note
        cells = [
            r.at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
            r.contact,
            "" if r.percent is None else f"{r.percent}%",
            t(f"report_status.{r.status}") if r.status else "",
            "；".join(x for x in (r.text, r.values) if x),
            note,
        ]
        if work_item is None:
            cells.insert(1, str(r.item))
        table.add_row(*cells)
    out.print(table)


@targets_app.command("list")
@bad_input_exits
def targets_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List every quantitative target with its current value."""
    rt = _runtime()
    with rt.session() as session:
        plan = plans.current_plan(session)
        views = rt.views(session, plan)
    rows = [(v, i, s) for v in views for i, s in enumerate(v.targets, start=1)]
    if as_json:
        _print_json(
            {
                "targets": [
                    {
                        "item": v.item.number,
                        "number": i,
                        **target_json(s.target),
                        "additive": s.target.additive,
                        "current": s.value,
                        "share": s.share,
                        "projection": s.projection,
                    }
                    for v, i, s in rows
                ]
            }
        )
        return
    table = Table()
    for key in ("item", "number", "target", "additive", "current"):
        table.add_column(rt.t(f"cli.targets.col.{key}"), overflow="fold")
    for v, i, s in rows:
        current = "" if s.value is None else format_number(s.value)
        table.add_row(
            str(v.item.number), str(i), s.target.text, "✓" if s.target.additive else "", current
        )
    out.print(table)


@targets_app.command("additive")
@bad_input_exits
def targets_additive(
    item: Annotated[str, typer.Argument(help="Item number.")],
    target: Annotated[int, typer.Argument(help="The target's number in the item (1, 2, ...).")],
    off: Annotated[bool, typer.Option("--off", help="Take the latest value, do not sum.")] = False,
) -> None:
    """Sum a target over its reporters (one per county, say): each one's latest value counts."""
    rt = _runtime()
    with rt.session() as session:
        plan = plans.current_plan(session)
        work_item = plans.find_item(session, plan, item)
        targets = reports.item_targets(session, work_item)
        if not 1 <= target <= len(targets):
            raise UserError(
                "targets.unknown", item=work_item.number, number=target, count=len(targets)
            )
        chosen = targets[target - 1]
        chosen.additive = not off
        audit.record(
            session,
            actor=audit.CLI_ACTOR,
            action="target.additive",
            item=work_item.number,
            target=chosen.metric,
            additive=chosen.additive,
        )
    key = "cli.targets.summed" if not off else "cli.targets.latest"
    out.print(rt.t(key, item=work_item.number, metric=chosen.metric))


@reminders_app.command("preview")
@bad_input_exits
def reminders_preview(
    start: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option("--to", help="Last day, YYYY-MM-DD.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List what would be sent, when and to whom, using the planner, without sending."""
    first, last = assign_svc.parse_date(start), assign_svc.parse_date(end)
    rt = _runtime()
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
        rows = reminders.preview_json(planned, people)
    if as_json:
        _print_json(rows)
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
    rt = _runtime()
    with rt.session() as session:
        plan = plans.current_plan(session)
        work_item = plans.find_item(session, plan, item) if item else None
        count = reminders.ask_now(
            session, plan, now=utcnow(), settings=rt.settings, item=work_item, actor=audit.CLI_ACTOR
        )
    out.print(rt.t("remind.queued", count=count) if count else rt.t("remind.none"))


@sections_app.command("list")
@bad_input_exits
def sections_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List the plan's sections and the leader in charge of each (分管领导)."""
    rt = _runtime()
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
        _print_json({"sections": rows})
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
    rt = _runtime()
    with rt.session() as session:
        plan = plans.current_plan(session)
        found = reminders.find_section(session, plan, section)
        leader = contacts.find_contact(session, name)
        reminders.set_section_leader(session, found, leader, actor=audit.CLI_ACTOR)
        label, title = found.label, found.title
    out.print(rt.t("cli.sections.leader", label=label, title=title, name=name))


@app.command("demo")
@bad_input_exits
def demo_cmd(
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Where to write the ledger and the chart.")
    ] = None,
    no_color: Annotated[bool, typer.Option("--no-color", help="No colours.")] = False,
) -> None:
    """Play a fortnight of the sample plan offline: asks, replies, escalation, the digest."""
    import asyncio

    from bot.demo import demo_settings, play

    base = load_settings()
    settings = demo_settings(base, out_dir)
    if out_dir is not None and (out_dir / "demo.db").exists():
        (out_dir / "demo.db").unlink()  # always a fresh database
    t = Translator(settings.locale)
    out.print(t("demo.intro"), highlight=False)
    result = asyncio.run(
        play(
            settings,
            out=sys.stdout,
            colors=not no_color and sys.stdout.isatty(),
            csv=db.sample_path("assignments.csv"),
            sample=db.sample_path("jiangmen-edu-2023-workpoints.txt"),
        )
    )
    out.print(
        t(
            "demo.done",
            ledger=str(result.ledger),
            chart=str(result.chart),
            database=str(result.database),
        ),
        highlight=False,
    )


@app.command("chat")
@bad_input_exits
def chat_cmd(
    as_name: Annotated[str, typer.Option("--as", help="The contact to be (their name).")],
    no_color: Annotated[bool, typer.Option("--no-color", help="No colours.")] = False,
) -> None:
    """Chat with the bot in this terminal as a contact (no Telegram or WeCom needed)."""
    import asyncio

    from bot.console_chat import run_chat

    settings = load_settings()
    try:
        code = asyncio.run(
            run_chat(settings, as_name, stdin=sys.stdin, stdout=sys.stdout, colors=not no_color)
        )
    except KeyboardInterrupt:
        code = 130
    raise typer.Exit(code)


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

    from bot.app import DubanApp, configured_channels

    settings = load_settings()
    t = Translator(settings.locale)
    if not configured_channels(settings):
        names = {c.name for c in app.registered_commands}
        _fail(t("run.no_channel") + (" " + t("run.try_demo") if "demo" in names else ""))
    logging.basicConfig(level=settings.log_level.upper(), format=LOG_FORMAT)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines carry the token
    asyncio.run(DubanApp(settings).run_until_signal())


def main() -> None:
    """Console entry point: an unexpected error is one line and exit 1, never a traceback."""
    try:
        app()
    except Exception as exc:  # the commands catch their own; this is what escapes typer
        say_unexpected(exc)
        sys.exit(EXIT_FAILED)
