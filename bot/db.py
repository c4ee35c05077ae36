"""The database: engine from DATABASE_URL, sessions, and migrations on start."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session

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
    cfg = Config()
    cfg.set_main_option("script_location", str(resource_dir("migrations")))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to revision (all by default)."""
    with engine.begin() as conn:
        cfg = alembic_config(engine)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Revert migrations down to revision."""
    with engine.begin() as conn:
        cfg = alembic_config(engine)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def sample_path(name: str) -> Path:
    """The path of a bundled sample file."""
    return resource_dir("samples") / name


def current_revision(engine: Engine) -> str | None:
    """The migration revision the database is at."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
