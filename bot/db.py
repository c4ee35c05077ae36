"""The database: engine from DATABASE_URL, sessions, and migrations on start."""

from __future__ import annotations

import ast
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session

if TYPE_CHECKING:  # Alembic takes a quarter of a second to import: only for an upgrade
    from alembic.config import Config

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONNECT_TIMEOUT = 5  # seconds to reach PostgreSQL, unless DATABASE_URL sets connect_timeout


class DatabaseURLError(ValueError):
    """DATABASE_URL is not a form Duban understands."""


def normalize_url(url: str) -> str:
    """Map the plain forms `sqlite:///PATH` and `postgresql://...` to the drivers Duban uses."""
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as exc:
        raise DatabaseURLError(
            f"DATABASE_URL {url!r} is not a database URL "
            "(expected sqlite:///duban.db or postgresql://USER@HOST:5432/DB)"
        ) from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite").render_as_string(hide_password=False)
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    raise DatabaseURLError(
        f"DATABASE_URL uses {backend!r}; Duban supports sqlite:///PATH and postgresql://..."
    )


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_end_transaction(dbapi_conn: Any, _record: Any) -> None:
    """A connection goes back to the pool outside any transaction. After a COMMIT that failed
    (a constraint checked at commit, a full disk), sqlite3 keeps the transaction open and the
    pool's reset leaves it so: the next session on that connection would see, and could commit,
    what the failed one wrote."""
    if dbapi_conn is not None and dbapi_conn.in_transaction:
        dbapi_conn.rollback()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for DATABASE_URL; SQLite files run in WAL mode with foreign keys on.

    A SQLite file is created on first use, its folder never: a folder that is missing means a
    mistyped path or a volume not mounted, and a fresh empty database there would hide that.
    """
    real = normalize_url(url)
    parsed = make_url(real)
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(
            real, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "checkin", _sqlite_end_transaction)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if "connect_timeout" not in parsed.query:  # libpq waits for the OS (minutes) by default
        kwargs["connect_args"] = {
            "connect_timeout": CONNECT_TIMEOUT,
            **kwargs.get("connect_args", {}),
        }
    return sa.create_engine(real, **kwargs)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def resource_dir(name: str) -> Path:
    """A project folder (migrations, templates, samples) in a checkout or an installed wheel."""
    in_checkout = PROJECT_ROOT / name
    if in_checkout.is_dir():
        return in_checkout
    return Path(__file__).resolve().parent / f"_{name}"


def alembic_config(engine: Engine) -> Config:
    """An Alembic config bound to this engine's connection."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resource_dir("migrations")))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision(versions: Path | None = None) -> str | None:
    """The newest migration's revision, read from the files in migrations/versions without
    importing Alembic: the one revision that no other revises; None unless there is one."""
    folder = versions or resource_dir("migrations") / "versions"
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in folder.glob("*.py"):
        found = _revision_lines(path.read_text(encoding="utf-8"))
        if isinstance(found.get("revision"), str):
            revisions.add(found["revision"])
            down = found.get("down_revision")
            revised.update([down] if isinstance(down, str) else down or ())
    heads = revisions - revised
    return heads.pop() if len(heads) == 1 else None


# Module-level `revision: str = '0007'` and `down_revision: str | None = '0006'` lines.
_REVISION_LINE = re.compile(r"^(?:revision|down_revision)\b.*$", re.MULTILINE)


def _revision_lines(source: str) -> dict[str, Any]:
    """`revision` and `down_revision` of a migration file (its other lines are not parsed)."""
    found: dict[str, Any] = {}
    for line in _REVISION_LINE.findall(source):
        try:
            node = ast.parse(line).body[0]
            if isinstance(node, ast.AnnAssign | ast.Assign) and node.value is not None:
                target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
                if isinstance(target, ast.Name):
                    found[target.id] = ast.literal_eval(node.value)
        except (SyntaxError, ValueError, TypeError, IndexError):
            continue  # a docstring line that begins with the word, say
    return found


def _stamped(engine: Engine) -> list[str] | None:
    """The revisions stamped in alembic_version, in one query and without Alembic; None when
    there is no such table (a new database).

    Only the query is allowed to fail: an error in connecting is the caller's, as it would be
    Alembic's.
    """
    with engine.connect() as conn:
        try:
            rows = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
        except sa.exc.DBAPIError:
            return None
    return [row[0] for row in rows]


def is_at_head(engine: Engine) -> bool:
    """Whether the database is at the newest migration, in one query and without Alembic."""
    head = head_revision()
    if head is None:
        return False
    return _stamped(engine) == [head]


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to revision (all by default); Alembic runs only when there is one
    to apply."""
    if revision == "head" and is_at_head(engine):
        return
    from alembic import command

    with _migrating(engine) as conn:
        cfg = alembic_config(engine)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Revert migrations down to revision."""
    from alembic import command

    with _migrating(engine) as conn:
        cfg = alembic_config(engine)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


class MigrationIntegrityError(RuntimeError):
    """A migration left rows whose foreign keys point nowhere (nothing was committed)."""


@contextmanager
def _migrating(engine: Engine) -> Iterator[sa.Connection]:
    """A connection in one transaction for migrations. On SQLite, foreign keys are off while
    migrating: a table is altered by copying it and dropping the old one, and with foreign
    keys on, that drop deletes (ON DELETE CASCADE) or refuses (a reference) the rows of every
    table pointing at it. The references are checked before the commit instead. On PostgreSQL,
    deferred triggers fire at once (see below)."""
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:  # only outside a transaction does SQLite take this pragma
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        try:
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    # The cache_version triggers are deferred: rows a migration updates would
                    # leave trigger events pending, and PostgreSQL refuses to ALTER a table
                    # that has them. Fired at once instead, they leave none.
                    conn.exec_driver_sql("SET CONSTRAINTS ALL IMMEDIATE")
                yield conn
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        tables = sorted({str(row[0]) for row in broken})
                        raise MigrationIntegrityError(
                            f"{len(broken)} rows of {', '.join(tables)} point at missing rows"
                        )
        finally:
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()


def sample_path(name: str) -> Path:
    """The path of a bundled sample file."""
    return resource_dir("samples") / name


def current_revision(engine: Engine) -> str | None:
    """The migration revision the database is at (None before the first), in one query; Alembic
    only says what is wrong when several are stamped (branches)."""
    stamped = _stamped(engine)
    if not stamped:
        return None
    if len(stamped) == 1:
        return stamped[0]
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()  # raises: several heads
