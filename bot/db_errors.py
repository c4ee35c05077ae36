"""What to tell an operator when the database cannot be used as configured.

A read-only database, a SQLite path whose folder is missing or is a file, a path that is a
folder or a file that is no database, PostgreSQL down, unreachable, refusing the login or
without the database: `describe(exc, url)` recognises these in an error as sqlite3 or psycopg
raised it (wrapped by SQLAlchemy or not) and returns a `DatabaseUnavailable` that names the
problem and what to do. It quotes the path, or the host, port, user and database name, never
the password. Any other error gives None: that one is a bug, not the operator's to fix.

The CLI prints the message and exits 2; `duban run` logs it and tries again; /healthz answers
with its `reason`, a short phrase without path or host.
"""

from __future__ import annotations

import getpass
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

from sqlalchemy.engine import URL, make_url

from bot.i18n import UserError

__all__ = ["DatabaseUnavailable", "describe", "sqlite_file"]

# SQLite's primary result codes (the low byte of an extended code).
_SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_NOTADB = 11, 13, 14, 26
_SQLITE_READONLY = 8

# libpq's and the server's words for each PostgreSQL condition (English; a server set to
# another lc_messages is still recognised by SQLSTATE where psycopg gives one).
_PG_PATTERNS: tuple[tuple[str, frozenset[str], re.Pattern[str]], ...] = tuple(
    (key, frozenset(states), re.compile(words, re.IGNORECASE))
    for key, states, words in (
        (
            "pg_auth",
            {"28P01", "28000"},
            r"password authentication failed|authentication failed|role \".*\" does not exist"
            r"|no pg_hba\.conf entry|password is required|no password supplied",
        ),
        ("pg_no_database", {"3D000"}, r"database \".*\" does not exist"),
        ("pg_read_only", {"25006"}, r"read-only transaction"),
        ("pg_too_many", {"53300"}, r"too many clients|remaining connection slots are reserved"),
        (
            "pg_starting",
            {"57P03"},
            r"database system is (?:starting up|shutting down|in recovery mode)"
            r"|not (?:yet )?accepting connections",
        ),
        (
            "pg_closed",
            {"57P01", "57P02", "08006", "08003"},
            r"server closed the connection|terminating connection|connection is (?:closed|lost)"
            r"|consuming input failed|connection not open|ssl connection has been closed"
            r"|connection reset by peer|broken pipe",
        ),
        ("pg_refused", set(), r"connection refused"),
        (
            "pg_unknown_host",
            set(),
            r"failed to resolve host|could not translate host name|name or service not known"
            r"|nodename nor servname|temporary failure in name resolution",
        ),
        (
            "pg_unreachable",
            set(),
            r"timeout expired|timed out|no route to host|network is unreachable"
            r"|host is unreachable",
        ),
        ("pg_cannot_connect", {"08001", "08004"}, r"connection failed|could not connect"),
    )
)

# What /healthz says for each problem: no path, no host.
REASONS = {
    "folder_missing": "database folder missing",
    "folder_is_file": "database folder is a file",
    "is_folder": "database path is a folder",
    "not_database": "not a database file",
    "corrupt": "database file damaged",
    "no_permission": "no permission on the database file",
    "missing_read_only": "database file missing",
    "cannot_open": "cannot open the database file",
    "read_only": "database is read-only",
    "disk_full": "disk full",
    "pg_auth": "login refused",
    "pg_no_database": "no such database",
    "pg_read_only": "database is read-only",
    "pg_too_many": "too many connections",
    "pg_starting": "database starting or stopping",
    "pg_closed": "connection closed by the server",
    "pg_refused": "connection refused",
    "pg_unknown_host": "unknown host",
    "pg_unreachable": "database unreachable",
    "pg_cannot_connect": "cannot connect",
}


class DatabaseUnavailable(UserError):
    """The database cannot be used as configured: the operator's to fix, not a bug."""

    def __init__(self, problem: str, **params: object) -> None:
        super().__init__(f"database.{problem}", **params)
        self.problem = problem
        self.reason = REASONS[problem]


def describe(exc: BaseException, url: str | URL) -> DatabaseUnavailable | None:
    """The database problem behind `exc` for the database at `url`, or None for another error."""
    try:
        parsed = make_url(url)
    except Exception:  # a bad URL is reported by the code that parses it
        return None
    backend = parsed.get_backend_name()
    for error in _causes(exc):
        if backend == "sqlite" and isinstance(error, sqlite3.Error):
            found = _sqlite_problem(error, parsed)
        elif backend in ("postgresql", "postgres") and _is_psycopg(error):
            found = _postgres_problem(error, parsed)
        else:
            continue
        if found is not None:
            return found
    return None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The error, the driver's error SQLAlchemy wraps in it, and what caused either."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        error = todo.pop(0)
        if id(error) in seen:
            continue
        seen.add(id(error))
        yield error
        for nested in (getattr(error, "orig", None), error.__cause__, error.__context__):
            if isinstance(nested, BaseException):
                todo.append(nested)


# --- SQLite --------------------------------------------------------------------------------


def sqlite_file(url: str | URL) -> Path | None:
    """The file a SQLite URL opens (also in the `file:...?uri=true` form); None in memory."""
    parsed = make_url(url)
    name = parsed.database
    if not name or name == ":memory:":
        return None
    if str(parsed.query.get("uri", "")).lower() in ("true", "1") and name.startswith("file:"):
        if parsed.query.get("mode") == "memory":
            return None
        rest = name.removeprefix("file:")
        if rest.startswith("//"):  # file://host/path: the host part is empty or localhost
            rest = "/" + rest[2:].partition("/")[2]
        name = unquote(rest)
        if not name or name == ":memory:":
            return None
    return Path(name)


def _sqlite_problem(error: sqlite3.Error, url: URL) -> DatabaseUnavailable | None:
    code = getattr(error, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(error).lower()
    path = sqlite_file(url)
    shown = str(path.absolute()) if path is not None else ":memory:"
    if primary == _SQLITE_READONLY or "readonly database" in text:
        return DatabaseUnavailable("read_only", path=shown)
    if primary == _SQLITE_NOTADB or "is not a database" in text:
        return DatabaseUnavailable("not_database", path=shown)
    if primary == _SQLITE_CORRUPT or "malformed" in text:
        return DatabaseUnavailable("corrupt", path=shown)
    if primary == _SQLITE_FULL or "database or disk is full" in text:
        return DatabaseUnavailable("disk_full", path=shown)
    if primary == _SQLITE_CANTOPEN or "unable to open database file" in text:
        if path is None:
            return DatabaseUnavailable("cannot_open", path=shown)
        return _why_not_open(path, read_only=url.query.get("mode") == "ro")
    return None


def _why_not_open(path: Path, *, read_only: bool) -> DatabaseUnavailable:
    """Why SQLite could not open `path`, found by looking at the file system."""
    shown = str(path.absolute())
    if path.is_dir():
        return DatabaseUnavailable("is_folder", path=shown)
    folder = path.absolute().parent
    if not folder.is_dir():
        for ancestor in (folder, *folder.parents):
            if not ancestor.exists():
                continue
            if not ancestor.is_dir():
                return DatabaseUnavailable("folder_is_file", path=shown, folder=str(ancestor))
            if not os.access(ancestor, os.X_OK):  # what lies below cannot even be seen
                return DatabaseUnavailable("no_permission", path=shown)
            break
        return DatabaseUnavailable("folder_missing", path=shown)
    if not path.exists():
        if read_only:
            return DatabaseUnavailable("missing_read_only", path=shown)
        if not os.access(folder, os.W_OK | os.X_OK):
            return DatabaseUnavailable("no_permission", path=shown)
    elif not os.access(path, os.R_OK) or not os.access(folder, os.X_OK):
        return DatabaseUnavailable("no_permission", path=shown)
    return DatabaseUnavailable("cannot_open", path=shown)


# --- PostgreSQL ----------------------------------------------------------------------------


def _is_psycopg(error: BaseException) -> bool:
    return type(error).__module__.split(".")[0] == "psycopg"


def _postgres_problem(error: BaseException, url: URL) -> DatabaseUnavailable | None:
    state = getattr(error, "sqlstate", None)
    text = str(error)
    for key, states, words in _PG_PATTERNS:
        if state in states or words.search(text):
            return DatabaseUnavailable(key, **_server(url), detail=_detail(text))
    return None


def _detail(text: str) -> str:
    """What libpq said, without its preamble: `connection failed: connection to server at
    "h", port 5432 failed: FATAL:  X` gives `X` (libpq never quotes a password)."""
    line = next((line for line in text.splitlines() if line.strip()), "")
    line = line.rpartition("failed: ")[2] or line
    return re.sub(r"^(?:FATAL|ERROR):\s*", "", line.strip())[:200].rstrip(". ")


def _server(url: URL) -> dict[str, object]:
    """Where the database is, as the messages name it (never the password)."""
    host = url.host or str(url.query.get("host") or "") or "localhost"
    user = url.username
    if not user:
        try:
            user = getpass.getuser()  # what libpq uses when the URL names no user
        except Exception:
            user = "?"
    return {
        "server": f"{host}:{url.port or 5432}",
        "host": host,
        "user": user,
        "database": url.database or user,
    }
