"""The migration stairway: every revision goes up and down cleanly, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime
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


# Rows in the tables every deployment has by then; a migration that rebuilds a table (SQLite's
# batch mode) must keep them and everything pointing at them.
KEPT_TABLES = ("contact", "plan", "section", "work_item", "assignment", "report")


def _fill(conn: sa.Connection, table: sa.Table) -> None:
    """One row with id 1 in a reflected table: every foreign key points at id 1."""
    row: dict[str, object] = {}
    for column in table.columns:
        if column.foreign_keys or column.name == "id":
            row[column.name] = 1
            continue
        if column.nullable or column.server_default is not None:
            continue
        if isinstance(column.type, sa.JSON):
            row[column.name] = []
            continue
        kind = column.type.python_type
        row[column.name] = {
            int: 1,
            str: "official" if column.name == "role" else "x",
            bool: True,
            float: 1.0,
        }.get(kind, datetime(2023, 6, 1) if kind is datetime else date(2023, 6, 1))
    conn.execute(table.insert().values(**row))


def test_rows_survive_every_later_migration(empty_url: str) -> None:
    """A database with data at 0005 (the oldest a deployment may hold) upgrades to head with
    every row kept, on SQLite (foreign keys checked, not cascaded) and PostgreSQL."""
    engine = db.make_engine(empty_url)
    db.upgrade(engine, "0005")
    meta = sa.MetaData()
    meta.reflect(engine, only=KEPT_TABLES)
    with engine.begin() as conn:
        for name in KEPT_TABLES:
            _fill(conn, meta.tables[name])
    db.upgrade(engine)
    with engine.connect() as conn:
        counts = {
            name: conn.execute(sa.text(f'SELECT count(*) FROM "{name}"')).scalar()
            for name in KEPT_TABLES
        }
        if engine.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert counts == dict.fromkeys(KEPT_TABLES, 1)
    engine.dispose()
