"""The migration stairway: every revision goes up and down cleanly, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

from bot import db


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with nothing in it."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'stairway.db'}"
    factory = request.getfixturevalue("pg_database_factory")
    return str(factory())


def _revisions(engine: sa.Engine) -> list[str]:
    script = ScriptDirectory.from_config(db.alembic_config(engine))
    return [r.revision for r in reversed(list(script.walk_revisions("base", "heads")))]


def test_stairway_up_and_down_every_revision(empty_url: str) -> None:
    engine = db.make_engine(empty_url)
    revisions = _revisions(engine)
    assert revisions, "there is at least one migration"
    previous = "base"
    for revision in revisions:
        db.upgrade(engine, revision)
        assert db.current_revision(engine) == revision
        db.downgrade(engine, previous)
        assert db.current_revision(engine) == (None if previous == "base" else previous)
        db.upgrade(engine, revision)
        previous = revision
    db.downgrade(engine, "base")
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()


def test_head_matches_the_models(empty_url: str) -> None:
    engine = db.make_engine(empty_url)
    db.upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": False}), SQLModel.metadata
        )
    assert diff == [], f"models and migrations disagree: {diff}"
    engine.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'wal.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///duban.db", "sqlite:///duban.db"),
        ("postgresql://u@127.0.0.1:5432/db", "postgresql+psycopg://u@127.0.0.1:5432/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
    ],
)
def test_database_url_plain_forms(given: str, expected: str) -> None:
    assert db.normalize_url(given) == expected


@pytest.mark.parametrize("bad", ["mysql://u@h/db", "not a url"])
def test_database_url_other_forms_refused(bad: str) -> None:
    with pytest.raises(db.DatabaseURLError, match="DATABASE_URL"):
        db.normalize_url(bad)
