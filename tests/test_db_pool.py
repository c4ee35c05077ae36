"""A connection goes back to the pool outside any transaction, even after a failed COMMIT."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from bot.db import make_engine


def test_a_failed_commit_leaves_nothing_open_in_the_pool(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'pool.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql(  # checked at COMMIT: the commit itself fails
            "CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER "
            "REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)"
        )
    with pytest.raises(sa.exc.IntegrityError), Session(engine) as session:
        session.connection().exec_driver_sql("INSERT INTO child (id, parent) VALUES (1, 99)")
        session.commit()
    with engine.connect() as conn:
        assert conn.connection.dbapi_connection.in_transaction is False  # type: ignore[union-attr]
        assert conn.exec_driver_sql("SELECT count(*) FROM child").scalar() == 0
    engine.dispose()
