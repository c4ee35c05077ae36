"""A cache of reference rows for the chat core: senders, the current plan, items by number,
and who answers for which item.

Every progress reply needs the same few rows: who the sender is, the current plan, the item
the reply names, whether the sender answers for it. They change rarely (an admin assigns, a
plan is imported), yet loading them through the ORM cost more than all the writes of the
reply. The cache keeps copies of them tagged with the value of `cache_version` they were read
at; database triggers bump that counter on every change to contact, plan, section,
work_item and assignment, made by any process (the bot, `duban assign` in another shell, an
UPDATE typed at the psql prompt). An update reads the counter in its own transaction (with
its dedupe insert) and uses only entries read at that same value, so it never sees a row
older than one it could have read itself.

Cached objects are never handed out: each transaction gets its own copy added to its
session as a loaded row, without a query, so a handler may change it and the change is
flushed as usual. What a transaction loads on a miss is cached only once it has
committed.
"""

from __future__ import annotations

import copy
import functools
import itertools
import threading
from collections.abc import Hashable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import make_transient_to_detached
from sqlmodel import Session, SQLModel, col, select

from bot.models import CACHED_TABLES, CacheVersion

M = TypeVar("M", bound=SQLModel)

_VERSION = select(col(CacheVersion.version)).where(col(CacheVersion.id) == 1)
# The counter as a scalar subquery, for a statement to return alongside its own work.
CACHE_VERSION = _VERSION.scalar_subquery()
# Entries kept at most, the oldest stored going first beyond it: far above what a bureau's
# chat touches between two changes to the cached tables (a few per contact and per item), so
# only strangers' messages (each sender is a key) or a flood of distinct references reach it.
# An entry is 0.3 to 4 KB (a sender's entry holds copies of the contact and the plan).
MAX_ENTRIES = 10_000


def _trigger_names(table: str) -> list[str]:
    return [f"cache_version_{table}_{op}" for op in ("insert", "update", "delete")]


def create_triggers(connection: Connection, tables: tuple[str, ...] = CACHED_TABLES) -> None:
    """Triggers that bump cache_version on every change to the cached tables.

    PostgreSQL: deferred constraint triggers, so the counter's row is locked only while the
    writing transaction commits (an immediate trigger would hold it from the first write to
    the commit: a long import and a chat command touching the same rows in the other order
    would deadlock on it), and bumped once per transaction. SQLite has one writer at a time:
    plain row triggers.
    """
    bump = "UPDATE cache_version SET version = version + 1 WHERE id = 1"
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(
            "CREATE OR REPLACE FUNCTION bump_cache_version() RETURNS trigger AS $$ BEGIN "
            "IF current_setting('duban.cache_bumped', true) IS DISTINCT FROM 'on' THEN "
            f"{bump}; PERFORM set_config('duban.cache_bumped', 'on', true); "
            "END IF; RETURN NULL; END $$ LANGUAGE plpgsql"
        )
        for table in tables:
            connection.exec_driver_sql(
                f"CREATE CONSTRAINT TRIGGER cache_version_{table} "
                f"AFTER INSERT OR UPDATE OR DELETE ON {table} "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION bump_cache_version()"
            )
            connection.exec_driver_sql(  # constraint triggers cannot watch TRUNCATE
                f"CREATE TRIGGER cache_version_{table}_truncate AFTER TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION bump_cache_version()"
            )
        return
    for table in tables:
        for name, op in zip(_trigger_names(table), ("INSERT", "UPDATE", "DELETE"), strict=True):
            connection.exec_driver_sql(
                f"CREATE TRIGGER IF NOT EXISTS {name} AFTER {op} ON {table} BEGIN {bump}; END"
            )


def drop_triggers(connection: Connection, tables: tuple[str, ...] = CACHED_TABLES) -> None:
    """Remove what create_triggers made."""
    if connection.dialect.name == "postgresql":
        for table in tables:
            connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS cache_version_{table} ON {table}")
            connection.exec_driver_sql(
                f"DROP TRIGGER IF EXISTS cache_version_{table}_truncate ON {table}"
            )
        connection.exec_driver_sql("DROP FUNCTION IF EXISTS bump_cache_version()")
        return
    for table in tables:
        for name in _trigger_names(table):
            connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")


def current_version(session: Session) -> int | None:
    """The counter as this transaction sees it (None when its row is gone: no caching)."""
    value = session.connection().execute(_VERSION).scalar()
    return None if value is None else int(value)


@functools.cache
def _json_columns(cls: type[SQLModel]) -> tuple[str, ...]:
    """The columns of a model that hold lists or dicts (copied, never shared)."""
    return tuple(
        attr.key
        for attr in sa.inspect(cls).column_attrs
        if isinstance(attr.columns[0].type, sa.JSON)
    )


@functools.cache
def _column_keys(cls: type[SQLModel]) -> tuple[str, ...]:
    """The model's column attributes."""
    return tuple(attr.key for attr in sa.inspect(cls).column_attrs)


def _column_values(obj: SQLModel) -> dict[str, Any]:
    """The row's column values, JSON ones copied (read from the instance's dict, past the
    attribute machinery, where loaded: on the chat's path every one is)."""
    loaded = obj.__dict__
    values = {
        key: loaded[key] if key in loaded else getattr(obj, key) for key in _column_keys(type(obj))
    }
    for key in _json_columns(type(obj)):
        values[key] = copy.deepcopy(values[key])
    return values


def detached_row(cls: type[M], values: dict[str, Any]) -> M:
    """A row of cls with these column values (the primary key among them), as if loaded and
    then detached: in no session, with no pending changes.

    Built as SQLAlchemy builds a loaded row, without the model's validating __init__ (which
    cost several times the rest of a chat update's Python work): the values are the
    database's own, already valid.
    """
    row = sa.inspect(cls).class_manager.new_instance()
    object.__setattr__(row, "__pydantic_fields_set__", set(values))
    object.__setattr__(row, "__pydantic_extra__", None)
    object.__setattr__(row, "__pydantic_private__", None)
    row.__dict__.update(values)
    make_transient_to_detached(row)
    return row


def detached_copy(obj: M) -> M:
    """A copy of a loaded row that belongs to no session (what the cache keeps)."""
    return detached_row(type(obj), _column_values(obj))


def attach(session: Session, cached: M | None) -> M | None:
    """The session's own instance of a cached row, without a query.

    When the session holds the row already, that instance (with whatever the transaction did
    to it) is the answer; otherwise a copy is added as if loaded (its JSON lists and dicts
    copied, so that changing them never reaches the cached row): what `Session.merge(load=
    False)` did, without its walk over every attribute of every row (~0.03 ms a reply).
    """
    if cached is None:
        return None
    key = sa.inspect(cached).key
    held = session.identity_map.get(key)
    if held is not None:
        return held
    mine = detached_row(type(cached), _column_values(cached))
    session.add(mine)
    return mine


MISSING: Any = object()


class ReferenceCache:
    """Values tagged with the cache_version they were read at (thread-safe).

    A transaction looks values up at the version it read; what it loads on a miss is stored
    only after it commits (`store`): a transaction that changed a cached table and rolled
    back never leaves what it saw behind, and one that committed bumped the version past it.

    Only entries of the newest version seen are kept (an older one can never be looked up by
    a transaction that starts from now on), and at most `max_entries` of them, the oldest
    stored going first: what the cache holds is what was read since the last change, never
    everything ever read.
    """

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: dict[Hashable, tuple[int, Any]] = {}
        self._lock = threading.Lock()
        self._highest = -1
        self._max_entries = max(1, max_entries)
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def seen(self, version: int) -> None:
        """Note the version a transaction read. A newer one makes every entry stale (they were
        all read at older versions): they are dropped. A counter that went down (a restored
        backup, the row made anew) empties the cache too, and nothing is kept until it is
        past the highest version seen, so no old entry can match again."""
        if version == self._highest:
            return
        with self._lock:
            if version != self._highest:
                self._entries.clear()
            self._highest = max(self._highest, version)

    def lookup(self, key: Hashable, version: int) -> Any:
        """The value cached for key at exactly this version, else MISSING."""
        entry = self._entries.get(key)
        if entry is not None and entry[0] == version:
            self.hits += 1
            return entry[1]
        self.misses += 1
        return MISSING

    def store(self, entries: dict[Hashable, tuple[int, Any]]) -> None:
        """Keep values loaded by a transaction that committed (those read at a version older
        than the newest seen are stale already: left out); beyond `max_entries`, the oldest
        stored go."""
        if not entries:
            return
        with self._lock:
            kept = self._entries
            for key, entry in entries.items():
                if entry[0] < self._highest:
                    continue
                kept.pop(key, None)  # stored again: the newest
                kept[key] = entry
            excess = len(kept) - self._max_entries
            if excess > 0:
                for key in list(itertools.islice(kept, excess)):
                    del kept[key]

    def clear(self) -> None:
        """Forget everything (the next reads load afresh)."""
        with self._lock:
            self._entries.clear()
