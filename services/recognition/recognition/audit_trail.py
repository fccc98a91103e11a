"""Burnout-risk reads recorded before they are answered, with the rows of concurrent reads committed together.

Each read used to commit its own audit rows from a request thread. Under 20 concurrent clients those threads
queued on SQLite's one write lock, whose busy handler sleeps in growing steps (1, 2, 5 ... 100 ms), holding
request threads that every other route needed: at 1M posts a quarter of the reads waited over 50 ms. One
writer thread now takes all the rows waiting when it is free and commits them in one transaction (a group
commit); a read is still answered only once its own rows are committed, and refused (503) if they cannot be.
"""

import asyncio
import logging
import queue
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlmodel import Session

from recognition import privacy
from shared import db, members
from shared.errors import AnchorError

T = TypeVar("T")
log = logging.getLogger("anchor.recognition")


def rows(*, reader: str, endpoint: str, member_ids: Sequence[str], as_of: datetime | None,
         now: datetime) -> list[dict[str, Any]]:
    """The audit rows of one read: who read whose risk, when, through which endpoint, about which instant."""
    read_id = uuid.uuid4().hex
    return [{"read_id": read_id, "reader": reader, "member_id": m, "endpoint": endpoint, "read_at": now,
             "as_of": as_of} for m in member_ids]


class AuditTrail:
    """Commits audit rows on a thread of its own, every read waiting in one transaction. The thread goes from
    one transaction straight to the next without waiting for the event loop, which under load runs a turn only
    every few milliseconds: a read waits for at most the transaction in progress and its own."""

    def __init__(self, engine: Engine, *, wait_s: float = 30.0) -> None:
        self.engine = engine
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
        if audit_rows:
            await self._submit(_Item(rows=audit_rows), wait_s=self.wait_s)

    async def forget(self, deletions: Sequence[members.MemberDeleted], *, now: datetime) -> None:
        """Erases the audit rows of deleted members, after every read queued before it is written: a read stamped
        before the deletion but still waiting for its transaction would otherwise be written after the erase."""
        await self._submit(_Item(erase=(list(deletions), now)))

    async def _submit(self, item: "_Item", wait_s: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        item.loop, item.done = loop, loop.create_future()
        with self._lock:
            if self._closing:
                raise RuntimeError("the audit trail is closed")
            if self._thread is None or not self._thread.is_alive():  # a dead writer would leave reads waiting
                self._thread = threading.Thread(target=self._run, name="recognition-audit", daemon=True)
                self._thread.start()
            self._queue.put(item)
        assert item.done is not None
        await asyncio.wait_for(item.done, wait_s)

    def _run(self) -> None:
        held: list[_Item | None] = []  # an item taken from the queue that starts the next transaction
        while True:
            first = held.pop() if held else self._queue.get()
            if first is None:
                return
            batch = [first]
            while first.erase is None:  # every read that arrived during the last transaction, up to an erase
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None or more.erase is not None:
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
    loop: asyncio.AbstractEventLoop | None = None
    done: "asyncio.Future[None] | None" = None

    def settle(self, error: BaseException | None) -> None:
        assert self.loop is not None and self.done is not None
        try:
            self.loop.call_soon_threadsafe(_settle, self.done, error)
        except RuntimeError:  # that request's loop has closed: nobody is waiting
            pass


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
                  reader: str, endpoint: str, as_of: datetime | None) -> T:
    """Runs a burnout-risk read (`work` returns the answer and whose risk it discloses) in a worker thread, then
    records it in the audit trail. The answer is returned only once its audit rows are committed: a read that
    cannot be audited fails (503)."""
    result, member_ids = await asyncio.to_thread(_read, engine, work)
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
