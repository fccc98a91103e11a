import asyncio
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import ConsumerRecord
from sqlalchemy.exc import OperationalError, ProgrammingError

from shared.kafka import (
    Action,
    BatchOutcome,
    ConsumerLoop,
    Failure,
    PoisonMessage,
    _CommitOnRevoke,
    backoff,
    classify,
    decide,
)
from shared.settings import KafkaSettings


def test_poison_is_dead_lettered_at_once() -> None:
    assert decide(PoisonMessage("bad json"), 1, max_attempts=5) is Action.DEAD_LETTER


def test_infrastructure_failures_are_retried_without_limit() -> None:
    db_down = OperationalError("SELECT 1", {}, Exception("connection refused"))
    for attempts in (1, 10, 1000):
        assert decide(db_down, attempts, max_attempts=3) is Action.RETRY
        assert decide(KafkaConnectionError(), attempts, max_attempts=3) is Action.RETRY
        assert decide(ConnectionResetError(), attempts, max_attempts=3) is Action.RETRY
        assert decide(TimeoutError(), attempts, max_attempts=3) is Action.RETRY


def test_unknown_errors_get_limited_attempts() -> None:
    bug = ValueError("unexpected")
    assert decide(bug, 1, max_attempts=3) is Action.RETRY
    assert decide(bug, 2, max_attempts=3) is Action.RETRY
    assert decide(bug, 3, max_attempts=3) is Action.DEAD_LETTER
    schema = ProgrammingError("INSERT", {}, Exception("column does not exist"))
    assert decide(schema, 3, max_attempts=3) is Action.DEAD_LETTER


def test_backoff_grows_and_is_capped() -> None:
    assert [backoff(n, base=0.5, cap=4) for n in (1, 2, 3, 4, 5, 6)] == [0.5, 1, 2, 4, 4, 4]


def _wrapped(driver_error: Exception, cls: type = OperationalError, **kwargs: object) -> Exception:
    """How SQLAlchemy hands a driver error to the caller: wrapped, with the driver's error as the cause."""
    error = cls("INSERT INTO rec_posts ...", {}, driver_error, **kwargs)
    error.__cause__ = driver_error
    return error


def test_database_connectivity_errors_are_transient_and_never_dead_lettered() -> None:
    import sqlite3

    import psycopg
    from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    from shared import db

    transient = [
        _wrapped(psycopg.OperationalError("connection refused")),  # the server is down
        _wrapped(psycopg.OperationalError("server closed the connection unexpectedly")),  # it went down mid-batch
        _wrapped(psycopg.errors.AdminShutdown("terminating connection due to administrator command")),
        _wrapped(psycopg.InterfaceError("the connection is closed"), InterfaceError, connection_invalidated=True),
        _wrapped(Exception("connection reset"), DBAPIError, connection_invalidated=True),  # a DBAPI disconnect
        _wrapped(psycopg.errors.QueryCanceled("canceling statement due to statement timeout")),
        _wrapped(psycopg.errors.DeadlockDetected("deadlock detected")),
        _wrapped(sqlite3.OperationalError("database is locked")),
        PoolTimeout("QueuePool limit of size 5 overflow 5 reached"),
        psycopg.OperationalError("connection refused"),  # a driver error that escaped unwrapped
    ]
    for error in transient:
        assert db.is_transient(error), error
        assert classify(error) is Failure.TRANSIENT, error
        for attempts in (1, 3, 50, 10_000):
            assert decide(error, attempts, max_attempts=3) is Action.RETRY, error
    # Raised because of a transient error: still transient.
    try:
        try:
            raise transient[0]
        except OperationalError as exc:
            raise RuntimeError("could not store the batch") from exc
    except RuntimeError as wrapped:
        assert classify(wrapped) is Failure.TRANSIENT
    # Merely raised while one was being handled (no `from`): not enough.
    try:
        try:
            raise transient[0]
        except OperationalError:
            raise ValueError("a bug in the error handling") from None
    except ValueError as unrelated:
        assert classify(unrelated) is Failure.UNKNOWN

    assert db.is_timeout(transient[5]) and db.is_timeout(transient[7])
    assert not db.is_timeout(transient[0])
    # Data errors are the records' (or the code's) fault: limited attempts.
    duplicate = _wrapped(psycopg.errors.UniqueViolation("duplicate key"), IntegrityError)
    assert not db.is_transient(duplicate)
    assert decide(duplicate, 3, max_attempts=3) is Action.DEAD_LETTER


def test_a_record_kafka_refuses_for_its_size_is_not_retried_forever() -> None:
    from aiokafka.errors import MessageSizeTooLargeError, RequestTimedOutError

    assert classify(MessageSizeTooLargeError()) is Failure.UNKNOWN
    assert decide(MessageSizeTooLargeError(), 3, max_attempts=3) is Action.DEAD_LETTER
    assert decide(RequestTimedOutError(), 1000, max_attempts=3) is Action.RETRY


class _FakeConsumer:
    def __init__(self) -> None:
        self.seeks: list[tuple[TopicPartition, int]] = []
        self.commits: list[dict[TopicPartition, int]] = []

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))


class _FakeProducer:
    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.sent: list[tuple[str, bytes | None, list[tuple[str, bytes]]]] = []
        self.producer = self

    async def send(self, topic: str, *, value: bytes | None, key: bytes | None,
                   headers: list[tuple[str, bytes]]) -> "asyncio.Future[None]":
        self.sent.append((topic, value, headers))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def _loop(handler: Any, producer: _FakeProducer) -> ConsumerLoop:
    settings = KafkaSettings(max_attempts=3, retry_backoff_s=0.001, max_backoff_s=0.001)
    return ConsumerLoop(service="test", topic_names=["t"], group="g", settings=settings, handler=handler,
                        producer=producer)  # type: ignore[arg-type]


async def test_the_loop_waits_out_a_database_outage_without_dead_lettering_or_committing() -> None:
    tp = TopicPartition("t", 0)
    batch = {tp: [ConsumerRecord("t", 0, offset, 0, 0, b"k", b"v", None, 1, 1, []) for offset in (7, 8, 9)]}
    db_down = _wrapped(Exception("connection refused"))
    # A long outage, then one unknown error while the database comes back, then success.
    failures: list[Exception] = [db_down] * 20 + [ValueError("flaky")]
    calls: list[int] = []

    async def handler(records: list[ConsumerRecord]) -> BatchOutcome:
        calls.append(len(records))
        if failures:
            raise failures.pop(0)
        return BatchOutcome()

    producer, consumer = _FakeProducer(), _FakeConsumer()
    loop = _loop(handler, producer)
    loop._consumer = consumer  # type: ignore[assignment]
    for _ in range(21):
        await loop._process(consumer, batch)  # type: ignore[arg-type]
        assert not loop.healthy
        assert consumer.commits == []  # nothing committed past the unprocessed records
        assert consumer.seeks[-1] == (tp, 7)  # rewound to the batch's first record
        assert producer.sent == []  # nothing dead-lettered
    assert calls == [3] * 21  # never isolated record by record: the unknown error was the first of its kind
    await loop._process(consumer, batch)  # type: ignore[arg-type]
    assert loop.healthy
    assert consumer.commits == [{tp: 10}]
    assert producer.sent == []


async def test_the_loop_isolates_and_dead_letters_only_records_that_keep_failing() -> None:
    tp = TopicPartition("t", 0)
    batch = {tp: [ConsumerRecord("t", 0, offset, 0, 0, b"k", b"bad" if offset == 8 else b"ok", None, 1, 1, [])
                  for offset in (7, 8, 9)]}
    stored: list[int] = []

    async def handler(records: list[ConsumerRecord]) -> BatchOutcome:
        if any(r.value == b"bad" for r in records):
            raise ValueError("cannot handle this one")
        stored.extend(r.offset for r in records)
        return BatchOutcome()

    producer, consumer = _FakeProducer(), _FakeConsumer()
    loop = _loop(handler, producer)
    loop._consumer = consumer  # type: ignore[assignment]
    for _ in range(3):
        await loop._process(consumer, batch)  # type: ignore[arg-type]
    assert stored == [7, 9]
    assert [(topic, value) for topic, value, _ in producer.sent] == [("koc.deadletter.v1", b"bad")]
    headers = dict(producer.sent[0][2])
    assert headers["source_offset"] == b"8" and b"cannot handle this one" in headers["error"]
    assert consumer.commits == [{tp: 10}]


async def test_a_batch_that_straddles_a_rebalance_commits_nothing() -> None:
    tp = TopicPartition("t", 0)
    batch = {tp: [ConsumerRecord("t", 0, 1500, 0, 0, b"k", b"v", None, 1, 1, [])]}
    producer, consumer = _FakeProducer(), _FakeConsumer()

    async def handler(records: list[ConsumerRecord]) -> BatchOutcome:
        # Meanwhile the broker restarted empty and the member rejoined the group.
        await _CommitOnRevoke(loop).on_partitions_assigned([tp])
        return BatchOutcome()

    loop = _loop(handler, producer)
    loop._consumer = consumer  # type: ignore[assignment]
    await loop._process(consumer, batch)  # type: ignore[arg-type]
    assert loop.healthy
    assert consumer.commits == []  # offset 1501 would skip the new log's first 1500 records
