"""Where consumed batches are decoded and written: a child process by default, or a thread of the service.

Why a process: writing a batch is pure-Python CPU work (decoding, SQLAlchemy, the ledger's credit rules). In
the serving process it held the interpreter lock in 5 ms slices, and a request gave the lock up at every
database call and waited a slice to get it back, so reads queued behind writes (issue 6's load: reads p99
2.6 s while ingesting, on two cores). In a child process the operating system shares the cores between the
writer and the requests instead, and no request waits for the writer's lock.
"""

import asyncio
import ctypes
import multiprocessing
import os
import signal
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from sqlalchemy import Engine

from recognition import service, watch
from recognition.config import RecognitionSettings
from shared import db, kafka

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _init_writer(parent: int, niceness: int) -> None:
    watch._init_worker(parent, niceness)
    # Ctrl-C in a terminal reaches the whole process group: the service stops the consumer and then this
    # process, instead of the writer dying mid-batch first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Linux: die with the service at once (the parent watch above takes up to a second), so a writer never
    # commits a batch for a service that is already gone.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def apply_in_worker(settings: RecognitionSettings, items: Sequence[tuple[str, bytes | None]]) -> service.Written:
    """`service.apply` in the writer process. A failure is classified here, where its chain of causes (the
    driver's error under SQLAlchemy's) still exists, and crosses back as a `kafka.HandlerFailure` of that kind:
    the consumer then retries a database outage without limit, exactly as it does in process."""
    try:
        engine, audit = (db.process_engine(url, pool_size=1, statement_timeout_s=settings.database.statement_timeout_s)
                         for url in (settings.database.url, settings.audit_url))
        return service.apply(engine, items, settings.ledger.zone, audit)
    except Exception as exc:
        # The same text the in-process path puts in logs and dead-letter headers (bound parameters hidden).
        raise kafka.HandlerFailure(kafka.classify(exc), f"{type(exc).__name__}: {exc}") from None


class Writer:
    """Applies consumed batches in one writer process (started on first use, replaced if it dies), or in a
    thread of the service when `settings.writer.process` is off. One batch at a time (the consumer loop's)."""

    def __init__(self, *, engine: Engine, settings: RecognitionSettings, audit_engine: Engine | None = None) -> None:
        self.engine = engine
        self.audit_engine = audit_engine or engine
        self.settings = settings
        self._pool: ProcessPoolExecutor | None = None
        self._closed = False

    def _start(self) -> ProcessPoolExecutor:
        try:
            return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_init_writer, initargs=(os.getpid(), self.settings.writer.niceness))
        except OSError as exc:  # no process can be started now (limits, memory): wait, as for an outage
            raise kafka.HandlerFailure(kafka.Failure.TRANSIENT, f"the writer process cannot start: {exc}") from exc

    async def apply(self, items: Sequence[tuple[str, bytes | None]]) -> service.Written:
        if self._closed:
            raise kafka.HandlerFailure(kafka.Failure.TRANSIENT, "the writer is closed (the service is stopping)")
        if not self.settings.writer.process:
            return await asyncio.to_thread(service.apply, self.engine, items, self.settings.ledger.zone,
                                           self.audit_engine)
        batch = list(items)
        # A writer that died between batches (the OOM killer, an operator) or during this one is replaced and
        # the batch tried once more in the new one: the dead writer committed none of the batch or all of it,
        # and the writes are idempotent. Dying twice on the same batch is no longer bad luck but something in
        # the batch: an unknown failure, which ends in isolation and the dead-letter topic instead of a loop.
        for attempt in (1, 2):
            pool = self._pool = self._pool or self._start()
            try:
                return await asyncio.get_running_loop().run_in_executor(pool, apply_in_worker, self.settings, batch)
            except BrokenProcessPool as exc:
                if self._pool is pool:
                    self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
                if attempt == 2:
                    raise kafka.HandlerFailure(kafka.Failure.UNKNOWN,
                                               "the writer process died twice during the batch") from exc
            except RuntimeError as exc:  # submitting to a pool shut down meanwhile (`close`)
                raise kafka.HandlerFailure(kafka.Failure.TRANSIENT, f"the writer is unavailable: {exc}") from exc
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Stops the writer process; later batches fail as transient (the consumer is stopping too)."""
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
