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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlmodel import Session

from recognition import privacy
from shared import db
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

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._queue: queue.SimpleQueue[_Waiting | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.commits = 0  # transactions written, for tests and the benchmark's notes

    async def record(self, audit_rows: list[dict[str, Any]]) -> None:
        """Returns once these rows are committed; raises what the commit raised."""
        if not audit_rows:
            return
        self._start()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queue.put(_Waiting(audit_rows, loop, done))
        await done

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():  # a dead writer would leave reads waiting
                self._thread = threading.Thread(target=self._run, name="recognition-audit", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while True:  # everything that arrived during the last transaction
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # stop after this transaction
                    break
                batch.append(more)
            error: BaseException | None = None
            try:
                with db.unit_of_work(self.engine) as session:
                    privacy.record_reads(session, [r for w in batch for r in w.rows])
                self.commits += 1
            except BaseException as exc:  # every read in the transaction is refused
                error = exc
            for w in batch:
                try:
                    w.loop.call_soon_threadsafe(_settle, w.done, error)
                except RuntimeError:  # that request's loop has closed: nobody is waiting
                    pass
            if error is not None and not isinstance(error, Exception):
                raise error  # not a database error: this thread ends, and the next read starts another

    async def close(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(thread.join)


@dataclass(slots=True)
class _Waiting:
    rows: list[dict[str, Any]]
    loop: asyncio.AbstractEventLoop
    done: asyncio.Future[None]


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
