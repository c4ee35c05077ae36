"""The chat core's reference cache: triggers bump cache_version on every change to the cached
tables (by any connection), and the core never answers from a row older than the database's."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from itertools import count
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot import db
from bot.chat import ChatContext, ChatCore
from bot.events import IncomingMessage
from bot.i18n import Translator
from bot.models import CACHED_TABLES, Account, Assignment, AssignmentRole, Contact, Report, WorkItem
from bot.refcache import MISSING, ReferenceCache, attach, current_version, detached_copy
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
        session.add(Account(contact_id=chen.id or 0, platform="telegram", account_id="555000"))
        # bound in another process
        session.commit()
    other.dispose()
    assert "已记录 第9项" in say(core, LI, "9 30%")
    assert "已记录 第8项" in say(core, 555_000, "8 20%")


def context(session: Session, cache: ReferenceCache, db_url: str) -> ChatContext:
    """A handler's context on this session, caching as the core does."""
    event = IncomingMessage(platform="telegram", chat_id="1", sender_id="1", update_id="u")
    ctx = ChatContext(
        event=event,
        contact=None,
        session=session,
        settings=Settings(_env_file=None, database_url=db_url),  # type: ignore[call-arg]
        t=Translator("zh-CN"),
        now=NOW,
        router=build_router(),
    )
    version = current_version(session)
    assert version is not None
    cache.seen(version)
    ctx.cache, ctx.cache_version = cache, version
    return ctx


def commit(ctx: ChatContext, cache: ReferenceCache) -> None:
    ctx.session.commit()
    cache.store(ctx.cache_loaded)


def test_a_handler_may_change_its_copy_of_a_cached_row(engine: Engine, db_url: str) -> None:
    seed(engine)
    cache = ReferenceCache()
    with Session(engine) as session:
        ctx = context(session, cache, db_url)
        units = list(ctx.find_item("9").lead_units)
        commit(ctx, cache)
    with Session(engine) as session:
        ctx = context(session, cache, db_url)
        item = ctx.find_item("9")
        assert cache.hits == 1
        item.lead_units.append("督查室")  # changed in place: must not reach the cached copy
        commit(ctx, cache)
    with Session(engine) as session:
        ctx = context(session, cache, db_url)
        item = ctx.find_item("9")
        assert cache.hits == 2 and item.lead_units == units
        item.deadline = date(2030, 1, 1)
        assert ctx.find_item("9") is item  # looked up again: the same, changed instance
        commit(ctx, cache)
    with Session(engine) as session:
        row = session.exec(select(WorkItem).where(WorkItem.number == 9)).one()
        assert row.deadline == date(2030, 1, 1)
        ctx = context(session, cache, db_url)
        misses = cache.misses
        assert ctx.find_item("9").deadline == date(2030, 1, 1)  # the change bumped the version
        assert cache.misses == misses + 1


def test_what_a_failed_transaction_loaded_is_not_cached(engine: Engine, db_url: str) -> None:
    seed(engine)
    cache = ReferenceCache()
    with Session(engine) as session:
        ctx = context(session, cache, db_url)
        li = session.exec(select(Contact).where(Contact.name == "李四")).one()
        item = ctx.find_item("9")
        session.add(Assignment(item_id=item.id or 0, contact_id=li.id or 0))
        ctx.contact = li
        assert ctx.is_assigned(item)  # its own, uncommitted assignment
        session.rollback()  # the handler failed: nothing is stored
    with Session(engine) as session:
        ctx = context(session, cache, db_url)
        ctx.contact = session.exec(select(Contact).where(Contact.name == "李四")).one()
        assert not ctx.is_assigned(ctx.find_item("9"))


def test_a_counter_that_went_down_empties_the_cache() -> None:
    cache = ReferenceCache()
    cache.seen(7)
    cache.store({"k": (7, "old")})
    assert cache.lookup("k", 7) == "old"
    cache.seen(3)  # a restored backup, or the row made anew
    cache.seen(7)  # ... climbing back to where the old entry was read
    assert cache.lookup("k", 7) is MISSING


def test_a_newer_version_drops_every_older_entry() -> None:
    cache = ReferenceCache()
    cache.seen(7)
    cache.store({"a": (7, "a"), "b": (7, "b")})
    cache.seen(8)  # a change to a cached table: nothing read before it can be looked up again
    assert len(cache) == 0
    cache.store({"c": (7, "stale"), "d": (8, "d")})  # a transaction still at 7 commits late
    assert len(cache) == 1
    assert cache.lookup("d", 8) == "d"
    assert cache.lookup("c", 7) is MISSING


def test_the_cache_keeps_at_most_its_bound_the_oldest_going_first() -> None:
    cache = ReferenceCache(max_entries=3)
    cache.seen(1)
    for n in range(5):
        cache.store({("sender", n): (1, n)})
    assert len(cache) == 3
    assert [cache.lookup(("sender", n), 1) for n in range(5)] == [MISSING, MISSING, 2, 3, 4]
    cache.store({("sender", 2): (1, 2)})  # stored again: now the newest
    cache.store({("sender", 5): (1, 5), ("sender", 6): (1, 6)})
    assert len(cache) == 3
    assert [cache.lookup(("sender", n), 1) for n in (2, 3, 4, 5, 6)] == [2, MISSING, MISSING, 5, 6]


def test_strangers_do_not_grow_the_cache_past_its_bound(core: ChatCore) -> None:
    # Anyone may write to a Telegram bot: each stranger is a key of the cache.
    core.cache = ReferenceCache(max_entries=20)
    for stranger in range(500_000, 500_060):
        assert "已记录" not in say(core, stranger, "9 60%")
    assert len(core.cache) == 20
    assert "已记录 第9项" in say(core, ZHANG, "9 60%")
    assert len(core.cache) == 20
    assert "已记录 第9项" in say(core, ZHANG, "9 70%")
    assert core.cache.hits >= 3  # the known sender is served from it all the same


def test_a_change_elsewhere_leaves_only_entries_of_the_new_version(
    core: ChatCore, engine: Engine
) -> None:
    assert "已记录 第9项" in say(core, ZHANG, "9 60%")
    for stranger in range(500_000, 500_010):
        say(core, stranger, "9 60%")
    before = len(core.cache)
    assert before >= 10
    other = other_process(engine)
    with other.begin() as conn:  # `duban assign` in another shell, say
        conn.exec_driver_sql("UPDATE plan SET title = title")
    other.dispose()
    assert "已记录 第9项" in say(core, ZHANG, "9 70%")
    assert 0 < len(core.cache) < before  # only what this update read at the new version
    assert "已记录 第9项" in say(core, ZHANG, "9 80%")
    assert core.cache.hits >= 3


def test_postgresql_writers_do_not_deadlock_on_the_counter(pg_database_factory: Any) -> None:
    # An import touching the plan and then item 9, and a chat command changing item 9 in
    # between: with an immediate trigger the counter's row would close a lock cycle.
    url = pg_database_factory()
    engine = db.make_engine(url)
    db.upgrade(engine)
    seed(engine)
    before = version(engine)
    errors: list[BaseException] = []
    with engine.connect() as importer, engine.connect() as chat:
        importing = importer.begin()
        importer.exec_driver_sql("SET LOCAL lock_timeout = '5s'")  # a failure, never a hang
        importer.exec_driver_sql("UPDATE plan SET updated_at = updated_at")
        importer.exec_driver_sql("UPDATE plan SET title = title")  # twice: one bump per commit
        chatting = chat.begin()
        chat.exec_driver_sql("SET LOCAL lock_timeout = '5s'")

        def run(work: Callable[[], None]) -> threading.Thread:
            def guarded() -> None:
                try:
                    work()
                except BaseException as exc:
                    errors.append(exc)

            thread = threading.Thread(target=guarded)
            thread.start()
            return thread

        def command() -> None:
            chat.exec_driver_sql("UPDATE work_item SET deadline = '2023-12-31' WHERE number = 9")

        def reach_item_9() -> None:
            importer.exec_driver_sql("UPDATE work_item SET title = title WHERE number = 9")
            importing.commit()

        run(command).join(timeout=10)
        waiting = run(reach_item_9)
        time.sleep(0.3)  # the import now waits for the chat's row lock on item 9
        if not errors:
            chatting.commit()
        waiting.join(timeout=10)
    assert errors == []
    assert version(engine) == before + 2  # each transaction bumped it once
    engine.dispose()


def test_without_the_counter_row_nothing_is_cached(core: ChatCore, engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM cache_version"))
    assert "已记录 第9项" in say(core, ZHANG, "9 60%")
    assert "已记录 第9项" in say(core, ZHANG, "9 70%")
    assert core.cache.hits == 0


def test_an_attached_copy_is_the_sessions_own_loaded_row(engine: Engine) -> None:
    """`attach` hands a session its own instance of a cached row, as if loaded: no query, no
    pending change, JSON lists not shared with the cache; a change to it is flushed; the
    instance the session holds already is handed back as it is."""
    seed(engine)
    with Session(engine) as session:
        loaded = session.exec(select(WorkItem).where(WorkItem.number == 9)).one()
        loaded.lead_units = ["基础教育科"]
        session.commit()
        cached = detached_copy(loaded)
    units, title = list(cached.lead_units), cached.title
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        with Session(engine) as session:
            mine = attach(session, cached)
            assert mine is not None and mine is not cached
            assert mine in session and not session.dirty and not session.new
            assert attach(session, cached) is mine
            assert (mine.id, mine.title, mine.lead_units) == (cached.id, title, units)
            assert not statements  # attached without a query
            mine.lead_units.append("新单位")
            assert cached.lead_units == units  # the cache's list is not the session's
            mine.title = "改过的标题"
            assert list(session.dirty) == [mine] and cached.title == title
            session.commit()
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    with Session(engine) as session:
        again = session.get(WorkItem, cached.id)
        assert again is not None and again.title == "改过的标题"
