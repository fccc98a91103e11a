import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from classifier import backends, endpoints, service
from classifier.config import ClassifierSettings, get_settings
from shared import app as base
from shared import kafka, topics


def create_app(settings: ClassifierSettings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        backend = backends.load(settings.model.backend, settings.model.options)
        producer = kafka.ManagedProducer(settings.kafka, client_id="classifier",
                                         create_topics=settings.kafka.create_topics)
        consumer = kafka.ConsumerLoop(
            service="classifier", topic_names=[topics.POSTS], group=settings.kafka.group_id or "anchor-classifier",
            settings=settings.kafka, producer=producer,
            handler=functools.partial(service.handle_posts, backend=backend, producer=producer))
        app.state.backend = backend
        async with base.running(app, producer=producer, consumer=consumer):
            yield

    app = base.build(service="classifier", title="Anchor classifier",
                     description="Labels community posts per labels.md; consumes koc.posts.v1, "
                                 "publishes koc.posts.classified.v1, and classifies on request.",
                     settings=settings, lifespan=lifespan)
    app.include_router(endpoints.router)
    return app
