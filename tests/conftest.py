"""Shared fixtures: every database test runs on SQLite and, when reachable, on PostgreSQL."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, SQLModel

from bot import db
from tests.fakes import FakeTelegram
from tests.fakes.wecom_api import FakeWeCom

PG_ADMIN_URL = os.environ.get(
    "DUBAN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_PG = os.environ.get("DUBAN_REQUIRE_POSTGRES") == "1"
SAMPLE_PLAN = (
    Path(__file__).resolve().parent.parent / "samples" / "jiangmen-edu-2023-workpoints.txt"
)


def _pg_problem() -> str | None:
    """Why PostgreSQL cannot be used, or None when it can."""
    try:
        engine = sa.create_engine(
            db.normalize_url(PG_ADMIN_URL), connect_args={"connect_timeout": 3}
        )
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any failure means "not reachable here"
        where = make_url(PG_ADMIN_URL).render_as_string()
        return f"PostgreSQL is not reachable at {where}: {type(exc).__name__}"
    return None


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The admin URL of a reachable PostgreSQL server, or a skip that says why not."""
    problem = _pg_problem()
    if problem:
        if REQUIRE_PG:
            pytest.fail(f"{problem} (DUBAN_REQUIRE_POSTGRES=1)")
        pytest.skip(f"{problem}; set DUBAN_TEST_POSTGRES_URL to run the PostgreSQL variants")
    yield PG_ADMIN_URL


@pytest.fixture(scope="session")
def pg_database_factory(pg_server: str) -> Iterator[object]:
    """Creates throwaway PostgreSQL databases and drops them at the end of the session."""
    admin = sa.create_engine(db.normalize_url(pg_server), isolation_level="AUTOCOMMIT")
    created: list[str] = []

    def create() -> str:
        name = f"duban_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return make_url(pg_server).set(database=name).render_as_string(hide_password=False)

    yield create
    with admin.connect() as conn:
        for name in created:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def _pg_migrated_url(pg_database_factory) -> str:  # type: ignore[no-untyped-def]
    url = pg_database_factory()
    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    engine.dispose()
    return path


def _truncate_all(url: str) -> None:
    engine = db.make_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        conn.execute(sa.text("INSERT INTO cache_version (id, version) VALUES (1, 0)"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: a SQLite file, then PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "duban.db"
        shutil.copy(request.getfixturevalue("_sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("_pg_migrated_url")
    _truncate_all(url)
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on the test database."""
    eng = db.make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session on the test database (committed by the test when it wants to)."""
    with Session(engine, expire_on_commit=False) as s:
        yield s


@pytest.fixture
def sample_plan() -> Path:
    """The bundled sample plan (江门市教育局2023年工作要点)."""
    return SAMPLE_PLAN


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    """PTB 22 warns on every RetryAfter unless this opt-in is set (Duban sets it too)."""
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


@pytest.fixture(autouse=True)
def _data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Exports and charts of a test go to a temporary folder, never into the checkout."""
    monkeypatch.setenv("DATA_DIR", str(tmp_path_factory.mktemp("duban-data")))


@pytest.fixture(scope="module")
def _shared_telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture
def server(_shared_telegram: FakeTelegram) -> Iterator[FakeTelegram]:
    """The fake Telegram Bot API (one per module, reset for each test)."""
    _shared_telegram.reset()
    yield _shared_telegram
    assert _shared_telegram.internal_errors == []


@pytest.fixture(scope="module")
def _shared_wecom() -> Iterator[FakeWeCom]:
    with FakeWeCom() as fake:
        yield fake


@pytest.fixture
def fake(_shared_wecom: FakeWeCom) -> Iterator[FakeWeCom]:
    """The fake WeCom API (one per module, reset for each test)."""
    _shared_wecom.reset(keep_tokens=False)
    _shared_wecom.clear_faults()
    yield _shared_wecom
    assert _shared_wecom.internal_errors == []
