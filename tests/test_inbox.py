"""The inbox: stored before acknowledged, one row per (platform, key), handled once, pruned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot import inbox
from bot.inbox import Received
from bot.models import InboxEntry

NOW = datetime(2023, 6, 1, 2, 0, tzinfo=UTC)


def _rows(engine: Engine) -> list[InboxEntry]:
    with Session(engine) as session:
        return list(session.exec(select(InboxEntry).order_by(InboxEntry.id)))  # type: ignore[arg-type]


def test_store_keeps_one_row_per_key_and_says_which_are_new(engine: Engine) -> None:
    first = [Received("1", "42", '{"update_id": 1}'), Received("2", "43", '{"update_id": 2}')]
    assert inbox.store(engine, "telegram", first, NOW) == [True, True]
    again = [Received("2", "43", '{"update_id": 2}'), Received("3", "42", '{"update_id": 3}')]
    assert inbox.store(engine, "telegram", again, NOW) == [False, True]
    # the same key on another platform is another update
    assert inbox.store(engine, "wecom", [Received("1", "u1", "<xml/>")], NOW) == [True]
    rows = _rows(engine)
    assert [(r.platform, r.update_key) for r in rows] == [
        ("telegram", "1"),
        ("telegram", "2"),
        ("telegram", "3"),
        ("wecom", "1"),
    ]
    assert rows[0].payload == '{"update_id": 1}' and rows[0].chat_key == "42"


def test_mark_handled_once_then_pending_lists_the_rest_in_order(engine: Engine) -> None:
    inbox.store(
        engine,
        "telegram",
        [Received(str(n), "42", f'{{"update_id": {n}}}') for n in (1, 2, 3)],
        NOW,
    )
    with Session(engine) as session:
        fresh, _ = inbox.mark_handled(session.connection(), "telegram", "2", "42", NOW)
        again, version = inbox.mark_handled(session.connection(), "telegram", "2", "42", NOW)
        session.commit()
    assert fresh and not again and version is None
    assert [e.update_key for e in inbox.pending(engine, "telegram")] == ["1", "3"]
    assert inbox.pending(engine, "wecom") == []


def test_an_event_no_channel_stored_is_stored_handled_and_deduplicated(engine: Engine) -> None:
    with Session(engine) as session:
        assert inbox.mark_handled(session.connection(), "console", "c-1", "张三", NOW)[0]
        assert not inbox.mark_handled(session.connection(), "console", "c-1", "张三", NOW)[0]
        session.commit()
    (row,) = _rows(engine)
    assert (row.platform, row.update_key, row.handled_at) == ("console", "c-1", NOW)


def test_a_rolled_back_handling_leaves_the_update_pending(engine: Engine) -> None:
    inbox.store(engine, "wecom", [Received("m1", "u1", "<xml/>")], NOW)
    with Session(engine) as session:
        assert inbox.mark_handled(session.connection(), "wecom", "m1", "u1", NOW)[0]
        session.rollback()  # the handler's transaction failed: nothing happened
    assert [e.update_key for e in inbox.pending(engine, "wecom")] == ["m1"]


def test_prune_deletes_only_handled_rows_past_retention(engine: Engine) -> None:
    inbox.store(engine, "telegram", [Received(str(n), "42", "{}") for n in (1, 2, 3)], NOW)
    with Session(engine) as session:
        inbox.mark_handled(session.connection(), "telegram", "1", "42", NOW - timedelta(days=9))
        inbox.mark_handled(session.connection(), "telegram", "2", "42", NOW)
        session.commit()
    assert inbox.prune(engine, NOW - timedelta(days=7)) == 1
    assert [r.update_key for r in _rows(engine)] == ["2", "3"]  # "3" is not handled: kept
