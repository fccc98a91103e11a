"""Where a request's database read runs: on the event loop's own thread, or in a worker thread.

A worker thread must win the interpreter lock back from the event loop after every call into the database
driver, which releases it. Under load the loop always holds it, and a waiting thread gets it only when the
loop is made to switch, after the switch interval (5 ms), and each hop to a thread costs the request another
turn of the busy loop. On SQLite the work is the process's own CPU anyway, so a read whose cost is bounded (a post
by id; a burnout risk, or a list of them, served from the community snapshot) runs on the loop, in arrival
order, without a switch. Reads whose cost grows with the community (a list or a window computed on demand) or
with a member's history (a member's view, a thank-you draft, a risk computed on demand: the busiest members
have thousands of posts, and while the pipeline was ingesting, such reads on the loop held every other request
behind them, p50 85 ms against 15 ms in threads) stay in threads, and so does every write (which may wait for
SQLite's write lock). Where the service has reader processes (`read_pool.py`), a member's view and thank-you
draft go there instead of a thread.
"""

import asyncio
from collections.abc import Callable
from typing import TypeVar

from shared import db

T = TypeVar("T")


def on_loop(setting: bool | None, *, dialect: str) -> bool:
    """Whether bounded reads run on the loop: as configured, else on SQLite (in-process work) and not elsewhere
    (a network round trip per statement would block the loop)."""
    return dialect == "sqlite" if setting is None else setting


def processes(setting: int | None, *, url: str) -> int:
    """Reader processes (`read_pool.py`) for reads that follow a member's history: as configured, else one; never
    any when no other process can open the database (SQLite in memory)."""
    if not db.shared_by_processes(url):
        return 0
    return 1 if setting is None else setting


async def run(work: Callable[[], T], *, on_loop: bool, bounded: bool) -> T:
    if bounded and on_loop:
        return work()
    return await asyncio.to_thread(work)
