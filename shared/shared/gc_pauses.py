"""What the cyclic garbage collector costs a service: its pauses, measured, and made shorter.

A full (generation 2) collection walks every tracked object in the process and holds the interpreter lock
the whole time. In a service that holds a model, SQLAlchemy's and pydantic's machinery and a community
snapshot, such a pause took 0.2-0.35 s under load, and every request in flight waited for it. `settle()`
moves what exists once the service has started (modules, schemas, the model, the engine) into the
permanent generation, which collections skip, so a full collection only walks what came after.
"""

import gc
import time
from typing import Any

from shared import metrics

__all__ = ["settle", "watch"]

_watched: set[str] = set()


def watch(service: str) -> None:
    """Records every collection's pause in `anchor_gc_pause_seconds` (once per service and process)."""
    if service in _watched:
        return
    _watched.add(service)
    by_generation = {g: metrics.GC_PAUSE.labels(service, str(g)) for g in range(3)}
    started = [0.0]

    def callback(phase: str, info: dict[str, Any]) -> None:
        # Collections never nest and hold the interpreter lock throughout, so one start time is enough.
        if phase == "start":
            started[0] = time.perf_counter()
        elif started[0]:
            by_generation[info.get("generation", 2)].observe(time.perf_counter() - started[0])
            started[0] = 0.0

    gc.callbacks.append(callback)


def settle() -> None:
    """Collects once, then exempts every object alive now from later collections (`gc.freeze`)."""
    gc.collect()
    gc.freeze()
