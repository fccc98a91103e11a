"""Classifying: on request, and for every post on `koc.posts.v1`, published to `koc.posts.classified.v1`."""

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter, Histogram
from pydantic import ValidationError

from classifier.backends import Backend, Item
from shared import kafka, topics
from shared.events import Classification, ClassifiedPostEvent, PostEvent

log = logging.getLogger("anchor.classifier")

CLASSIFIER_POSTS = Counter("anchor_classifier_posts_total", "Posts classified", ["path"])
CLASSIFIER_LABELS = Counter("anchor_classifier_labels_total", "Labels assigned to consumed posts", ["label"])
CLASSIFIER_SECONDS = Histogram(
    "anchor_classifier_batch_seconds", "Model time per classified batch", ["path"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))


async def classify(*, backend: Backend, items: Sequence[Item], path: str) -> list[Classification]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    # Off the event loop, so health checks and other requests stay responsive during a large batch.
    results = await asyncio.to_thread(backend.classify, items)
    CLASSIFIER_SECONDS.labels(path).observe(loop.time() - start)
    CLASSIFIER_POSTS.labels(path).inc(len(items))
    return results


def decode(record: ConsumerRecord) -> PostEvent:
    if record.value is None:
        raise kafka.PoisonMessage("empty record value")
    try:
        return PostEvent.model_validate_json(record.value)
    except ValidationError as exc:
        raise kafka.PoisonMessage(f"invalid post event: {_summary(exc)}") from exc


def _summary(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors()[:5])


async def handle_posts(records: list[ConsumerRecord], *, backend: Backend,
                       producer: kafka.ManagedProducer) -> kafka.BatchOutcome:
    outcome = kafka.BatchOutcome()
    events: list[PostEvent] = []
    for record in records:
        try:
            events.append(decode(record))
        except kafka.PoisonMessage as exc:
            outcome.poison.append((record, str(exc)))
    if not events:
        return outcome
    items = [Item(e.content, e.parent.content if e.parent else None, e.title) for e in events]
    results = await classify(backend=backend, items=items, path="stream")
    now = datetime.now(UTC)
    futures = []
    for event, result in zip(events, results, strict=True):
        out = ClassifiedPostEvent(**event.model_dump(), classification=result, classified_at=now)
        futures.append(await producer.producer.send(topics.CLASSIFIED, key=event.thread_id.encode(),
                                                    value=out.model_dump_json().encode()))
        for label in result.labels:
            CLASSIFIER_LABELS.labels(label).inc()
    await asyncio.gather(*futures)
    return outcome
