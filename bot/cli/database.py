"""`duban db upgrade`: apply the database migrations explicitly."""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli.errors import bad_input_exits
from bot.cli.runtime import app, out

db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
@bad_input_exits
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply database migrations (they also run on every start)."""
    from bot import db
    from bot.i18n import Translator
    from bot.settings import load_settings

    settings = load_settings()
    engine = db.make_engine(settings.database_url)
    try:
        db.upgrade(engine, revision)
        current = db.current_revision(engine)
    finally:
        engine.dispose()
    out.print(Translator(settings.locale)("cli.db.upgraded", revision=current))
