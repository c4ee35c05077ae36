"""What the planner reads of the reports: the newest of each person, and of each owner on each
item, found through indexes, so a tick costs the same however long the history grows."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot import db
from bot.models import Contact, Plan, Report, ReportStatus
from bot.services import plans
from bot.services.progress import StatusRules
from bot.settings import Settings
from scheduler.planner import PlanState, load_state
from tests.harness import SHANGHAI, seed

NOW = datetime(2023, 6, 9, 3, 0, tzinfo=UTC)
RULES = StatusRules.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]


def state_at(engine: Engine, now: datetime = NOW) -> PlanState:
    with Session(engine) as session:
        plan = session.exec(select(Plan)).first()
        assert plan is not None
        return load_state(session, plan, now=now, tz=SHANGHAI, rules=RULES)


def ids(engine: Engine) -> dict[str, int]:
    """Contact ids by name, and item ids by number ("9")."""
    with Session(engine) as session:
        found = {c.name: c.id or 0 for c in session.exec(select(Contact))}
        plan = plans.current_plan(session)
        for number in ("8", "9", "10", "22"):
            found[number] = plans.find_item(session, plan, number).id or 0
    return found


def report(conn: sa.Connection, contact: int, item: int, at: datetime, **extra: Any) -> int:
    row = {
        "contact_id": contact,
        "item_id": item,
        "percent": 50,
        "status": ReportStatus.in_progress,
        "text": "推进中",
        "source": "chat",
        "kind": "progress",
        "created_at": at,
        **extra,
    }
    new = conn.execute(sa.insert(Report).returning(col(Report.id)), row).scalar_one()
    assert new is not None
    return new


@pytest.fixture
def seeded(engine: Engine) -> Iterator[dict[str, int]]:
    seed(engine)
    yield ids(engine)


def test_the_newest_report_of_each_person_and_of_each_owner_on_each_item(
    engine: Engine, seeded: dict[str, int]
) -> None:
    zhang, chen, li = seeded["张三"], seeded["陈五"], seeded["李四"]
    day = timedelta(days=1)
    with engine.begin() as conn:
        report(conn, zhang, seeded["9"], NOW - 3 * day)
        report(conn, zhang, seeded["9"], NOW - day, withdrawn_at=NOW - day / 2)  # withdrawn
        correction = report(conn, zhang, seeded["10"], NOW - 2 * day + timedelta(hours=1))
        report(conn, zhang, seeded["10"], NOW - 2 * day, superseded_by_id=correction)
        report(conn, zhang, seeded["9"], NOW + timedelta(hours=1))  # not made yet at NOW
        report(conn, chen, seeded["9"], NOW - day)  # on an item not theirs (陈五 has 8)
    state = state_at(engine)
    # A person's last word: any report of theirs not withdrawn (a corrected one too).
    assert state.last_report_at == {
        zhang: NOW - 2 * day + timedelta(hours=1),
        chen: NOW - day,
    }
    assert li not in state.last_report_at  # 李四 never reported
    # An owner's last word on an item: reports that count (not withdrawn, not corrected).
    assert state.item_reported_at == {
        (zhang, seeded["9"]): NOW - 3 * day,
        (zhang, seeded["10"]): NOW - 2 * day + timedelta(hours=1),
    }
    # As of an earlier moment: what was made by then, withdrawn or corrected only later.
    earlier = state_at(engine, NOW - 2 * day + timedelta(minutes=30))
    assert earlier.item_reported_at == {
        (zhang, seeded["9"]): NOW - 3 * day,
        (zhang, seeded["10"]): NOW - 2 * day,
    }


@pytest.fixture
def sqlite_engine(tmp_path: Path, _sqlite_template: Path) -> Iterator[Engine]:
    """A migrated SQLite file (the test below counts SQLite's virtual machine steps)."""
    path = tmp_path / "duban.db"
    shutil.copy(_sqlite_template, path)
    engine = db.make_engine(f"sqlite:///{path}")
    yield engine
    engine.dispose()


def test_a_planning_run_reads_as_much_with_a_long_history(sqlite_engine: Engine) -> None:
    engine = sqlite_engine
    seed(engine)
    seeded = ids(engine)
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0  # go on

    def on_execute(conn: sa.Connection, *_args: Any) -> None:
        conn.connection.driver_connection.set_progress_handler(count, 100)  # type: ignore[union-attr]

    owners = [
        (seeded["张三"], seeded["9"]),
        (seeded["张三"], seeded["10"]),
        (seeded["李四"], seeded["22"]),
    ]
    added = 0

    def history(reports: int) -> int:
        """VM steps (in hundreds) of a planning read with `reports` reports in the database."""
        nonlocal added
        with engine.begin() as conn:
            rows = [
                {
                    "contact_id": owners[n % len(owners)][0],
                    "item_id": owners[n % len(owners)][1],
                    "percent": n % 100,
                    "status": ReportStatus.in_progress,
                    "text": "推进中",
                    "source": "chat",
                    "kind": "progress",
                    "created_at": NOW - timedelta(minutes=reports - n),
                }
                for n in range(added, reports)
            ]
            conn.execute(sa.insert(Report), rows)
        added = reports
        steps[0] = 0
        sa.event.listen(engine, "before_cursor_execute", on_execute)
        try:
            state_at(engine)
        finally:
            sa.event.remove(engine, "before_cursor_execute", on_execute)
        return steps[0]

    short, long = history(300), history(6_000)
    assert long < short * 1.5, (short, long)  # twenty times the reports
