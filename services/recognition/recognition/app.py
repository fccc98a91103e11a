import asyncio
import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from recognition import audit_trail, endpoints, models, read_pool, reads, service, watch, writing
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
        app.state.reads_on_loop = reads.on_loop(settings.reads.on_loop, dialect=database.engine.dialect.name)
        app.state.audit = trail
        readers = reads.processes(settings.reads.processes, url=settings.database.url)
        app.state.read_pool = read_pool.ReadPool(
            url=settings.database.url, size=readers, timeout_s=settings.database.statement_timeout_s + 5,
            statement_timeout_s=settings.database.statement_timeout_s) if readers else None
        if app.state.read_pool is not None:
            app.state.read_pool.start()
        # With reads on the loop, a SQLite trail commits each read's rows there too (`AuditTrail.record`).
        at_once = audit_trail.at_once_engine(settings.audit_url) \
            if app.state.reads_on_loop and db.on_disk_sqlite(settings.audit_url) else None
        app.state.audit_trail = audit_trail.AuditTrail(trail.engine, wait_s=settings.database.statement_timeout_s,
                                                       at_once=at_once)
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
            if app.state.read_pool is not None:
                await app.state.read_pool.close()
            if at_once is not None:
                at_once.dispose()
            if audit is not None:
                await audit.stop()

    app = base.build(service="recognition", title="Anchor recognition",
                     description="The member ledger and the recognition, burnout-risk, topic and health views.",
                     settings=settings, lifespan=lifespan)
    app.include_router(endpoints.router)
    return app
