"""Where a request's database read runs: on the event loop's own thread, or in a worker thread.

A worker thread must win the interpreter lock back from the event loop after every call into the database
driver, which releases it. Under load the loop always holds it, and a waiting thread gets it only when the
loop is made to switch, after the switch interval (5 ms): a per-member read of a dozen driver calls took 45 ms
(p50) with 20 clients at 1M posts, against 1 ms of work. On SQLite the work is the process's own CPU anyway, so
a read that is short and bounded (one post, one member) runs on the loop, in arrival order, without a switch.
Reads that grow with the community (a list, a window) and every write (which may wait for SQLite's write lock)
stay in threads, so they never stall the loop for long.
"""

import asyncio
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def on_loop(setting: bool | None, *, dialect: str) -> bool:
    """Whether bounded reads run on the loop: as configured, else on SQLite (in-process work) and not elsewhere
    (a network round trip per statement would block the loop)."""
    return dialect == "sqlite" if setting is None else setting


async def run(work: Callable[[], T], *, on_loop: bool, bounded: bool) -> T:
    if bounded and on_loop:
        return work()
    return await asyncio.to_thread(work)
