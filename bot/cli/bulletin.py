"""`duban bulletin`: the progress bulletin (进展情况通报) of a month or a quarter, a Word file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bot.cli.errors import bad_input_exits
from bot.cli.runtime import app, err, out, print_json, runtime


@app.command("bulletin")
@bad_input_exits
def bulletin_cmd(
    month: Annotated[
        str | None, typer.Option("--month", help="A month, e.g. 2023-06 (default: this month).")
    ] = None,
    quarter: Annotated[
        str | None, typer.Option("--quarter", help="A quarter, e.g. 2023-Q2.")
    ] = None,
    out_path: Annotated[
        Path | None,
        typer.Option("--out", help="The .docx file to write (default: 进展情况通报-2023-06.docx)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the file written, as JSON for scripts.")
    ] = False,
) -> None:
    """Write the progress bulletin of a month or a quarter for every open plan (.docx)."""
    from rich.progress import Progress

    from bot.i18n import UserError
    from bot.models import utcnow
    from bot.services import plans
    from bot.services.bulletin import bulletin_file_name, period_from_options, write_bulletin

    if out_path is not None and out_path.suffix.lower() != ".docx":
        raise UserError("bulletin.cli_bad_suffix", path=str(out_path))
    rt = runtime()
    now = utcnow()
    period = period_from_options(month, quarter, now=now, tz=rt.settings.tz)
    path = out_path if out_path is not None else Path(bulletin_file_name(period, rt.t))
    with Progress(transient=True, console=err, disable=as_json) as bar, rt.session() as session:
        task = bar.add_task(rt.t("cli.bulletin.writing", path=path.name), total=None)
        active = plans.active_plans(session)
        if not active:
            raise UserError("plan.none")
        written = write_bulletin(session, active, period, path, settings=rt.settings, now=now)
        bar.update(task, total=1, completed=1)
        codes = [p.code for p in active]
    if as_json:
        print_json({"period": period.key, "path": str(written), "plans": codes})
        return
    out.print(rt.t("cli.bulletin.done", path=str(written)), markup=False)
