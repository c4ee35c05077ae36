"""Alembic environment: runs on the connection Duban hands it (see bot.db.upgrade)."""

from alembic import context
from sqlmodel import SQLModel

import bot.models  # noqa: F401  (registers the tables on SQLModel.metadata)

config = context.config
target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    """Run migrations on the connection from config.attributes (or a fresh one)."""
    connection = config.attributes.get("connection")
    if connection is None:
        from bot.db import make_engine
        from bot.settings import load_settings

        engine = config.attributes.get("engine") or make_engine(load_settings().database_url)
        with engine.begin() as conn:
            _run(conn)
    else:
        _run(connection)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
