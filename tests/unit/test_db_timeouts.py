"""The statement timeout: a locked or stuck database fails a statement in bounded time, as a transient error."""

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, MetaData, String, Table, event, text
from sqlalchemy.exc import OperationalError

from shared import db
from shared.kafka import Action, decide


def test_sqlite_lock_waits_end_at_the_timeout_with_a_transient_error(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    meta = MetaData()
    table = Table("t", meta, Column("id", String, primary_key=True))
    engine = db.make_engine(f"sqlite:///{path}", statement_timeout_s=0.3)
    db.create_schema(engine, meta)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA busy_timeout")).scalar_one() == 300
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        started = time.monotonic()
        with pytest.raises(OperationalError) as caught, db.unit_of_work(engine) as session:
            db.insert_ignore(session, table, [{"id": "a"}], key=["id"])
        assert time.monotonic() - started < 5
        assert "locked" in str(caught.value)
        assert db.is_transient(caught.value) and db.is_timeout(caught.value)
        assert decide(caught.value, 1000, max_attempts=3) is Action.RETRY
        with engine.connect() as conn:  # readers do not wait (WAL)
            assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with db.unit_of_work(engine) as session:  # the lock gone, the same write succeeds
        db.insert_ignore(session, table, [{"id": "a"}], key=["id"])
    engine.dispose()


def test_postgresql_connections_carry_the_statement_timeout() -> None:
    seen: list[dict[str, Any]] = []

    def capture(engine: Any) -> None:
        @event.listens_for(engine, "do_connect")
        def _capture(dialect: Any, conn_rec: Any, cargs: Any, cparams: dict[str, Any]) -> None:
            seen.append(dict(cparams))
            raise ConnectionAbortedError  # no server needed: only the parameters matter

    for url, expected in (("postgresql://u@127.0.0.1:1/x", "-c statement_timeout=1500"),
                          ("postgresql://u@127.0.0.1:1/x?options=-c%20search_path%3Dx",
                           "-c search_path=x -c statement_timeout=1500")):
        engine = db.make_engine(url, statement_timeout_s=1.5)
        capture(engine)
        with pytest.raises(ConnectionAbortedError):
            engine.connect()
        assert seen[-1]["options"] == expected
        assert seen[-1]["connect_timeout"] == 5
    engine = db.make_engine("postgresql://u@127.0.0.1:1/x")  # no timeout asked (e.g. the snapshot worker)
    capture(engine)
    with pytest.raises(ConnectionAbortedError):
        engine.connect()
    assert "options" not in seen[-1]
