import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from recognition import endpoints, models, service
from recognition.config import RecognitionSettings, get_settings
from shared import app as base
from shared import db, kafka, topics


def create_app(settings: RecognitionSettings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = db.Database(settings.database.url, models.SQLModel.metadata, pool_size=settings.database.pool_size)
        database.start()
        engine = database.engine
        producer = kafka.ManagedProducer(settings.kafka, client_id="recognition",
                                         create_topics=settings.kafka.create_topics)
        producer.start()
        consumer = kafka.ConsumerLoop(
            service="recognition", topic_names=[topics.CLASSIFIED, topics.REACTIONS],
            group=settings.kafka.group_id or "anchor-recognition", settings=settings.kafka, producer=producer,
            handler=functools.partial(service.handle, engine=engine), after=[database.initialized])
        app.state.engine = engine
        app.state.database = database
        app.state.kafka = producer
        app.state.consumer = consumer

        app.state.readiness = base.readiness_probe(producer=producer, database=database, consumer=consumer)
        consumer.start()
        try:
            yield
        finally:
            await consumer.stop()
            await producer.stop()
            await database.stop()

    app = base.build(service="recognition", title="Anchor recognition",
                     description="The member ledger and the recognition, burnout-risk, topic and health views.",
                     settings=settings, lifespan=lifespan)
    app.include_router(endpoints.router)
    return app
