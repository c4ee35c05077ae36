"""How a command ends when something is wrong: bad input (a bad file, setting or name, a
database an operator must fix) is a message and exit 2; anything unexpected is one line and
exit 1, its traceback in the log at DEBUG only. Never a traceback on the terminal."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, NoReturn, ParamSpec, TypeVar

import typer

from bot.cli.runtime import err

if TYPE_CHECKING:
    from pydantic import ValidationError

    from bot.redaction import Redactor

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2

log = logging.getLogger(__name__)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

P = ParamSpec("P")
R = TypeVar("R")


def fail(message: str) -> NoReturn:
    """Print the message to stderr and exit 2."""
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
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # typer's own ways out (Exit and Abort are RuntimeErrors)
        except Exception as exc:
            exit_for(exc)

    return wrapper


def exit_for(exc: Exception) -> NoReturn:
    """Exit 2 with a message for bad input, exit 1 with one line for anything else."""
    # The error types are imported here, when one is raised: importing them costs a second.
    from pydantic import ValidationError

    from bot.db import DatabaseURLError
    from bot.i18n import Translator, UserError
    from bot.importer.model import PlanFormatError
    from bot.redaction import redact
    from bot.settings import load_settings

    if isinstance(exc, ValidationError):
        fail(settings_problem(exc))
    if isinstance(exc, UserError | PlanFormatError):
        fail(exc.render(Translator(load_settings().locale)))
    if isinstance(exc, DatabaseURLError):
        fail(redact(str(exc), load_settings()))  # it quotes the URL, password and all
    problem = database_problem(exc)
    if problem is not None:
        fail(problem)  # an operator's to fix (read-only, wrong path, server down): 2
    say_unexpected(exc)
    raise typer.Exit(EXIT_FAILED) from None


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
    from bot.db_errors import describe
    from bot.i18n import Translator
    from bot.redaction import Redactor, redact
    from bot.settings import load_settings

    try:
        settings = load_settings()
    except Exception:  # the settings themselves may be what is broken
        return None
    problem = describe(exc, settings.database_url)
    if problem is None:
        return None
    if settings.log_level.upper() == "DEBUG":
        log_traceback(exc, Redactor.from_settings(settings), "database unavailable")
    return redact(problem.render(Translator(settings.locale)), settings)


def log_traceback(exc: BaseException, redactor: Redactor, what: str) -> None:
    """Log the error with its traceback at DEBUG, secrets redacted."""
    from bot.redaction import install_redaction

    logging.basicConfig(level=logging.DEBUG, format=LOG_FORMAT)
    install_redaction(redactor)
    log.debug(what, exc_info=exc)


def say_unexpected(exc: BaseException) -> None:
    """Print one line for an unexpected error; the traceback goes to the log at DEBUG only."""
    from bot.i18n import Translator
    from bot.redaction import Redactor
    from bot.settings import Settings, load_settings

    settings: Settings | None = None
    try:
        settings = load_settings()
        locale, level = settings.locale, settings.log_level.upper()
    except Exception:  # the settings themselves may be what is broken
        locale, level = "zh-CN", "INFO"
    redactor = Redactor.from_settings(settings)  # PTB's InvalidToken quotes the token
    if level == "DEBUG":
        log_traceback(exc, redactor, "unexpected error")
    detail = redactor(error_line(exc))
    err.print(Translator(locale)("cli.unexpected", detail=detail), markup=False, highlight=False)
