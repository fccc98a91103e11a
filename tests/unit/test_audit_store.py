"""The audit trail of wellbeing reads in a database of its own (SQLite's default): why, and that deletion reaches it."""

import asyncio
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlmodel import SQLModel, select

from recognition import audit_trail, models, writing
from recognition.config import RecognitionSettings, default_audit_url
from shared import db, members, topics
from shared.errors import AnchorError
from shared.settings import TokenSpec
from tests.recognition_timeline import Timeline, days_ago


@pytest.mark.parametrize(("url", "expected"), [
    ("sqlite:///./data/recognition.db", "sqlite:///data/recognition-audit.db"),
    ("sqlite:////var/lib/anchor/rec.sqlite3", "sqlite:////var/lib/anchor/rec-audit.sqlite3"),
    ("sqlite:///rec", "sqlite:///rec-audit"),
    ("sqlite://", "sqlite://"),  # in memory: nothing to put beside it
    ("sqlite:///:memory:", "sqlite:///:memory:"),
    ("postgresql://anchor:secret@db:5432/recognition", "postgresql://anchor:secret@db:5432/recognition"),
])
def test_the_default_audit_database(url: str, expected: str) -> None:
    assert default_audit_url(url) == expected
    settings = RecognitionSettings.model_validate({"database": {"url": url}})
    assert settings.audit_url == expected
    chosen = RecognitionSettings.model_validate({"database": {"url": url}, "audit": {"url": "sqlite:///a.db"}})
    assert chosen.audit_url == "sqlite:///a.db"


def _engines(tmp_path: Path, timeout_s: float) -> tuple[Engine, Engine]:
    ledger = db.make_engine(f"sqlite:///{tmp_path / 'r.db'}", statement_timeout_s=timeout_s)
    audit = db.make_engine(default_audit_url(f"sqlite:///{tmp_path / 'r.db'}"), statement_timeout_s=timeout_s)
    db.create_schema(ledger, models.LEDGER)
    db.create_schema(audit, models.AUDIT)
    return ledger, audit


async def _read_of(ledger: Engine, audit: Engine, member: str) -> str:
    trail = audit_trail.AuditTrail(audit)
    try:
        return await audit_trail.audited(trail, ledger, lambda session: ("risk", [member]), reader="dev",
                                         endpoint="member", as_of=None)
    finally:
        await trail.close()


def _audited_read(ledger: Engine, audit: Engine | None) -> tuple[str, float]:
    started = time.monotonic()
    answer = asyncio.run(_read_of(ledger, audit or ledger, "m1"))
    return answer, time.monotonic() - started


def test_an_audited_read_does_not_wait_for_the_ledgers_write_lock(tmp_path: Path) -> None:
    """SQLite has one write lock per file, and under load the consumer's batches hold the ledger's almost all the
    time. With the trail in the same file an audited read waited for it; with a file of its own it does not."""
    ledger, audit = _engines(tmp_path, timeout_s=1.0)
    db.create_schema(ledger, models.EVERYTHING)  # the same-file case below needs the trail's table there too
    writer = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # a consumer batch in the middle of its transaction
    try:
        answer, took = _audited_read(ledger, audit)
        assert answer == "risk" and took < 0.5
        with pytest.raises(AnchorError) as refused:  # same file: waits out the busy timeout, then 503
            _audited_read(ledger, None)
        assert refused.value.status_code == 503 and refused.value.code == "audit_unavailable"
    finally:
        writer.rollback()
        writer.close()
    with db.unit_of_work(audit) as session:
        assert [r.member_id for r in session.exec(select(models.WellbeingRead)).all()] == ["m1"]
    with db.unit_of_work(ledger) as session:
        assert session.exec(select(models.WellbeingRead)).all() == []


@pytest.mark.parametrize("process", [True, False], ids=["process", "thread"])
def test_a_consumed_deletion_erases_the_members_rows_in_the_audit_database(tmp_path: Path, process: bool) -> None:
    settings = RecognitionSettings.model_validate({"database": {"url": f"sqlite:///{tmp_path / 'r.db'}"},
                                                   "writer": {"process": process}})
    ledger, audit = _engines(tmp_path, timeout_s=5.0)
    for member in ("gone", "kept"):
        asyncio.run(_read_of(ledger, audit, member))
    t = Timeline(None, "del")
    t.post("gone", ["welcome"], at=days_ago(1))
    deletion = members.MemberDeleted(member_id="gone", requested_at=datetime.now(UTC), event_id="e1")
    items: list[tuple[str, bytes | None]] = [(topics.CLASSIFIED, e.model_dump_json().encode()) for e in t.events]
    items.append((topics.MEMBER_EVENTS, deletion.model_dump_json().encode()))
    writer = writing.Writer(engine=ledger, audit_engine=audit, settings=settings)
    try:
        written = asyncio.run(writer.apply(items))
    finally:
        writer.close()
    assert written.poison == [] and len(written.deletions) == 1
    with db.unit_of_work(audit) as session:
        assert [r.member_id for r in session.exec(select(models.WellbeingRead)).all()] == ["kept"]
    with db.unit_of_work(ledger) as session:
        assert session.exec(select(models.StoredPost)).all() == []


def test_every_table_of_recognition_is_in_the_ledger_or_the_audit_schema() -> None:
    ours = {name for name in SQLModel.metadata.tables if name.startswith("rec_")}
    ledger, audit = set(models.LEDGER.tables), set(models.AUDIT.tables)
    assert ledger | audit == ours and not ledger & audit and set(models.EVERYTHING.tables) == ours


def test_concurrent_reads_are_committed_together_and_each_answered_only_once_its_rows_are(tmp_path: Path) -> None:
    """A group commit: reads arriving while the trail's writer is busy wait for its next transaction, which holds
    all of them. Each answer comes back only after its own rows are committed."""
    ledger, audit = _engines(tmp_path, timeout_s=5.0)

    def committed(member: str) -> bool:
        with db.unit_of_work(audit) as session:
            return session.exec(select(models.WellbeingRead).where(models.WellbeingRead.member_id == member)).first() \
                is not None

    async def main() -> tuple[list[str], int]:
        trail = audit_trail.AuditTrail(audit)
        try:
            async def one(k: int) -> str:
                answer = await audit_trail.audited(trail, ledger, lambda session: (f"risk {k}", [f"m{k}", f"x{k}"]),
                                                   reader="dev", endpoint="list", as_of=None)
                assert committed(f"m{k}") and committed(f"x{k}")  # on the record before the caller sees it
                return answer
            answers = await asyncio.gather(*(one(k) for k in range(40)))
            return answers, trail.commits
        finally:
            await trail.close()

    answers, commits = asyncio.run(main())
    assert answers == [f"risk {k}" for k in range(40)]
    assert 1 <= commits < 40  # not one transaction per read
    with db.unit_of_work(audit) as session:
        found = session.exec(select(models.WellbeingRead)).all()
    assert len(found) == 80 and len({r.read_id for r in found}) == 40
    assert {r.member_id for r in found if r.read_id == next(x.read_id for x in found if x.member_id == "m7")} == \
        {"m7", "x7"}


def test_a_failed_group_commit_refuses_its_reads_and_the_trail_recovers(tmp_path: Path) -> None:
    ledger, audit = _engines(tmp_path, timeout_s=0.2)
    holder = sqlite3.connect(default_audit_url(f"sqlite:///{tmp_path / 'r.db'}").removeprefix("sqlite:///"),
                             isolation_level=None)

    async def main() -> tuple[list[object], str]:
        trail = audit_trail.AuditTrail(audit)
        try:
            holder.execute("BEGIN IMMEDIATE")  # another writer holds the trail's lock past the busy timeout
            refused = await asyncio.gather(*(audit_trail.audited(trail, ledger, lambda session: ("risk", ["m1"]),
                                                                 reader="dev", endpoint="member", as_of=None)
                                             for _ in range(5)), return_exceptions=True)
            holder.rollback()
            after = await audit_trail.audited(trail, ledger, lambda session: ("risk", ["m2"]), reader="dev",
                                              endpoint="member", as_of=None)
            return refused, after
        finally:
            await trail.close()

    try:
        refused, after = asyncio.run(main())
    finally:
        holder.close()
    assert all(isinstance(r, AnchorError) and r.status_code == 503 and r.code == "audit_unavailable"
               for r in refused)
    assert after == "risk"
    with db.unit_of_work(audit) as session:
        assert [r.member_id for r in session.exec(select(models.WellbeingRead)).all()] == ["m2"]


def test_a_deletion_erases_reads_still_waiting_for_their_transaction(tmp_path: Path) -> None:
    """A read of a member stamped before the member's deletion, but still waiting to be written (the writer is busy
    with an earlier transaction), is erased too: the erase goes through the same writer, after it."""
    ledger, audit = _engines(tmp_path, timeout_s=5.0)
    holder = sqlite3.connect(default_audit_url(f"sqlite:///{tmp_path / 'r.db'}").removeprefix("sqlite:///"),
                             isolation_level=None)

    async def main() -> None:
        trail = audit_trail.AuditTrail(audit)
        try:
            await audit_trail.audited(trail, ledger, lambda session: ("risk", ["kept"]), reader="dev",
                                      endpoint="member", as_of=None)
            holder.execute("BEGIN IMMEDIATE")  # the writer's next transaction waits for this lock
            reads = [asyncio.ensure_future(audit_trail.audited(trail, ledger, lambda session, m=m: ("risk", [m]),
                                                               reader="dev", endpoint="member", as_of=None))
                     for m in ("slow", "gone", "gone")]
            await asyncio.sleep(0.2)  # all three stamped and queued, the first transaction waiting for the lock
            erase = asyncio.ensure_future(trail.forget(
                [members.MemberDeleted(member_id="gone", requested_at=datetime.now(UTC), event_id="e")],
                now=datetime.now(UTC)))
            await asyncio.sleep(0.1)
            assert not erase.done()
            holder.rollback()
            await asyncio.gather(*reads, erase)
        finally:
            await trail.close()

    try:
        asyncio.run(main())
    finally:
        holder.close()
    with db.unit_of_work(audit) as session:
        assert sorted(r.member_id for r in session.exec(select(models.WellbeingRead)).all()) == ["kept", "slow"]


def test_a_row_that_can_never_be_written_refuses_only_its_own_read(tmp_path: Path) -> None:
    ledger, audit = _engines(tmp_path, timeout_s=5.0)
    holder = sqlite3.connect(default_audit_url(f"sqlite:///{tmp_path / 'r.db'}").removeprefix("sqlite:///"),
                             isolation_level=None)

    async def main() -> list[object]:
        trail = audit_trail.AuditTrail(audit)
        try:
            holder.execute("BEGIN IMMEDIATE")  # so that all reads queue up for one transaction
            reads = [asyncio.ensure_future(audit_trail.audited(
                trail, ledger, lambda session, k=k: ("risk", [None if k == 3 else f"m{k}"]),  # NOT NULL violated
                reader="dev", endpoint="member", as_of=None)) for k in range(6)]
            await asyncio.sleep(0.2)
            holder.rollback()
            return await asyncio.gather(*reads, return_exceptions=True)
        finally:
            await trail.close()

    try:
        answers = asyncio.run(main())
    finally:
        holder.close()
    assert [a if isinstance(a, str) else (a.status_code, a.code) for a in answers] == \
        ["risk", "risk", "risk", (503, "audit_unavailable"), "risk", "risk"]  # type: ignore[attr-defined]
    with db.unit_of_work(audit) as session:
        assert sorted(r.member_id for r in session.exec(select(models.WellbeingRead)).all()) == \
            ["m0", "m1", "m2", "m4", "m5"]


@pytest.mark.parametrize("at_once", [False, True], ids=["writer", "at-once"])
def test_a_closed_trail_refuses_reads_instead_of_leaving_them_waiting(tmp_path: Path, at_once: bool) -> None:
    ledger, audit = _engines(tmp_path, timeout_s=5.0)

    async def main() -> None:
        trail = audit_trail.AuditTrail(audit, at_once=audit_trail.at_once_engine(str(audit.url)) if at_once else None)
        await audit_trail.audited(trail, ledger, lambda session: ("risk", ["m1"]), reader="dev", endpoint="member",
                                  as_of=None)
        await trail.close()
        with pytest.raises(AnchorError) as refused:
            await asyncio.wait_for(audit_trail.audited(trail, ledger, lambda session: ("risk", ["m2"]),
                                                       reader="dev", endpoint="member", as_of=None), 5)
        assert refused.value.status_code == 503

    asyncio.run(main())


def test_token_names_longer_than_the_audit_column_are_refused_at_start() -> None:
    with pytest.raises(ValidationError):
        TokenSpec(name="x" * 129, scopes=["read"], token="secret")
    assert TokenSpec(name="x" * 128, scopes=["read"], token="secret").name == "x" * 128


def test_a_read_waits_for_its_rows_no_longer_than_the_trails_deadline(tmp_path: Path) -> None:
    """A writer that cannot finish (here the trail's lock is held well past the deadline, inside the busy timeout)
    refuses the reads waiting on it when their deadline passes, instead of holding them."""
    ledger, audit = _engines(tmp_path, timeout_s=10.0)
    holder = sqlite3.connect(default_audit_url(f"sqlite:///{tmp_path / 'r.db'}").removeprefix("sqlite:///"),
                             isolation_level=None)

    async def main() -> float:
        trail = audit_trail.AuditTrail(audit, wait_s=0.3)
        try:
            holder.execute("BEGIN IMMEDIATE")
            started = time.monotonic()
            with pytest.raises(AnchorError) as refused:
                await audit_trail.audited(trail, ledger, lambda session: ("risk", ["m1"]), reader="dev",
                                          endpoint="member", as_of=None)
            assert refused.value.status_code == 503 and refused.value.code == "audit_unavailable"
            return time.monotonic() - started
        finally:
            holder.rollback()
            await trail.close()

    try:
        took = asyncio.run(main())
    finally:
        holder.close()
    assert 0.3 <= took < 2.0


def _at_once(audit: Engine) -> Engine:
    return audit_trail.at_once_engine(audit.url.render_as_string(hide_password=False))


def _committed(audit: Engine) -> list[str]:
    with db.unit_of_work(audit) as session:
        return sorted(r.member_id for r in session.exec(select(models.WellbeingRead)).all())


def test_with_the_lock_free_a_read_is_committed_at_once_without_the_writer(tmp_path: Path) -> None:
    """Reads on the event loop commit their rows there (two turns of a busy loop fewer than waiting for the
    writer thread); the writer takes no transaction."""
    ledger, audit = _engines(tmp_path, timeout_s=5.0)

    async def main() -> int:
        trail = audit_trail.AuditTrail(audit, at_once=_at_once(audit))
        try:
            for k in range(3):
                assert await audit_trail.audited(trail, ledger, lambda session, k=k: (f"risk {k}", [f"m{k}"]),
                                                 reader="dev", endpoint="member", as_of=None,
                                                 on_loop=True, bounded=True) == f"risk {k}"
                assert _committed(audit) == [f"m{j}" for j in range(k + 1)]  # before the caller saw the answer
            return trail.commits
        finally:
            await trail.close()

    assert asyncio.run(main()) == 0


def test_with_the_lock_held_a_read_waits_for_the_writer_without_holding_the_loop(tmp_path: Path) -> None:
    """Another writer (a replica, a deletion) holds the audit file's lock: the read does not wait for it on the
    event loop (other requests go on) but on the writer thread, and is answered once its rows are committed."""
    ledger, audit = _engines(tmp_path, timeout_s=10.0)
    holder = sqlite3.connect(default_audit_url(f"sqlite:///{tmp_path / 'r.db'}").removeprefix("sqlite:///"),
                             isolation_level=None)

    async def main() -> int:
        trail = audit_trail.AuditTrail(audit, at_once=_at_once(audit))
        try:
            holder.execute("BEGIN IMMEDIATE")
            started = time.monotonic()
            read = asyncio.ensure_future(audit_trail.audited(trail, ledger, lambda session: ("risk", ["m1"]),
                                                             reader="dev", endpoint="member", as_of=None,
                                                             on_loop=True, bounded=True))
            await asyncio.sleep(0.3)
            assert time.monotonic() - started < 5  # the loop was not held for the 10 s busy timeout
            assert not read.done() and _committed(audit) == []
            holder.rollback()
            assert await asyncio.wait_for(read, 10) == "risk"
            assert _committed(audit) == ["m1"]
            return trail.commits
        finally:
            await trail.close()

    try:
        assert asyncio.run(main()) == 1  # written by the writer thread
    finally:
        holder.close()


def test_rows_committed_at_once_reach_the_database_file_through_the_writers_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commits made at once leave their pages in the write-ahead log (their engine never checkpoints, which would
    sync the disk on the event loop); every few of them the writer thread copies the log into the file."""
    monkeypatch.setattr(audit_trail, "_CHECKPOINT_EVERY", 3)
    ledger, audit = _engines(tmp_path, timeout_s=5.0)
    path = Path(default_audit_url(f"sqlite:///{tmp_path / 'r.db'}").removeprefix("sqlite:///"))
    with audit.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # the schema into the file

    def in_the_file() -> int:
        copy = tmp_path / "copy.db"  # the database file alone, without its write-ahead log
        copy.write_bytes(path.read_bytes())
        with sqlite3.connect(copy) as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM {models.WellbeingRead.__tablename__}").fetchone()[0])

    async def main() -> None:
        trail = audit_trail.AuditTrail(audit, at_once=_at_once(audit))
        try:
            for k in range(2):
                await audit_trail.audited(trail, ledger, lambda session, k=k: ("risk", [f"m{k}"]), reader="dev",
                                          endpoint="member", as_of=None, on_loop=True, bounded=True)
            assert in_the_file() == 0 and _committed(audit) == ["m0", "m1"]
            await audit_trail.audited(trail, ledger, lambda session: ("risk", ["m2"]), reader="dev",
                                      endpoint="member", as_of=None, on_loop=True, bounded=True)
        finally:
            await trail.close()  # after the queued checkpoint

    asyncio.run(main())
    assert in_the_file() == 3


@pytest.mark.parametrize(("url", "expected"), [
    ("sqlite:////var/lib/anchor/rec-audit.db", True),
    ("sqlite:///./data/recognition-audit.db", True),
    ("sqlite://", False),  # a second engine would open another, empty, database
    ("sqlite:///:memory:", False),
    ("sqlite:///file:audit?mode=memory&cache=shared&uri=true", False),
    ("postgresql://anchor@db/recognition", False),
])
def test_rows_are_committed_at_once_only_on_a_sqlite_file(url: str, expected: bool) -> None:
    assert db.on_disk_sqlite(url) is expected
