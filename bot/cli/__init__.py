"""The `duban` command line: import plans, manage contacts and assignments, run the bot.

A module here is one command group: it registers its commands on `app` when imported, and a
command imports what it works with (the database, the importer, PTB ...) only when it runs, so
that `duban --help` answers at once (tests/test_cli_imports.py keeps it so). A new group is a
new module and one line in GROUPS, whose order is the order `duban --help` lists them in.
"""

from __future__ import annotations

import sys
from importlib import import_module

from bot.cli.errors import EXIT_FAILED, say_unexpected
from bot.cli.runtime import app

GROUPS = (
    "plans",  # import, items, plans, plan close
    "contacts",  # contacts add | list | invite
    "assign",  # assign
    "tasks",  # task add | list | reopen
    "digest",  # digest, export
    "bulletin",  # bulletin
    "reports",  # report, history, targets list | additive
    "reminders",  # reminders preview, remind now
    "sections",  # sections list | leader
    "board",  # board link
    "database",  # db upgrade
    "run",  # demo, chat, run
)
for _group in GROUPS:
    import_module(f"{__name__}.{_group}")

__all__ = ["app", "main"]


def main() -> None:
    """Console entry point: an unexpected error is one line and exit 1, never a traceback."""
    try:
        app()
    except Exception as exc:  # the commands catch their own; this is what escapes typer
        say_unexpected(exc)
        sys.exit(EXIT_FAILED)
