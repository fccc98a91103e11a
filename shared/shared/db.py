"""Database helpers: an engine from a URL (SQLite by default, PostgreSQL supported), the unit of work,
and idempotent inserts that make at-least-once delivery count each record once."""

import asyncio
import logging
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import DateTime, Engine, Executable, Index, Table, TypeDecorator, create_engine, event, inspect, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Result, ScalarResult, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.schema import CreateIndex, DropIndex
from sqlmodel import Session, SQLModel


class UtcDateTime(TypeDecorator[datetime]):
    """Stores instants as UTC and returns them timezone-aware, identically on SQLite and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def as_utc(value: datetime | str | None) -> datetime | None:
    """Aggregates (MIN, MAX) bypass the column type: SQLite hands back naive text, PostgreSQL aware values."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def on_disk_sqlite(url: str) -> bool:
    """Whether a second engine, or another process, on `url` reaches the same SQLite database (not so for an
    in-memory one)."""
    parsed = make_url(url)
    name = parsed.database or ""
    return parsed.get_backend_name() == "sqlite" and name not in ("", ":memory:") and not name.startswith("file:")


def shared_by_processes(url: str) -> bool:
    """Whether another process can open the database at `url`: any but an in-memory SQLite one."""
    return make_url(url).get_backend_name() != "sqlite" or on_disk_sqlite(url)


def make_engine(url: str, *, pool_size: int = 5, echo: bool = False,
                statement_timeout_s: float | None = None) -> Engine:
    """`hide_parameters`: a database error's text (logged, and put in dead-letter headers) names the statement
    but never the bound values, which are post content and member ids.

    `statement_timeout_s` bounds how long one statement may run or wait for a lock, so a slow or locked database
    makes a request fail (503) and a consumer batch retry instead of hanging: PostgreSQL's `statement_timeout`;
    on SQLite, where readers never wait (WAL), the busy timeout of a writer waiting for the lock ("database is
    locked" after it). None: no limit on PostgreSQL, 30 s on SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        busy_ms = round((30.0 if statement_timeout_s is None else statement_timeout_s) * 1000)
        engine = create_engine(url, echo=echo, hide_parameters=True,
                               connect_args={"check_same_thread": False, "timeout": busy_ms / 1000})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _: Any) -> None:
            cursor = dbapi_conn.cursor()
            # WAL lets the HTTP readers run while the consumer writes; NORMAL sync is durable across
            # process crashes (the at-least-once unit), which is what the consumer commit relies on.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            cursor.close()

        return engine
    if parsed.drivername == "postgresql":
        url = str(parsed.set(drivername="postgresql+psycopg"))
    connect_args: dict[str, Any] = {"connect_timeout": 5}
    if statement_timeout_s is not None:
        # Appended to any `options` the URL gives (connect_args would otherwise replace them).
        given = parsed.query.get("options")
        given = " ".join(given) if isinstance(given, tuple) else given
        timeout = f"-c statement_timeout={round(statement_timeout_s * 1000)}"
        connect_args["options"] = f"{given} {timeout}" if given else timeout
    return create_engine(url, echo=echo, hide_parameters=True, pool_size=pool_size, max_overflow=pool_size,
                         pool_pre_ping=True, pool_recycle=1800, pool_timeout=30, connect_args=connect_args)


log = logging.getLogger("anchor.db")

# A service's own engine (requests and its consumer): a statement that has not finished after this long fails
# as transient (503 for a request, a retried batch for the consumer). Snapshot workers make their own engines.
DEFAULT_STATEMENT_TIMEOUT_S = 30.0


_process_engines: dict[str, Engine] = {}


def process_engine(url: str, *, pool_size: int, statement_timeout_s: float | None = None) -> Engine:
    """This process's engine for `url`, made on first use: a worker process (the snapshot worker, the writer)
    builds its own, since an engine's connections never cross a process boundary."""
    engine = _process_engines.get(url)
    if engine is None:
        engine = _process_engines[url] = make_engine(url, pool_size=pool_size, statement_timeout_s=statement_timeout_s)
    return engine


class Database:
    """The engine plus schema creation that keeps retrying in the background, so a service whose database is
    down at start-up still starts, answers /healthz and reports 503 on /readyz until the database is back."""

    def __init__(self, url: str, metadata: Any, *, pool_size: int = 5, echo: bool = False,
                 statement_timeout_s: float | None = DEFAULT_STATEMENT_TIMEOUT_S) -> None:
        self.engine = make_engine(url, pool_size=pool_size, echo=echo, statement_timeout_s=statement_timeout_s)
        self.metadata = metadata
        self.initialized = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._init(), name="database-init")

    async def _init(self) -> None:
        delay = 0.5
        while True:
            try:
                await asyncio.to_thread(create_schema, self.engine, self.metadata)
                self.initialized.set()
                return
            except SchemaOutdated as exc:
                log.error("database schema is outdated", extra={"error": str(exc)})
                delay = 15.0
                await asyncio.sleep(delay)
            except Exception as exc:
                log.warning("database not available, retrying", extra={"error": type(exc).__name__})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15.0)

    async def ready(self) -> bool:
        return self.initialized.is_set() and await asyncio.to_thread(ping, self.engine)

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self.engine.dispose()


class SchemaOutdated(RuntimeError):
    """The database has this service's tables but lacks a required column: it was created by an older version."""


def create_schema(engine: Engine, metadata: Any = None) -> None:
    """Creates missing tables and indexes, and adds missing nullable columns (the only migrations there are:
    additive ones, which older rows satisfy with NULL). A missing NOT NULL column has no value for the rows
    already there, so the service refuses to run rather than fail later, record by record."""
    metadata = metadata or SQLModel.metadata
    metadata.create_all(engine)
    inspector = inspect(engine)
    broken = _invalid_indexes(engine)
    for table in metadata.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        missing = [c for c in table.columns if c.name not in present]
        required = sorted(c.name for c in missing if not c.nullable)
        if required:
            raise SchemaOutdated(f"table {table.name} lacks columns {', '.join(required)}: the database was created "
                                 "by an older version of Anchor; migrate it, or (development data only) remove it")
        if missing:
            with engine.begin() as conn:
                for column in missing:
                    kind = column.type.compile(dialect=engine.dialect)
                    conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))
                    log.warning("added column", extra={"table": table.name, "column": column.name})
        # create_all leaves existing tables alone, so indexes added in a later version are created here.
        indexes = {i["name"] for i in inspector.get_indexes(table.name)} - broken
        for index in table.indexes:
            if index.name not in indexes:
                _create_index(engine, index, rebuild=index.name in broken)
                log.warning("created index", extra={"table": table.name, "index": index.name})
    refresh_statistics(engine)


def _invalid_indexes(engine: Engine) -> set[str]:
    """PostgreSQL: indexes left INVALID by a concurrent build that failed (a restart mid-build, say). They exist
    but are never used, and `IF NOT EXISTS` would keep them forever."""
    if engine.dialect.name != "postgresql":
        return set()
    with engine.connect() as conn:
        return set(conn.execute(text("SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                                     "WHERE NOT i.indisvalid")).scalars())


def _create_index(engine: Engine, index: Index, *, rebuild: bool) -> None:
    """An index added to a table that already exists. On PostgreSQL it is built CONCURRENTLY: the table may hold a
    community's whole history, and a plain CREATE INDEX blocks every write to it (the consumers) while it builds.
    CONCURRENTLY cannot run inside a transaction, hence the autocommit connection."""
    if engine.dialect.name != "postgresql":
        index.create(engine, checkfirst=True)
        return
    options = index.dialect_options["postgresql"]
    previous = options["concurrently"]
    options["concurrently"] = True  # for this statement only: create_all builds new tables' indexes in a transaction
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            # A build takes as long as the table is large, far beyond the requests' statement timeout; at start-up
            # the service waits for it (unready), and a timeout would only leave an invalid index to rebuild.
            conn.execute(text("SET statement_timeout = 0"))
            if rebuild:
                conn.execute(DropIndex(index, if_exists=True))
            conn.execute(CreateIndex(index, if_not_exists=True))
    finally:
        options["concurrently"] = previous


def refresh_statistics(engine: Engine) -> None:
    """SQLite has no autovacuum to gather planner statistics: without them it picks indexes by rule, and on a
    large table a poor choice costs a scan (a reply lookup walking a label's whole history, say). A sampled
    ANALYZE takes a fraction of a second at a million posts; PostgreSQL's autovacuum does this by itself."""
    if engine.dialect.name != "sqlite":
        return
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA analysis_limit=1000")
        conn.exec_driver_sql("ANALYZE")


@contextmanager
def unit_of_work(engine: Engine) -> Iterator[Session]:
    """The only place that commits: everything inside is one transaction, rolled back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def rows(session: Session, statement: Executable, params: Mapping[str, Any]) -> Result[Any]:
    """A prebuilt statement that selects columns, run on the session's connection (same transaction). Through
    `session.exec` each paid the ORM's execution layer (about 0.09 ms, a third of a one-member SQLite query), for
    no ORM objects; a member's view runs eight such statements."""
    return session.connection().execute(statement, params)


def scalars(session: Session, statement: Executable, params: Mapping[str, Any]) -> ScalarResult[Any]:
    """`rows` of a one-column statement, as values (what `session.exec` gives for such a select)."""
    return rows(session, statement, params).scalars()


def insert_for(session: Session) -> Any:
    """The `insert` construct of the session's dialect: ON CONFLICT clauses are dialect-specific in SQLAlchemy,
    and both dialects spell them the same way."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def insert_ignore(session: Session, table: Table, rows: Sequence[dict[str, Any]], *,
                  key: Sequence[str], returning: str | None = None) -> list[Any]:
    """INSERT rows, skipping those whose `key` already exists. Returns the `returning` column of inserted rows."""
    if not rows:
        return []
    # One statement with the rows as executemany parameters: SQLAlchemy compiles it once (cached) and pages
    # the rows into multi-row VALUES under each database's parameter limit ("insertmanyvalues"). Spelling the
    # rows out with `.values([...])` instead compiled a fresh statement per chunk, one bound parameter at a
    # time: two thirds of recognition's write path.
    stmt = insert_for(session)(table).on_conflict_do_nothing(index_elements=list(key))
    if returning is None:
        session.execute(stmt, list(rows))
        return []
    return list(session.execute(stmt.returning(table.c[returning]), list(rows)).scalars())


def ping(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error and its explicit causes (`raise ... from`): SQLAlchemy wraps the driver's error that way."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__


def is_transient(error: BaseException) -> bool:
    """A database failure that a later retry can succeed at: the server unreachable, restarting or gone (connect
    refused, connection dropped mid-transaction), a statement or lock timeout, a deadlock or serialization
    failure, SQLite's "database is locked", an exhausted connection pool. Also when such an error is the cause of
    the one raised. Everything else (constraint, programming, data errors) is not transient.

    Every SQLAlchemy OperationalError counts, including SQLite's (where a missing table is one too): a consumer
    then pauses on a broken schema instead of dead-lettering healthy records, and readiness shows it."""
    for exc in _chain(error):
        if isinstance(exc, OperationalError | DisconnectionError | PoolTimeout | sqlite3.OperationalError):
            return True
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            return True
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):  # a driver error left unwrapped
            return True
    return False


def is_timeout(error: BaseException) -> bool:
    """A statement cancelled by the statement timeout (PostgreSQL), or SQLite's lock wait that ran out."""
    for exc in _chain(error):
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            return True
        if isinstance(exc, psycopg.errors.QueryCanceled | psycopg.errors.LockNotAvailable):
            return True
    return False

