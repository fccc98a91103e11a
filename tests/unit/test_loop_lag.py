"""Event-loop lag: a loop held up by blocking work is what clients wait for before any handler's timer starts."""

import asyncio
import time

from prometheus_client import REGISTRY

from shared import app, metrics


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"service": "lag-test", **labels}) or 0.0


async def test_a_blocked_loop_shows_as_lag_and_an_idle_one_does_not() -> None:
    lag = metrics.EVENT_LOOP_LAG.labels("lag-test")
    watcher = asyncio.create_task(app.watch_loop(lag.observe, interval=0.02))
    try:
        await asyncio.sleep(0.2)  # idle: every wake-up on time, give or take the scheduler
        idle_count = _sample("anchor_event_loop_lag_seconds_count")
        idle_sum = _sample("anchor_event_loop_lag_seconds_sum")
        # Loose: the test loop is shared with other tests' leftovers, on a machine that may be busy.
        assert idle_count >= 5 and idle_sum / idle_count < 0.1
        slow_before = idle_count - _sample("anchor_event_loop_lag_seconds_bucket", le="0.25")
        time.sleep(0.3)  # noqa: ASYNC251 - blocking the loop is the point: CPU-bound work on its thread
        await asyncio.sleep(0.05)
        slow_after = (_sample("anchor_event_loop_lag_seconds_count")
                      - _sample("anchor_event_loop_lag_seconds_bucket", le="0.25"))
        assert slow_after - slow_before >= 1  # the wake-up due during the block, about 0.28 s late
        assert _sample("anchor_event_loop_lag_seconds_sum") - idle_sum >= 0.25
    finally:
        watcher.cancel()
