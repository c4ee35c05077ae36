"""The dialect's own INSERT (the one with ON CONFLICT) for the database in use.

Its module is imported when first asked for: a bot on SQLite never loads SQLAlchemy's
PostgreSQL dialect (some 2 MB resident), nor one on PostgreSQL SQLite's beyond what the
engine loads itself.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any


def insert_for(dialect: str) -> Any:
    """`sqlalchemy.dialects.postgresql.insert` for "postgresql", the SQLite one otherwise."""
    module = "postgresql" if dialect == "postgresql" else "sqlite"
    return import_module(f"sqlalchemy.dialects.{module}").insert
