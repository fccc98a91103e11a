"""Reader processes: they answer the reads whose cost follows a member's history (a member's view, a thank-you
draft), so that this work runs on another core instead of in a worker thread of the serving process.

In a worker thread such a read is the serving process's own CPU work under the one interpreter lock: on two
cores the serving process used 1.2 of them and the machine stood a third idle, every request queued behind the
lock's hand-offs (after each database call a thread waits up to the 5 ms switch interval for the busy loop to
let go), and the member's view and thank-you draft were the slowest routes (issue 4; bench/README.md). A reader
process has its own interpreter and its own connection to the same database; the loop sends it the read's name
and arguments over a socket and awaits the answer, already encoded as JSON, without a thread of its own.

Only reads that need nothing of the serving process go here: the function is looked up by name (`_reads`), its
arguments are pickled, and it runs in one unit of work of its own. It is available only when another process
can open the database (PostgreSQL, or SQLite in a file; not SQLite in memory).
"""

import asyncio
import logging
import multiprocessing
import os
import pickle
import signal
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from prometheus_client import Counter, Histogram
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError

from shared import db, errors, gc_pauses

log = logging.getLogger("anchor.recognition.read_pool")

SECONDS = Histogram("anchor_recognition_reader_seconds",
                    "Time from sending a read to a reader process to its answer, queueing included", ["read"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10))
RESTARTS = Counter("anchor_recognition_reader_restarts_total",
                   "Reader processes replaced after they died or overran the read timeout")

FAILED_STARTS = 3
STAND_ASIDE_S = 60.0

# The answers a reader sends: ("ok", JSON bytes), ("error", AnchorError's fields), ("failed", exception type).
OK, ERROR, FAILED = "ok", "error", "failed"


def _reads() -> dict[str, Callable[..., BaseModel]]:
    """The reads a reader process may run, by name: imported in the reader, never in the request's path."""
    from recognition import service

    return {"member_view": service.member_view, "thank_you": service.thank_you}


def answer(engine: Any, reads: dict[str, Callable[..., BaseModel]], request: bytes) -> tuple[object, ...]:
    """One read in a reader process: its answer as a tuple the serving process turns into a response. Pure
    apart from the database, so it is tested without a process."""
    name, kwargs = pickle.loads(request)
    try:
        with db.unit_of_work(engine) as session:
            result = reads[name](session=session, **kwargs)
        return OK, result.model_dump_json().encode()
    except errors.AnchorError as error:
        return ERROR, error.status_code, error.code, error.message, error.field, error.headers
    except DBAPIError as error:
        if db.is_transient(error):
            return _unavailable(errors.database_unavailable(error), "5")
        return FAILED, type(error).__name__
    except Exception as error:  # the type only: a message may hold a member's id or a post's content
        return FAILED, type(error).__name__


def _serve(conn: Connection, url: str, pool_size: int, statement_timeout_s: float | None) -> None:
    """A reader process's life: answer requests until the serving process closes the socket (or dies)."""
    # Ctrl-C reaches the whole process group: the serving process stops the readers itself, after its requests.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc_pauses.settle()
    engine = db.process_engine(url, pool_size=pool_size, statement_timeout_s=statement_timeout_s)
    reads = _reads()
    while True:
        try:
            request = conn.recv_bytes()
            reply = answer(engine, reads, request)
            conn.send_bytes(pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))
        except (EOFError, OSError):  # the serving process closed its end, or is gone
            return


class _Answers(asyncio.Protocol):
    """The serving process's end of a reader's socket. Answers are handed to their requests in the loop's I/O
    callback, as they arrive: no task stands between the socket and the request, which under load would take
    its own turn of the busy loop (several milliseconds on the benchmark) before passing an answer on."""

    def __init__(self, on_lost: Callable[[], None]) -> None:
        # Futures of the reads sent and not yet answered, in the order sent: the reader answers in that order.
        self.pending: deque[asyncio.Future[tuple[object, ...]]] = deque()
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._on_lost = on_lost
        self.answered = 0  # answers received: a reader that ends before its first did not start
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (body := _take_frame(self._buffer)) is not None:
            if not self.pending:  # its read was already answered 503 (the pool closing or the reader retired)
                continue
            self.answered += 1
            answered = self.pending.popleft()
            if not answered.done():  # else its request gave up (timeout) and the reader is being replaced
                answered.set_result(pickle.loads(body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._on_lost()


@dataclass(eq=False)  # kept in a list, compared by identity
class _Reader:
    process: Any  # multiprocessing's SpawnProcess
    answers: _Answers


def _unavailable(message: str, retry_after: str = "1") -> tuple[object, ...]:
    return ERROR, 503, "unavailable", message, None, {"Retry-After": retry_after}


def _refused(message: str) -> errors.AnchorError:
    return errors.AnchorError(503, "unavailable", message, headers={"Retry-After": "5"})


class ReadPool:
    """`size` reader processes, started by `start` (or on the first read). Reads are sent to the reader with the
    fewest unanswered ones without waiting for earlier answers, so a reader always has its next read queued: when
    each waited for the loop to take the last answer and send the next, one reader stood idle 60% of the time
    under load."""

    def __init__(self, *, url: str, size: int, timeout_s: float, statement_timeout_s: float | None = None) -> None:
        self.url = url
        self.size = size
        self.timeout_s = timeout_s
        self.statement_timeout_s = statement_timeout_s
        self._readers: list[_Reader] = []
        self._starting: asyncio.Lock | None = None
        self._closed = False
        self._tasks: set[asyncio.Future[None]] = set()  # starts and replacements under way
        # Readers that could not start, or ended before their first answer, in a row: past FAILED_STARTS the pool
        # stands aside for STAND_ASIDE_S (`available` is false and the reads run in threads) instead of starting
        # an interpreter for every read while, say, the reader cannot import.
        self._failed_starts = 0
        self._aside_until = 0.0
        self._context = multiprocessing.get_context("spawn")

    @property
    def available(self) -> bool:
        """False while the pool stands aside after readers failed to start (see `__init__`)."""
        return time.monotonic() >= self._aside_until

    def _start_failed(self) -> None:
        self._failed_starts += 1
        if self._failed_starts >= FAILED_STARTS:
            self._failed_starts = 0
            self._aside_until = time.monotonic() + STAND_ASIDE_S
            log.warning("reader processes keep failing to start; reads run in threads for a while",
                        extra={"seconds": STAND_ASIDE_S})

    async def read(self, name: str, **kwargs: object) -> bytes:
        """The JSON answer of read `name`, or its AnchorError (503 when no reader could answer)."""
        if self._closed:
            raise _refused("the service is stopping; retry later")
        request = pickle.dumps((name, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        reader = await self._least_busy()
        answered: asyncio.Future[tuple[object, ...]] = asyncio.get_running_loop().create_future()
        reader.answers.pending.append(answered)
        assert reader.answers.transport is not None
        reader.answers.transport.write(_frame(request))
        started = time.perf_counter()
        try:
            # Shielded: a request cancelled meanwhile (its client went away) leaves the future to its reader.
            reply = await asyncio.wait_for(asyncio.shield(answered), self.timeout_s)
        except TimeoutError:
            log.warning("a reader process overran the read timeout; replaced", extra={"read": name})
            if self._drop(reader):
                await self._stop(reader, kill=True)
            reply = _unavailable("the read did not finish in time; retry later", "5")
        SECONDS.labels(name).observe(time.perf_counter() - started)
        if reply[0] == OK:
            return reply[1]  # type: ignore[return-value]
        if reply[0] == ERROR:
            status, code, message, field_name, headers = reply[1:]
            raise errors.AnchorError(status, code, message, field=field_name, headers=headers)  # type: ignore[arg-type]
        raise RuntimeError(f"read {name} failed in a reader process: {reply[1]}")

    def start(self) -> None:
        """Starts the readers in the background. Started on the first read instead, a reader took that read
        (and every read queued behind it) up to 4 s on a busy machine, the time to import the service."""
        self._tasks.add(task := asyncio.ensure_future(self._fill_quietly()))
        task.add_done_callback(self._tasks.discard)

    async def _fill_quietly(self) -> None:
        """`_fill` in the background: a reader that could not start is logged by `_spawn` and started again on
        the next read."""
        try:
            await self._fill()
        except errors.AnchorError:
            pass

    async def _fill(self) -> None:
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:  # one start at a time; those waiting find it done
            while len(self._readers) < self.size and not self._closed:
                reader = await self._spawn()
                if self._closed:  # closed while it started (the service stopped during its start-up)
                    await self._stop(reader)
                    return
                self._readers.append(reader)

    async def _least_busy(self) -> _Reader:
        if len(self._readers) < self.size:  # not started yet, or one to replace
            await self._fill()
        if not self._readers:
            raise _refused("the service is stopping; retry later")
        return min(self._readers, key=lambda r: len(r.answers.pending))

    async def _spawn(self) -> _Reader:
        ours, theirs = self._context.Pipe(duplex=True)  # a socket pair: asyncio can stream our end
        process = self._context.Process(target=_serve, name="recognition-reader", daemon=True,
                                        args=(theirs, self.url, 1, self.statement_timeout_s))
        sock: socket.socket | None = None
        try:
            # Spawning writes the arguments to a new interpreter and waits for it: off the loop.
            await asyncio.to_thread(process.start)
            sock = socket.socket(fileno=os.dup(ours.fileno()))
            lost: list[_Reader] = []  # the reader, once made: the protocol may report its end before that
            answers = _Answers(lambda: self._lost(lost[0]) if lost else None)
            await asyncio.get_running_loop().create_connection(lambda: answers, sock=sock)
            if answers.closed:  # it ended while being connected, before `_lost` could know it
                raise ConnectionError("the reader ended before it was connected")
        except BaseException as error:  # out of processes or descriptors, or cancelled: leave nothing behind
            if sock is not None:
                sock.close()
            if process.pid is not None:
                process.kill()
                await asyncio.to_thread(process.join, 2)
            if isinstance(error, Exception):
                log.warning("a reader process could not start", extra={"error": type(error).__name__})
                self._start_failed()
                raise _refused("the read could not be started; retry later") from error
            raise
        finally:
            theirs.close()
            ours.close()
        reader = _Reader(process, answers)
        lost.append(reader)
        return reader

    def _lost(self, reader: _Reader) -> None:
        """The reader's socket closed: it ended (killed, crashed) or is being stopped. Its waiting reads are
        answered 503 now; the process is reaped off the loop, and a new reader starts on the next read."""
        # Out of the pool at once, so no read is sent to it meanwhile; the process is reaped in a task.
        if self._drop(reader):
            log.warning("a reader process ended; replaced")
            if reader.answers.answered:
                self._failed_starts = 0
            else:
                self._start_failed()
            self._tasks.add(task := asyncio.ensure_future(self._stop(reader)))
            task.add_done_callback(self._tasks.discard)

    def _drop(self, reader: _Reader) -> bool:
        """Takes `reader` out of the pool and answers its waiting reads 503; False if it was already out."""
        if reader not in self._readers:
            return False
        self._readers.remove(reader)
        RESTARTS.inc()
        _fail(reader, _unavailable("the read could not be completed; retry"))
        return True

    async def _stop(self, reader: _Reader, *, kill: bool = False) -> None:
        """Closing its socket ends a reader once its read is done; one still busy after 2 s, or one that overran
        the timeout (`kill`), is killed."""
        if kill:
            reader.process.kill()
        if reader.answers.transport is not None:
            reader.answers.transport.close()
        await asyncio.to_thread(reader.process.join, 2)
        if reader.process.is_alive():
            reader.process.kill()
            await asyncio.to_thread(reader.process.join, 2)

    async def close(self) -> None:
        self._closed = True
        readers, self._readers = self._readers, []
        for reader in readers:
            _fail(reader, _unavailable("the service is stopping; retry later", "5"))
        # Every reader is stopped and every start or replacement awaited, whatever fails among them.
        await asyncio.gather(*(self._stop(reader) for reader in readers), *self._tasks, return_exceptions=True)

    @property
    def pids(self) -> list[int]:
        return [r.process.pid for r in self._readers]


def _frame(body: bytes) -> bytes:
    if len(body) > 0x7FFFFFFF:
        return struct.pack("!i", -1) + struct.pack("!Q", len(body)) + body
    return struct.pack("!i", len(body)) + body


def _take_frame(buffer: bytearray) -> bytes | None:
    """The first whole frame in `buffer`, removed from it; None until one has fully arrived."""
    if len(buffer) < 4:
        return None
    (size,) = struct.unpack_from("!i", buffer)
    start = 4
    if size == -1:
        if len(buffer) < 12:
            return None
        (size,) = struct.unpack_from("!Q", buffer, 4)
        start = 12
    if len(buffer) < start + size:
        return None
    body = bytes(buffer[start:start + size])
    del buffer[:start + size]
    return body


def _fail(reader: _Reader, reply: tuple[object, ...]) -> None:
    while reader.answers.pending:
        answered = reader.answers.pending.popleft()
        if not answered.done():
            answered.set_result(reply)

