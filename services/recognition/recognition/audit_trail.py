"""Burnout-risk reads recorded before they are answered, with the rows of concurrent reads committed together.

Each read used to commit its own audit rows from a request thread. Under 20 concurrent clients those threads
queued on SQLite's one write lock, whose busy handler sleeps in growing steps (1, 2, 5 ... 100 ms), holding
request threads that every other route needed: at 1M posts a quarter of the reads waited over 50 ms. One
writer thread now takes all the rows waiting when it is free and commits them in one transaction (a group
commit); a read is still answered only once its own rows are committed, and refused (503) if they cannot be.
With reads on the event loop (SQLite's default), a read's rows are first tried right there, without waiting for
the lock (`AuditTrail._record_at_once`); the writer takes them only when another writer holds it.
"""

import asyncio
import functools
import logging
import queue
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Engine, event
from sqlmodel import Session

from recognition import privacy, reads
from shared import db, members
from shared.errors import AnchorError

T = TypeVar("T")
log = logging.getLogger("anchor.recognition")


def at_once_engine(url: str) -> Engine:
    """The engine of `AuditTrail.at_once` for a SQLite audit file: a write finding the lock held fails at once
    instead of waiting (busy timeout 0), and a commit never runs a checkpoint (`AuditTrail._checkpoint` does)."""
    engine = db.make_engine(url, statement_timeout_s=0.0)

    @event.listens_for(engine, "connect")
    def _no_automatic_checkpoint(dbapi_conn: Any, _: Any) -> None:
        dbapi_conn.execute("PRAGMA wal_autocheckpoint=0")

    return engine


def rows(*, reader: str, endpoint: str, member_ids: Sequence[str], as_of: datetime | None,
         now: datetime) -> list[dict[str, Any]]:
    """The audit rows of one read: who read whose risk, when, through which endpoint, about which instant."""
    read_id = uuid.uuid4().hex
    return [{"read_id": read_id, "reader": reader, "member_id": m, "endpoint": endpoint, "read_at": now,
             "as_of": as_of} for m in member_ids]


class AuditTrail:
    """Commits audit rows at once on the caller's thread when `at_once` is given and the lock is free, otherwise
    on a thread of its own, every read waiting in one transaction. The thread goes from one transaction straight
    to the next without waiting for the event loop, which under load runs a turn only every few milliseconds: a
    read waits for at most the transaction in progress and its own."""

    def __init__(self, engine: Engine, *, wait_s: float = 30.0, at_once: Engine | None = None) -> None:
        self.engine = engine
        # An engine on the same SQLite file whose writes never wait for the lock (busy timeout 0), to commit a
        # read's rows at once on the caller's thread (see `record`); None: every read goes through the writer.
        self.at_once = at_once
        self._since_checkpoint = 0
        # The longest a read waits for its rows: past it the read is refused (503), even if the writer is stuck
        # where no statement timeout reaches (a connection that hangs), which would otherwise hold every read.
        self.wait_s = wait_s
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closing = False
        self.commits = 0  # transactions written, for tests and the benchmark's notes

    async def record(self, audit_rows: list[dict[str, Any]]) -> None:
        """Returns once these rows are committed; raises what the commit raised, or TimeoutError after `wait_s`
        (the rows may still be written later: a refused read on the record is the safe side)."""
        if audit_rows and not self._record_at_once(audit_rows):
            await self._submit(_Item(rows=audit_rows), wait_s=self.wait_s)

    def _record_at_once(self, audit_rows: list[dict[str, Any]]) -> bool:
        """Commits the rows on this thread if nothing else holds the audit file's write lock right now (False
        otherwise: the writer thread, which waits for the lock, takes them).

        Why, on SQLite with reads on the event loop: handing the rows to the writer thread and waiting for its
        answer costs the read two more turns of a busy loop, each as long as every other request ready in it
        (at 20 clients the audited reads took 3-5 times as long as the others). A commit here costs a fraction
        of a millisecond: WAL with synchronous=NORMAL does not sync on commit, and the checkpoints that do sync
        are left to the writer thread. The lock is free unless another replica or a deletion is writing."""
        if self.at_once is None:
            return False
        with self._lock:
            if self._closing:
                raise RuntimeError("the audit trail is closed")
        try:
            with db.unit_of_work(self.at_once) as session:
                privacy.record_reads(session, audit_rows)
        except Exception as exc:
            if db.is_transient(exc):  # the lock is held: wait for it on the writer thread instead
                return False
            raise
        self._since_checkpoint += 1
        if self._since_checkpoint >= _CHECKPOINT_EVERY:
            self._since_checkpoint = 0
            self._enqueue(_Item(checkpoint=True))
        return True

    async def forget(self, deletions: Sequence[members.MemberDeleted], *, now: datetime) -> None:
        """Erases the audit rows of deleted members, after every read queued before it is written: a read stamped
        before the deletion but still waiting for its transaction would otherwise be written after the erase."""
        await self._submit(_Item(erase=(list(deletions), now)))

    async def _submit(self, item: "_Item", wait_s: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        item.loop, item.done = loop, loop.create_future()
        self._enqueue(item)
        assert item.done is not None
        await asyncio.wait_for(item.done, wait_s)

    def _enqueue(self, item: "_Item") -> None:
        with self._lock:
            if self._closing:
                raise RuntimeError("the audit trail is closed")
            if self._thread is None or not self._thread.is_alive():  # a dead writer would leave reads waiting
                self._thread = threading.Thread(target=self._run, name="recognition-audit", daemon=True)
                self._thread.start()
            self._queue.put(item)

    def _run(self) -> None:
        held: list[_Item | None] = []  # an item taken from the queue that starts the next transaction
        while True:
            first = held.pop() if held else self._queue.get()
            if first is None:
                return
            if first.checkpoint:
                self._checkpoint()
                continue
            batch = [first]
            while first.erase is None:  # every read that arrived during the last transaction, up to an erase
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None or more.erase is not None or more.checkpoint:
                    held.append(more)  # stop, or erase, after this transaction
                    break
                batch.append(more)
            try:
                outcomes = self._write(batch)
            except BaseException as exc:  # not a database error: refuse the batch, and let this thread end
                for item in batch:
                    item.settle(exc)
                raise
            for item, error in outcomes:
                item.settle(error)

    def _write(self, batch: list["_Item"]) -> list[tuple["_Item", BaseException | None]]:
        try:
            with db.unit_of_work(self.engine) as session:
                for item in batch:
                    if item.erase is not None:
                        deletions, now = item.erase
                        for deletion in deletions:
                            privacy.forget_reads(session, deletion.member_id, now=now)
                    else:
                        privacy.record_reads(session, item.rows)
            self.commits += 1
            return [(item, None) for item in batch]
        except Exception as exc:
            if len(batch) > 1 and not db.is_transient(exc):
                # A row that can never be written (say, a reader's name longer than the column) refuses its own
                # read, not every read that shared its transaction. A transient error (a lock held past the busy
                # timeout, a lost connection) would only repeat for each, so it refuses them all at once.
                return [pair for item in batch for pair in self._write([item])]
            return [(item, exc) for item in batch]

    def _checkpoint(self) -> None:
        """Copies the write-ahead log of the rows committed at once back into the database file (and syncs it)
        here, where waiting for the disk holds no request; PASSIVE: never waits for readers or writers."""
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except Exception as exc:  # the next one will do; a failed checkpoint loses nothing
            log.warning("audit trail checkpoint failed", extra={"error": type(exc).__name__})

    async def close(self) -> None:
        with self._lock:
            self._closing = True
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(thread.join)


@dataclass(slots=True)
class _Item:
    """A read's rows to write, or deleted members whose rows to erase; settled on the caller's loop."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    erase: tuple[list[members.MemberDeleted], datetime] | None = None
    checkpoint: bool = False  # nobody waits for it
    loop: asyncio.AbstractEventLoop | None = None
    done: "asyncio.Future[None] | None" = None

    def settle(self, error: BaseException | None) -> None:
        if self.loop is None or self.done is None:  # a checkpoint
            return
        try:
            self.loop.call_soon_threadsafe(_settle, self.done, error)
        except RuntimeError:  # that request's loop has closed: nobody is waiting
            pass


# Commits made at once between two checkpoints of the audit file (SQLite's own automatic checkpoint, every 1,000
# pages, is off on that engine: it would sync the disk on the request's thread).
_CHECKPOINT_EVERY = 200


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():  # the request was cancelled (its client went away); its rows are committed all the same
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


def _read(engine: Engine, work: Callable[[Session], tuple[T, list[str]]]) -> tuple[T, list[str]]:
    with db.unit_of_work(engine) as session:
        return work(session)


async def audited(trail: AuditTrail, engine: Engine, work: Callable[[Session], tuple[T, list[str]]], *,
                  reader: str, endpoint: str, as_of: datetime | None, on_loop: bool = False,
                  bounded: bool = False) -> T:
    """Runs a burnout-risk read (`work` returns the answer and whose risk it discloses; see `reads.run` for
    where), then records it in the audit trail. The answer is returned only once its audit rows are committed:
    a read that cannot be audited fails (503)."""
    result, member_ids = await reads.run(functools.partial(_read, engine, work), on_loop=on_loop, bounded=bounded)
    if member_ids:
        try:
            await trail.record(rows(reader=reader, endpoint=endpoint, member_ids=member_ids, as_of=as_of,
                                    now=datetime.now(UTC)))
        except Exception as exc:
            log.warning("wellbeing read refused: the audit trail could not be written",
                        extra={"error": type(exc).__name__})
            raise AnchorError(503, "audit_unavailable", "the read could not be recorded in the audit trail, so it "
                              "was refused; retry later", headers={"Retry-After": "5"}) from exc
    return result
