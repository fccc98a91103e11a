import asyncio
import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from recognition import audit_trail, endpoints, models, service, watch, writing
from recognition.config import RecognitionSettings, get_settings
from shared import app as base
from shared import db, kafka, topics


def create_app(settings: RecognitionSettings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        separate = settings.audit_url != settings.database.url
        database = db.Database(settings.database.url, models.LEDGER if separate else models.EVERYTHING,
                               pool_size=settings.database.pool_size,
                               statement_timeout_s=settings.database.statement_timeout_s)
        audit = db.Database(settings.audit_url, models.AUDIT, pool_size=settings.database.pool_size,
                            statement_timeout_s=settings.database.statement_timeout_s) if separate else None
        trail = audit or database  # where the audit trail lives
        producer = kafka.ManagedProducer(settings.kafka, client_id="recognition",
                                         create_topics=settings.kafka.create_topics)
        watcher = watch.Watcher(engine=database.engine, producer=producer, settings=settings)
        writer = writing.Writer(engine=database.engine, audit_engine=trail.engine, settings=settings)
        consumer = kafka.ConsumerLoop(
            service="recognition", topic_names=[topics.CLASSIFIED, topics.REACTIONS, topics.MEMBER_EVENTS],
            group=settings.kafka.group_id or "anchor-recognition", settings=settings.kafka, producer=producer,
            handler=functools.partial(service.handle, writer=writer, on_deleted=watcher.forget),
            after=[database.initialized, trail.initialized])  # a deletion erases audit rows too
        app.state.watcher = watcher
        app.state.audit = trail
        app.state.audit_trail = audit_trail.AuditTrail(trail.engine, wait_s=settings.database.statement_timeout_s)
        if audit is not None:
            audit.start()
        try:
            async with base.running(app, producer=producer, database=database, consumer=consumer):
                watcher.start(after=database.initialized)
                try:
                    yield
                finally:
                    await watcher.stop()
        finally:
            await asyncio.to_thread(writer.close)  # after the consumer has stopped: no batch is in flight
            await app.state.audit_trail.close()  # after the server has answered every request in flight
            if audit is not None:
                await audit.stop()

    app = base.build(service="recognition", title="Anchor recognition",
                     description="The member ledger and the recognition, burnout-risk, topic and health views.",
                     settings=settings, lifespan=lifespan)
    app.include_router(endpoints.router)
    return app
