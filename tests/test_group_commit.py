"""Group commit on SQLite: the updates queued together are handled in one transaction, a
savepoint each, one COMMIT for all; a reply is handed out only after that COMMIT.

An update whose handler fails costs only itself; a failed COMMIT costs nothing (each update
is handled again on its own); a crash before the COMMIT loses nothing acknowledged and
answers nothing; the reference cache never keeps what an uncommitted transaction loaded.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bot import db, inbox
from bot.chat import ChatContext, ChatCore
from bot.clock import FakeClock
from bot.events import EventKind, IncomingMessage
from bot.inbox import Received
from bot.models import InboxEntry
from bot.settings import Settings
from handlers.registry import build_router
from tests.harness import LI, ZHANG, seed

NOW = datetime(2023, 6, 9, 3, 0, tzinfo=UTC)
ZHANG_NAME, LI_NAME = "张三", "李四"  # the cast's names for ZHANG and LI
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def sqlite_url(tmp_path: Path, _sqlite_template: Path) -> str:
    """A migrated SQLite file with the test cast (group commit is SQLite's)."""
    path = tmp_path / "duban.db"
    shutil.copy(_sqlite_template, path)
    url = f"sqlite:///{path}"
    engine = db.make_engine(url)
    seed(engine)
    engine.dispose()
    return url


def make_core(url: str) -> ChatCore:
    settings = Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]
    return ChatCore(db.make_engine(url), settings, build_router(), clock=FakeClock(NOW))


@pytest.fixture
def core(sqlite_url: str) -> Iterator[ChatCore]:
    chat = make_core(sqlite_url)
    yield chat
    chat.close()
    chat.engine.dispose()


def event(update: int, user: int, text: str) -> IncomingMessage:
    return IncomingMessage(
        platform="telegram",
        chat_id=str(user),
        sender_id=str(user),
        update_id=str(update),
        text=text,
        kind=EventKind.text,
    )


def stored(engine: Engine, *events: IncomingMessage) -> list[IncomingMessage]:
    """The events, stored in the inbox first (acknowledged, as a channel does)."""
    received = [Received(e.update_id, e.chat_id, "") for e in events]
    inbox.store(engine, "telegram", received, NOW)
    return list(events)


def rows(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.text(sql))]


def reports(engine: Engine) -> list[tuple[Any, ...]]:
    """(who, item number, percent) of each report, oldest first."""
    return rows(
        engine,
        "SELECT c.name, w.number, r.percent FROM report r "
        "JOIN contact c ON c.id = r.contact_id JOIN work_item w ON w.id = r.item_id "
        "ORDER BY r.id",
    )


def handled(engine: Engine) -> list[str]:
    return [r[0] for r in rows(engine, "SELECT update_key FROM inbox WHERE handled_at IS NOT NULL")]


def texts(outcome: tuple[bool, Any]) -> list[str]:
    ok, value = outcome
    assert ok, value
    outgoing, _noticed = value
    return [out.text for out in outgoing]


def on_commit(engine: Engine, what: Callable[[], None]) -> None:
    """Call `what` as a transaction is about to COMMIT (raising from it fails the COMMIT)."""

    def listener(_conn: Connection) -> None:
        what()

    sa.event.listen(engine, "commit", listener)


def test_a_failing_update_costs_only_itself(
    core: ChatCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = core._dispatch

    def dispatch(ctx: ChatContext) -> None:
        original(ctx)
        if ctx.event.update_id == "4":
            ctx.session.flush()  # its report is written ...
            raise RuntimeError("a bug in a handler")  # ... and then it fails

    monkeypatch.setattr(core, "_dispatch", dispatch)
    events = stored(
        core.engine,
        event(1, ZHANG, "9 60%"),
        event(2, ZHANG, "/nosuch"),  # a UserError
        event(3, LI, "22 50%"),
        event(4, ZHANG, "10 30%"),  # fails after writing
        event(5, LI, "22 55%"),
    )
    commits: list[int] = []
    on_commit(core.engine, lambda: commits.append(1))
    outcomes = core.process_group(events)
    assert len(commits) == 1  # one transaction for the five
    assert "60%" in texts(outcomes[0])[0]
    assert texts(outcomes[1]) == [core.t("chat.unknown_command", command="/nosuch")]
    assert "50%" in texts(outcomes[2])[0]
    assert texts(outcomes[3]) == [core.t("chat.internal_error")]
    assert "55%" in texts(outcomes[4])[0]
    # the failed update's report is gone, the others' are kept; all five are handled and
    # their answers (the error replies too) are in the outbox
    assert reports(core.engine) == [(ZHANG_NAME, 9, 60), (LI_NAME, 22, 50), (LI_NAME, 22, 55)]
    assert sorted(handled(core.engine)) == ["1", "2", "3", "4", "5"]
    keys = rows(core.engine, "SELECT dedupe_key FROM outbox ORDER BY id")
    assert [k[0] for k in keys] == [f"reply:telegram:{n}:0" for n in range(1, 6)]


def test_the_same_update_twice_in_one_group_is_handled_once(core: ChatCore) -> None:
    first, other = event(1, ZHANG, "9 60%"), event(2, LI, "22 50%")
    outcomes = core.process_group(stored(core.engine, first, other, first))
    assert outcomes[0][0] and outcomes[1][0]
    assert outcomes[2] == (True, None)  # a duplicate, as `process` says
    assert reports(core.engine) == [(ZHANG_NAME, 9, 60), (LI_NAME, 22, 50)]


def test_a_failed_commit_costs_nothing_each_update_is_handled_alone(core: ChatCore) -> None:
    attempts: list[int] = []

    def fail_the_first() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("disk I/O error")

    events = stored(core.engine, *(event(n, ZHANG, f"9 {n}%") for n in range(1, 6)))
    on_commit(core.engine, fail_the_first)
    outcomes = core.process_group(events)
    assert [texts(o)[0].count(f"{n}%") > 0 for n, o in enumerate(outcomes, 1)] == [True] * 5
    assert len(attempts) == 1 + 5  # the group's, then one each
    assert [r[2] for r in reports(core.engine)] == [1, 2, 3, 4, 5]  # each once


def test_a_failed_group_caches_nothing_and_each_update_fails_as_alone(
    core: ChatCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail() -> None:
        raise OSError("disk I/O error")

    def gone(_event: IncomingMessage) -> None:
        raise OSError("the database is gone")  # each alone fails as well

    events = stored(core.engine, event(1, ZHANG, "9 60%"), event(2, LI, "22 50%"))
    on_commit(core.engine, fail)
    monkeypatch.setattr(core, "process", gone)
    outcomes = core.process_group(events)
    assert [(ok, str(value)) for ok, value in outcomes] == [(False, "the database is gone")] * 2
    assert core.cache.misses > 0  # the group loaded the senders, their items ...
    assert core.cache._entries == {}  # ... and none of it is kept: it was never committed
    assert handled(core.engine) == [] and reports(core.engine) == []


async def test_through_the_lane_replies_come_only_after_the_one_commit(core: ChatCore) -> None:
    answered: list[str] = []
    at_commit: list[int] = []
    events = stored(core.engine, *(event(n, ZHANG, f"9 {n}%") for n in range(1, 9)))
    on_commit(core.engine, lambda: at_commit.append(len(answered)))

    async def handle(ev: IncomingMessage) -> None:
        result = await core.processed(ev)
        assert result is not None
        answered.append(ev.update_id)

    gate = threading.Event()
    blocker = asyncio.ensure_future(core._db.run(gate.wait, 5))
    await asyncio.sleep(0.05)  # the worker waits: the eight queue up behind it
    tasks = [asyncio.ensure_future(handle(ev)) for ev in events]
    await asyncio.sleep(0.05)
    gate.set()
    await blocker
    await asyncio.gather(*tasks)
    assert at_commit == [0]  # one COMMIT for the eight, and no answer before it
    assert sorted(answered, key=int) == [str(n) for n in range(1, 9)]
    assert [r[2] for r in reports(core.engine)] == list(range(1, 9))


CRASH_AT_COMMIT = textwrap.dedent(
    """
    import asyncio, os, sys, threading
    import sqlalchemy as sa
    from tests.test_group_commit import event, make_core, ZHANG

    core = make_core(sys.argv[1])

    def crash(_conn):
        print("commit", flush=True)
        os._exit(9)  # kill -9 as the COMMIT is about to go out

    sa.event.listen(core.engine, "commit", crash)

    async def main():
        gate = threading.Event()
        blocker = asyncio.ensure_future(core._db.run(gate.wait, 5))
        await asyncio.sleep(0.05)
        tasks = [asyncio.ensure_future(core.processed(event(n, ZHANG, f"9 {n}%")))
                 for n in range(1, 9)]
        await asyncio.sleep(0.05)
        gate.set()
        for done in asyncio.as_completed(tasks):
            await done
            print("answered", flush=True)

    asyncio.run(main())
    """
)


def test_a_crash_before_the_commit_loses_nothing_and_answered_nothing(sqlite_url: str) -> None:
    engine = db.make_engine(sqlite_url)
    events = stored(engine, *(event(n, ZHANG, f"9 {n}%") for n in range(1, 9)))
    done = subprocess.run(
        [sys.executable, "-c", CRASH_AT_COMMIT, sqlite_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 9, done.stderr
    assert done.stdout.split() == ["commit"]  # it got as far as the COMMIT, answering no one
    # nothing of the group is in the database; every update is still there to handle
    assert handled(engine) == [] and reports(engine) == []
    assert rows(engine, "SELECT count(*) FROM outbox") == [(0,)]
    assert [e.update_key for e in inbox.pending(engine, "telegram")] == [
        str(n) for n in range(1, 9)
    ]
    again = make_core(sqlite_url)  # the restart handles them, each once
    try:
        outcomes = again.process_group(events)
    finally:
        again.close()
        again.engine.dispose()
    assert all(ok and value is not None for ok, value in outcomes)
    assert [r[2] for r in reports(engine)] == list(range(1, 9))
    engine.dispose()


def test_alone_or_not_on_sqlite_an_update_gets_the_same_answer(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A group answers each update as `process` would have alone (a UserError included)."""
    texts_of: list[list[str]] = []
    for grouped in (False, True):
        path = tmp_path / f"copy-{grouped}.db"
        shutil.copy(sqlite_url.removeprefix("sqlite:///"), path)
        chat = make_core(f"sqlite:///{path}")
        try:
            events = stored(
                chat.engine,
                event(1, ZHANG, "9 60%"),
                event(2, LI, "9 50%"),  # not LI's item
                event(3, 9999, "9 50%"),  # a stranger
                event(4, ZHANG, "/nosuch"),
            )
            if grouped:
                outcomes = chat.process_group(events)
            else:
                outcomes = [(True, chat.process(ev)) for ev in events]
            texts_of.append([t for o in outcomes for t in texts(o)])
        finally:
            chat.close()
            chat.engine.dispose()
    assert texts_of[0] == texts_of[1]


def test_a_handler_whose_flush_fails_gets_its_error_the_others_their_answers(
    core: ChatCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed flush makes the session roll back the whole transaction (not only to the
    update's savepoint): the savepoint is gone, so the group is handled again one by one."""
    original = core._dispatch

    def dispatch(ctx: ChatContext) -> None:
        original(ctx)
        if ctx.event.update_id == "2":  # a row that breaks a unique constraint
            ctx.session.add(
                InboxEntry(
                    platform="telegram", update_key="1", chat_key="", payload="", received_at=NOW
                )
            )
            ctx.session.flush()

    monkeypatch.setattr(core, "_dispatch", dispatch)
    events = stored(
        core.engine, event(1, ZHANG, "9 60%"), event(2, LI, "22 50%"), event(3, LI, "22 51%")
    )
    outcomes = core.process_group(events)
    assert "60%" in texts(outcomes[0])[0]
    assert texts(outcomes[1]) == [core.t("chat.internal_error")]
    assert "51%" in texts(outcomes[2])[0]
    assert reports(core.engine) == [(ZHANG_NAME, 9, 60), (LI_NAME, 22, 51)]
    assert sorted(handled(core.engine)) == ["1", "2", "3"]
