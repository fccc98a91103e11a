import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import timedelta

from fastapi import FastAPI

from ingest import endpoints, models, service
from ingest.config import IngestSettings, get_settings
from shared import app as base
from shared import db, kafka, ratelimit, topics

log = logging.getLogger("anchor.ingest")


def create_app(settings: IngestSettings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = db.Database(settings.database.url, models.SQLModel.metadata, pool_size=settings.database.pool_size,
                               statement_timeout_s=settings.database.statement_timeout_s)
        producer = kafka.ManagedProducer(settings.kafka, client_id="ingest",
                                         create_topics=settings.kafka.create_topics)

        async def relay() -> None:
            await producer.started.wait()
            while True:
                try:
                    await service.relay_once(engine=database.engine, producer=producer,
                                             grace=timedelta(seconds=settings.outbox.grace_s),
                                             limit=settings.outbox.batch)
                except Exception as exc:
                    log.warning("outbox relay pass failed", extra={"error": repr(exc)})
                await asyncio.sleep(settings.outbox.interval_s)

        # Member deletions (koc.members.v1): ingest removes the member's records from its own tables.
        consumer = kafka.ConsumerLoop(
            service="ingest", topic_names=[topics.MEMBER_EVENTS], group=settings.kafka.group_id or "anchor-ingest",
            settings=settings.kafka, producer=producer,
            handler=functools.partial(service.handle_member_events, engine=database.engine),
            after=[database.initialized])

        async with base.running(app, producer=producer, database=database, consumer=consumer):
            relay_task = asyncio.create_task(relay(), name="outbox-relay")
            try:
                yield
            finally:
                relay_task.cancel()
                with suppress(asyncio.CancelledError):
                    await relay_task

    app = base.build(service="ingest", title="Anchor ingest",
                     description="Accepts community posts and reactions, de-duplicates them and publishes events.",
                     settings=settings, lifespan=lifespan)
    limit = settings.rate_limit
    app.state.rate_limiter = (ratelimit.RateLimiter(limit.records_per_second, limit.burst)
                              if limit.records_per_second > 0 else None)
    app.include_router(endpoints.router)
    return app
