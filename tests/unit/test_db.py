from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import Column, MetaData, String, Table, select

from shared import db


def test_insert_ignore_returns_only_new_keys_and_survives_reopening(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    meta = MetaData()
    table = Table("t", meta, Column("id", String, primary_key=True), Column("at", db.UtcDateTime))
    engine = db.make_engine(url)
    db.create_schema(engine, meta)
    beijing = timezone(timedelta(hours=8))
    with db.unit_of_work(engine) as s:
        assert db.insert_ignore(s, table, [{"id": "a", "at": datetime(2026, 3, 1, 20, tzinfo=beijing)},
                                           {"id": "b", "at": datetime(2026, 3, 1, 12, tzinfo=UTC)}],
                                key=["id"], returning="id") == ["a", "b"]
    engine.dispose()
    engine = db.make_engine(url)
    with db.unit_of_work(engine) as s:
        assert db.insert_ignore(s, table, [{"id": "b", "at": datetime.now(UTC)}, {"id": "c", "at": datetime.now(UTC)}],
                                key=["id"], returning="id") == ["c"]
        stored = dict(s.execute(select(table.c.id, table.c.at)).all())
    # Stored as UTC and handed back timezone-aware.
    assert stored["a"] == datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert stored["a"].tzinfo is not None


def test_insert_ignore_handles_batches_beyond_the_parameter_limit(tmp_path: Path) -> None:
    meta = MetaData()
    table = Table("t", meta, Column("id", String, primary_key=True))
    engine = db.make_engine(f"sqlite:///{tmp_path / 'y.db'}")
    db.create_schema(engine, meta)
    with db.unit_of_work(engine) as s:
        rows = [{"id": str(i)} for i in range(5000)]
        assert len(db.insert_ignore(s, table, rows, key=["id"], returning="id")) == 5000


def test_unit_of_work_rolls_back_on_error(tmp_path: Path) -> None:
    meta = MetaData()
    table = Table("t", meta, Column("id", String, primary_key=True))
    engine = db.make_engine(f"sqlite:///{tmp_path / 'z.db'}")
    db.create_schema(engine, meta)
    try:
        with db.unit_of_work(engine) as s:
            db.insert_ignore(s, table, [{"id": "x"}], key=["id"])
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    with db.unit_of_work(engine) as s:
        assert s.execute(select(table.c.id)).all() == []
    assert db.ping(engine)
    assert not db.ping(db.make_engine("postgresql://nobody@127.0.0.1:1/none"))


def test_an_outdated_schema_is_refused_with_a_clear_reason(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pytest
    from sqlalchemy import Column, Integer, MetaData, String
    from sqlalchemy import Table as T

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old, new = MetaData(), MetaData()
    T("things", old, Column("id", Integer, primary_key=True))
    T("things", new, Column("id", Integer, primary_key=True), Column("name", String(10), nullable=False))
    engine = db.make_engine(url)
    db.create_schema(engine, old)
    with pytest.raises(db.SchemaOutdated, match="things lacks columns name"):
        db.create_schema(engine, new)
    db.create_schema(engine, old)  # the version that created it still runs


def test_additive_changes_are_migrated_in_place(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import Column, Index, Integer, MetaData, String, inspect, text
    from sqlalchemy import Table as T

    engine = db.make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    old, new = MetaData(), MetaData()
    T("things", old, Column("id", Integer, primary_key=True), Column("kind", String(10)))
    T("things", new, Column("id", Integer, primary_key=True), Column("kind", String(10)),
      Column("owner", String(10), nullable=True), Index("ix_things_owner", "owner", "kind"))
    db.create_schema(engine, old)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO things (id, kind) VALUES (1, 'a')"))
    db.create_schema(engine, new)
    db.create_schema(engine, new)  # and again: nothing left to do
    assert {c["name"] for c in inspect(engine).get_columns("things")} == {"id", "kind", "owner"}
    assert [i["name"] for i in inspect(engine).get_indexes("things")] == ["ix_things_owner"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id, kind, owner FROM things")).all() == [(1, "a", None)]
