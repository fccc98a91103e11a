"""Kafka helpers: producer factory, topic creation, the retry-or-dead-letter decision and the consumer loop.

The loop follows aiokafka's manual-commit recipe: a fetched batch is handled (database commit inside the
handler), then `last.offset + 1` is committed per partition. A crash between the two redelivers the batch,
which the idempotent writes absorb: at-least-once delivery, exactly-once effects.

Failures are sorted by `classify`: poison is dead-lettered at once; infrastructure failures (database or broker
unreachable, slow, locked) are retried with backoff for as long as they last, pausing consumption and
committing nothing, never dead-lettering; anything else gets `max_attempts` tries before the batch is isolated
record by record and only the records that still fail are dead-lettered.
"""

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAlreadyExistsError,
)
from aiokafka.structs import ConsumerRecord

from shared import db, metrics, topics
from shared.settings import KafkaSettings

log = logging.getLogger("anchor.kafka")


class PoisonMessage(Exception):
    """A record that can never be processed (undecodable, invalid): dead-letter it, do not retry."""


class Failure(enum.Enum):
    POISON = "poison"  # the record itself is bad
    TRANSIENT = "transient"  # a dependency is down, slow or busy: waiting fixes it
    UNKNOWN = "unknown"  # a bug, or a record some code cannot handle: a few tries, then isolate


class Action(enum.Enum):
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"


class HandlerFailure(Exception):
    """A handler's failure that happened in another process, already classified there: the original exception
    and its chain of causes (what `classify` reads) stay in that process; the kind and a description cross."""

    def __init__(self, kind: "Failure", message: str) -> None:
        super().__init__(kind, message)  # as `args`, so the exception pickles
        self.kind = kind
        self.message = message

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.message}"


# Kafka refusing one record for its size is about that record, not the broker: retrying it forever would stall
# the partition, so it takes the unknown-error path (isolation, then the dead-letter topic).
_RECORD_KAFKA_ERRORS = (MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError)


def classify(error: BaseException) -> Failure:
    """What kind of failure a handler's exception is. Database connectivity errors (SQLAlchemy's
    OperationalError, a DBAPI disconnect, a statement timeout, SQLite's "database is locked", an exhausted pool)
    and broker errors are TRANSIENT however often they recur."""
    if isinstance(error, PoisonMessage):
        return Failure.POISON
    if isinstance(error, HandlerFailure):
        return error.kind
    if db.is_transient(error):
        return Failure.TRANSIENT
    if isinstance(error, _RECORD_KAFKA_ERRORS):
        return Failure.UNKNOWN
    if isinstance(error, KafkaError | ConnectionError | TimeoutError):
        return Failure.TRANSIENT
    return Failure.UNKNOWN


def decide(error: BaseException, attempts: int, *, max_attempts: int) -> Action:
    """Retry what a later attempt can fix; dead-letter what it cannot.

    `attempts` counts the failed attempts of errors that are not transient. Infrastructure failures (database or
    broker unreachable) are retried without limit: the consumer waits for them to come back rather than dropping
    or dead-lettering healthy records. Unknown errors get `max_attempts` tries before the record is given up to
    the dead-letter topic.
    """
    kind = classify(error)
    if kind is Failure.POISON:
        return Action.DEAD_LETTER
    if kind is Failure.TRANSIENT:
        return Action.RETRY
    return Action.RETRY if attempts < max_attempts else Action.DEAD_LETTER


def backoff(attempts: int, *, base: float, cap: float) -> float:
    return min(cap, base * (2 ** max(0, attempts - 1)))


def make_producer(settings: KafkaSettings, *, client_id: str) -> AIOKafkaProducer:
    # No idempotent producer: the embedded broker does not support it; duplicates are absorbed downstream.
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=settings.client_id or client_id,
        acks="all",
        linger_ms=settings.linger_ms,
        request_timeout_ms=settings.request_timeout_ms,
        max_request_size=8 * 1024 * 1024,
    )


class ManagedProducer:
    """A producer that keeps trying to connect in the background, so a service starts (and reports not ready)
    while the broker is down instead of crashing, and then watches the broker.

    `started` is set while the producer can publish: connected, and (with `create_topics`) the topics exist. The
    watch clears it while the broker is unreachable, so publishers take their fallback at once (ingest leaves
    records to its outbox, a deletion gets 503, the snapshot's alerts wait for the next one) instead of each
    waiting out the request timeout; aiokafka reconnects by itself when the broker is back. A broker that comes
    back empty (the embedded broker keeps everything in memory) gets its topics again before publishing
    resumes: a record sent to a missing topic makes Tansu create it with its default partition count, or fails.
    """

    def __init__(self, settings: KafkaSettings, *, client_id: str, create_topics: bool = False,
                 watch_interval_s: float = 2.0) -> None:
        self.settings = settings
        self.producer = make_producer(settings, client_id=client_id)
        self.create_topics = create_topics
        self.watch_interval_s = watch_interval_s
        self.started = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._connect(), name="producer-connect")

    async def _connect(self) -> None:
        attempts = 0
        while True:
            try:
                if self.create_topics:
                    await ensure_topics(self.settings.bootstrap_servers)
                await self.producer.start()
                self.started.set()
                break
            except Exception as exc:
                attempts += 1
                log.warning("producer could not connect, retrying", extra={"error": repr(exc)})
                await asyncio.sleep(backoff(attempts, base=self.settings.retry_backoff_s,
                                            cap=self.settings.max_backoff_s))
        while True:
            await asyncio.sleep(self.watch_interval_s)
            try:
                await self.check()
            except Exception as exc:
                log.warning("broker check failed", extra={"error": repr(exc)})

    async def check(self) -> bool:
        """One look at the broker: sets or clears `started`, recreating missing topics first when configured to.
        True when the producer can publish."""
        try:
            cluster = await asyncio.wait_for(self.producer.client.fetch_all_metadata(),
                                             self.settings.request_timeout_ms / 1000)
        except Exception as exc:
            if self.started.is_set():
                log.warning("broker unreachable; publishing paused", extra={"error": repr(exc)})
            self.started.clear()
            return False
        if self.create_topics:
            missing = sorted({spec.name for spec in topics.TOPICS} - cluster.topics())
            if missing:
                log.warning("topics missing (the broker lost its data?); creating them", extra={"topics": missing})
                try:
                    await ensure_topics(self.settings.bootstrap_servers)
                except Exception as exc:
                    log.warning("topic creation failed; publishing paused", extra={"error": repr(exc)})
                    self.started.clear()
                    return False
        if not self.started.is_set():
            log.info("broker reachable; publishing resumed")
            self.started.set()
        return True

    async def ready(self) -> bool:
        return self.started.is_set() and await broker_reachable(self.producer)

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        try:
            await self.producer.stop()
        except Exception as exc:
            log.warning("producer stop failed", extra={"error": repr(exc)})


async def ensure_topics(bootstrap_servers: str, specs: Sequence[topics.TopicSpec] = topics.TOPICS) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(s.name, s.partitions, 1, topic_configs={"retention.ms": str(s.retention_ms)})
                   for s in specs if s.name not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


async def broker_reachable(producer: AIOKafkaProducer, wait_s: float = 2.0) -> bool:
    try:
        await asyncio.wait_for(producer.client.fetch_all_metadata(), wait_s)
        return True
    except Exception:
        return False


def deadletter_headers(record: ConsumerRecord, reason: str, *, group: str) -> list[tuple[str, bytes]]:
    return [
        ("source_topic", record.topic.encode()),
        ("source_partition", str(record.partition).encode()),
        ("source_offset", str(record.offset).encode()),
        ("error", reason[:2000].encode("utf-8", "replace")),
        ("consumer_group", group.encode()),
        ("failed_at", datetime.now(UTC).isoformat().encode()),
    ]


@dataclass(slots=True)
class BatchOutcome:
    """What a handler reports: records it refused as poison, with the reason."""

    poison: list[tuple[ConsumerRecord, str]] = field(default_factory=list)


Handler = Callable[[list[ConsumerRecord]], Awaitable[BatchOutcome]]


class _CommitOnRevoke(ConsumerRebalanceListener):
    def __init__(self, loop: "ConsumerLoop") -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._loop.commit_pending(revoked)
        for tp in revoked:
            # Another replica reports this partition's lag from now on; a stale series here would double it.
            try:
                metrics.CONSUMER_LAG.remove(self._loop.service, tp.topic, str(tp.partition))
            except KeyError:
                pass
            self._loop._committed.pop(tp, None)
            self._loop._pending.pop(tp, None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        # A batch fetched before this assignment must not commit: see `ConsumerLoop._process`.
        self._loop._assignments += 1
        for tp in assigned:
            self._loop._pending.pop(tp, None)
            self._loop._committed.pop(tp, None)


class ConsumerLoop:
    """Consumes `topics` in group `group`, hands batches to `handler`, dead-letters poison, commits after.

    A broker restart: aiokafka reconnects, finds its member unknown to the new coordinator and rejoins the group;
    the loop itself keeps running (readiness shows `kafka` false meanwhile, from the producer). The embedded
    broker keeps everything in memory, so it comes back with empty topics (recreated by the services' producers,
    see `ManagedProducer`) and no committed offsets: `auto_offset_reset="earliest"` then starts each partition at
    its first record, so nothing produced after the restart is skipped; "latest" would skip whatever arrived
    before the consumer rejoined. A position left beyond the end of a new, shorter log is out of range, which the
    same policy resets to the beginning. Offsets pending from before the restart are dropped on rebalance (and a
    batch fetched under an earlier assignment commits nothing), so an old, larger offset is never committed onto
    the new log, where it would skip records. With a durable broker a restart changes nothing: the group
    resumes from its committed offsets, redelivering at most the uncommitted batches.
    """

    def __init__(self, *, service: str, topic_names: Sequence[str], group: str, settings: KafkaSettings,
                 handler: Handler, producer: "ManagedProducer", after: Sequence[asyncio.Event] = ()) -> None:
        self.service = service
        self.topic_names = list(topic_names)
        self.group = group
        self.settings = settings
        self.handler = handler
        # What must be up before consuming: the producer (for dead letters) and e.g. the database schema.
        self._after = [producer.started, *after]
        self.producer = producer
        self.healthy = False
        self.last_error: str | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._stopping = asyncio.Event()
        self._pending: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._attempts = 0  # consecutive failed attempts of the current batch (any kind): the backoff
        self._unknown_attempts = 0  # of them, the ones not known transient: `max_attempts` applies to these
        self._assignments = 0  # rebalances so far; a batch fetched under an older assignment is not committed
        for topic in self.topic_names:  # so alert rules see a zero before the first dead letter
            metrics.CONSUMER_DEADLETTERED.labels(service, topic)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"{self.service}-consumer")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task

    async def commit_pending(self, partitions: Sequence[TopicPartition] | None = None) -> None:
        if self._consumer is None or not self._pending:
            return
        offsets = {tp: off for tp, off in self._pending.items() if partitions is None or tp in partitions}
        if not offsets:
            return
        try:
            # Bounded: aiokafka retries a commit for a partition the broker does not know (a topic not yet
            # recreated after a broker restart) without end, which would stall the loop and any rebalance.
            await asyncio.wait_for(self._consumer.commit(offsets), self.settings.request_timeout_ms / 1000)
        except Exception as exc:
            # Typically a rebalance took the partitions away, or the broker is away: the records are redelivered
            # (to their new owner, or after a restart) and the idempotent writes absorb them. The offsets are
            # dropped rather than retried later: a broker that lost its data (the embedded one, restarted) would
            # take them onto its new, shorter logs and the group would skip the records below them. The next
            # batch of a partition commits past these records anyway.
            log.warning("offset commit failed", extra={"error": repr(exc)})
            for tp in offsets:
                self._pending.pop(tp, None)
            return
        for tp, off in offsets.items():
            self._committed[tp] = off
            self._pending.pop(tp, None)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            pass

    async def _start_consumer(self) -> AIOKafkaConsumer | None:
        attempts = 0
        while not self._stopping.is_set():
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.settings.bootstrap_servers,
                group_id=self.group,
                client_id=f"{self.service}-consumer",
                enable_auto_commit=False,
                # See the class docstring: where a partition without a committed offset (or with one beyond
                # its log, after a broker lost its data) starts.
                auto_offset_reset="earliest",
                max_poll_records=self.settings.max_batch,
                request_timeout_ms=self.settings.request_timeout_ms,
                # Topics recreated after a broker restart are noticed within this time even without an error.
                metadata_max_age_ms=30000,
            )
            try:
                await consumer.start()
                consumer.subscribe(self.topic_names, listener=_CommitOnRevoke(self))
                return consumer
            except Exception as exc:
                attempts += 1
                self.last_error = f"kafka: {exc!r}"
                log.warning("consumer could not start, retrying", extra={"error": repr(exc)})
                try:
                    await consumer.stop()
                except Exception:
                    pass
                await self._sleep(backoff(attempts, base=self.settings.retry_backoff_s,
                                          cap=self.settings.max_backoff_s))
        return None

    async def _run(self) -> None:
        prerequisites = asyncio.ensure_future(asyncio.gather(*(event.wait() for event in self._after)))
        stopping = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({prerequisites, stopping}, return_when=asyncio.FIRST_COMPLETED)
        for waiter in (prerequisites, stopping):
            waiter.cancel()
        if self._stopping.is_set():
            return
        # Supervises the consumer: an unexpected crash restarts it (uncommitted records are redelivered)
        # instead of leaving the service up but silently not consuming.
        restarts = 0
        while not self._stopping.is_set():
            consumer = await self._start_consumer()
            if consumer is None:
                return
            self._consumer = consumer
            self.healthy = True
            try:
                while not self._stopping.is_set():
                    batch = await consumer.getmany(timeout_ms=self.settings.poll_timeout_ms,
                                                   max_records=self.settings.max_batch)
                    if batch:
                        await self._process(consumer, batch)
                    await self._update_lag(consumer)
                restarts = 0
            except Exception as exc:
                restarts += 1
                self.healthy = False
                self.last_error = repr(exc)
                log.exception("consumer loop failed; restarting it")
            finally:
                await self.commit_pending()
                try:
                    await consumer.stop()
                except Exception:
                    pass
                self._consumer = None
                self._pending.clear()
            if restarts:
                await self._sleep(backoff(restarts, base=self.settings.retry_backoff_s,
                                          cap=self.settings.max_backoff_s))

    async def _process(self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        records = [r for tp in sorted(batch, key=lambda t: (t.topic, t.partition)) for r in batch[tp]]
        for tp, recs in batch.items():
            metrics.CONSUMER_CONSUMED.labels(self.service, tp.topic).inc(len(recs))
        started = time.perf_counter()  # not the loop's clock: uvloop's counts whole milliseconds
        assignments = self._assignments
        try:
            outcome = await self.handler(records)
            await self._deadletter(outcome.poison)
        except Exception as exc:
            kind = classify(exc)
            self._attempts += 1
            if kind is Failure.UNKNOWN:
                self._unknown_attempts += 1
            # Transient failures never count towards `max_attempts`: a database outage followed by one unknown
            # error must not send the batch straight to isolation (and its records to the dead-letter topic).
            action = decide(exc, self._unknown_attempts, max_attempts=self.settings.max_attempts)
            label = "transient" if kind is Failure.TRANSIENT else "permanent"
            for tp in batch:
                metrics.CONSUMER_FAILED.labels(self.service, tp.topic, label).inc()
            self.healthy = False
            self.last_error = repr(exc)
            if action is Action.RETRY or self._stopping.is_set():
                # Nothing is committed: rewinding makes the next poll fetch the same records again, and polling
                # (rather than retrying in place) keeps this member in its group while the outage lasts.
                log.warning("batch failed, will retry", extra={"error": repr(exc), "attempt": self._attempts,
                                                              "transient": kind is Failure.TRANSIENT})
                self._rewind(consumer, batch)
                await self._sleep(backoff(self._attempts, base=self.settings.retry_backoff_s,
                                          cap=self.settings.max_backoff_s))
                return
            log.error("batch failed repeatedly, isolating records", extra={"error": repr(exc)})
            if not await self._isolate(records):
                self._rewind(consumer, batch)
                return
        self._attempts = 0
        self._unknown_attempts = 0
        self.healthy = True
        self.last_error = None
        for tp, recs in batch.items():
            metrics.CONSUMER_PROCESSED.labels(self.service, tp.topic).inc(len(recs))
        if assignments != self._assignments:
            # The group rebalanced while the batch was handled (e.g. the broker restarted and the member rejoined):
            # these offsets belong to the earlier assignment and may not even exist in the partitions' log now.
            # Nothing is committed; whoever owns the partitions reads them from the committed offsets.
            log.info("group rebalanced during the batch; its offsets are not committed")
            return
        for tp, recs in batch.items():
            self._pending[tp] = recs[-1].offset + 1
        await self.commit_pending()
        metrics.CONSUMER_BATCH_SECONDS.labels(self.service).observe(time.perf_counter() - started)

    async def _isolate(self, records: list[ConsumerRecord]) -> bool:
        """Handle records one at a time so one bad record cannot sink its batch. False on a transient failure."""
        for record in records:
            try:
                outcome = await self.handler([record])
                await self._deadletter(outcome.poison)
            except Exception as exc:
                if classify(exc) is Failure.TRANSIENT:
                    return False
                await self._deadletter([(record, f"{type(exc).__name__}: {exc}")])
        return True

    def _rewind(self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        for tp, recs in batch.items():
            try:
                consumer.seek(tp, recs[0].offset)
            except Exception:
                pass

    async def _deadletter(self, poison: Sequence[tuple[ConsumerRecord, str]]) -> None:
        if not poison:
            return
        futures = []
        for record, reason in poison:
            log.warning("dead-lettering record", extra={"topic": record.topic, "partition": record.partition,
                                                       "offset": record.offset, "reason": reason[:300]})
            futures.append(await self.producer.producer.send(
                topics.DEADLETTER, value=record.value, key=record.key,
                headers=deadletter_headers(record, reason, group=self.group)))
        await asyncio.gather(*futures)
        for record, _ in poison:
            metrics.CONSUMER_DEADLETTERED.labels(self.service, record.topic).inc()

    async def _update_lag(self, consumer: AIOKafkaConsumer) -> None:
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                continue
            committed = self._committed.get(tp)
            if committed is None:
                try:
                    # Bounded: while the broker is away the group coordinator lookup would wait for it.
                    committed = await asyncio.wait_for(consumer.committed(tp),
                                                       self.settings.request_timeout_ms / 1000) or 0
                except Exception:
                    continue
                self._committed[tp] = committed
            metrics.CONSUMER_LAG.labels(self.service, tp.topic, str(tp.partition)).set(max(0, high - committed))
