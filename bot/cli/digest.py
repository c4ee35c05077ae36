"""`duban digest` and `duban export`: the leaders' weekly digest, and the ledger (台账)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from bot.cli.errors import bad_input_exits
from bot.cli.runtime import app, err, out, print_json, runtime


@app.command("digest")
@bad_input_exits
def digest_cmd(
    week: Annotated[str | None, typer.Option("--week", help="ISO week, e.g. 2023-W23.")] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="text, html, markdown or json, or a channel's name (its markup, e.g. telegram).",
        ),
    ] = "text",
    chart: Annotated[Path | None, typer.Option("--chart", help="Also write the PNG chart.")] = None,
    send: Annotated[
        bool, typer.Option("--send", help="Queue it for every leader (and the group robot).")
    ] = False,
) -> None:
    """Preview the weekly digest (the current week by default), or send it to the leaders."""
    from bot.channels.registry import spec_of
    from bot.i18n import UserError
    from bot.models import utcnow
    from bot.services import plans
    from bot.services.digest import build_digest, digest_json, parse_week
    from bot.services.progress import StatusRules
    from bot.services.sending import queue_digest, write_digest_chart
    from bot.templating import DIGEST_FORMATS, render_digest

    if fmt not in (*DIGEST_FORMATS, "json") and spec_of(fmt) is None:
        from bot.channels.registry import spec_of  # a channel's name: its markup

        if spec_of(fmt) is None:
            raise UserError("digest.bad_format", value=fmt)
    rt = runtime()
    with rt.session() as session:
        digest = build_digest(
            session,
            plans.current_plan(session),
            now=utcnow(),
            tz=rt.settings.tz,
            rules=StatusRules.from_settings(rt.settings),
            week=parse_week(week) if week else None,
        )
        if send:
            queued = queue_digest(session, digest, locale=rt.settings.locale, now=utcnow())
            out.print(rt.t("cli.digest.queued", count=queued, week=digest.label))
            return
    if chart is not None:
        write_digest_chart(digest, chart, rt.settings.locale)
    if fmt == "json":
        print_json(digest_json(digest, rt.t))
    else:
        sys.stdout.write(render_digest(digest, fmt, rt.settings.locale) + "\n")


@app.command("export")
@bad_input_exits
def export_cmd(
    path: Annotated[Path, typer.Argument(help="The workbook to write, e.g. 台账.xlsx.")],
    evidence: Annotated[
        Path | None,
        typer.Option(
            "--evidence",
            help="Also write the evidence files there, a folder per item, linked from the "
            "workbook.",
        ),
    ] = None,
) -> None:
    """Write the ledger (台账) as an Excel workbook: every plan's items, every report, and the
    evidence."""
    from rich.progress import Progress

    from bot.i18n import UserError
    from bot.models import utcnow
    from bot.services import plans
    from bot.services.ledger_export import export_ledger

    if path.suffix.lower() != ".xlsx":
        raise UserError("export.bad_suffix", path=str(path))
    rt = runtime()
    with Progress(transient=True, console=err) as bar, rt.session() as session:
        task = bar.add_task(rt.t("cli.export.writing", path=path.name), total=None)
        plan = plans.current_plan(session)
        written = export_ledger(
            session, plan, path, settings=rt.settings, now=utcnow(), evidence_dir=evidence
        )
        bar.update(task, total=1, completed=1)
    out.print(rt.t("cli.export.done", path=str(written)))
    if evidence is not None:
        out.print(rt.t("evidence.export_done", path=str(evidence)))
