"""The CLI answers at once: `duban --help` imports no database, template, chat or document
library, a command that reads (`duban items`) imports only the database and what it shows, and
a command on a database already at the newest migration does not import Alembic. Each check
runs in a fresh interpreter, where nothing else has imported those modules yet. (The times are
bench/cli_startup.py's: these tests assert on sys.modules only.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from bot import db
from tests.test_cli import Cli

ROOT = Path(__file__).resolve().parent.parent
# What `duban --help` must not load: each takes tenths of a second to import. (Not pydantic:
# Typer itself converts some options' values with it.)
HEAVY = (
    "sqlalchemy",
    "sqlmodel",
    "alembic",
    "jinja2",
    "telegram",
    "wechatpy",
    "matplotlib",
    "openpyxl",
    "docx",
    "aiohttp",
    "starlette",
    "uvicorn",
    "apscheduler",
    "httpx",
    "psycopg",
    "lark_oapi",
    "dingtalk_stream",
)
# Nor what the settings and the catalogue need, which `duban --help` does not read.
NOT_FOR_HELP = ("pydantic", "pydantic_settings", "yaml")
# What reading the database and printing a table must not load: templates, charts, documents,
# chat and web libraries, the scheduler, migrations (the database is at head), nor the parts of
# rich that Typer's help needs (markdown, syntax highlighting, tracebacks).
NOT_FOR_A_READ = (
    *(name for name in HEAVY if name not in ("sqlalchemy", "sqlmodel", "psycopg")),
    "markdown_it",
    "pygments",
)


def run_python(code: str, *, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run code in a fresh interpreter from the checkout; it must succeed."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def loaded_after(
    code: str, *, cwd: Path, watched: tuple[str, ...] = HEAVY, **env: str
) -> list[str]:
    """Which of the watched packages (HEAVY by default) are imported once code has run."""
    proc = run_python(
        textwrap.dedent(code)
        + textwrap.dedent(f"""
            loaded = {{name.partition(".")[0] for name in sys.modules}}
            print(json.dumps(sorted(loaded & set({watched!r}))))
            """),
        cwd=cwd,
        **env,
    )
    return list(json.loads(proc.stdout.splitlines()[-1]))


def loaded_by_command(
    *args: str, cwd: Path, watched: tuple[str, ...] = HEAVY, **env: str
) -> list[str]:
    """Which of the watched packages `duban ARGS` imports, run through the entry point in a
    fresh interpreter; it must succeed."""
    return loaded_after(
        f"""
        import json, sys
        from bot.cli import main

        sys.argv = ["duban", *{list(args)!r}]
        try:
            main()
        except SystemExit as exc:
            assert exc.code == 0, exc.code
        """,
        cwd=cwd,
        watched=watched,
        **env,
    )


def test_help_of_every_command_imports_nothing_heavy(tmp_path: Path) -> None:
    loaded = loaded_after(
        """
        import json, sys
        import typer
        from typer.testing import CliRunner
        import bot.cli

        def paths(command, prefix=()):
            yield prefix
            for name, sub in getattr(command, "commands", {}).items():
                yield from paths(sub, (*prefix, name))

        for path in paths(typer.main.get_command(bot.cli.app)):
            result = CliRunner().invoke(bot.cli.app, [*path, "--help"])
            assert result.exit_code == 0 and "Usage" in result.output, (path, result.output)
        """,
        cwd=tmp_path,
    )
    assert loaded == []


def test_the_entry_point_help_imports_nothing_heavy(tmp_path: Path) -> None:
    assert loaded_by_command("--help", cwd=tmp_path, watched=(*HEAVY, *NOT_FOR_HELP)) == []


def test_the_help_of_a_command_reads_no_settings(tmp_path: Path) -> None:
    watched = tuple(name for name in (*HEAVY, *NOT_FOR_HELP) if name != "pydantic")  # Typer's
    for args in (["items", "--help"], ["digest", "--help"], ["run", "--help"]):
        assert loaded_by_command(*args, cwd=tmp_path, watched=watched) == [], args


def test_listing_the_items_imports_only_the_database(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_plan: Path
) -> None:
    Cli(db_url, tmp_path, monkeypatch).ok("import", sample_plan)  # the database is at head
    for args in (["items"], ["items", "--json"]):
        loaded = loaded_by_command(
            *args, cwd=tmp_path, watched=(*NOT_FOR_A_READ, "sqlalchemy"), DATABASE_URL=db_url
        )
        assert loaded == ["sqlalchemy"], args


def test_listing_the_items_builds_no_table_models_validator(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_plan: Path
) -> None:
    """Rows are loaded by SQLAlchemy: pydantic's validators of the table models are built only
    where one is dumped or validated (`defer_build`), never for a read such as `duban items`;
    and a model still dumps and validates when asked to."""
    Cli(db_url, tmp_path, monkeypatch).ok("import", sample_plan)
    proc = run_python(
        """
        import json, sys
        from bot.cli import main
        from bot.models import Row, WorkItem

        sys.argv = ["duban", "items"]
        try:
            main()
        except SystemExit as exc:
            assert exc.code == 0, exc.code
        from sqlmodel import SQLModel

        tables = Row.__subclasses__()
        built = sorted(t.__name__ for t in tables if t.__pydantic_complete__)
        every = sorted(t.__tablename__ for t in tables) == sorted(SQLModel.metadata.tables)
        item = WorkItem.model_validate({"plan_id": 1, "section_id": 1, "number": 9, "label": "9",
                                        "title": "t", "body": "b"})
        print(json.dumps([every, built, item.model_dump()["number"]]))
        """,
        cwd=tmp_path,
        DATABASE_URL=db_url,
    )
    every_table, built, number = json.loads(proc.stdout.splitlines()[-1])
    assert every_table and built == [] and number == 9  # every table is a Row


def test_upgrading_a_database_at_head_does_not_import_alembic(db_url: str, tmp_path: Path) -> None:
    loaded = loaded_by_command("db", "upgrade", cwd=tmp_path, DATABASE_URL=db_url)
    assert "sqlalchemy" in loaded and "alembic" not in loaded


def test_a_command_on_a_database_at_head_does_not_import_alembic(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = Cli(db_url, tmp_path, monkeypatch)
    cli.ok("contacts", "add", "张敏", "--unit", "基础教育科")  # the database is at head
    loaded = loaded_by_command("contacts", "list", "--json", cwd=tmp_path, DATABASE_URL=cli.db_url)
    assert "sqlalchemy" in loaded and "alembic" not in loaded
    assert "matplotlib" not in loaded and "openpyxl" not in loaded and "jinja2" not in loaded


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database with no tables at all: a SQLite path, then PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.db'}"
    url: str = request.getfixturevalue("pg_database_factory")()
    return url


@pytest.mark.parametrize("several", [False, True])
def test_the_current_revision_is_read_in_one_query(tmp_path: Path, several: bool) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'stamped.db'}")
    try:
        assert db.current_revision(engine) is None  # no version table yet
        db.upgrade(engine)
        head = db.head_revision()
        assert db.current_revision(engine) == head
        if several:  # branches: Alembic says what is wrong, as before
            with engine.begin() as conn:
                conn.execute(sa.text("INSERT INTO alembic_version VALUES ('elsewhere')"))
            with pytest.raises(CommandError):
                db.current_revision(engine)
    finally:
        engine.dispose()


def test_an_older_database_is_upgraded_by_any_command(
    fresh_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = db.make_engine(fresh_url)
    script = ScriptDirectory.from_config(db.alembic_config(engine))
    head = script.get_current_head()
    assert head is not None
    previous = script.get_revision(head).down_revision
    assert isinstance(previous, str)
    try:
        db.upgrade(engine, previous)
        assert not db.is_at_head(engine)
        Cli(fresh_url, tmp_path, monkeypatch).ok("contacts", "list")
        assert db.current_revision(engine) == head and db.is_at_head(engine)
    finally:
        engine.dispose()


def test_a_new_database_is_created_by_any_command(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    run_python(
        """
        import sys
        from bot.cli import main

        sys.argv = ["duban", "contacts", "list"]
        try:
            main()
        except SystemExit as exc:
            assert exc.code == 0, exc.code
        """,
        cwd=tmp_path,
        DATABASE_URL=url,
    )
    engine = db.make_engine(url)
    try:
        assert db.is_at_head(engine)
    finally:
        engine.dispose()


def test_the_head_read_from_the_files_is_alembic_s() -> None:
    script = ScriptDirectory(str(db.resource_dir("migrations")))
    assert db.head_revision() == script.get_current_head()


def migration(revision: str, down: str | None) -> str:
    """A migration file's head as `alembic revision` writes it."""
    return textwrap.dedent(f'''\
        """A change.

        Revision ID: {revision}
        Revises: {down or ""}
        """
        from collections.abc import Sequence

        revision: str = {revision!r}
        down_revision: str | None = {down!r}  # the one before
        branch_labels: str | Sequence[str] | None = None
        depends_on: str | Sequence[str] | None = None


        def upgrade() -> None:
            revision = "not this one"
        ''')


def test_a_new_migration_file_is_the_new_head(tmp_path: Path) -> None:
    versions = db.resource_dir("migrations") / "versions"
    for path in versions.glob("*.py"):
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    head = db.head_revision(tmp_path)
    assert head is not None
    (tmp_path / "0099_next.py").write_text(migration("0099", head), encoding="utf-8")
    assert db.head_revision(tmp_path) == "0099"
    (tmp_path / "0100_merge.py").write_text(
        migration("0100", None).replace("None  #", f"({head!r}, '0099')  #"), encoding="utf-8"
    )
    assert db.head_revision(tmp_path) == "0100"  # a merge revises both


def test_two_heads_leave_it_to_alembic(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text(migration("a", None), encoding="utf-8")
    (tmp_path / "b.py").write_text(migration("b", "a"), encoding="utf-8")
    (tmp_path / "c.py").write_text(migration("c", "a"), encoding="utf-8")
    assert db.head_revision(tmp_path) is None
