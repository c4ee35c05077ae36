"""What every command works with: the Typer app, the settings, translator and database of a
run, and where output goes (rich tables to stdout, messages to stderr, JSON for scripts)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from sqlalchemy.engine import Engine
    from sqlmodel import Session

    from bot.i18n import Translator
    from bot.models import Plan
    from bot.services.items import ItemView
    from bot.settings import Settings

app = typer.Typer(
    help="Duban (督办): carry an annual work plan through the year in chat.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class _LazyConsole:
    """A rich Console made (and rich imported) when first used: `duban run` prints nothing
    through one and so never loads rich (over a MB of a bot's memory). Stands in for the
    Console everywhere, rich's own Progress and Live included (they use it with `with`)."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def _get(self) -> Console:
        console = self.__dict__.get("_console")
        if console is None:
            from rich.console import Console

            console = self._console = Console(**self._options)
        return console

    def __getattr__(self, name: str) -> Any:  # only what the instance itself lacks
        if "_options" not in self.__dict__:  # not initialised (a copy, say): no Console
            raise AttributeError(name)
        return getattr(self._get(), name)

    def __enter__(self) -> Console:
        return self._get().__enter__()

    def __exit__(self, *exc: object) -> None:
        self._get().__exit__(*exc)


out = cast("Console", _LazyConsole(soft_wrap=True))
err = cast("Console", _LazyConsole(stderr=True, soft_wrap=True))


@dataclass
class Runtime:
    """What a CLI command works with: settings, translator, the database."""

    settings: Settings

    @cached_property
    def t(self) -> Translator:
        """The translator for LOCALE."""
        from bot.i18n import Translator

        return Translator(self.settings.locale)

    @cached_property
    def engine(self) -> Engine:
        """The database engine, migrated to the newest schema."""
        from bot import db

        engine = db.make_engine(self.settings.database_url)
        db.upgrade(engine)
        return engine

    def views(self, session: Session, plan: Plan) -> list[ItemView]:
        """Where every item of the plan stands now."""
        from bot.models import utcnow
        from bot.services.items import item_views
        from bot.services.progress import StatusRules

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
        from bot import db

        try:
            with db.session_scope(self.engine) as session:
                yield session
        finally:
            if "engine" in self.__dict__:  # made (not when making it failed: no second try)
                self.engine.dispose()


def runtime() -> Runtime:
    """The runtime of this run, from the environment and .env."""
    from bot.settings import load_settings

    return Runtime(load_settings())


def print_json(data: Any) -> None:
    """Write data to stdout as indented JSON, Chinese as it is."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
