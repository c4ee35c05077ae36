"""`duban report`, `duban history` and `duban targets list | additive`: reports entered on
someone's behalf, the record of every report, and the quantitative targets."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer

from bot.cli.errors import bad_input_exits
from bot.cli.runtime import app, out, print_json, runtime

if TYPE_CHECKING:
    from bot.reporting import HistoryRow, Reading

targets_app = typer.Typer(help="Quantitative targets.", no_args_is_help=True)
app.add_typer(targets_app, name="targets")


@app.command("report")
@bad_input_exits
def report_cmd(
    item: Annotated[
        str, typer.Argument(help="Item number (9), label (三.2) or code+number (民生3, J1).")
    ],
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
    from bot.events import clean_text
    from bot.i18n import UserError
    from bot.models import utcnow
    from bot.progress_parser import check_length, check_percent
    from bot.services import audit, contacts, plans, reports, targets, tasks

    text = clean_text(text)  # as from chat: no control characters (PostgreSQL refuses NUL)
    check_percent(percent)
    word = reports.parse_status(status)
    check_length(text)
    if percent is None and word is None and not text.strip() and not value:
        raise UserError("report.cli_empty")
    rt = runtime()
    with rt.session() as session:
        plan = plans.current_plan(session)
        work_item = plans.find_item(session, plan, item)
        person = contacts.find_contact(session, as_name)
        reports.require_assigned(session, work_item, person)
        admin = contacts.find_contact(session, by) if by else None
        pairs = targets.match_values(reports.item_targets(session, work_item), value or [])
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
        tasks.after_reports(session, [report], [work_item], now=report.created_at)
        audit.record(
            session,
            actor=audit.CLI_ACTOR,
            action="report.on_behalf",
            **audit.of_item(session, work_item),
            contact=person.name,
        )
        if as_json:
            print_json(
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
    from rich.table import Table

    from bot.services import plans
    from bot.services.ledger_export import history_rows

    rt = runtime()
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
            print_json({"plan": title, "reports": reports_json})
        else:
            print_json(
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
    from bot.i18n import UserError

    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        raise UserError("cli.history.bad_since", value=value) from None
    return datetime.combine(day, time.min, tzinfo=tz)


@targets_app.command("list")
@bad_input_exits
def targets_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List every quantitative target with its current value."""
    from rich.table import Table

    from bot.services import plans
    from bot.services.items import target_json
    from bot.templating import format_number

    rt = runtime()
    with rt.session() as session:
        plan = plans.current_plan(session)
        views = rt.views(session, plan)
    rows = [(v, i, s) for v in views for i, s in enumerate(v.targets, start=1)]
    if as_json:
        print_json(
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
    from bot.services import audit, plans, targets

    rt = runtime()
    with rt.session() as session:
        plan = plans.current_plan(session)
        work_item = plans.find_item(session, plan, item)
        chosen = targets.set_additive(
            session, work_item, target, additive=not off, actor=audit.CLI_ACTOR
        )
    key = "cli.targets.summed" if not off else "cli.targets.latest"
    out.print(rt.t(key, item=work_item.number, metric=chosen.metric))
