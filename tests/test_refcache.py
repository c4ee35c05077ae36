"""The chat core's reference cache: triggers bump cache_version on every change to the cached
tables (by any connection), and the core never answers from a row older than the database's."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import count
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot import db
from bot.chat import ChatCore
from bot.events import IncomingMessage
from bot.models import CACHED_TABLES, Assignment, AssignmentRole, Contact, Report
from bot.refcache import ReferenceCache, attach, current_version, detached_copy
from bot.services import plans
from bot.settings import Settings
from handlers.registry import build_router
from tests.harness import LI, ZHANG, seed

NOW = datetime(2023, 6, 9, 3, 0, tzinfo=UTC)


def version(engine: Engine) -> int:
    with Session(engine) as session:
        value = current_version(session)
    assert value is not None
    return value


@pytest.fixture
def core(engine: Engine, db_url: str) -> Iterator[ChatCore]:
    seed(engine)
    settings = Settings(_env_file=None, database_url=db_url)  # type: ignore[call-arg]
    chat = ChatCore(engine, settings, build_router(), clock=lambda: NOW)
    yield chat
    chat.close()


_updates = count(1)


def say(core: ChatCore, user: int, text: str) -> str:
    """What the core answers (run as the database lane would run it)."""
    event = IncomingMessage(
        platform="telegram",
        chat_id=str(user),
        sender_id=str(user),
        update_id=str(next(_updates)),
        text=text,
    )
    result = core.process(event)
    assert result is not None
    outgoing, _ = result
    return "\n".join(out.text for out in outgoing)


def other_process(engine: Engine) -> Engine:
    """A second engine: another process as far as the core's cache can tell."""
    return db.make_engine(str(engine.url.render_as_string(hide_password=False)))


def test_every_change_to_a_cached_table_bumps_the_version(engine: Engine) -> None:
    seed(engine)
    before = version(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE contact SET unit = unit || '' WHERE name = '张三'"))
    after_update = version(engine)
    assert after_update > before
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO contact (name, unit, role, active, created_at) "
                "VALUES ('测试员', '某科', 'official', true, '2023-06-01 00:00:00')"
            )
        )
    after_insert = version(engine)
    assert after_insert > after_update
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM contact WHERE name = '测试员'"))
    assert version(engine) > after_insert
    for table in CACHED_TABLES:
        previous = version(engine)
        with engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE {table} SET id = id"))
        assert version(engine) > previous, table


def test_writes_the_chat_makes_do_not_bump_the_version(core: ChatCore, engine: Engine) -> None:
    before = version(engine)
    assert "已记录 第9项" in say(core, ZHANG, "9 60% 推进中")
    assert version(engine) == before  # reports, dedupe rows and links are not cached tables


def test_a_warm_cache_reads_no_reference_rows(core: ChatCore, engine: Engine) -> None:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    say(core, ZHANG, "9 50%")
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        assert "已记录 第9项" in say(core, ZHANG, "9 60%")
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert not [s for s in reads if "FROM contact" in s or "FROM work_item" in s], reads
    assert not [s for s in reads if "FROM assignment" in s], reads
    assert any("cache_version" in s for s in statements)  # read along with the dedupe insert
    assert core.cache.hits >= 3  # sender and plan, item 9, the assignment


def test_an_unassignment_elsewhere_is_seen_at_once(core: ChatCore, engine: Engine) -> None:
    assert "已记录 第9项" in say(core, ZHANG, "9 60%")
    other = other_process(engine)
    with Session(other) as session:  # `duban unassign 9 张三` in another shell
        zhang = session.exec(select(Contact).where(Contact.name == "张三")).one()
        item = plans.find_item(session, plans.current_plan(session), "9")
        assignment = session.exec(
            select(Assignment).where(
                Assignment.contact_id == zhang.id, Assignment.item_id == item.id
            )
        ).one()
        session.delete(assignment)
        session.commit()
    other.dispose()
    answer = say(core, ZHANG, "9 70%")
    assert "第 9 项没有分配给您" in answer, answer
    with Session(engine) as session:
        assert [r.percent for r in session.exec(select(Report))] == [60]


def test_an_assignment_and_a_new_binding_elsewhere_are_seen_at_once(
    core: ChatCore, engine: Engine
) -> None:
    refused = say(core, LI, "9 30%")
    assert "已记录" not in refused
    other = other_process(engine)
    with Session(other) as session:
        li = session.exec(select(Contact).where(Contact.name == "李四")).one()
        plan = plans.current_plan(session)
        item = plans.find_item(session, plan, "9")
        session.add(
            Assignment(item_id=item.id or 0, contact_id=li.id or 0, role=AssignmentRole.lead)
        )
        chen = session.exec(select(Contact).where(Contact.name == "陈五")).one()
        chen.telegram_id = 555_000  # bound in another process
        session.commit()
    other.dispose()
    assert "已记录 第9项" in say(core, LI, "9 30%")
    assert "已记录 第8项" in say(core, 555_000, "8 20%")


def test_a_handler_may_change_its_copy_of_a_cached_row(engine: Engine) -> None:
    seed(engine)
    cache = ReferenceCache()
    with Session(engine, expire_on_commit=False) as session:
        zhang = session.exec(select(Contact).where(Contact.name == "张三")).one()
        stamp = current_version(session)
        assert stamp is not None
        cache.get("zhang", stamp, lambda: detached_copy(zhang))
    with Session(engine) as session:
        stamp = current_version(session)
        assert stamp is not None
        cached = cache.get("zhang", stamp, lambda: pytest.fail("should be cached"))
        mine = attach(session, cached)
        assert mine is not None and mine is not cached
        mine.unit = "督查室"
        session.commit()
    assert cached.unit == "基础教育科"  # the cached copy itself is never changed
    with Session(engine) as session:
        assert session.exec(select(Contact.unit).where(Contact.name == "张三")).one() == "督查室"
        stamp = current_version(session)
    assert cache.get("zhang", stamp or 0, lambda: "reloaded") == "reloaded"  # the change showed


def test_without_the_counter_row_nothing_is_cached(core: ChatCore, engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM cache_version"))
    assert "已记录 第9项" in say(core, ZHANG, "9 60%")
    assert "已记录 第9项" in say(core, ZHANG, "9 70%")
    assert core.cache.hits == 0
