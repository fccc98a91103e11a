"""Prometheus metrics shared by every service. Labels stay low-cardinality: route templates, never raw paths or ids."""

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response

HTTP_REQUESTS = Counter(
    "anchor_http_requests_total", "HTTP requests answered", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "anchor_http_request_duration_seconds",
    "HTTP request latency",
    ["service", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CONSUMER_CONSUMED = Counter(
    "anchor_consumer_messages_consumed_total", "Kafka records fetched", ["service", "topic"]
)
CONSUMER_PROCESSED = Counter(
    "anchor_consumer_messages_processed_total", "Kafka records processed and committed", ["service", "topic"]
)
CONSUMER_FAILED = Counter(
    "anchor_consumer_failures_total", "Batch processing attempts that failed", ["service", "topic", "kind"]
)
CONSUMER_DEADLETTERED = Counter(
    "anchor_consumer_messages_deadlettered_total", "Kafka records sent to the dead-letter topic", ["service", "topic"]
)
CONSUMER_LAG = Gauge(
    "anchor_consumer_lag", "Records behind: partition highwater minus committed offset",
    ["service", "topic", "partition"],
)
CONSUMER_BATCH_SECONDS = Histogram(
    "anchor_consumer_batch_duration_seconds", "Time to process and commit one fetched batch", ["service"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENT_LOOP_LAG = Histogram(
    "anchor_event_loop_lag_seconds",
    "How late the event loop ran a timer that was due: what every request waits before its handler starts",
    ["service"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
GC_PAUSE = Histogram(
    "anchor_gc_pause_seconds",
    "Time the cyclic garbage collector held the interpreter, per collection and generation",
    ["service", "generation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
DEPENDENCY_UP = Gauge(
    "anchor_dependency_up", "1 when the dependency answered the last readiness check", ["service", "dependency"]
)


async def endpoint(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
