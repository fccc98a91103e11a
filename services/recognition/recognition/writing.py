"""Where consumed batches are decoded and written: a child process by default, or a thread of the service.

Why a process: writing a batch is pure-Python CPU work (decoding, SQLAlchemy, the ledger's credit rules). In
the serving process it held the interpreter lock in 5 ms slices, and a request gave the lock up at every
database call and waited a slice to get it back, so reads queued behind writes (issue 6's load: reads p99
2.6 s while ingesting, on two cores). In a child process the operating system shares the cores between the
writer and the requests instead, and no request waits for the writer's lock.
"""

import asyncio
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

_engines: dict[str, Engine] = {}  # the writer process's own engine, per database URL


def _init_writer(parent: int, niceness: int) -> None:
    watch._init_worker(parent, niceness)
    # Ctrl-C in a terminal reaches the whole process group: the service stops the consumer and then this
    # process, instead of the writer dying mid-batch first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def apply_in_worker(settings: RecognitionSettings, items: Sequence[tuple[str, bytes | None]]) -> service.Written:
    """`service.apply` in the writer process. A failure is classified here, where its chain of causes (the
    driver's error under SQLAlchemy's) still exists, and crosses back as a `kafka.HandlerFailure` of that kind:
    the consumer then retries a database outage without limit, exactly as it does in process."""
    url = settings.database.url
    engine = _engines.get(url)
    if engine is None:
        engine = _engines[url] = db.make_engine(url, pool_size=1,
                                                statement_timeout_s=settings.database.statement_timeout_s)
    try:
        return service.apply(engine, items, settings.ledger.zone)
    except Exception as exc:
        # The engine hides bound parameters, so the message names no content or member id.
        raise kafka.HandlerFailure(kafka.classify(exc), repr(exc)) from None


class Writer:
    """Applies consumed batches in one writer process (started on first use, replaced if it dies), or in a
    thread of the service when `settings.writer.process` is off."""

    def __init__(self, *, engine: Engine, settings: RecognitionSettings) -> None:
        self.engine = engine
        self.settings = settings
        self._pool: ProcessPoolExecutor | None = None

    async def apply(self, items: Sequence[tuple[str, bytes | None]]) -> service.Written:
        if not self.settings.writer.process:
            return await asyncio.to_thread(service.apply, self.engine, items, self.settings.ledger.zone)
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_init_writer,
                                             initargs=(os.getpid(), self.settings.writer.niceness))
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, apply_in_worker, self.settings,
                                                                    list(items))
        except BrokenProcessPool as exc:
            # Killed mid-batch (the OOM killer, an operator): nothing of the batch was committed, or all of it
            # (idempotent either way). A fresh process takes the retry; a record that kills the writer every
            # time is not infrastructure, so this is an unknown failure and ends in isolation, not a loop.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            raise kafka.HandlerFailure(kafka.Failure.UNKNOWN, "the writer process died during the batch") from exc

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
