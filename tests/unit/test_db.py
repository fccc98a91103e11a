from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, select

from devstack import postgres
from shared import db
from tests.conftest import BACKENDS


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


@pytest.fixture(params=BACKENDS)
def any_url(request: pytest.FixtureRequest, tmp_path: Path, pg_cluster: postgres.Cluster | None) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'y.db'}"
    if pg_cluster is None:
        pytest.skip("PostgreSQL binaries not installed")
    return pg_cluster.create_database("insert_ignore")


def test_insert_ignore_pages_many_rows_and_returns_exactly_the_new_ones(any_url: str) -> None:
    # 5,000 rows of 3 columns is beyond SQLite's 999-parameter floor and spans several insertmanyvalues pages;
    # old keys are spread across the pages; one key repeats far from its first copy (another page) and one
    # right next to it (the same page, so the same multi-row VALUES).
    meta = MetaData()
    table = Table("t", meta, Column("id", String, primary_key=True), Column("n", Integer), Column("at", db.UtcDateTime))
    engine = db.make_engine(any_url)
    db.create_schema(engine, meta)
    now = datetime.now(UTC)
    with db.unit_of_work(engine) as s:
        db.insert_ignore(s, table, [{"id": str(i), "n": -1, "at": now} for i in range(0, 5000, 7)], key=["id"])
    rows = [{"id": str(i), "n": i, "at": now} for i in range(5000)] + [{"id": "1", "n": 99999, "at": now}]
    rows.insert(4, {"id": "3", "n": 77777, "at": now})
    with db.unit_of_work(engine) as s:
        new = db.insert_ignore(s, table, rows, key=["id"], returning="id")
        stored = dict(s.execute(select(table.c.id, table.c.n)).all())
    assert sorted(new, key=int) == [str(i) for i in range(5000) if i % 7]
    assert len(stored) == 5000
    assert stored["7"] == -1 and stored["1"] == 1 and stored["3"] == 3  # neither old rows nor first copies change
    # Without RETURNING the rows take another path (the driver's executemany on PostgreSQL).
    with db.unit_of_work(engine) as s:
        db.insert_ignore(s, table, [{"id": "x", "n": 1, "at": now}, {"id": "x", "n": 2, "at": now},
                                    {"id": "7", "n": 3, "at": now}], key=["id"])
        stored = dict(s.execute(select(table.c.id, table.c.n)).all())
    assert stored["x"] == 1 and stored["7"] == -1 and len(stored) == 5001
    engine.dispose()


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


def test_additive_changes_are_migrated_in_place(any_url: str) -> None:
    from sqlalchemy import Column, Index, Integer, MetaData, String, event, inspect, text
    from sqlalchemy import Table as T

    engine = db.make_engine(any_url)
    old, new = MetaData(), MetaData()
    T("things", old, Column("id", Integer, primary_key=True), Column("kind", String(10)))
    T("things", new, Column("id", Integer, primary_key=True), Column("kind", String(10)),
      Column("owner", String(10), nullable=True), Index("ix_things_owner", "owner", "kind"))
    db.create_schema(engine, old)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO things (id, kind) VALUES (1, 'a')"))
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda conn, cursor, sql, *rest: statements.append(sql))
    db.create_schema(engine, new)
    db.create_schema(engine, new)  # and again: nothing left to do
    built = [sql for sql in statements if "CREATE INDEX" in sql]
    # On PostgreSQL without blocking the writers to the table meanwhile.
    expected = "CREATE INDEX CONCURRENTLY" if engine.dialect.name == "postgresql" else "CREATE INDEX ix_things_owner"
    assert len(built) == 1 and built[0].startswith(expected), built
    assert {c["name"] for c in inspect(engine).get_columns("things")} == {"id", "kind", "owner"}
    assert [i["name"] for i in inspect(engine).get_indexes("things")] == ["ix_things_owner"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id, kind, owner FROM things")).all() == [(1, "a", None)]
    if engine.dialect.name == "postgresql":
        # A concurrent build that failed leaves an INVALID index of the name behind: the next start rebuilds it.
        with engine.begin() as conn:
            conn.execute(text("UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'ix_things_owner'::regclass"))
        db.create_schema(engine, new)
        with engine.connect() as conn:
            valid = conn.execute(text("SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_things_owner'::regclass"))
            assert valid.scalar_one() is True
    engine.dispose()


def test_an_index_added_to_a_large_postgresql_table_is_built_past_the_statement_timeout(
        pg_cluster: postgres.Cluster | None) -> None:
    from sqlalchemy import Column, Index, Integer, MetaData, String, inspect, text
    from sqlalchemy import Table as T

    if pg_cluster is None:
        pytest.skip("PostgreSQL binaries not installed")
    url = pg_cluster.create_database("big_index")
    old, new = MetaData(), MetaData()
    T("rows", old, Column("id", Integer, primary_key=True), Column("owner", String(40)))
    T("rows", new, Column("id", Integer, primary_key=True), Column("owner", String(40)),
      Index("ix_rows_owner", "owner"))
    loader = db.make_engine(url, statement_timeout_s=None)
    db.create_schema(loader, old)
    with loader.begin() as conn:
        conn.execute(text("INSERT INTO rows SELECT g, md5(g::text) FROM generate_series(1, 300000) g"))
    loader.dispose()
    # The service's engine: statements that take longer than 20 ms are cancelled. Building this index takes longer.
    engine = db.make_engine(url, statement_timeout_s=0.02)
    with pytest.raises(Exception, match="statement timeout"), engine.connect() as conn:
        conn.execute(text("SELECT count(*) FROM rows a JOIN rows b ON a.owner < b.owner"))
    db.create_schema(engine, new)
    with engine.connect() as conn:
        valid = conn.execute(text("SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_rows_owner'::regclass"))
        assert valid.scalar_one() is True
    assert [i["name"] for i in inspect(engine).get_indexes("rows")] == ["ix_rows_owner"]
    engine.dispose()
