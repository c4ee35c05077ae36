"""A cache of reference rows for the chat core: senders, the current plan, items by number,
and who answers for which item.

Every progress reply needs the same few rows: who the sender is, the current plan, the item
the reply names, whether the sender answers for it. They change rarely (an admin assigns, a
plan is imported), yet loading them through the ORM cost more than all the writes of the
reply. The cache keeps copies of them tagged with the value of `cache_version` they were read
at; database triggers bump that counter on every change to contact, plan, work_item and
assignment, made by any process (the bot, `duban assign` in another shell, an UPDATE typed at
the psql prompt). An update reads the counter in its own transaction (one indexed read) and
uses only entries read at that same value, so it never sees a row older than one it could
have read itself.

Cached objects are never handed out: each transaction gets its own copy merged into its
session without a query (`Session.merge(load=False)`), so a handler may change it and the
change is flushed as usual.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
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
MAX_ENTRIES = 100_000  # far above a bureau's contacts and items; a safety bound only


def _trigger_names(table: str) -> list[str]:
    return [f"cache_version_{table}_{op}" for op in ("insert", "update", "delete")]


def create_triggers(connection: Connection) -> None:
    """Triggers that bump cache_version on every change to the cached tables."""
    bump = "UPDATE cache_version SET version = version + 1 WHERE id = 1"
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(
            "CREATE OR REPLACE FUNCTION bump_cache_version() RETURNS trigger AS $$ "
            f"BEGIN {bump}; RETURN NULL; END $$ LANGUAGE plpgsql"
        )
        for table in CACHED_TABLES:
            connection.exec_driver_sql(
                f"CREATE TRIGGER cache_version_{table} AFTER INSERT OR UPDATE OR DELETE "
                f"OR TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION bump_cache_version()"
            )
        return
    for table in CACHED_TABLES:
        for name, op in zip(_trigger_names(table), ("INSERT", "UPDATE", "DELETE"), strict=True):
            connection.exec_driver_sql(
                f"CREATE TRIGGER IF NOT EXISTS {name} AFTER {op} ON {table} BEGIN {bump}; END"
            )


def drop_triggers(connection: Connection) -> None:
    """Remove what create_triggers made."""
    if connection.dialect.name == "postgresql":
        for table in CACHED_TABLES:
            connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS cache_version_{table} ON {table}")
        connection.exec_driver_sql("DROP FUNCTION IF EXISTS bump_cache_version()")
        return
    for table in CACHED_TABLES:
        for name in _trigger_names(table):
            connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")


def current_version(session: Session) -> int | None:
    """The counter as this transaction sees it (None when its row is gone: no caching)."""
    value = session.connection().execute(_VERSION).scalar()
    return None if value is None else int(value)


def detached_copy(obj: M) -> M:
    """A copy of a loaded row that belongs to no session (what the cache keeps)."""
    mapper = sa.inspect(type(obj))
    copy = type(obj)(**{attr.key: getattr(obj, attr.key) for attr in mapper.column_attrs})
    make_transient_to_detached(copy)
    return copy


class ReferenceCache:
    """Values tagged with the cache_version they were read at (thread-safe)."""

    def __init__(self) -> None:
        self._entries: dict[Hashable, tuple[int, Any]] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, version: int, load: Callable[[], Any]) -> Any:
        """The value for key as of version: cached, or loaded (and cached) now."""
        entry = self._entries.get(key)
        if entry is not None and entry[0] == version:
            self.hits += 1
            return entry[1]
        self.misses += 1
        value = load()
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (version, value)
        return value

    def clear(self) -> None:
        """Forget everything (the next reads load afresh)."""
        with self._lock:
            self._entries.clear()


def attach(session: Session, cached: M | None) -> M | None:
    """The session's own instance of a cached row, without a query."""
    if cached is None:
        return None
    return session.merge(cached, load=False)
