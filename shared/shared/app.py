"""What every service's `create_app()` shares: errors, middleware, auth registry, health, readiness, metrics.

No I/O happens here: connections are opened in the service's lifespan, which also installs the readiness
probe on `app.state.readiness`.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from shared import db, errors, gc_pauses, kafka, logs, metrics, middleware
from shared.auth import TokenRegistry
from shared.settings import ServiceSettings

Readiness = Callable[[], Awaitable[dict[str, bool]]]


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    checks: dict[str, bool]


async def _not_started() -> dict[str, bool]:
    return {"started": False}


def readiness_probe(*, producer: kafka.ManagedProducer, database: db.Database | None = None,
                    consumer: kafka.ConsumerLoop | None = None) -> Readiness:
    """The /readyz checks of a service: the broker, and its database and consumer when it has them."""

    async def probe() -> dict[str, bool]:
        checks = {"kafka": await producer.ready()}
        if database is not None:
            checks["database"] = await database.ready()
        if consumer is not None:
            checks["consumer"] = consumer.healthy
        return checks

    return probe


LOOP_WATCH_INTERVAL_S = 0.1


async def watch_loop(observe: Callable[[float], None], interval: float = LOOP_WATCH_INTERVAL_S) -> None:
    """Passes `observe` how late the event loop wakes a sleeper, every `interval` s, until cancelled. The
    services record it in `anchor_event_loop_lag_seconds`: the request histogram starts timing inside the app,
    so a loop held up by CPU-bound work, or starved of a core, shows only here: clients see it, the per-route
    latencies do not."""
    while True:
        # perf_counter, not the loop's clock: uvloop's counts whole milliseconds, as coarse as the first bucket.
        due = time.perf_counter() + interval
        await asyncio.sleep(interval)
        observe(max(0.0, time.perf_counter() - due))


@asynccontextmanager
async def running(app: FastAPI, *, producer: kafka.ManagedProducer, database: db.Database | None = None,
                  consumer: kafka.ConsumerLoop | None = None) -> AsyncIterator[None]:
    """A service's infrastructure for the span of its lifespan: started (each keeps retrying in the
    background until its dependency answers), exposed on `app.state` with the readiness probe, and
    stopped in reverse order, so the consumer's last commit still has its producer and database."""
    if database is not None:
        database.start()
        app.state.database = database
        app.state.engine = database.engine
    producer.start()
    app.state.kafka = producer
    if consumer is not None:
        consumer.start()
        app.state.consumer = consumer
    app.state.readiness = readiness_probe(producer=producer, database=database, consumer=consumer)
    watcher = asyncio.create_task(watch_loop(metrics.EVENT_LOOP_LAG.labels(app.state.service).observe),
                                  name="loop-lag")
    gc_pauses.watch(app.state.service)
    # Started: what exists now lives as long as the process, and later full collections need not walk it.
    gc_pauses.settle()
    try:
        yield
    finally:
        watcher.cancel()
        with suppress(asyncio.CancelledError):
            await watcher
        if consumer is not None:
            await consumer.stop()
        await producer.stop()
        if database is not None:
            await database.stop()


def database_ready(request: Request) -> None:
    """A route's readiness check (`auth.require(..., ready=...)`): 503 until the service's database schema exists
    (it is created in the background)."""
    database = getattr(request.app.state, "database", None)
    if database is None or not database.initialized.is_set():
        raise errors.AnchorError(503, "unavailable", "the database is not available yet; retry later",
                                 headers={"Retry-After": "5"})


def build(*, service: str, title: str, description: str, settings: ServiceSettings,
          lifespan: Callable[[FastAPI], AbstractAsyncContextManager[Any]]) -> FastAPI:
    app = FastAPI(title=title, description=description, version="1.0.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.service = service
    app.state.tokens = TokenRegistry(settings.auth)
    app.state.readiness = _not_started
    errors.install(app)
    app.add_middleware(middleware.BodyLimit, limit=settings.http.max_body_bytes)
    app.add_middleware(middleware.Metrics, service=service)

    @app.get("/healthz", response_model=Health, tags=["ops"], summary="Process alive")
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get("/readyz", response_model=Ready, tags=["ops"], summary="Kafka and the database reachable",
             responses={503: {"description": "a dependency is unreachable", "model": Ready}})
    async def readyz(request: Request) -> Any:
        try:
            checks = await asyncio.wait_for(request.app.state.readiness(), 5)
        except TimeoutError:
            checks = {"timeout": False}
        for name, ok in checks.items():
            metrics.DEPENDENCY_UP.labels(service, name).set(1 if ok else 0)
        ready = all(checks.values())
        body = Ready(status="ready" if ready else "unavailable", checks=checks)
        return JSONResponse(body.model_dump(), status_code=200 if ready else 503)

    app.get("/metrics", include_in_schema=False)(metrics.endpoint)
    return app


# uvicorn picks uvloop and httptools when they are installed (they are dependencies of the schema package): on one
# core they doubled the requests/s of /healthz (4,500 -> 8,600) and added a third to a snapshot-served read
# (3,000 -> 4,000) against asyncio's own loop and the pure-Python h11 parser; see bench/README.md.
UVICORN_OPTIONS: dict[str, Any] = {"log_config": None, "access_log": False, "timeout_graceful_shutdown": 10,
                                   "lifespan": "on", "loop": "auto", "http": "auto"}


def serve(app: FastAPI, settings: ServiceSettings, *, service: str) -> None:
    """Runs the app under uvicorn; SIGTERM and Ctrl-C trigger the lifespan's clean shutdown."""
    logs.configure(service, settings.log_level, settings.log_json)
    uvicorn.run(app, host=settings.http.host, port=settings.http.port, **UVICORN_OPTIONS)
